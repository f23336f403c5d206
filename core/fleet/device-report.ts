// The report this device writes about itself (core/fleet/report.ts DeviceReport) after every attempt
// and on the agent's schedule: buildReport decides what it says (pure, table-tested);
// writeDeviceReport reads what that needs from the home, signs it with the device key and keeps it
// as <home>/device/report.json, which the routes carry off the device
// (plugins/fleet/deliver-reports.ts). ARCHITECTURE.md "Fleet reports".
//
// No secrets (SECURITY.md, fleet rows): a report holds versions, outcomes, error codes, counts and
// times; the only free text is the source's name, which loses any user:password@ and ?query/#hash.

import { mkdir, readFile, statfs } from 'node:fs/promises';
import { FerryError, fromFsError } from '../errors.ts';
import { writeFileAtomic } from '../io/durable.ts';
import { targetKey } from '../trust/metadata.ts';
import { readCurrent } from '../device/switch.ts';
import type { HomeLayout } from '../device/layout.ts';
import type { DeviceConfig } from '../device/config.ts';
import type { UpdateRecord } from '../spec.ts';
import { ensureDeviceIdentity, type DeviceIdentity } from './device-identity.ts';
import { REPORT_MAX_BYTES, REPORT_MAX_VERSIONS, signReport, unverifiedPayload, type DeviceReport, type ReportAttempt } from './report.ts';

/** The longest source name a report carries (report.ts refuses longer). */
export const SOURCE_MAX_CHARS = 256;

export interface ReportInput {
  identity: DeviceIdentity;
  config: Pick<DeviceConfig, 'app' | 'platform' | 'arch'> & { policy: { channel: string } };
  currentVersion: string | null;
  /** The device's history in the order it was made (oldest first), as DeviceStore.history() gives it. */
  history: readonly UpdateRecord[];
  freeDiskBytes: number | null;
  now: Date;
  /** The sequence of the report this device wrote last (0: none, or unreadable). */
  previousSequence: number;
}

/** A source's name without credentials, query or fragment, at most SOURCE_MAX_CHARS characters. */
export function reportSource(source: string | null): string | null {
  if (source === null) return null;
  const clean = source
    .split(',') // every URL in a list (lan:a,b; several origins)
    .map(sourceEntry)
    .join(',')
    .replace(/[\u0000-\u001f\u007f]/g, ''); // control characters: a report is read by people
  return clean.length > SOURCE_MAX_CHARS ? clean.slice(0, SOURCE_MAX_CHARS) : clean;
}

/**
 * One source without user:password@, ?query or #fragment. A URL is parsed (a password may hold an
 * '@': the parser knows where the host starts); one that does not parse loses everything up to the
 * LAST '@' before the first '/' after '//', so no part of a password is left either way.
 */
function sourceEntry(entry: string): string {
  if (entry.includes('://')) {
    try {
      const url = new URL(entry);
      url.username = '';
      url.password = '';
      url.search = '';
      url.hash = '';
      return url.href;
    } catch {
      // not a URL the parser takes: the plain stripping below
    }
  }
  return entry
    .replace(/\/\/[^/\s]*@/g, '//') // greedy: up to the last '@' before the path
    .replace(/[?#]\S*/g, ''); // ?token=… and #…
}

function attemptOf(record: UpdateRecord): ReportAttempt {
  return {
    from: record.from,
    to: record.to,
    kind: record.kind,
    outcome: record.outcome,
    errorCode: record.errorCode,
    bytesMoved: record.bytesMoved,
    source: reportSource(record.source),
    startedAt: record.startedAt,
    finishedAt: record.finishedAt,
  };
}

/**
 * The report a device with this state writes now. The sequence is max(previous + 1, the device
 * clock in whole seconds): it grows by at least one per report, and it keeps growing even when
 * report.json is lost (a wiped device folder, a damaged file), because the clock has moved past
 * every earlier report's second; so the fleet, which keeps the highest sequence per device and
 * drops older ones as replays, never mistakes a new report for a replay.
 */
export function buildReport(input: ReportInput): DeviceReport {
  const { identity, config, history, now } = input;
  const newest = history.length > 0 ? history[history.length - 1]! : null;
  const versions = history
    .filter((r) => r.outcome === 'committed' && r.to !== null)
    .map((r) => ({ version: r.to!, since: r.finishedAt ?? r.startedAt }))
    .slice(-REPORT_MAX_VERSIONS);
  return {
    type: 'ferry/report',
    deviceId: identity.id,
    publicKey: Buffer.from(identity.key.publicKey).toString('hex'),
    app: config.app,
    target: targetKey(config.platform, config.arch),
    channel: config.policy.channel,
    sequence: Math.max(input.previousSequence + 1, Math.floor(now.getTime() / 1000)),
    time: now.toISOString(),
    currentVersion: input.currentVersion,
    lastAttempt: newest ? attemptOf(newest) : null,
    freeDiskBytes: input.freeDiskBytes,
    versions,
  };
}

/** What writeDeviceReport reads: an UpdateContext (core/update/context.ts) is one. */
export interface ReportHome {
  layout: HomeLayout;
  config: DeviceConfig;
  store: { history(): Promise<UpdateRecord[]> };
  readonly now: Date;
}

export interface WrittenReport {
  report: DeviceReport;
  /** The signed envelope, as written to <home>/device/report.json. */
  bytes: Buffer;
}

/**
 * Builds, signs and writes <home>/device/report.json (atomic, mode 0644: it holds nothing secret).
 * Makes the device key of a home from before device keys (ensureDeviceIdentity). Throws a
 * FerryError (ERR_NO_SPACE on a full disk, the old report kept); callers after an attempt catch it.
 */
export async function writeDeviceReport(home: ReportHome): Promise<WrittenReport> {
  const { layout, config } = home;
  const identity = await ensureDeviceIdentity(layout);
  const [currentVersion, history, freeDiskBytes, previousSequence] = await Promise.all([
    readCurrent(layout),
    home.store.history(),
    freeBytes(layout.home),
    lastSequence(layout.deviceReport, identity.id),
  ]);
  const report = buildReport({ identity, config, currentVersion, history, freeDiskBytes, now: home.now, previousSequence });
  const bytes = signReport(report, identity);
  if (bytes.byteLength > REPORT_MAX_BYTES) throw new FerryError('ERR_INTERNAL', `internal: a report of ${bytes.byteLength} bytes`);
  try {
    await mkdir(layout.deviceDir, { recursive: true });
  } catch (err) {
    throw fromFsError(err, `making ${layout.deviceDir}`);
  }
  await writeFileAtomic(layout.deviceReport, bytes, 0o644);
  return { report, bytes };
}

/** The device's newest written report (envelope bytes), or null when there is none. */
export async function readDeviceReport(layout: HomeLayout): Promise<Buffer | null> {
  try {
    return await readFile(layout.deviceReport);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw fromFsError(err, `reading ${layout.deviceReport}`);
  }
}

/**
 * The previous report's sequence, 0 when it is missing or unreadable (the clock term covers it).
 * Read without checking the signature: the file is this device's own and the number is only a
 * floor. A number that could not grow by one (not a safe integer) is ignored.
 */
async function lastSequence(path: string, deviceId: string): Promise<number> {
  const report = unverifiedPayload(await readFile(path).catch(() => Buffer.alloc(0)));
  const n = report?.sequence;
  return report?.deviceId === deviceId && typeof n === 'number' && Number.isSafeInteger(n + 1) && n > 0 ? n : 0;
}

async function freeBytes(dir: string): Promise<number | null> {
  try {
    const st = await statfs(dir);
    const free = st.bavail * st.bsize;
    return Number.isSafeInteger(free) ? free : null;
  } catch {
    return null;
  }
}
