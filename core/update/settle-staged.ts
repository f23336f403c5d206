// Closes an attempt that Updater.stage left `staged` and that was switched outside the Updater:
// ferry's self-update moves `current` itself, by boot record, restart and confirm
// (ARCHITECTURE.md "Self-update"), then reports here how the trial ended, so the self
// home's history and journal say what happened exactly as they do after an apply.

import { FerryError, type ErrorCode } from '../errors.ts';
import { readCurrent } from '../device/switch.ts';
import type { UpdateRecord } from '../spec.ts';
import type { UpdateContext } from './context.ts';
import { closeAttempt } from './history.ts';
import { localManifest } from './installed.ts';
import { cleanup, makeRestorePoint } from './housekeeping.ts';
import { raiseSecurityFloor } from './attempt.ts';

/** How a trial that began from a staged release ended. */
export interface StagedVerdict {
  outcome: 'committed' | 'rolled-back';
  errorCode?: ErrorCode | null;
  message?: string;
}

/**
 * When the journal is `staged` with `to === version`: closes that attempt in history with the
 * verdict and journals idle; returns the closed record. Anything else (already settled, another
 * version staged, nothing staged): null, changing nothing, so a settle repeated after a kill is
 * harmless. A commit requires `current` to name `version` already (the switch is the caller's;
 * a record saying committed while `current` says otherwise would be a lie: ERR_INTERNAL), and
 * does what apply's commit does: a restore point of the version it left, the security floor for
 * a security fix (SECURITY.md row 3), cleanup.
 */
export async function settleStaged(ctx: UpdateContext, version: string, verdict: StagedVerdict): Promise<UpdateRecord | null> {
  const journal = await ctx.store.journal();
  if (journal.phase !== 'staged' || journal.kind !== 'update' || journal.to !== version) return null;
  if (verdict.outcome === 'committed') {
    const current = await readCurrent(ctx.layout);
    if (current !== version) throw new FerryError('ERR_INTERNAL', `internal: ${version} cannot be recorded committed while current is ${current ?? 'nothing'}`);
    if (journal.from && journal.from !== version) await makeRestorePoint(ctx, journal.from, 'before-switch');
    if ((await localManifest(ctx.layout, version)).securityFix) await raiseSecurityFloor(ctx.layout, version);
  }
  const record = await closeAttempt(ctx, journal, verdict.outcome, verdict.errorCode ?? null, verdict.message);
  await ctx.settle();
  if (verdict.outcome === 'committed') await cleanup(ctx, ctx.config.keepRestorePoints);
  return record ?? null;
}
