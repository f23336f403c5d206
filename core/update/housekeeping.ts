// Restore points (made before each switch, by hand, or again from releases/ after the store was
// lost) and cleanup: old restore points, release folders no one needs (never one a live ferry
// process runs from: core/device/running-pins.ts), and cache/ beyond what the current version's
// LAN peers and a pending update use.

import { readdir, rm } from 'node:fs/promises';
import { forgetManifest } from './kept-metadata.ts';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import * as semver from '../semver.ts';
import { FerryError } from '../errors.ts';
import { timeId } from '../device/store.ts';
import { readCurrent } from '../device/switch.ts';
import { livePins, type RunningPin } from '../device/running-pins.ts';
import type { Journal } from '../device/journal.ts';
import type { RestorePoint } from '../spec.ts';
import type { UpdateContext } from './context.ts';
import { installedVersions, localManifest } from './installed.ts';

export async function makeRestorePoint(ctx: UpdateContext, version: string, reason: RestorePoint['reason']): Promise<RestorePoint> {
  const point: RestorePoint = { id: timeId(ctx.now, randomBytes(3).toString('hex')), version, createdAt: ctx.now.toISOString(), reason };
  await ctx.store.putRestorePoint(point);
  return point;
}

/** A restore point of the running version (the public createRestorePoint). */
export async function restorePointOfCurrent(ctx: UpdateContext, reason: RestorePoint['reason']): Promise<RestorePoint> {
  const current = await readCurrent(ctx.layout);
  if (!current) throw new FerryError('ERR_NOT_INSTALLED', 'nothing is installed to make a restore point of');
  return makeRestorePoint(ctx, current, reason);
}

/** After the store was rebuilt or made anew: every installed release but current becomes a restore point again. */
export async function rebuildRestorePoints(ctx: UpdateContext, current: string | null): Promise<void> {
  const versions = (await installedVersions(ctx.layout)).filter((v) => v !== current);
  for (const version of versions) await makeRestorePoint(ctx, version, 'manual');
  if (versions.length > 0) ctx.log(`the store was ${ctx.store.rebuiltFrom ? 'damaged and rebuilt' : 'missing and made anew'}: restore points for ${versions.join(', ')} made again from releases/`);
}

/** Why cleanup keeps a release folder. */
export type KeepReason = 'current' | 'previous' | 'update-in-progress' | 'restore-point' | 'pinned';

export interface KeptRelease {
  version: string;
  reasons: KeepReason[];
  /** With 'pinned': the live ferry processes that run from this release. */
  pins: RunningPin[];
}

export interface CleanupResult {
  /** The restore points removed (the oldest beyond `keepCount`). */
  removed: RestorePoint[];
  /** Release folders removed. */
  removedReleases: string[];
  /** Release folders kept, each with why. */
  keptReleases: KeptRelease[];
}

/**
 * Which installed releases cleanup keeps, and why (a pure decision). `previous` is the one a
 * rollback goes to; `pending` the versions an update in progress started from or is staging;
 * `pins` the live running-release pins (core/device/running-pins.ts).
 */
export function releasesToKeep(input: {
  installed: string[];
  current: string | null;
  previous: string | undefined;
  pending: string[];
  restorePointVersions: string[];
  pins: RunningPin[];
}): KeptRelease[] {
  const kept: KeptRelease[] = [];
  for (const version of input.installed) {
    const reasons: KeepReason[] = [];
    if (version === input.current) reasons.push('current');
    if (version === input.previous) reasons.push('previous');
    if (input.pending.includes(version)) reasons.push('update-in-progress');
    if (input.restorePointVersions.includes(version)) reasons.push('restore-point');
    const pins = input.pins.filter((p) => p.version === version);
    if (pins.length > 0) reasons.push('pinned');
    if (reasons.length > 0) kept.push({ version, reasons, pins });
  }
  return kept;
}

/**
 * Keeps the newest `keepCount` restore points and removes release folders no one needs: never
 * `current`, the newest other version (the one a rollback goes to), a restore point's version,
 * the version an update in progress started from or is staging, or a release a live ferry
 * process runs from (its pin in run/pins/; stale pins are removed here).
 */
export async function cleanup(ctx: UpdateContext, keepCount: number): Promise<CleanupResult> {
  if (!Number.isInteger(keepCount) || keepCount < 1) throw new FerryError('ERR_USAGE', '--keep must be at least 1');
  const points = await ctx.store.restorePoints();
  const removed = points.slice(0, Math.max(0, points.length - keepCount));
  for (const p of removed) await ctx.store.deleteRestorePoint(p.id);
  const kept = points.slice(removed.length);
  const current = await readCurrent(ctx.layout);
  const journal = await ctx.store.journal();
  const installed = await installedVersions(ctx.layout);
  const previous = [...installed].reverse().find((v) => v !== current && (!current || semver.lt(v, current)));
  const pending = journal.phase === 'idle' ? [] : [journal.from, journal.to].filter((v): v is string => !!v);
  const keptReleases = releasesToKeep({ installed, current, previous, pending, restorePointVersions: kept.map((p) => p.version), pins: await livePins(ctx.layout.home) });
  const removedReleases: string[] = [];
  for (const version of installed) {
    if (keptReleases.some((k) => k.version === version)) continue;
    await rm(ctx.layout.release(version), { recursive: true, force: true });
    await forgetManifest(ctx.layout, version, ctx.target);
    removedReleases.push(version);
  }
  await pruneCache(ctx, current, journal);
  return { removed, removedReleases, keptReleases };
}

/**
 * Keeps in cache/ only the artifacts of the current version (the ones LAN peers may ask for),
 * while an update is pending the partial downloads it will resume, and the HTTP transport's
 * conditional-GET folder (cache/http: the first check after an update sends If-None-Match for
 * what the update read, issue 13 item 14).
 */
async function pruneCache(ctx: UpdateContext, current: string | null, journal: Journal): Promise<void> {
  const keep = new Set<string>();
  const release = current ? (await localManifest(ctx.layout, current).catch(() => undefined))?.targets[ctx.target] : undefined;
  if (release) for (const ref of [release.full, ...release.deltas.map((d) => d.artifact)]) keep.add(ref.sha256);
  const pending = journal.phase !== 'idle';
  for (const name of await readdir(ctx.layout.cache).catch(() => [] as string[])) {
    const sha = name.replace(/\.part$/, '');
    if (keep.has(sha) || name === 'http' || (pending && name.endsWith('.part'))) continue;
    await rm(join(ctx.layout.cache, name), { recursive: true, force: true });
  }
}
