// The spec's public types, with its JSON field names. The device side (UpdateManager,
// RollbackManager, GracefulUpdater) implements these interfaces; the publisher side produces
// what UpdateInfo and UpdatePackage describe.

import type { Channel } from './trust/metadata.ts';
import type { ErrorCode } from './errors.ts';
import type { Envelope } from './trust/dsse.ts';
import type { RootDoc } from './trust/root.ts';

/** What `ferry check --json` prints. */
export interface UpdateInfo {
  currentVersion: string | null;
  latestVersion: string | null;
  updateAvailable: boolean;
  releaseNotes: string;
  releaseDate: string | null;
  mandatory: boolean;
  securityFix: boolean;
  channel: Channel;
  /** Where the chosen artifact comes from (a source-relative path or URL). */
  downloadUrl: string | null;
  /** Bytes the planned download moves (full, delta or chain). */
  downloadSize: number | null;
  /**
   * The signed sha256 (hex) of each artifact downloadUrl names, in the same order and joined the
   * same way (" + " for a chain of deltas); null when up to date. Copied from the verified
   * manifest, so it is what the download will be checked against.
   */
  checksum: string | null;
  /**
   * The DSSE signatures over the verified manifest that vouches for latestVersion and checksum
   * (keyid, and the base64 signature over the envelope's PAE); null when up to date.
   */
  signature: ManifestSignature[] | null;
}

/** One release-key signature of a manifest's DSSE envelope. */
export interface ManifestSignature {
  /** The signing key's id, as root.json names it. */
  keyid: string;
  /** The ed25519 signature, base64. */
  sig: string;
}

/** One artifact the device has decided to fetch, as the signed manifest describes it. */
export interface UpdatePackage {
  version: string;
  /** The signed target this artifact is for (the manifest's "<platform>-<arch>" key it came from). */
  platform: string;
  arch: string;
  kind: 'full' | 'delta' | 'chain';
  downloadUrl: string;
  size: number;
  /** sha256 hex of the artifact bytes. */
  checksum: string;
  /** The DSSE envelope of the manifest that pins this artifact. */
  signature: Envelope;
}

export interface TimeWindow {
  /**
   * 0 = Sunday … 6 = Saturday. Empty = every day. ferry.json also accepts the spec's name
   * `dayOfWeek` for it (both at once only when they list the same days).
   */
  days: number[];
  /** Local hour the window opens (0-23) and closes (1-24); start > end wraps past midnight. */
  startHour: number;
  endHour: number;
  /** IANA zone the hours are read in, e.g. "Europe/Berlin". */
  timezone: string;
}

export interface UpdatePolicy {
  /**
   * false: the device takes no update on its own. The agent makes no attempt at all (no check,
   * download, staging or switch, security fixes included) until it is true again; what a person
   * asks for (check, download, apply/update with trigger 'manual') still runs.
   */
  enabled: boolean;
  autoUpdate: boolean;
  channel: Channel;
  /**
   * Seconds between checks, at most 7 days; the agent adds jitter. ferry.json takes an integer
   * (seconds) or a duration such as "90s", "1h", "2d".
   */
  checkInterval: number;
  maintenanceWindow: TimeWindow | null;
  requireApproval: boolean;
  allowDowngrade: boolean;
}

export type UpdateOutcome = 'committed' | 'rolled-back' | 'refused' | 'failed';

export interface UpdateRecord {
  id: string;
  from: string | null;
  /** null when the attempt was refused before a version was chosen (e.g. replayed metadata). */
  to: string | null;
  source: string | null;
  /** How the new tree was built; 'rollback' for a return to a restore point; null if never planned. */
  kind: 'full' | 'delta' | 'chain' | 'rollback' | null;
  /** A delta or chain that failed and was replaced by the full artifact. */
  fellBackToFull?: boolean;
  /** Why that delta failed ("CODE: message"), with fellBackToFull. */
  fallbackReason?: string;
  bytesMoved: number;
  startedAt: string;
  finishedAt: string | null;
  outcome: UpdateOutcome | 'in-progress';
  errorCode: ErrorCode | null;
  message?: string;
}

export interface RestorePoint {
  id: string;
  version: string;
  createdAt: string;
  reason: 'before-switch' | 'manual';
}

/** What apply() did: nothing to do, staged and waiting (approval, window), committed, or rolled back. */
export type ApplyResult =
  | { status: 'up-to-date'; current: string | null }
  | { status: 'waiting'; version: string; reason: string; why: string }
  | { status: 'committed'; record: UpdateRecord }
  | { status: 'rolled-back'; record: UpdateRecord };

/** What download() fetches. */
export interface DownloadOptions {
  /**
   * A version one of the device's channels offers (a verified pointer names it), instead of the
   * one the policy would choose. Refused: a version no channel offers (ERR_NOT_FOUND), one below
   * the security floor, or below the installed one without allowDowngrade (ERR_DOWNGRADE).
   * The installed version itself: null, nothing to fetch.
   */
  version?: string;
}

export interface UpdateManager {
  checkUpdate(): Promise<UpdateInfo>;
  /** Fetches and verifies the planned artifacts into the cache; null when up to date. */
  download(options?: DownloadOptions): Promise<UpdatePackage | null>;
  apply(options?: { trigger?: 'manual' | 'auto'; ignoreWindow?: boolean }): Promise<ApplyResult>;
  rollback(): Promise<UpdateRecord>;
  currentVersion(): Promise<string | null>;
  history(): Promise<UpdateRecord[]>;
}

export interface RollbackManager {
  createRestorePoint(reason?: RestorePoint['reason']): Promise<RestorePoint>;
  listRestorePoints(): Promise<RestorePoint[]>;
  rollback(id: string): Promise<UpdateRecord>;
  cleanup(keepCount: number): Promise<RestorePoint[]>;
}

export interface GracefulUpdater {
  prepare(version: string): Promise<void>;
  drainConnections(timeoutMs: number): Promise<void>;
  execute(): Promise<void>;
  healthCheck(): Promise<boolean>;
}

/** Every check fails with a FerryError carrying a stable code; success returns normally. */
export interface IntegrityVerifier {
  /** ERR_HASH_MISMATCH unless the bytes (or the file at a path) hash to `expectedSha256`. */
  verifyChecksum(data: Uint8Array | { path: string }, expectedSha256: string): Promise<void>;
  /** ERR_SIGNATURE / ERR_THRESHOLD / ERR_UNKNOWN_KEY unless `role` of `root` signed it; returns the payload. */
  verifySignature(envelope: Envelope, payloadType: string, root: RootDoc, role: 'root' | 'release'): Uint8Array;
  /** ERR_ROOT_CHAIN unless each root in `chain` is signed by the one before it and by itself. */
  verifyCertChain(trusted: RootDoc, chain: Uint8Array[]): RootDoc;
}
