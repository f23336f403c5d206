// What `ferry fleet` remembers between runs, and the decision about each report it reads. Trust on
// first use: the first verified report of a device id fixes its key; after that only reports under
// that key count (or, with an allow-list, only keys on the list count at all). Replays: the state
// keeps each device's newest (sequence, payload hash) and its report, so a report older than that
// is refused as ERR_DOWNGRADE even when the folder no longer holds the newer one, and a device is
// always shown at its newest. The same report read again (a re-run on the same folder, a second
// copy from another stick) is not a replay: it is counted as already seen (SECURITY.md, fleet rows).
//
// Since a device id is the start of its key's hash (device-identity.ts), a report naming a known
// id with another key fails parseReport as ERR_SIGNATURE before it gets here; the first-seen key
// check below is the line behind that one (it holds even if ids were ever derived otherwise).
//
// The decisions are pure (decideReport, foldReports); loading and saving the file are thin.

import { readFile } from 'node:fs/promises';
import { FerryError, fromFsError, type ErrorCode } from '../errors.ts';
import { writeFileAtomic } from '../io/durable.ts';
import { parseReport, type DeviceReport, type VerifiedReport } from './report.ts';

export const STATE_TYPE = 'ferry/fleet-state';
/**
 * A state file holds one signed report per device (~1.5-2 KB): 256 MiB is well over 100,000
 * devices (a single JSON string in V8 tops out near 512 MiB; a larger fleet needs a state per
 * group of devices, one `--state` each).
 */
export const STATE_MAX_BYTES = 256 * 1024 * 1024;

export interface DeviceState {
  /** The key first seen for this id (64 hex digits). */
  publicKey: string;
  /** When `ferry fleet` first accepted a report of this device (the reader's clock). */
  firstSeen: string;
  sequence: number;
  payloadSha256: string;
  /**
   * The newest report's signed envelope, as read: the state file is only as trustworthy as the
   * folder it lies in, so every entry is verified again when the state is loaded, and an entry
   * whose envelope does not verify or does not match is dropped (SECURITY.md row 26).
   */
  envelope: string;
  /** The newest verified report (parsed from `envelope`; not written to the file). */
  report: DeviceReport;
}

export interface FleetState {
  type: typeof STATE_TYPE;
  /** The app the state was made for: a state is never mixed across apps. */
  app: string;
  devices: Record<string, DeviceState>;
  /**
   * sha256 of each envelope file read last run that was accepted or already seen, to its device
   * id: the same bytes again need no second signature check (they were verified when first
   * accepted); the id keeps the allow-list check for them.
   */
  seen: Record<string, string>;
}

export function emptyFleetState(app: string): FleetState {
  return { type: STATE_TYPE, app, devices: {}, seen: {} };
}

export interface ReportContext {
  app: string;
  /** Public keys (hex) allowed to report; null: trust on first use. */
  allowed: ReadonlySet<string> | null;
}

export type Decision =
  | { accept: 'newer' }
  | { accept: 'same' }
  | { refuse: ErrorCode; message: string };

/** What to do with one verified report, given what is known of its device. */
export function decideReport(known: DeviceState | undefined, verified: VerifiedReport, ctx: ReportContext): Decision {
  const { report } = verified;
  if (report.app !== ctx.app) return { refuse: 'ERR_WRONG_TARGET', message: `a report for app "${report.app}", not "${ctx.app}"` };
  if (ctx.allowed && !ctx.allowed.has(report.publicKey)) return { refuse: 'ERR_UNKNOWN_KEY', message: `device ${report.deviceId}: its key is not on the allow-list` };
  if (known && known.publicKey !== report.publicKey) return { refuse: 'ERR_UNKNOWN_KEY', message: `device ${report.deviceId}: not the key first seen for it` };
  if (!known || report.sequence > known.sequence) return { accept: 'newer' };
  if (report.sequence === known.sequence && verified.payloadSha256 === known.payloadSha256) return { accept: 'same' };
  if (report.sequence === known.sequence) return { refuse: 'ERR_DOWNGRADE', message: `device ${report.deviceId}: another report with sequence ${report.sequence}` };
  return { refuse: 'ERR_DOWNGRADE', message: `device ${report.deviceId}: sequence ${report.sequence} is older than ${known.sequence}, the newest seen (a replay)` };
}

/** One file after reading and verifying: a verified report, or why it was refused. */
export type Candidate =
  | { file: string; envelopeSha256: string; verified: VerifiedReport; bytes: Uint8Array }
  | { file: string; envelopeSha256: string | null; error: { code: ErrorCode; message: string } }
  /** Bytes already accepted by an earlier run (their hash is in state.seen): not verified again. */
  | { file: string; envelopeSha256: string; seenBefore: string };

export interface Outcome {
  file: string;
  deviceId: string | null;
  /** accepted: the device's new newest (or an older one accepted in order within this run). */
  result: 'accepted' | 'same' | 'refused';
  code?: ErrorCode;
  message?: string;
}

/**
 * Applies a run's candidates to the state: each device's reports in ascending sequence (a folder
 * holding a device's reports 1…5 accepts all five, in order), refused ones leaving it unchanged.
 * Returns the new state (the input is not modified) and one outcome per candidate.
 */
export function foldReports(state: FleetState, candidates: readonly Candidate[], ctx: ReportContext, now: Date): { state: FleetState; outcomes: Outcome[] } {
  const devices: Record<string, DeviceState> = { ...state.devices };
  const seen: Record<string, string> = {};
  const outcomes: Outcome[] = [];
  const verified: Extract<Candidate, { verified: VerifiedReport }>[] = [];
  for (const c of candidates) {
    if ('seenBefore' in c) {
      const deviceId = c.seenBefore;
      const key = devices[deviceId]?.publicKey;
      if (ctx.allowed && (key === undefined || !ctx.allowed.has(key))) {
        outcomes.push({ file: c.file, deviceId, result: 'refused', code: 'ERR_UNKNOWN_KEY', message: `device ${deviceId}: its key is not on the allow-list` });
        continue;
      }
      outcomes.push({ file: c.file, deviceId, result: 'same' });
      seen[c.envelopeSha256] = deviceId;
    } else if ('error' in c) {
      outcomes.push({ file: c.file, deviceId: null, result: 'refused', code: c.error.code, message: c.error.message });
    } else {
      verified.push(c);
    }
  }
  verified.sort((a, b) => {
    const x = a.verified.report, y = b.verified.report;
    return x.deviceId < y.deviceId ? -1 : x.deviceId > y.deviceId ? 1 : x.sequence - y.sequence || (a.file < b.file ? -1 : a.file > b.file ? 1 : 0);
  });
  for (const c of verified) {
    const { report } = c.verified;
    const known = devices[report.deviceId];
    const decision = decideReport(known, c.verified, ctx);
    if ('refuse' in decision) {
      outcomes.push({ file: c.file, deviceId: report.deviceId, result: 'refused', code: decision.refuse, message: decision.message });
      continue;
    }
    seen[c.envelopeSha256] = report.deviceId;
    if (decision.accept === 'same') {
      outcomes.push({ file: c.file, deviceId: report.deviceId, result: 'same' });
      continue;
    }
    devices[report.deviceId] = {
      publicKey: report.publicKey,
      firstSeen: known?.firstSeen ?? now.toISOString(),
      sequence: report.sequence,
      payloadSha256: c.verified.payloadSha256,
      envelope: Buffer.from(c.bytes).toString('utf8'),
      report,
    };
    outcomes.push({ file: c.file, deviceId: report.deviceId, result: 'accepted' });
  }
  outcomes.sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : 0));
  return { state: { type: STATE_TYPE, app: state.app, devices, seen }, outcomes };
}

/**
 * The state in `path`, or an empty one when there is none; ERR_WRONG_TARGET for another app's.
 * Each device entry is verified again from its signed envelope; one that does not verify or does
 * not match its envelope (an edited file, a damaged disk) is dropped and named in `dropped`, so
 * an edit can at worst make fleet forget a device (as deleting the file would), never show it
 * as something its key did not sign.
 */
export async function loadFleetState(path: string, app: string, dropped: string[] = []): Promise<FleetState> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return emptyFleetState(app);
    throw fromFsError(err, `reading ${path}`);
  }
  if (bytes.length > STATE_MAX_BYTES) throw new FerryError('ERR_TOO_LARGE', `${path} is over ${STATE_MAX_BYTES} bytes`);
  // JSON.parse (native; parseStrictJson took half a second on a 10,000-device state): what
  // matters in it is verified again below, report by report.
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(bytes.toString('utf8')) as Record<string, unknown>;
  } catch (cause) {
    throw new FerryError('ERR_JSON', `${path} is not JSON`, { cause });
  }
  if (doc?.type !== STATE_TYPE || typeof doc.app !== 'string' || typeof doc.devices !== 'object' || doc.devices === null || typeof doc.seen !== 'object' || doc.seen === null || Array.isArray(doc.seen)) {
    throw new FerryError('ERR_SCHEMA', `${path} is not a ferry fleet state file`);
  }
  if (doc.app !== app) throw new FerryError('ERR_WRONG_TARGET', `${path} is the fleet state of app "${doc.app}", not "${app}" (give another --state)`);
  const devices: Record<string, DeviceState> = {};
  for (const [id, value] of Object.entries(doc.devices as Record<string, Partial<DeviceState>>)) {
    let verified: VerifiedReport;
    try {
      if (typeof value?.envelope !== 'string') throw new FerryError('ERR_SCHEMA', 'no signed envelope');
      verified = parseReport(Buffer.from(value.envelope, 'utf8'), `${path}: device ${id}`);
    } catch (err) {
      dropped.push(`${id}: ${(err as Error).message}`);
      continue;
    }
    const { report } = verified;
    if (report.deviceId !== id || report.publicKey !== value.publicKey || report.sequence !== value.sequence || verified.payloadSha256 !== value.payloadSha256 || report.app !== app || typeof value.firstSeen !== 'string') {
      dropped.push(`${id}: the entry does not match its signed report`);
      continue;
    }
    devices[id] = { publicKey: report.publicKey, firstSeen: value.firstSeen, sequence: report.sequence, payloadSha256: verified.payloadSha256, envelope: value.envelope, report };
  }
  const seen: Record<string, string> = {};
  for (const [hash, id] of Object.entries(doc.seen as Record<string, unknown>)) if (typeof id === 'string' && devices[id]) seen[hash] = id;
  return { type: STATE_TYPE, app, devices, seen };
}

/** Writes the state atomically (0600), each device's report as its signed envelope only. */
export async function saveFleetState(path: string, state: FleetState): Promise<void> {
  const devices = Object.fromEntries(Object.entries(state.devices).map(([id, d]) => [id, { publicKey: d.publicKey, firstSeen: d.firstSeen, sequence: d.sequence, payloadSha256: d.payloadSha256, envelope: d.envelope }]));
  await writeFileAtomic(path, JSON.stringify({ ...state, devices }) + '\n', 0o600);
}
