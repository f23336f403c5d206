// Reports onto a USB stick: the stick that brought an update to an air-gapped site carries the
// fleet's state back. Each device's newest report goes to <mount>/reports/<deviceId>.json through
// the report inbox (core/fleet/report-inbox.ts: verified, newest per device, temp + rename), so a
// pulled stick or a power cut never leaves half a report, and the folder is a report inbox that
// `ferry fleet <mount>/reports` reads as it is.
//
// The stick belongs to its update bundles first (SECURITY.md, fleet rows: "a full stick never loses
// the bundle"): reports are written only inside reports/, the folder is bounded (STICK_REPORTS_*),
// and a full stick (ENOSPC) stops the writing with the temp file removed and every other file as
// it was; the call says "no space" and never throws for it.

import { lstat, mkdir, opendir, realpath, rmdir, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { FerryError, fromFsError } from '../../core/errors.ts';
import { acceptReport } from '../../core/fleet/report-inbox.ts';
import { REPORT_MAX_BYTES } from '../../core/fleet/report.ts';
import { isRepoFolder, listFolder } from '../usb/mount-listing.ts';

/**
 * At most this many bytes in <mount>/reports/: 2,048 devices at 2 KB (a report is 0.8-1.7 KB),
 * or 64 reports at the 64 KiB cap. A fleet carried by one stick is sites of tens to hundreds of
 * devices, and 4 MiB is small next to the update bundle it carries (megabytes to gigabytes), so
 * the reports are never what fills a stick that had room for its bundle.
 */
export const STICK_REPORTS_MAX_BYTES = 4 * 1024 * 1024;
/** At most this many files in <mount>/reports/ (a folder of many tiny files is slow on FAT). */
export const STICK_REPORTS_MAX_FILES = 2048;

export interface StickResult {
  /** Reports written (new, or newer than the one the stick held). */
  written: number;
  /** Reports the stick already held, or held newer (nothing to write). */
  unchanged: number;
  /** Reports not written because the folder is at its cap. */
  overCap: number;
  /** Reports refused by the inbox (a report that does not verify, another app's). */
  refused: number;
  /** The stick filled up: writing stopped, nothing lost (the call did not throw). */
  noSpace: boolean;
  /** Any other failure that stopped the writing (a stick pulled out): "CODE: message", or null. */
  error: string | null;
}

/**
 * Writes `reports` (signed envelopes) into <mount>/reports/, newest per device, within the caps.
 * Never throws for the stick's sake: a full stick is `noSpace`, a pulled one `error`.
 */
export async function writeReportsToStick(mount: string, reports: readonly Uint8Array[], options: { app?: string; makeFolder?: boolean } = {}): Promise<StickResult> {
  const result: StickResult = { written: 0, unchanged: 0, overCap: 0, refused: 0, noSpace: false, error: null };
  const dir = join(mount, 'reports');
  // lstat, not stat: a `reports` symlink on the stick (reports -> /var/lib/… on the device) is not
  // followed, or the device would write onto its own disk where the stick points it.
  const entry = await lstat(dir).catch(() => null);
  const existed = entry !== null;
  try {
    if (entry && !entry.isDirectory()) throw new FerryError('ERR_UNSUPPORTED_FILE', `${dir} is not a folder (a link or a file); no reports written`);
    // A folder a person names (`ferry report --to`) is made; a mount point never is (no stick, no write).
    if (options.makeFolder) await mkdir(mount, { recursive: true });
    if (!(await stat(mount)).isDirectory()) throw new FerryError('ERR_NOT_FOUND', `${mount} is not a folder`);
    if (!existed) await mkdir(dir);
    // reports/ must sit directly in the stick, however the mount path itself is reached.
    if (dirname(await realpath(dir)) !== (await realpath(mount))) {
      throw new FerryError('ERR_UNSUPPORTED_FILE', `${dir} resolves outside ${mount}; no reports written`);
    }
    const usage = await folderUsage(dir);
    for (const bytes of reports) {
      const outcome = await writeOne(dir, bytes, usage, options.app);
      if (outcome === 'no-space') { result.noSpace = true; break; }
      result[outcome] += 1;
    }
  } catch (err) {
    const e = fromFsError(err, `writing reports into ${dir}`);
    if (e.code === 'ERR_NO_SPACE') result.noSpace = true;
    else result.error = `${e.code}: ${e.message}`;
  }
  // A reports/ folder made just now that holds nothing (the first write hit a full stick) goes again.
  if (!existed && result.written === 0) await rmdir(dir).catch(() => {});
  return result;
}

interface Usage {
  bytes: number;
  files: number;
  /** Size of each <name> in the folder. */
  sizes: Map<string, number>;
}

async function writeOne(dir: string, bytes: Uint8Array, usage: Usage, app: string | undefined): Promise<'written' | 'unchanged' | 'overCap' | 'refused' | 'no-space'> {
  if (bytes.byteLength > REPORT_MAX_BYTES) return 'refused';
  // The device id decides the file name; it is read unverified here only to check the cap, and
  // acceptReport verifies everything before anything is written.
  const name = `${deviceIdHint(bytes)}.json`;
  const old = usage.sizes.get(name);
  // The temp file sits beside the kept one until the rename: both count while it is written.
  const peakBytes = usage.bytes + bytes.byteLength;
  const filesAfter = usage.files + (old === undefined ? 1 : 0);
  if (peakBytes > STICK_REPORTS_MAX_BYTES || filesAfter > STICK_REPORTS_MAX_FILES) return 'overCap';
  try {
    const accepted = await acceptReport(dir, bytes, app !== undefined ? { app } : {});
    if (!accepted.stored) return 'unchanged';
    const stored = `${accepted.deviceId}.json`;
    const before = usage.sizes.get(stored);
    usage.bytes += bytes.byteLength - (before ?? 0);
    if (before === undefined) usage.files += 1;
    usage.sizes.set(stored, bytes.byteLength);
    return 'written';
  } catch (err) {
    if (!(err instanceof FerryError)) throw err;
    if (err.code === 'ERR_NO_SPACE') return 'no-space';
    if (err.code === 'ERR_DOWNGRADE') return 'unchanged'; // the stick holds this device's newer report
    if (['ERR_TOO_LARGE', 'ERR_JSON', 'ERR_SCHEMA', 'ERR_SIGNATURE', 'ERR_WRONG_TARGET'].includes(err.code)) return 'refused';
    throw err;
  }
}

/** The deviceId a report envelope names (unverified; '' when it names none). */
function deviceIdHint(bytes: Uint8Array): string {
  try {
    const envelope = JSON.parse(Buffer.from(bytes).toString('utf8')) as { payload?: unknown };
    const payload = JSON.parse(Buffer.from(String(envelope.payload), 'base64').toString('utf8')) as { deviceId?: unknown };
    return typeof payload.deviceId === 'string' && /^[0-9a-f]{32}$/.test(payload.deviceId) ? payload.deviceId : '';
  } catch {
    return '';
  }
}

/** Bytes and files in `dir` (every entry counts, not only ferry's: the cap is on the folder). */
async function folderUsage(dir: string): Promise<Usage> {
  const usage: Usage = { bytes: 0, files: 0, sizes: new Map() };
  const handle = await opendir(dir);
  for await (const entry of handle) {
    const st = await lstat(join(dir, entry.name)).catch(() => null);
    if (!st) continue;
    usage.files += 1;
    usage.bytes += st.size;
    usage.sizes.set(entry.name, st.size);
    // A folder stuffed past the caps is not walked to its end: it is full for us either way.
    if (usage.files > STICK_REPORTS_MAX_FILES || usage.bytes > STICK_REPORTS_MAX_BYTES) break;
  }
  return usage;
}

/**
 * Whether `mount` holds a stick to write reports onto: a folder that is a mount point (another
 * filesystem than its parent's), or one that already carries an offer or a reports/ folder. An
 * empty mount-point folder with no stick in it is left alone, so reports never land on the
 * device's own disk under /media/stick.
 */
export async function stickPresent(mount: string): Promise<boolean> {
  const st = await stat(mount).catch(() => null);
  if (!st?.isDirectory()) return false;
  const parent = await stat(dirname(mount)).catch(() => null);
  if (parent && parent.dev !== st.dev) return true;
  if (await isRepoFolder(mount)) return true;
  const top = await listFolder(mount);
  if (top.files.some((f) => f.endsWith('.ferry'))) return true;
  return top.dirs.some((d) => d === join(mount, 'reports'));
}
