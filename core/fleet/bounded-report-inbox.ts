// A LAN peer's report inbox (<home>/reports/, core/fleet/report-inbox.ts) with a bound on how many
// devices it keeps, so a neighbour cannot fill the peer's disk (SECURITY.md, fleet rows: inbox
// flooding). Anyone on the LAN can make device keys, so anyone can send valid reports for as many
// new "devices" as they like; what the inbox keeps must not grow with that.
//
// The bound is a count of devices (PEER_INBOX_MAX_DEVICES), not bytes: each kept report is at most
// REPORT_MAX_BYTES (64 KiB), so the count bounds the bytes too (512 × 64 KiB = 32 MiB at worst,
// about 1 MB with real 2 KB reports), and a count needs no size bookkeeping that a crash could skew.
//
// When full, the report of the device heard from longest ago is evicted for a new device's. "Heard
// from" is the report's own time, but never later than the moment this peer received it: a
// neighbour dating its reports in the future cannot make them stay for ever. A known device's newer
// report replaces its own file and never needs room, so it is never refused for space; a new
// device's report older than everything kept is refused (ERR_NO_SPACE), the inbox unchanged.
// Evictions happen only after the new report was stored. Accepts run one at a time.

import { stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { FerryError, fromFsError } from '../errors.ts';
import { acceptReport, readInbox, type AcceptedReport } from './report-inbox.ts';
import { parseReport, type VerifiedReport } from './report.ts';

/** Devices a peer keeps reports of, by default. */
export const PEER_INBOX_MAX_DEVICES = 512;

export type Admission = { admit: true; evict: string[] } | { admit: false };

/**
 * Whether a report of `deviceId`, heard at `heardMs`, may enter an inbox that keeps `kept`
 * (device id → heard ms) and at most `max` devices, and which devices then leave. Pure.
 */
export function admitReport(kept: ReadonlyMap<string, number>, deviceId: string, heardMs: number, max: number): Admission {
  if (kept.has(deviceId) || kept.size < max) return { admit: true, evict: [] };
  // The longest unheard first; ties by id, so the choice is the same on every run.
  const byAge = [...kept].sort(([a, ta], [b, tb]) => ta - tb || (a < b ? -1 : a > b ? 1 : 0));
  const overflow = kept.size + 1 - max;
  const leaving = byAge.slice(0, overflow);
  if (leaving.some(([, t]) => t >= heardMs)) return { admit: false };
  return { admit: true, evict: leaving.map(([id]) => id) };
}

/** When a report counts as heard: its time, but not after the moment it arrived. */
export function heardAt(reportTime: string, arrivedMs: number): number {
  const t = Date.parse(reportTime);
  return Number.isFinite(t) ? Math.min(t, arrivedMs) : arrivedMs;
}

export interface BoundedInbox {
  /** Keeps a verified report (acceptReport's refusals, plus ERR_NO_SPACE when full of newer ones). */
  accept(bytes: Buffer, verified: VerifiedReport): Promise<AcceptedReport>;
}

export function createBoundedInbox(options: { dir: string; app?: string; maxDevices?: number; now?: () => number }): BoundedInbox {
  const { dir } = options;
  const max = options.maxDevices ?? PEER_INBOX_MAX_DEVICES;
  const now = options.now ?? Date.now;
  let kept: Map<string, number> | null = null;
  let queue: Promise<unknown> = Promise.resolve();

  /** What is in the folder already (a restarted peer), each at min(report time, file time). */
  async function load(): Promise<Map<string, number>> {
    const map = new Map<string, number>();
    for (const { deviceId, bytes } of await readInbox(dir)) {
      try {
        const { report } = parseReport(bytes);
        if (report.deviceId !== deviceId) continue;
        const mtime = (await stat(join(dir, `${deviceId}.json`))).mtimeMs;
        map.set(deviceId, heardAt(report.time, mtime));
      } catch {
        // Not a valid report: acceptReport replaces it when its device sends one; it is not counted.
      }
    }
    return map;
  }

  async function acceptNow(bytes: Buffer, verified: VerifiedReport): Promise<AcceptedReport> {
    kept ??= await load();
    const { deviceId, time } = verified.report;
    const heard = heardAt(time, now());
    const admission = admitReport(kept, deviceId, heard, max);
    if (!admission.admit) {
      throw new FerryError('ERR_NO_SPACE', `this peer keeps reports of ${max} devices, all heard from more recently than device ${deviceId}`);
    }
    const accepted = await acceptReport(dir, bytes, options.app === undefined ? {} : { app: options.app });
    kept.set(deviceId, heard);
    for (const id of admission.evict) {
      await unlink(join(dir, `${id}.json`)).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw fromFsError(err, `evicting the report of device ${id}`);
      });
      kept.delete(id);
    }
    return accepted;
  }

  return {
    accept(bytes, verified) {
      const run = queue.then(() => acceptNow(bytes, verified));
      queue = run.catch(() => {});
      return run;
    },
  };
}
