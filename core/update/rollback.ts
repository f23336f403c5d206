// A manual rollback (the spec's rollback()): back to a restore point, through the same switch and
// confirm as an update. The version left is held, so no automatic update brings it back until it
// is approved (SECURITY.md row 18: the hold is written before the switch).

import * as semver from '../semver.ts';
import { FerryError } from '../errors.ts';
import { readCurrent } from '../device/switch.ts';
import { verifyTree } from '../device/verify-tree.ts';
import { IDLE } from '../device/journal.ts';
import { readMarks } from '../trust/trust-marks.ts';
import type { UpdateRecord } from '../spec.ts';
import type { UpdateContext } from './context.ts';
import { closeAttempt, openAttempt } from './history.ts';
import { localFiles, localManifest } from './installed.ts';
import { makeRestorePoint } from './housekeeping.ts';
import { switchAndConfirm } from './attempt.ts';

/** To restore point `id`, or to the newest restore point of another version than current. */
export async function rollback(ctx: UpdateContext, id?: string): Promise<UpdateRecord> {
  const current = await readCurrent(ctx.layout);
  const points = await ctx.store.restorePoints();
  const point = id ? points.find((p) => p.id === id) : [...points].reverse().find((p) => p.version !== current);
  if (!point) throw new FerryError('ERR_NOT_FOUND', id ? `no restore point ${id}` : 'no restore point of another version to roll back to');
  const journal = await ctx.store.journal();
  if (journal.phase !== 'idle' && journal.phase !== 'staged') throw new FerryError('ERR_BUSY', `an update is in phase ${journal.phase}`);
  const marks = await readMarks(ctx.layout.marks);
  if (marks.securityFloor && semver.lt(point.version, marks.securityFloor)) {
    throw new FerryError('ERR_DOWNGRADE', `${point.version} is below the security floor ${marks.securityFloor}: it lacks a security fix already installed`);
  }
  // Re-verified before switching: a restore point is only as good as its bytes.
  await verifyTree(ctx.layout.release(point.version), await localFiles(ctx, point.version));
  if (journal.phase === 'staged') {
    await closeAttempt(ctx, journal, 'failed', null, `abandoned for a rollback to ${point.version}`);
  }
  const attemptId = await openAttempt(ctx, { from: current, to: point.version, source: `restore-point:${point.id}`, kind: 'rollback' });
  const startedAt = ctx.now.toISOString();
  // A version rolled back by hand is not reinstalled automatically; approving it lifts the hold.
  // Held before the switch: once the rollback is journaled committed, a power cut must not lose
  // the hold (the next update would reinstall that version). A rollback that does not commit
  // leaves the device on `current`, where a hold on the running version changes nothing.
  if (current && current !== point.version) await ctx.store.hold(current);
  const manifest = await localManifest(ctx.layout, point.version);
  const before = current ? await makeRestorePoint(ctx, current, 'before-switch') : null;
  // The attempt replaces a staged one (abandoned above) as it would an idle journal.
  const switching = await ctx.transition(
    IDLE,
    { kind: 'rollback', phase: 'switching', attemptId, from: current, to: point.version, startedAt, restorePointId: before?.id ?? null, errorCode: null },
  );
  return (await switchAndConfirm(ctx, switching, manifest)).record;
}
