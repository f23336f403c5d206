// Recovery of a damaged `current` (SECURITY.md row 20), run by recover() on every open before the
// journal is looked at: a `current` that is a link to anywhere but releases/<version> (`/`, a path
// through `..`), a folder or a file would otherwise fail every command, `ferry status` included.
// The link is restored to an installed release that verifies against its signed manifest, chosen
// from the journal, then history, then the restore points, and a history record says what was
// wrong and what was done. The damaged link is never followed: it is replaced by rename(2) or
// unlinked; a folder or file in its place is moved aside (kept for inspection), never deleted.

import { rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import * as semver from '../semver.ts';
import { FerryError, fromFsError } from '../errors.ts';
import type { Journal } from '../device/journal.ts';
import { inspectCurrent, switchCurrent } from '../device/switch.ts';
import { verifyTree } from '../device/verify-tree.ts';
import { printable } from '../io/printable.ts';
import { readMarks } from '../trust/trust-marks.ts';
import type { RestorePoint, UpdateRecord } from '../spec.ts';
import type { UpdateContext } from './context.ts';
import { installedVersions, localFiles } from './installed.ts';

/** The history record's source: how status and history tell a repair from an update. */
export const REPAIR_SOURCE = 'recovery:current';

/** What a repair found and did. `restoredTo` null: no installed release verifies, nothing is installed. */
export interface CurrentRepair {
  damage: string;
  restoredTo: string | null;
  /** Installed releases passed over, each with why ("1.1.0: ERR_HASH_MISMATCH: …"). */
  passedOver: string[];
  /** Where a folder or file found in place of the link was moved (inside the home), or null. */
  movedAside: string | null;
  at: string;
}

/**
 * The versions to restore `current` to, best first (a pure decision): what the journal says was
 * running (an interrupted attempt's `from`, or its `to` once journaled committed), then the
 * versions history says were committed, newest first, then the restore points, newest first, then
 * any other installed release, newest first. Only installed versions are candidates.
 */
export function restoreCandidates(input: { journal: Journal; history: UpdateRecord[]; restorePoints: RestorePoint[]; installed: string[] }): string[] {
  const j = input.journal;
  const fromJournal = j.phase === 'idle' ? null : j.phase === 'committed' ? j.to : j.from;
  const ordered = [
    fromJournal,
    ...[...input.history].reverse().filter((r) => r.outcome === 'committed').map((r) => r.to),
    ...[...input.restorePoints].reverse().map((p) => p.version),
    ...[...input.installed].sort(semver.rcompare),
  ];
  const out: string[] = [];
  for (const v of ordered) if (v && input.installed.includes(v) && !out.includes(v)) out.push(v);
  return out;
}

/** Restores a damaged `current`; null when `current` is a release link or absent (nothing to do). */
export async function repairCurrent(ctx: UpdateContext): Promise<CurrentRepair | null> {
  const found = await inspectCurrent(ctx.layout);
  if (found.state !== 'damaged') return null;
  const candidates = restoreCandidates({
    journal: await ctx.store.journal(),
    history: await ctx.store.history(),
    restorePoints: await ctx.store.restorePoints(),
    installed: await installedVersions(ctx.layout),
  });
  // A restore never goes below a security fix already installed (SECURITY.md row 3). Unreadable
  // marks leave the order above to decide: it starts with what was running.
  const floor = (await readMarks(ctx.layout.marks).catch(() => null))?.securityFloor ?? null;
  const passedOver: string[] = [];
  let restoredTo: string | null = null;
  for (const version of candidates) {
    if (floor && semver.lt(version, floor)) {
      passedOver.push(`${version}: below the security floor ${floor}`);
      continue;
    }
    try {
      await verifyTree(ctx.layout.release(version), await localFiles(ctx, version));
      restoredTo = version;
      break;
    } catch (err) {
      passedOver.push(printable(`${version}: ${err instanceof FerryError ? `${err.code}: ${err.message}` : String(err)}`)); // names from a damaged tree
    }
  }
  const at = ctx.now;
  let movedAside: string | null = null;
  if (!found.isLink) {
    // rename(2) cannot put a link over a folder; moving it aside keeps whatever it holds.
    movedAside = join(ctx.layout.home, `current.damaged-${at.toISOString().replace(/[-:.]/g, '')}`);
    await rename(ctx.layout.current, movedAside).catch((err) => { throw fromFsError(err, `moving the damaged ${ctx.layout.current} aside`); });
  }
  if (restoredTo) await switchCurrent(ctx.layout, restoredTo);
  else if (found.isLink) await rm(ctx.layout.current, { force: true }); // unlinks the link itself, never its target
  const repair: CurrentRepair = { damage: found.what, restoredTo, passedOver, movedAside, at: at.toISOString() };
  await ctx.store.putHistory({
    id: await ctx.store.newHistoryId(at),
    from: null,
    to: restoredTo,
    source: REPAIR_SOURCE,
    kind: restoredTo ? 'rollback' : null,
    bytesMoved: 0,
    startedAt: repair.at,
    finishedAt: repair.at,
    outcome: restoredTo ? 'committed' : 'failed',
    errorCode: restoredTo ? null : 'ERR_NOT_INSTALLED',
    message: describeRepair(repair),
  });
  ctx.log(`recovered: ${describeRepair(repair)}`);
  return repair;
}

/** "current was damaged (<what>); restored to <v>", for history, logs and status. */
export function describeRepair(r: Pick<CurrentRepair, 'damage' | 'restoredTo' | 'passedOver' | 'movedAside'>): string {
  const passed = r.passedOver.length ? ` (passed over ${r.passedOver.join('; ')})` : '';
  const done = r.restoredTo ? `restored to ${r.restoredTo}${passed}` : `no installed release verifies${passed}; nothing is installed until the next update`;
  return `current was damaged (${r.damage}); ${done}${r.movedAside ? `; what was there is kept at ${r.movedAside}` : ''}`;
}
