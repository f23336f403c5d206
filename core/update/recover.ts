// Recovery on every open: finishes or undoes whatever a kill or power cut interrupted (SECURITY.md
// rows 18-20). The `current` link is the truth; the journal says what may be half-done. Early
// phases are abandoned, a staged release kept if it is all there, an unconfirmed switch rolled
// back, and a commit finished. A damaged `current` (not a link to releases/<version>) is restored
// first, from the journal, history and restore points (repair-current.ts), so the journal's
// recovery and every command after it see a release link.

import { mkdir, rm } from 'node:fs/promises';
import { FerryError } from '../errors.ts';
import { readCurrent } from '../device/switch.ts';
import type { ActiveJournal, Journal } from '../device/journal.ts';
import type { UpdateContext } from './context.ts';
import { closeAttempt, closeOrphans } from './history.ts';
import { exists, localManifest, switchTo } from './installed.ts';
import { rebuildRestorePoints } from './housekeeping.ts';
import { raiseSecurityFloor } from './attempt.ts';
import { repairCurrent } from './repair-current.ts';

export async function recover(ctx: UpdateContext): Promise<void> {
  await repairCurrent(ctx);
  const journal = await ctx.store.journal();
  const current = await readCurrent(ctx.layout);
  // We hold the lock: whatever is in staging/ belongs to a process that is gone (a complete
  // release is never there; it was renamed into releases/).
  await rm(ctx.layout.staging, { recursive: true, force: true });
  await mkdir(ctx.layout.staging, { recursive: true });
  switch (journal.phase) {
    case 'idle':
      break;
    case 'checking':
    case 'downloading':
    case 'verifying':
    case 'staging':
      await abandon(ctx, journal);
      break;
    case 'staged':
      await keepStagedIfWhole(ctx, journal);
      break;
    case 'switching':
    case 'confirming':
    case 'rolling-back':
      await rollBackUnconfirmed(ctx, journal, current);
      break;
    case 'committed':
      await finishCommit(ctx, journal);
      break;
    default: {
      const never: never = journal;
      throw new FerryError('ERR_INTERNAL', `internal: no recovery for journal phase ${String((never as Journal).phase)}`);
    }
  }
  await closeOrphans(ctx, attemptIdOf(await ctx.store.journal()));
  // A store rebuilt after damage, or made anew because it was deleted, has lost the restore
  // points: every installed release other than `current` is one (a new device has none).
  if (ctx.store.created) await rebuildRestorePoints(ctx, current);
}

function attemptIdOf(journal: Journal): string | null {
  return journal.phase === 'idle' || journal.kind === 'download' ? null : journal.attemptId;
}

/** Nothing was switched. Partial staging is gone (above); cache .part files stay for a resume. */
async function abandon(ctx: UpdateContext, journal: ActiveJournal): Promise<void> {
  await closeAttempt(ctx, journal, 'failed', 'ERR_INTERRUPTED', `interrupted while ${journal.phase}`);
  await ctx.clear();
  ctx.log(`recovered: an update to ${journal.to} interrupted while ${journal.phase} was abandoned`);
}

/**
 * A release folder is complete by construction (it appears by one rename); its bytes are
 * re-verified by apply before the switch, not on every open. Only a missing one ends the attempt.
 */
async function keepStagedIfWhole(ctx: UpdateContext, journal: ActiveJournal): Promise<void> {
  if ((await exists(ctx.layout.release(journal.to))) && (await exists(ctx.layout.manifest(journal.to)))) return;
  await closeAttempt(ctx, journal, 'failed', 'ERR_INTERRUPTED', 'staged release missing or damaged');
  await ctx.clear();
}

/**
 * The new release was never confirmed healthy: back to where the attempt started. An update cut
 * short before its verdict counts against the release (restarts stay bounded, SECURITY.md row
 * 19); one cut while rolling back was counted already, and a manual rollback is not an attempt
 * at a release.
 */
async function rollBackUnconfirmed(ctx: UpdateContext, journal: ActiveJournal, current: string | null): Promise<void> {
  if (journal.phase !== 'rolling-back' && journal.kind === 'update') await ctx.store.addFailure(journal.to);
  if (current !== journal.from) await switchTo(ctx.layout, journal.from);
  const errorCode = (journal.kind === 'download' ? null : journal.errorCode) ?? 'ERR_INTERRUPTED';
  const back = journal.from ?? 'nothing';
  await closeAttempt(ctx, journal, 'rolled-back', errorCode, `interrupted while ${journal.phase}; back on ${back}`);
  await ctx.clear();
  ctx.log(`recovered: ${journal.to} was not confirmed (${journal.phase}); back on ${back}`);
}

/** Healthy and journaled committed: what was left of the commit is done. */
async function finishCommit(ctx: UpdateContext, journal: ActiveJournal): Promise<void> {
  if (await localManifest(ctx.layout, journal.to).then((m) => m.securityFix, () => false)) await raiseSecurityFloor(ctx.layout, journal.to);
  await closeAttempt(ctx, journal, 'committed', null);
  await ctx.clear();
}
