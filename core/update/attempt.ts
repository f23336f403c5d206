// One update attempt, the way `apply` runs it: stage the resolved release (checking → downloading →
// verifying → staging → staged, with the one delta-to-full fallback), gate it by policy, then switch
// and confirm (switching → confirming → committed | rolling-back → idle). `stage` runs the same
// steps up to the switch and stops there (ferry's self-update switches by its own protocol).
// Manual rollbacks share the switch and confirm (rollback.ts). Each phase is journaled before its
// side effect.

import { rm } from 'node:fs/promises';
import * as semver from '../semver.ts';
import { FerryError, fromFsError } from '../errors.ts';
import { readCurrent } from '../device/switch.ts';
import { grantsOf } from '../device/config.ts';
import { verifyTree } from '../device/verify-tree.ts';
import type { SwitchJournal, UpdateJournal } from '../device/journal.ts';
import { readMarks, writeMarks } from '../trust/trust-marks.ts';
import type { ManifestDoc } from '../trust/metadata.ts';
import { decideApply, gaveUpAfter, MAX_ATTEMPTS } from '../policy/policy.ts';
import { forgetManifest, keepManifest } from './kept-metadata.ts';
import type { HomeLayout } from '../device/layout.ts';
import type { ApplyResult } from '../spec.ts';
import type { UpdateContext } from './context.ts';
import { resolve, type Resolution, type UpdateResolution } from './resolve.ts';
import { fetchPlan } from './download.ts';
import { withFullFallback } from './delta-fallback.ts';
import { attemptRecord, closeAttempt, closeRunningAttempt, openAttempt, recordRefusal, REFUSALS } from './history.ts';
import { exists, localFiles, localManifest, switchTo } from './installed.ts';
import { cleanup, makeRestorePoint } from './housekeeping.ts';

// A release that failed its health check MAX_ATTEMPTS times is not tried again automatically; the
// rule lives with the policy, which passes such a release over when choosing (decideTarget).
export { MAX_ATTEMPTS };

export interface ApplyOptions {
  trigger?: 'manual' | 'auto';
  ignoreWindow?: boolean;
}

/** How a switch ended. */
export type Verdict = Extract<ApplyResult, { status: 'committed' | 'rolled-back' }>;

/** What stage() did: nothing to do, staged but held by policy, or staged and cleared to switch. */
export type StageResult =
  | { status: 'up-to-date'; current: string | null }
  | { status: 'waiting'; version: string; reason: string; why: string }
  | { status: 'staged'; version: string; from: string | null };

/** A staged release that policy lets go in now, its bytes verified (just staged, or hashed again). */
interface Cleared {
  status: 'cleared';
  staged: UpdateJournal;
  manifest: ManifestDoc;
}

/** apply: stage and gate, then a restore point of `from` and the switch. */
export async function applyUpdate(ctx: UpdateContext, options: ApplyOptions): Promise<ApplyResult> {
  const gate = await stageAndGate(ctx, options);
  if (gate.status !== 'cleared') return gate;
  const { staged, manifest } = gate;
  const point = staged.from ? await makeRestorePoint(ctx, staged.from, 'before-switch') : null;
  const switching = await ctx.advance(staged, 'switching', { restorePointId: point?.id ?? null });
  return switchAndConfirm(ctx, switching, manifest);
}

/**
 * stage: everything apply does before the switch, and nothing after it. The journal stays
 * `staged`; `current` is not touched. ferry's self-update switches by its own protocol (boot
 * record, restart, confirm: ARCHITECTURE.md "Self-update") and closes the attempt with
 * settleStaged (settle-staged.ts).
 */
export async function stageUpdate(ctx: UpdateContext, options: ApplyOptions): Promise<StageResult> {
  const gate = await stageAndGate(ctx, options);
  if (gate.status !== 'cleared') return gate;
  return { status: 'staged', version: gate.staged.to, from: gate.staged.from };
}

/**
 * resolve → stage (or take the release staged earlier) → policy decision → re-verify: the part
 * apply and stage share. A staged release policy holds back stays staged (`waiting`).
 */
async function stageAndGate(ctx: UpdateContext, options: ApplyOptions): Promise<Exclude<StageResult, { status: 'staged' }> | Cleared> {
  let journal = await ctx.store.journal();
  let r: Resolution | null = null;
  try {
    r = await resolve(ctx);
  } catch (err) {
    // Offline, or every source refused: a release staged earlier (verified then) may still go in.
    if (journal.phase !== 'staged') throw err;
  }
  const latest = r?.kind === 'update' ? r.target.candidate.version : undefined;
  if (journal.phase === 'staged' && r && latest !== journal.to) {
    await closeAttempt(ctx, journal, 'failed', null, `superseded by ${latest ?? 'nothing newer'}`);
    journal = await ctx.settle();
  }
  let staged: UpdateJournal;
  let justStaged = false;
  if (journal.phase === 'idle') {
    if (r?.kind !== 'update') return { status: 'up-to-date', current: r?.current ?? (await readCurrent(ctx.layout)) };
    const version = r.target.candidate.version;
    // Disabled by policy: an automatic attempt downloads and stages nothing (the agent does not
    // even check, plugins/agent/attempt.ts); it only says what is there. A person's apply goes on.
    if (!ctx.config.policy.enabled && (options.trigger ?? 'manual') === 'auto') {
      return { status: 'waiting', version, reason: 'disabled', why: `updates are disabled by policy; ${version} is available and nothing was downloaded` };
    }
    if (await ctx.store.isHeld(version)) {
      return { status: 'waiting', version, reason: 'held', why: `${version} was rolled back by hand; approving it allows it again` };
    }
    // resolve passed given-up releases over, so this is one only when nothing else was left.
    if (gaveUpAfter(await ctx.store.failures(version))) {
      const err = new FerryError('ERR_GAVE_UP', `${version} failed its health check ${MAX_ATTEMPTS} times; not trying again (publish a newer release)`);
      await recordRefusal(ctx, version, r.target.source.name, err);
      throw err;
    }
    staged = await stageResolved(ctx, r);
    justStaged = true;
  } else if (journal.phase === 'staged' && journal.kind === 'update') {
    staged = journal;
  } else if (journal.phase === 'staged') {
    throw new FerryError('ERR_INTERNAL', `internal: a ${journal.kind} journal in phase staged`);
  } else {
    throw new FerryError('ERR_BUSY', `an update is in phase ${journal.phase}`);
  }

  const version = staged.to;
  const manifest = await localManifest(ctx.layout, version);
  const decision = decideApply({
    policy: ctx.config.policy,
    release: { version, mandatory: manifest.mandatory, securityFix: manifest.securityFix },
    approved: await ctx.store.isApproved(version),
    now: ctx.now,
    trigger: options.trigger ?? 'manual',
    ignoreWindow: options.ignoreWindow ?? false,
  });
  if (decision.action === 'wait') {
    return { status: 'waiting', version, reason: decision.reason, why: decision.why };
  }
  // A person switching a device whose policy is disabled is told so (it goes ahead: they asked).
  if (!ctx.config.policy.enabled) ctx.log(`updates are disabled by policy (ferry.json policy.enabled); switching to ${version} because a person asked`);
  if (!justStaged) {
    // Staged by an earlier run: its bytes are hashed again before the switch, not after it.
    try {
      await verifyTree(ctx.layout.release(version), await localFiles(ctx, version));
    } catch (err) {
      const e = fromFsError(err, `re-verifying staged ${version}`);
      await closeAttempt(ctx, staged, 'failed', e.code, `staged release no longer verifies: ${e.message}`);
      await ctx.settle();
      throw e;
    }
  }
  return { status: 'cleared', staged, manifest };
}

/** checking → downloading → verifying → staging → staged; a failure ends the attempt in history. */
async function stageResolved(ctx: UpdateContext, r: UpdateResolution): Promise<UpdateJournal> {
  const version = r.target.candidate.version;
  const source = r.target.source.name;
  const attemptId = await openAttempt(ctx, { from: r.current, to: version, source, kind: r.plan.kind });
  let journal: UpdateJournal = await ctx.transition<UpdateJournal>(await ctx.store.journal(), {
    kind: 'update', phase: 'checking', attemptId, from: r.current, to: version, plan: r.plan, source,
    bytesMoved: 0, startedAt: ctx.now.toISOString(), restorePointId: null, errorCode: null,
  });
  try {
    const built = await withFullFallback(r.plan, async (plan) => {
      journal = await ctx.advance(journal, 'downloading', { plan });
      const fetched = await fetchPlan(ctx, plan, true);
      journal = await ctx.advance(journal, 'verifying', { bytesMoved: journal.bytesMoved + fetched.bytes, source: fetched.source ?? journal.source });
      journal = await ctx.advance(journal, 'staging');
      await keepManifest(ctx.layout, version, ctx.target, r.target.manifestBytes, r.target.listBytes);
      // Imported here, not at the top: staging (extraction with tar, deltas, patchers) is the
      // heavy part of the device code, and the commands that only read the device never stage.
      const { stageRelease } = await import('../device/stage.ts');
      await stageRelease({ layout: ctx.layout, plan, releases: r.releases, artifacts: fetched.paths, patcher: ctx.deps.patcher, linkUnchanged: ctx.config.linkUnchanged, progress: (e) => ctx.progress(e), grants: grantsOf(ctx.config) });
    }, (err) => {
      // A delta whose artifacts are missing or wrong, or whose base files or patches do not check out.
      ctx.log(journal.phase === 'downloading' ? `delta artifacts unavailable (${err.code}); using the full artifact` : `delta failed (${err.code}: ${err.message}); using the full artifact`);
    });
    const prev = await attemptRecord(ctx, attemptId);
    await ctx.store.putHistory({ ...prev, kind: built.plan.kind, bytesMoved: journal.bytesMoved, source: journal.source, ...(built.fellBack ? { fellBackToFull: true, fallbackReason: built.reason } : {}) });
    return await ctx.advance(journal, 'staged', { plan: built.plan });
  } catch (err) {
    const e = fromFsError(err, `staging ${version}`);
    // The manifest copy only belongs beside a release that made it into releases/.
    if (!(await exists(ctx.layout.release(version)))) await forgetManifest(ctx.layout, version, ctx.target);
    await closeAttempt(ctx, journal, REFUSALS.has(e.code) ? 'refused' : 'failed', e.code, e.message);
    await ctx.clear();
    throw e;
  }
}

/**
 * `journal` is journaled switching: `current` moves to its release (a tree hashed against its
 * signed list: just staged, or re-verified), then confirming → committed, or, unhealthy,
 * rolling-back (counting the failed attempt) → back to `from`; then idle.
 */
export async function switchAndConfirm(ctx: UpdateContext, journal: SwitchJournal, manifest: ManifestDoc): Promise<Verdict> {
  const version = journal.to;
  await switchTo(ctx.layout, version);
  journal = await ctx.advance(journal, 'confirming');
  const health = ctx.deps.health ? await ctx.deps.health.check({ version, dir: ctx.layout.current }) : { healthy: true, detail: 'tree verified (no health check configured)' };
  if (health.healthy) {
    journal = await ctx.advance(journal, 'committed');
    if (manifest.securityFix) await raiseSecurityFloor(ctx.layout, version);
    const record = await closeRunningAttempt(ctx, journal, 'committed', null, health.detail);
    await ctx.settle();
    await cleanup(ctx, ctx.config.keepRestorePoints);
    return { status: 'committed', record };
  }
  // Counted in the write that journals the rollback, so the attempt counts exactly once: a cut
  // before it leaves 'confirming', which recovery counts; after it, 'rolling-back', which it does not.
  journal = await ctx.advance(journal, 'rolling-back', { errorCode: 'ERR_UNHEALTHY' }, true);
  const failures = await ctx.store.failures(version);
  await switchTo(ctx.layout, journal.from);
  const record = await closeRunningAttempt(ctx, journal, 'rolled-back', 'ERR_UNHEALTHY', `${health.detail} (attempt ${failures} of ${MAX_ATTEMPTS})`);
  await ctx.settle();
  return { status: 'rolled-back', record };
}

/** Once a security fix is committed, nothing below it is installed again (SECURITY.md row 3). */
export async function raiseSecurityFloor(layout: HomeLayout, version: string): Promise<void> {
  const marks = await readMarks(layout.marks);
  if (!marks.securityFloor || semver.gt(version, marks.securityFloor)) await writeMarks(layout.marks, { ...marks, securityFloor: version });
}
