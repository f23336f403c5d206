// The device: ferry's UpdateManager and RollbackManager over one home folder. It carries out the
// state machine in journal.ts — phase journaled (synced) before each side effect — and on every
// open resumes or undoes whatever a kill or power cut interrupted (THREATS.md rows 18-22).
// Decisions are made by pure functions (policy.ts, plan.ts, trust-marks.ts); this file sequences
// effects: discover → plan → fetch → stage → gate → switch → confirm → commit | roll back.

import { mkdir, readdir, readFile, rm, stat } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import semver from 'semver';
import { FerryError, fromFsError, type ErrorCode } from '../errors.ts';
import { homeLayout, type HomeLayout } from '../device/layout.ts';
import { readDeviceConfig, type DeviceConfig } from '../device/config.ts';
import { acquireLock } from '../device/lock.ts';
import { DeviceStore, timeId } from '../device/store.ts';
import { IDLE, canTransition, type Journal, type Phase } from '../device/journal.ts';
import { readCurrent, switchCurrent } from '../device/switch.ts';
import { verifyTrustedRoot, type RootDoc } from '../trust/root.ts';
import { readMarks, writeMarks, raiseChannelMark, raiseTimeFloor, type TrustMarks } from '../trust/trust-marks.ts';
import { discover, type Offer } from '../trust/discover.ts';
import { readManifest } from '../trust/trusted-metadata.ts';
import { parseEnvelope } from '../trust/dsse.ts';
import { MANIFEST_MAX_BYTES, parseManifestPayload, targetKey, type ArtifactRef, type ManifestDoc, type TargetRelease } from '../trust/metadata.ts';
import { channelsFor, decideApply, decideTarget, type Candidate } from '../policy/policy.ts';
import { planUpdate, type Plan } from './plan.ts';
import { fetchArtifact } from './fetch-artifact.ts';
import { stageRelease } from '../device/stage.ts';
import type { ProgressEvent, ProgressSink } from '../ports/progress.ts';
import { verifyTree } from '../device/verify-tree.ts';
import { writeFileAtomic } from '../io/durable.ts';
import { hasChunkPeers, type Source } from '../ports/source.ts';
import type { Patcher } from '../ports/patcher.ts';
import type { HealthCheck } from '../ports/health.ts';
import type { ApplyResult, RestorePoint, RollbackManager, UpdateInfo, UpdateManager, UpdatePackage, UpdateRecord } from '../spec.ts';

/** A release that failed its health check this often is not tried again automatically. */
export const MAX_ATTEMPTS = 3;

export interface UpdaterDeps {
  home: string;
  sources: Source[];
  patcher: Patcher;
  /** null: a switched release counts as healthy once its tree verifies. */
  health: HealthCheck | null;
  clock?: () => Date;
  log?: (message: string) => void;
  /** Progress of downloads and staging, for a display; absent: none is reported. */
  progress?: ProgressSink;
  /**
   * A test seam: called just before and just after each phase is journaled. The crash tests kill
   * the process there; production passes nothing.
   */
  killPoint?: (when: 'before' | 'after', phase: Phase) => void;
}

export interface DeviceStatus {
  home: string;
  app: string;
  platform: string;
  arch: string;
  channel: string;
  currentVersion: string | null;
  phase: Phase;
  pending: { version: string; phase: Phase } | null;
  lastError: { code: ErrorCode; at: string; version: string | null } | null;
  restorePoints: number;
  securityFloor: string | null;
  databaseRebuiltFrom: string | null;
}

/** What check found, kept for download/apply in the same process. */
interface Resolution {
  current: string | null;
  target: { candidate: Candidate; manifest: ManifestDoc; manifestBytes: Uint8Array; source: Source } | null;
  releases: Map<string, TargetRelease>;
  plan: Plan | null;
}

const DELTA_FAILURES: ReadonlySet<ErrorCode> = new Set(['ERR_HASH_MISMATCH', 'ERR_PATCH', 'ERR_SIZE', 'ERR_UNSAFE_ARCHIVE', 'ERR_NOT_FOUND', 'ERR_SCHEMA', 'ERR_TOO_LARGE', 'ERR_NO_PATCHER']);
/** Source problems that mean "someone tried to fool us", worth a refused record in history. */
const REFUSALS: ReadonlySet<ErrorCode> = new Set(['ERR_SIGNATURE', 'ERR_THRESHOLD', 'ERR_UNKNOWN_KEY', 'ERR_ROOT_CHAIN', 'ERR_HASH_MISMATCH', 'ERR_SIZE', 'ERR_EXPIRED', 'ERR_DOWNGRADE', 'ERR_WRONG_TARGET', 'ERR_JSON', 'ERR_SCHEMA', 'ERR_TOO_LARGE', 'ERR_UNSAFE_ARCHIVE', 'ERR_PATCH']);

const realClock = (): Date => new Date();

/** Where a file of a source is, for people: "<source>/<path>" (a URL for an origin). */
function locate(source: Source, path: string): string {
  return `${source.name}/${path}`;
}

export class Updater implements UpdateManager, RollbackManager {
  private constructor(
    private readonly layout: HomeLayout,
    private readonly config: DeviceConfig,
    private readonly store: DeviceStore,
    private readonly deps: UpdaterDeps,
    private readonly unlock: () => Promise<void>,
  ) {}

  private get now(): Date {
    return (this.deps.clock ?? realClock)();
  }

  private log(message: string): void {
    this.deps.log?.(message);
  }

  /** Reports progress to the display, if any; a display that throws never fails an update. */
  private progress(e: ProgressEvent): void {
    try {
      this.deps.progress?.(e);
    } catch {
      // display only
    }
  }

  /** Takes the home's lock (ERR_BUSY if held), opens the store, and recovers any interrupted update. */
  static async open(deps: UpdaterDeps): Promise<Updater> {
    const layout = homeLayout(deps.home);
    const config = await readDeviceConfig(layout.config);
    const unlock = await acquireLock(layout.lock);
    try {
      const store = await DeviceStore.open(layout.state, (deps.clock ?? realClock)());
      const updater = new Updater(layout, config, store, deps, unlock);
      try {
        await updater.recover();
      } catch (err) {
        await store.close();
        throw err;
      }
      return updater;
    } catch (err) {
      await unlock();
      throw err;
    }
  }

  async close(): Promise<void> {
    await this.deps.patcher.close?.();
    await this.store.close();
    await this.unlock();
  }

  // -------------------------------------------------------------------------------------------
  // Journal and history

  /** With `failureOf`, the same synced write also counts a failed attempt at that version. */
  private async transition(journal: Journal, phase: Phase, patch: Partial<Journal> = {}, failureOf?: string): Promise<Journal> {
    if (phase !== 'idle' && !canTransition(journal.phase, phase)) {
      throw new FerryError('ERR_SCHEMA', `internal: no transition ${journal.phase} -> ${phase}`);
    }
    const next = { ...journal, ...patch, phase };
    this.deps.killPoint?.('before', phase);
    if (failureOf) await this.store.journalFailure(next, failureOf);
    else await this.store.setJournal(next);
    this.deps.killPoint?.('after', phase);
    return next;
  }

  private async finishAttempt(journal: Journal, outcome: UpdateRecord['outcome'], errorCode: ErrorCode | null, message?: string): Promise<UpdateRecord | undefined> {
    if (!journal.attemptId) return undefined;
    const prev = await this.store.getHistory(journal.attemptId);
    if (!prev) return undefined;
    const record: UpdateRecord = { ...prev, outcome, errorCode, bytesMoved: journal.bytesMoved, finishedAt: this.now.toISOString(), ...(message ? { message } : {}) };
    await this.store.putHistory(record);
    return record;
  }

  private async recordRefusal(to: string | null, source: string | null, err: FerryError): Promise<void> {
    const now = this.now.toISOString();
    await this.store.putHistory({
      id: await this.store.newHistoryId(this.now),
      from: await readCurrent(this.layout),
      to,
      source,
      kind: null,
      bytesMoved: 0,
      startedAt: now,
      finishedAt: now,
      outcome: 'refused',
      errorCode: err.code,
      message: err.message,
    });
  }

  // -------------------------------------------------------------------------------------------
  // Recovery: the `current` link is the truth; the journal says what may be half-done.

  private async recover(): Promise<void> {
    const journal = await this.store.journal();
    const current = await readCurrent(this.layout);
    // We hold the lock: whatever is in staging/ belongs to a process that is gone (a complete
    // release is never there; it was renamed into releases/).
    await rm(this.layout.staging, { recursive: true, force: true });
    await mkdir(this.layout.staging, { recursive: true });
    switch (journal.phase) {
      case 'idle':
        break;
      case 'checking':
      case 'downloading':
      case 'verifying':
      case 'staging':
        // Nothing was switched. Partial staging went above; cache .part files stay for a resume.
        await this.finishAttempt(journal, 'failed', 'ERR_INTERRUPTED', `interrupted while ${journal.phase}`);
        await this.store.setJournal({ ...IDLE });
        this.log(`recovered: an update to ${journal.to} interrupted while ${journal.phase} was abandoned`);
        break;
      case 'staged': {
        // A release folder is complete by construction (it appears by one rename); its bytes are
        // re-verified by apply() before the switch, not on every open.
        const present = journal.to ? await stat(this.layout.release(journal.to)).then(() => true, () => false) && await stat(this.layout.manifest(journal.to)).then(() => true, () => false) : false;
        if (!present) {
          await this.finishAttempt(journal, 'failed', 'ERR_INTERRUPTED', 'staged release missing or damaged');
          await this.store.setJournal({ ...IDLE });
        }
        break;
      }
      case 'switching':
      case 'confirming':
      case 'rolling-back': {
        // The new release was never confirmed healthy: go back to where the attempt started. An
        // attempt cut short before its verdict counts against the release (restarts stay bounded).
        // A manual rollback (no plan: it builds nothing) is not an attempt at a release.
        if (journal.phase !== 'rolling-back' && journal.to && journal.plan !== null) await this.store.addFailure(journal.to);
        if (current !== journal.from) await this.switchTo(journal.from);
        const rolled = await this.finishAttempt(journal, 'rolled-back', journal.errorCode ?? 'ERR_INTERRUPTED', `interrupted while ${journal.phase}; back on ${journal.from ?? 'nothing'}`);
        await this.store.setJournal({ ...IDLE });
        this.log(`recovered: ${journal.to} was not confirmed (${journal.phase}); back on ${journal.from ?? 'nothing'}${rolled ? '' : ''}`);
        break;
      }
      case 'committed':
        if (journal.to && (await this.localManifest(journal.to).then((m) => m.securityFix, () => false))) await this.raiseSecurityFloor(journal.to);
        await this.finishAttempt(journal, 'committed', null);
        await this.store.setJournal({ ...IDLE });
        break;
      default: {
        const never: never = journal.phase;
        throw new FerryError('ERR_SCHEMA', `unknown journal phase ${String(never)}`);
      }
    }
    // A kill between writing an attempt's record and journaling its first phase leaves a record
    // no journal names: it is closed here, so history never shows a phantom update in progress.
    const live = (await this.store.journal()).attemptId;
    for (const record of await this.store.history()) {
      if (record.outcome === 'in-progress' && record.id !== live) {
        await this.store.putHistory({ ...record, outcome: 'failed', errorCode: 'ERR_INTERRUPTED', finishedAt: this.now.toISOString(), message: 'interrupted before it started' });
      }
    }
    // A store rebuilt after damage, or made anew because it was deleted, has lost the restore
    // points: every installed release other than `current` is one (a new device has none).
    if (this.store.created) await this.rebuildRestorePoints(current);
  }

  /** After the store was rebuilt or made anew: every installed release but current becomes a restore point again. */
  private async rebuildRestorePoints(current: string | null): Promise<void> {
    const versions = (await this.installedVersions()).filter((v) => v !== current);
    for (const version of versions) {
      await this.store.putRestorePoint({ id: timeId(this.now, randomBytes(3).toString('hex')), version, createdAt: this.now.toISOString(), reason: 'manual' });
    }
    if (versions.length > 0) this.log(`the store was ${this.store.rebuiltFrom ? 'damaged and rebuilt' : 'missing and made anew'}: restore points for ${versions.join(', ')} made again from releases/`);
  }

  private async switchTo(version: string | null): Promise<void> {
    if (version) await switchCurrent(this.layout, version);
    else await rm(this.layout.current, { force: true });
  }

  // -------------------------------------------------------------------------------------------
  // Local knowledge: installed releases and their signed file lists

  private async installedVersions(): Promise<string[]> {
    const names = await readdir(this.layout.releases).catch(() => [] as string[]);
    return names.filter((n) => semver.valid(n) === n).sort(semver.compare);
  }

  private async localManifest(version: string): Promise<ManifestDoc> {
    // The device's own copy, written when the release was staged after full verification.
    const bytes = await readFile(this.layout.manifest(version)).catch((err) => { throw fromFsError(err, `reading the manifest of ${version}`); });
    return parseManifestPayload(Buffer.from(parseEnvelope(bytes, MANIFEST_MAX_BYTES, `manifest ${version}`).payload, 'base64'));
  }

  private async localFiles(version: string) {
    const release = (await this.localManifest(version)).targets[this.target];
    if (!release) throw new FerryError('ERR_WRONG_TARGET', `the manifest of ${version} has no ${this.target} release`);
    return release.files;
  }

  private get target(): string {
    return targetKey(this.config.platform, this.config.arch);
  }

  // -------------------------------------------------------------------------------------------
  // Check

  private async trustedRoot(): Promise<RootDoc> {
    const bytes = await readFile(this.layout.trustRoot).catch((err) => { throw fromFsError(err, `reading ${this.layout.trustRoot}`); });
    return verifyTrustedRoot(bytes, this.layout.trustRoot);
  }

  private async resolve(): Promise<Resolution> {
    let trusted: RootDoc;
    let marks: TrustMarks;
    try {
      trusted = await this.trustedRoot();
      marks = await readMarks(this.layout.marks);
    } catch (err) {
      // A damaged pinned root or marks file stops the check before any source is read: it is
      // recorded like any refusal, and the file is left as it is (never rewritten as empty).
      const e = fromFsError(err, 'reading the trust state');
      if (REFUSALS.has(e.code)) await this.recordRefusal(null, null, e);
      throw e;
    }
    const current = await readCurrent(this.layout);
    const found = await discover({
      sources: this.deps.sources,
      trusted,
      marks,
      channels: channelsFor(this.config.policy.channel),
      clock: this.now,
      offlineGraceDays: this.config.offlineGraceDays,
    });
    if (found.root.app !== this.config.app) throw new FerryError('ERR_WRONG_TARGET', `the repository is for app "${found.root.app}", this device runs "${this.config.app}"`);
    if (found.rootBytes) await writeFileAtomic(this.layout.trustRoot, found.rootBytes);

    marks = raiseTimeFloor(marks, this.now);
    for (const o of found.offers) marks = raiseChannelMark(marks, o.doc, o.bytes, found.root);

    const resolution: Resolution = { current, target: null, releases: new Map(), plan: null };
    try {
      if (found.offers.length === 0) {
        const refusal = found.problems.find((p) => REFUSALS.has(p.code));
        if (refusal) throw new FerryError(refusal.code, refusal.message);
        if (found.problems[0]) throw new FerryError(found.problems[0].code, found.problems[0].message);
        return resolution;
      }
      const mine = found.offers.filter((o) => o.doc.targets[this.target]);
      if (mine.length === 0) {
        const offered = [...new Set(found.offers.flatMap((o) => Object.keys(o.doc.targets)))].join(', ') || 'nothing';
        throw new FerryError('ERR_WRONG_TARGET', `the sources offer ${offered}, not ${this.target}`);
      }
      const manifests = new Map<string, { doc: ManifestDoc; bytes: Uint8Array; offer: Offer }>();
      const candidates: Candidate[] = [];
      for (const offer of mine) {
        const t = offer.doc.targets[this.target]!;
        const m = manifests.get(t.version) ?? await (async () => {
          const got = await readManifest(offer.source, found.root, t.version, t.manifest);
          if (!got) throw new FerryError('ERR_NOT_FOUND', `${offer.source.name} names ${t.version} but has no manifest for it`);
          if (!got.doc.targets[this.target]) throw new FerryError('ERR_WRONG_TARGET', `${t.version}'s manifest has no ${this.target} release`);
          return { ...got, offer };
        })();
        manifests.set(t.version, m);
        marks = raiseTimeFloor(marks, m.doc.releaseDate);
        candidates.push({ channel: offer.channel, version: t.version, sequence: offer.doc.sequence, mandatory: m.doc.mandatory, securityFix: m.doc.securityFix });
      }
      const decision = decideTarget({ current, candidates, policy: this.config.policy, floor: marks.securityFloor });
      if (decision.kind === 'downgrade-refused') throw new FerryError('ERR_DOWNGRADE', decision.why);
      if (decision.kind === 'up-to-date') return resolution;

      const chosen = manifests.get(decision.candidate.version)!;
      resolution.target = { candidate: decision.candidate, manifest: chosen.doc, manifestBytes: chosen.bytes, source: chosen.offer.source };
      const targetRelease = chosen.doc.targets[this.target]!;
      resolution.releases.set(chosen.doc.version, targetRelease);
      if (current && (await stat(this.layout.manifest(current)).then(() => true, () => false))) {
        const installed = (await this.localManifest(current)).targets[this.target];
        if (installed) resolution.releases.set(current, installed);
        // Intermediate releases for delta chains: the versions the target has deltas from.
        for (const d of targetRelease.deltas.slice(0, 8)) {
          if (d.from === current || !semver.gt(d.from, current) || resolution.releases.has(d.from)) continue;
          const mid = await readManifest(chosen.offer.source, found.root, d.from, null).catch(() => undefined);
          const midRelease = mid?.doc.targets[this.target];
          if (midRelease) resolution.releases.set(d.from, midRelease);
        }
      }
      const cached = new Set(await readdir(this.layout.cache).catch(() => [] as string[]));
      resolution.plan = planUpdate({ installed: resolution.releases.has(current ?? '') ? current : null, target: chosen.doc.version, releases: resolution.releases, cached });
      return resolution;
    } catch (err) {
      const e = fromFsError(err, 'checking for updates');
      if (REFUSALS.has(e.code)) await this.recordRefusal(resolution.target?.candidate.version ?? null, found.offers[0]?.source.name ?? found.problems[0]?.source ?? null, e);
      throw e;
    } finally {
      await writeMarks(this.layout.marks, marks);
    }
  }

  async checkUpdate(): Promise<UpdateInfo> {
    const r = await this.resolve();
    const t = r.target;
    return {
      currentVersion: r.current,
      latestVersion: t?.candidate.version ?? r.current,
      updateAvailable: t !== null,
      releaseNotes: t?.manifest.releaseNotes ?? '',
      releaseDate: t?.manifest.releaseDate ?? null,
      mandatory: t?.manifest.mandatory ?? false,
      securityFix: t?.manifest.securityFix ?? false,
      channel: t?.candidate.channel ?? this.config.policy.channel,
      downloadUrl: r.plan ? (r.plan.kind === 'full' ? [r.plan.artifact] : r.plan.steps.map((s) => s.artifact)).map((a) => locate(t!.source, a.path)).join(' + ') : null,
      downloadSize: r.plan?.bytes ?? null,
    };
  }

  // -------------------------------------------------------------------------------------------
  // Download

  /**
   * Where artifacts are fetched from, in order. Artifacts are checked by their signed hashes, so
   * any source may serve them whoever offered the metadata: LAN peers first, then offline sources
   * (USB, folders, bundles), the WAN last (DESIGN.md "Source order"), each group in config order.
   */
  private artifactSources(): Source[] {
    const rank = (s: Source) => (hasChunkPeers(s) ? 0 : s.offline ? 1 : 2);
    return [...this.deps.sources].sort((a, b) => rank(a) - rank(b));
  }

  private planArtifacts(plan: Plan): ArtifactRef[] {
    return plan.kind === 'full' ? [plan.artifact] : plan.steps.map((s) => s.artifact);
  }

  /**
   * Fetches every artifact of `plan` into the cache; returns sha256 → path and the bytes moved.
   * For an attempt (`forAttempt`), bytes an earlier `download` moved for a cached artifact are
   * counted here; a bare download leaves them for the attempt to count.
   */
  private async fetchPlan(plan: Plan, forAttempt = true): Promise<{ paths: Map<string, string>; bytes: number; source: string | null }> {
    await mkdir(this.layout.cache, { recursive: true });
    const paths = new Map<string, string>();
    let bytes = 0;
    let source: string | null = null;
    const refs = this.planArtifacts(plan);
    for (const ref of refs) {
      const got = await this.fetchOne(ref, forAttempt);
      paths.set(ref.sha256, got.path);
      bytes += got.bytesMoved;
      source ??= got.source;
    }
    // Taken over only once the whole plan is here: a plan that fails half way (a delta falling
    // back to the full artifact) leaves them for the attempt that does use them.
    if (forAttempt) {
      for (const ref of refs) {
        const earlier = await this.store.takePrefetch(ref.sha256);
        if (!earlier) continue;
        bytes += earlier.bytes;
        source ??= earlier.source;
      }
    }
    return { paths, bytes, source };
  }

  /** Fetches one artifact; a bare download (not `forAttempt`) keeps its bytes for the attempt to count. */
  private async fetchOne(ref: ArtifactRef, forAttempt: boolean): Promise<{ path: string; bytesMoved: number; source: string | null }> {
    const got = await fetchArtifact(ref, this.artifactSources(), this.layout.cache, this.deps.progress);
    for (const note of got.notes) this.log(note);
    if (!forAttempt && got.bytesMoved > 0) await this.store.putPrefetch(ref.sha256, { bytes: got.bytesMoved, source: got.source });
    return got;
  }

  async download(): Promise<UpdatePackage | null> {
    const r = await this.resolve();
    if (!r.target || !r.plan) return null;
    let journal = await this.store.journal();
    if (journal.phase !== 'idle') return this.packageOf(r);
    journal = await this.transition(journal, 'checking', { to: r.target.candidate.version, from: r.current });
    journal = await this.transition(journal, 'downloading');
    try {
      try {
        await this.fetchPlan(r.plan, false);
      } catch (err) {
        if (r.plan.kind === 'full' || !(err instanceof FerryError) || !DELTA_FAILURES.has(err.code)) throw err;
        await this.fetchOne(r.plan.fallback, false);
      }
      await this.transition(journal, 'verifying');
    } finally {
      await this.store.setJournal({ ...IDLE });
    }
    return this.packageOf(r);
  }

  private packageOf(r: Resolution): UpdatePackage {
    const plan = r.plan!;
    const first = plan.kind === 'full' ? plan.artifact : plan.steps[0]!.artifact;
    return {
      version: r.target!.candidate.version,
      kind: plan.kind,
      downloadUrl: locate(r.target!.source, first.path),
      size: plan.bytes,
      checksum: first.sha256,
      signature: parseEnvelope(r.target!.manifestBytes, MANIFEST_MAX_BYTES, 'manifest'),
    };
  }

  // -------------------------------------------------------------------------------------------
  // Apply: stage, gate, switch, confirm

  async apply(options: { trigger?: 'manual' | 'auto'; ignoreWindow?: boolean } = {}): Promise<ApplyResult> {
    let journal = await this.store.journal();
    let r: Resolution | null = null;
    try {
      r = await this.resolve();
    } catch (err) {
      // Offline, or every source refused: a release staged earlier (verified then) may still go in.
      if (journal.phase !== 'staged') throw err;
    }
    if (journal.phase === 'staged' && r && r.target?.candidate.version !== journal.to) {
      await this.finishAttempt(journal, 'failed', null, `superseded by ${r.target?.candidate.version ?? 'nothing newer'}`);
      journal = await this.transition(journal, 'idle', { ...IDLE });
    }
    if (journal.phase !== 'idle' && journal.phase !== 'staged') {
      throw new FerryError('ERR_BUSY', `an update is in phase ${journal.phase}`);
    }
    let justStaged = false;
    if (journal.phase === 'idle') {
      if (!r?.target || !r.plan) return { status: 'up-to-date', current: r?.current ?? (await readCurrent(this.layout)) };
      const version = r.target.candidate.version;
      if (await this.store.isHeld(version)) {
        return { status: 'waiting', version, reason: 'held', why: `${version} was rolled back by hand; approving it allows it again` };
      }
      if ((await this.store.failures(version)) >= MAX_ATTEMPTS) {
        const err = new FerryError('ERR_GAVE_UP', `${version} failed its health check ${MAX_ATTEMPTS} times; not trying again (publish a newer release)`);
        await this.recordRefusal(version, r.target.source.name, err);
        throw err;
      }
      journal = await this.stage(r);
      justStaged = true;
    }
    const version = journal.to!;
    const manifest = await this.localManifest(version);
    const decision = decideApply({
      policy: this.config.policy,
      release: { version, mandatory: manifest.mandatory, securityFix: manifest.securityFix },
      approved: await this.store.isApproved(version),
      now: this.now,
      trigger: options.trigger ?? 'manual',
      ignoreWindow: options.ignoreWindow ?? false,
    });
    if (decision.action === 'wait') {
      return { status: 'waiting', version, reason: decision.reason, why: decision.why };
    }
    if (!justStaged) {
      // Staged by an earlier run: its bytes are hashed again before the switch, not after it.
      try {
        await verifyTree(this.layout.release(version), await this.localFiles(version));
      } catch (err) {
        const e = fromFsError(err, `re-verifying staged ${version}`);
        await this.finishAttempt(journal, 'failed', e.code, `staged release no longer verifies: ${e.message}`);
        await this.transition(journal, 'idle', { ...IDLE });
        throw e;
      }
    }
    return this.switchAndConfirm(journal, manifest);
  }

  /** checking → downloading → verifying → staging → staged, with the delta-to-full fallback. */
  private async stage(r: Resolution): Promise<Journal> {
    const target = r.target!;
    let plan = r.plan!;
    const version = target.candidate.version;
    const id = await this.store.newHistoryId(this.now);
    await this.store.putHistory({
      id, from: r.current, to: version, source: target.source.name, kind: plan.kind, bytesMoved: 0,
      startedAt: this.now.toISOString(), finishedAt: null, outcome: 'in-progress', errorCode: null,
    });
    let journal = await this.transition(await this.store.journal(), 'checking', { ...IDLE, attemptId: id, from: r.current, to: version, plan, source: target.source.name, startedAt: this.now.toISOString() });
    try {
      let fellBack = false;
      for (;;) {
        journal = await this.transition(journal, 'downloading', { plan });
        let fetched;
        try {
          fetched = await this.fetchPlan(plan);
        } catch (err) {
          if (plan.kind !== 'full' && err instanceof FerryError && DELTA_FAILURES.has(err.code)) {
            this.log(`delta artifacts unavailable (${err.code}); using the full artifact`);
            plan = { kind: 'full', to: version, artifact: plan.fallback, bytes: plan.fallback.size };
            fellBack = true;
            continue;
          }
          throw err;
        }
        journal = await this.transition(journal, 'verifying', { bytesMoved: journal.bytesMoved + fetched.bytes, source: fetched.source ?? journal.source });
        journal = await this.transition(journal, 'staging');
        await mkdir(this.layout.manifests, { recursive: true });
        await writeFileAtomic(this.layout.manifest(version), target.manifestBytes);
        try {
          await stageRelease({ layout: this.layout, plan, releases: r.releases, artifacts: fetched.paths, patcher: this.deps.patcher, linkUnchanged: this.config.linkUnchanged, progress: (e) => this.progress(e) });
        } catch (err) {
          // A delta whose base files or patches do not check out: fall back to the full artifact.
          if (plan.kind !== 'full' && err instanceof FerryError && DELTA_FAILURES.has(err.code)) {
            this.log(`delta failed (${err.code}: ${err.message}); using the full artifact`);
            plan = { kind: 'full', to: version, artifact: plan.fallback, bytes: plan.fallback.size };
            fellBack = true;
            continue;
          }
          throw err;
        }
        break;
      }
      const prev = (await this.store.getHistory(id))!;
      await this.store.putHistory({ ...prev, kind: plan.kind, bytesMoved: journal.bytesMoved, source: journal.source, ...(fellBack ? { fellBackToFull: true } : {}) });
      return await this.transition(journal, 'staged', { plan });
    } catch (err) {
      const e = fromFsError(err, `staging ${version}`);
      // The manifest copy only belongs beside a release that made it into releases/.
      if (!(await stat(this.layout.release(version)).then(() => true, () => false))) await rm(this.layout.manifest(version), { force: true });
      await this.finishAttempt(journal, REFUSALS.has(e.code) ? 'refused' : 'failed', e.code, e.message);
      await this.store.setJournal({ ...IDLE });
      throw e;
    }
  }

  /** Callers switch only to a tree hashed against its signed list (just staged, or re-verified). */
  private async healthy(version: string): Promise<{ healthy: boolean; detail: string }> {
    if (!this.deps.health) return { healthy: true, detail: 'tree verified (no health check configured)' };
    return this.deps.health.check({ version, dir: this.layout.current });
  }

  /** staged → switching → confirming → committed | rolling-back → idle */
  private async switchAndConfirm(journal: Journal, manifest: ManifestDoc): Promise<ApplyResult> {
    const version = journal.to!;
    const from = journal.from;
    const point = from ? await this.makeRestorePoint(from, 'before-switch') : null;
    journal = await this.transition(journal, 'switching', { restorePointId: point?.id ?? null });
    await this.switchTo(version);
    journal = await this.transition(journal, 'confirming');
    const health = await this.healthy(version);
    if (health.healthy) {
      journal = await this.transition(journal, 'committed');
      if (manifest.securityFix) await this.raiseSecurityFloor(version);
      const record = (await this.finishAttempt(journal, 'committed', null, health.detail))!;
      await this.transition(journal, 'idle', { ...IDLE });
      await this.cleanup(this.config.keepRestorePoints);
      return { status: 'committed', record };
    }
    // Counted in the write that journals the rollback, so the attempt counts exactly once: a cut
    // before it leaves 'confirming', which recovery counts; after it, 'rolling-back', which it does not.
    journal = await this.transition(journal, 'rolling-back', { errorCode: 'ERR_UNHEALTHY' }, version);
    const failures = await this.store.failures(version);
    await this.switchTo(from);
    const record = (await this.finishAttempt(journal, 'rolled-back', 'ERR_UNHEALTHY', `${health.detail} (attempt ${failures} of ${MAX_ATTEMPTS})`))!;
    await this.transition(journal, 'idle', { ...IDLE });
    return { status: 'rolled-back', record };
  }

  /** Once a security fix is committed, nothing below it is installed again (THREATS.md row 3). */
  private async raiseSecurityFloor(version: string): Promise<void> {
    const marks = await readMarks(this.layout.marks);
    if (!marks.securityFloor || semver.gt(version, marks.securityFloor)) await writeMarks(this.layout.marks, { ...marks, securityFloor: version });
  }

  async approve(version: string): Promise<void> {
    if (semver.valid(version) !== version) throw new FerryError('ERR_USAGE', `"${version}" is not a version`);
    await this.store.approve(version);
  }

  // -------------------------------------------------------------------------------------------
  // Rollback and restore points

  private async makeRestorePoint(version: string, reason: RestorePoint['reason']): Promise<RestorePoint> {
    const point: RestorePoint = { id: timeId(this.now, randomBytes(3).toString('hex')), version, createdAt: this.now.toISOString(), reason };
    await this.store.putRestorePoint(point);
    return point;
  }

  async createRestorePoint(reason: RestorePoint['reason'] = 'manual'): Promise<RestorePoint> {
    const current = await readCurrent(this.layout);
    if (!current) throw new FerryError('ERR_NOT_INSTALLED', 'nothing is installed to make a restore point of');
    return this.makeRestorePoint(current, reason);
  }

  async listRestorePoints(): Promise<RestorePoint[]> {
    return this.store.restorePoints();
  }

  /** Back to the newest restore point of another version than current (the spec's rollback()). */
  async rollback(id?: string): Promise<UpdateRecord> {
    const current = await readCurrent(this.layout);
    const points = await this.store.restorePoints();
    const point = id ? points.find((p) => p.id === id) : [...points].reverse().find((p) => p.version !== current);
    if (!point) throw new FerryError('ERR_NOT_FOUND', id ? `no restore point ${id}` : 'no restore point of another version to roll back to');
    const journal = await this.store.journal();
    if (journal.phase !== 'idle' && journal.phase !== 'staged') throw new FerryError('ERR_BUSY', `an update is in phase ${journal.phase}`);
    const marks = await readMarks(this.layout.marks);
    if (marks.securityFloor && semver.lt(point.version, marks.securityFloor)) {
      throw new FerryError('ERR_DOWNGRADE', `${point.version} is below the security floor ${marks.securityFloor}: it lacks a security fix already installed`);
    }
    // Re-verified before switching: a restore point is only as good as its bytes.
    await verifyTree(this.layout.release(point.version), await this.localFiles(point.version));
    if (journal.phase === 'staged') {
      await this.finishAttempt(journal, 'failed', null, `abandoned for a rollback to ${point.version}`);
    }
    const id2 = await this.store.newHistoryId(this.now);
    await this.store.putHistory({ id: id2, from: current, to: point.version, source: `restore-point:${point.id}`, kind: 'rollback', bytesMoved: 0, startedAt: this.now.toISOString(), finishedAt: null, outcome: 'in-progress', errorCode: null });
    const j: Journal = { ...IDLE, attemptId: id2, from: current, to: point.version, startedAt: this.now.toISOString() };
    // A version rolled back by hand is not reinstalled automatically; approving it lifts the hold.
    // Held before the switch: once the rollback is journaled committed, a power cut must not lose
    // the hold (the next update would reinstall that version). A rollback that does not commit
    // leaves the device on `current`, where a hold on the running version changes nothing.
    if (current && current !== point.version) await this.store.hold(current);
    const result = await this.switchAndConfirm(j, await this.localManifest(point.version));
    if (result.status === 'rolled-back' || result.status === 'committed') return result.record;
    throw new FerryError('ERR_SCHEMA', 'internal: rollback did not finish');
  }

  /**
   * Keeps the newest `keepCount` restore points and removes release folders no one needs: never
   * `current`, the newest other version (the one a rollback goes to), a restore point's version,
   * or the version an update in progress started from or is staging.
   */
  async cleanup(keepCount: number): Promise<RestorePoint[]> {
    if (!Number.isInteger(keepCount) || keepCount < 1) throw new FerryError('ERR_USAGE', '--keep must be at least 1');
    const points = await this.store.restorePoints();
    const removed = points.slice(0, Math.max(0, points.length - keepCount));
    for (const p of removed) await this.store.deleteRestorePoint(p.id);
    const kept = points.slice(removed.length);
    const current = await readCurrent(this.layout);
    const journal = await this.store.journal();
    const installed = await this.installedVersions();
    const previous = [...installed].reverse().find((v) => v !== current && (!current || semver.lt(v, current)));
    const needed = new Set([current, previous, journal.from, journal.to, ...kept.map((p) => p.version)].filter((v): v is string => !!v));
    for (const version of installed) {
      if (needed.has(version)) continue;
      await rm(this.layout.release(version), { recursive: true, force: true });
      await rm(this.layout.manifest(version), { force: true });
    }
    await this.pruneCache(current, journal);
    return removed;
  }

  /**
   * Keeps in cache/ only the artifacts of the current version (the ones LAN peers may ask for)
   * and, while an update is pending, the partial downloads it will resume.
   */
  private async pruneCache(current: string | null, journal: Journal): Promise<void> {
    const keep = new Set<string>();
    const release = current ? (await this.localManifest(current).catch(() => undefined))?.targets[this.target] : undefined;
    if (release) for (const ref of [release.full, ...release.deltas.map((d) => d.artifact)]) keep.add(ref.sha256);
    const pending = journal.phase !== 'idle';
    for (const name of await readdir(this.layout.cache).catch(() => [] as string[])) {
      const sha = name.replace(/\.part$/, '');
      if (keep.has(sha) || (pending && name.endsWith('.part'))) continue;
      await rm(join(this.layout.cache, name), { recursive: true, force: true });
    }
  }

  // -------------------------------------------------------------------------------------------
  // Status and history

  async currentVersion(): Promise<string | null> {
    return readCurrent(this.layout);
  }

  async history(): Promise<UpdateRecord[]> {
    return this.store.history();
  }

  async status(): Promise<DeviceStatus> {
    const journal = await this.store.journal();
    const history = await this.store.history();
    const lastFailure = [...history].reverse().find((h) => h.errorCode);
    const marks: TrustMarks = await readMarks(this.layout.marks);
    return {
      home: this.layout.home,
      app: this.config.app,
      platform: this.config.platform,
      arch: this.config.arch,
      channel: this.config.policy.channel,
      currentVersion: await readCurrent(this.layout),
      phase: journal.phase,
      pending: journal.to && journal.phase !== 'idle' ? { version: journal.to, phase: journal.phase } : null,
      lastError: lastFailure ? { code: lastFailure.errorCode!, at: lastFailure.finishedAt ?? lastFailure.startedAt, version: lastFailure.to } : null,
      restorePoints: (await this.store.restorePoints()).length,
      securityFloor: marks.securityFloor,
      databaseRebuiltFrom: this.store.rebuiltFrom,
    };
  }
}
