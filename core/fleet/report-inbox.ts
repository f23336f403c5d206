// A report inbox: a folder holding the newest verified report of each device, <deviceId>.json.
// The same shape wherever reports gather: `ferry serve --reports DIR`, a LAN peer's <home>/reports/,
// the `reports/` folder of a USB stick, and the folder `ferry fleet` reads. Writes are atomic (a
// temp file renamed over, core/io/durable.ts), so a reader or a power cut never sees half a report,
// and a full disk leaves what was there (the temp file is removed, the kept report stays).
//
// What the inbox checks is what one report can say about itself (core/fleet/report.ts parseReport:
// size, shape, the key matching the id, the signature) plus "newer than what I hold". Whether the
// fleet trusts the device's key (first seen, allow-list) is `ferry fleet`'s check (fleet-state.ts):
// an inbox on a stick or a peer is only a carrier, and the fleet verifies again what it reads.

import { constants } from 'node:fs';
import { mkdir, open, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { FerryError, fromFsError } from '../errors.ts';
import { writeFileAtomic } from '../io/durable.ts';
import { DEVICE_ID } from './device-identity.ts';
import { parseReport, REPORT_MAX_BYTES, unverifiedPayload, type VerifiedReport } from './report.ts';

export interface AcceptedReport {
  deviceId: string;
  sequence: number;
  /** false when the inbox already held this very report (same sequence, same payload). */
  stored: boolean;
}

/** <deviceId>.json: the only names an inbox keeps (temp files start with a dot). */
const KEPT_NAME = /^([0-9a-f]{32})\.json$/;

/** The decision for one incoming report against the kept one: pure, so it is table-tested. */
export function compareWithKept(incoming: VerifiedReport, kept: VerifiedReport | null): 'store' | 'same' | 'older' | 'conflict' {
  if (!kept) return 'store';
  if (incoming.report.sequence > kept.report.sequence) return 'store';
  if (incoming.report.sequence < kept.report.sequence) return 'older';
  return incoming.payloadSha256 === kept.payloadSha256 ? 'same' : 'conflict';
}

// One device's reports are accepted one at a time within a process (an HTTP server taking two PUTs
// for one device at once), so a slower older report cannot rename itself over a newer one.
const queues = new Map<string, Promise<unknown>>();

function serialized<T>(key: string, fn: () => Promise<T>): Promise<T> {
  const previous = queues.get(key) ?? Promise.resolve();
  const run = previous.then(fn, fn);
  const tail = run.catch(() => {});
  queues.set(key, tail);
  void tail.then(() => { if (queues.get(key) === tail) queues.delete(key); });
  return run;
}

/**
 * Verifies `bytes` (core/fleet/report.ts parseReport) and keeps it as the device's newest.
 * Refused, with the inbox unchanged: ERR_TOO_LARGE, ERR_JSON/ERR_SCHEMA, ERR_SIGNATURE, a report
 * for another app when `app` is given (ERR_WRONG_TARGET), one older than the kept one or with its
 * sequence but other bytes (ERR_DOWNGRADE), ERR_NO_SPACE.
 */
export async function acceptReport(dir: string, bytes: Uint8Array, options: { app?: string } = {}): Promise<AcceptedReport> {
  const incoming = verify(bytes);
  const { deviceId, sequence, app } = incoming.report;
  if (options.app !== undefined && app !== options.app) {
    throw new FerryError('ERR_WRONG_TARGET', `report of device ${deviceId} is for app "${app}", this inbox keeps "${options.app}"`);
  }
  const path = join(dir, `${deviceId}.json`);
  return serialized(path, async () => {
    const kept = await readKept(path, deviceId);
    const decision = compareWithKept(incoming, kept);
    if (decision === 'same') return { deviceId, sequence, stored: false };
    if (decision === 'older') {
      throw new FerryError('ERR_DOWNGRADE', `report ${sequence} of device ${deviceId} is older than the kept report ${kept!.report.sequence}`);
    }
    if (decision === 'conflict') {
      throw new FerryError('ERR_DOWNGRADE', `report ${sequence} of device ${deviceId} differs from the kept report with that sequence`);
    }
    try {
      await mkdir(dir, { recursive: true });
    } catch (err) {
      throw fromFsError(err, `making ${dir}`);
    }
    await writeFileAtomic(path, bytes, 0o644);
    return { deviceId, sequence, stored: true };
  });
}

/**
 * parseReport, with one code for every forgery: an envelope signed by a key other than the one the
 * report names comes back from verifyThreshold as ERR_UNKNOWN_KEY (no trusted signature), but an
 * inbox trusts no key list, only the report's own key, so to it that is a bad signature.
 */
function verify(bytes: Uint8Array): VerifiedReport {
  try {
    return parseReport(bytes);
  } catch (err) {
    if (err instanceof FerryError && err.code === 'ERR_UNKNOWN_KEY') throw new FerryError('ERR_SIGNATURE', `report ${err.message}`, { cause: err });
    throw err;
  }
}

/**
 * The kept report at `path`, verified, or null when there is none. A kept file that no longer
 * verifies (damaged, or planted on a stick), that is not a regular file (a FIFO, a symlink), or
 * that holds another device's report protects nothing, so a valid report replaces it (by temp +
 * rename, which replaces a link or FIFO rather than writing through it).
 */
async function readKept(path: string, deviceId: string): Promise<VerifiedReport | null> {
  const bytes = await readBounded(path);
  if (!bytes) return null;
  try {
    const kept = parseReport(bytes, path);
    // A file named after device A holding B's report (a high sequence) would otherwise refuse A's
    // real reports as older, forever.
    return kept.report.deviceId === deviceId ? kept : null;
  } catch (err) {
    if (err instanceof FerryError) return null;
    throw err;
  }
}

/**
 * At most REPORT_MAX_BYTES + 1 bytes of `path` (null when it does not exist): a 100 MB file dropped
 * into an inbox is never read whole, and one byte over the cap is enough for parseReport to refuse
 * it with ERR_TOO_LARGE (so a reader still counts it). Only a regular file is read: a symlink is not
 * followed (O_NOFOLLOW) and a FIFO or device does not block the open (O_NONBLOCK) and counts as
 * absent, so a FIFO planted on a stick cannot hang the agent.
 */
async function readBounded(path: string): Promise<Buffer | null> {
  let handle;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // ELOOP: a symlink (O_NOFOLLOW); ENXIO: a FIFO no writer holds open (O_NONBLOCK would not block).
    if (code === 'ENOENT' || code === 'ELOOP' || code === 'ENXIO') return null;
    throw fromFsError(err, `reading ${path}`);
  }
  try {
    if (!(await handle.stat()).isFile()) return null;
    const buf = Buffer.alloc(REPORT_MAX_BYTES + 1);
    let filled = 0;
    while (filled < buf.length) {
      const { bytesRead } = await handle.read(buf, filled, buf.length - filled, filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    return buf.subarray(0, filled);
  } catch (err) {
    throw fromFsError(err, `reading ${path}`);
  } finally {
    await handle.close();
  }
}

/**
 * The envelope bytes of every report kept in `dir` (none when it does not exist), by device id.
 * Not verified here: every reader verifies (parseReport, and the fleet's key check). A file over
 * the cap comes back as its first REPORT_MAX_BYTES + 1 bytes, so the reader refuses and counts it.
 * Skipped: entries that are not regular files (FIFOs, symlinks), and files whose report names
 * another device than the file name.
 */
export async function readInbox(dir: string): Promise<{ deviceId: string; bytes: Buffer }[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw fromFsError(err, `reading ${dir}`);
  }
  const out: { deviceId: string; bytes: Buffer }[] = [];
  for (const name of names.sort()) {
    const deviceId = KEPT_NAME.exec(name)?.[1];
    if (!deviceId || !DEVICE_ID.test(deviceId)) continue;
    const bytes = await readBounded(join(dir, name)).catch((err) => {
      // A folder or unreadable entry with a report's name is skipped, not fatal to the others.
      if (err instanceof FerryError && err.code === 'ERR_IO') return null;
      throw err;
    });
    // A file named after one device holding another's report is skipped: it is not that device's
    // newest, and carrying it under that name would file it wrongly (readKept replaces it).
    const named = bytes ? unverifiedPayload(bytes)?.deviceId : undefined;
    if (typeof named === 'string' && named !== deviceId) continue;
    if (bytes) out.push({ deviceId, bytes });
  }
  return out;
}
