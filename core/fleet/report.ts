// A device report: what one device says about itself after an attempt (and on a schedule), signed
// with its own key (core/fleet/device-identity.ts) as a DSSE envelope. Reports travel to the fleet
// over whatever carries bytes back (an HTTP endpoint, the USB stick, a LAN peer); `ferry fleet`
// reads them. A report never carries a secret: source names lose any user:password and query.
//
// Who may sign: only the device itself. The report names its public key, and its id must be the
// start of that key's hash (deviceIdOf), so a report for a device can only be made with that
// device's secret key. Whether that key is the one the fleet first saw for the id, and whether the
// report is newer than the newest seen, are the reader's checks (core/fleet/fleet-state.ts).

import { FerryError, type ErrorCode } from '../errors.ts';
import { encodeEnvelope, PAYLOAD_TYPES, parseEnvelope, signEnvelope, verifyThreshold } from '../trust/dsse.ts';
import { parseStrictJson } from '../io/strict-json.ts';
import { arr, int, obj, str, time, HEX64, NAME, type JsonObject } from '../io/schema.ts';
import { sha256 } from '../io/hash.ts';
import * as semver from '../semver.ts';
import { keyIdOf } from '../trust/keys.ts';
import { DEVICE_ID, deviceIdOf, type DeviceIdentity } from './device-identity.ts';
import type { UpdateRecord } from '../spec.ts';

/** A report envelope above this is refused unread (a report is about 1-2 KB). */
export const REPORT_MAX_BYTES = 64 * 1024;
/** The installs a report lists (newest last): enough for the fleet's versions-over-time chart. */
export const REPORT_MAX_VERSIONS = 8;

/** The device's last attempt, as its history recorded it. */
export interface ReportAttempt {
  from: string | null;
  to: string | null;
  kind: UpdateRecord['kind'];
  outcome: UpdateRecord['outcome'];
  errorCode: ErrorCode | null;
  bytesMoved: number;
  /** Where the bytes came from (a source's name without credentials or query), or null. */
  source: string | null;
  startedAt: string;
  finishedAt: string | null;
}

export interface DeviceReport {
  type: 'ferry/report';
  deviceId: string;
  /** The device's ed25519 public key, 64 hex digits. */
  publicKey: string;
  app: string;
  /** "<platform>-<arch>" */
  target: string;
  channel: string;
  /** One more than this device's previous report: the reader keeps the highest (replays are older). */
  sequence: number;
  /** The device's clock when it wrote the report. */
  time: string;
  currentVersion: string | null;
  lastAttempt: ReportAttempt | null;
  /** Free bytes on the device home's filesystem, or null when it could not be read. */
  freeDiskBytes: number | null;
  /** The versions this device committed (and when), oldest first, at most REPORT_MAX_VERSIONS. */
  versions: { version: string; since: string }[];
}

/** The signed envelope of `report`, as bytes to write or send. */
export function signReport(report: DeviceReport, identity: DeviceIdentity): Buffer {
  if (report.deviceId !== identity.id) throw new FerryError('ERR_INTERNAL', `internal: a report for ${report.deviceId} signed by device ${identity.id}`);
  return encodeEnvelope(signEnvelope(PAYLOAD_TYPES.report, Buffer.from(JSON.stringify(report)), [identity.key]));
}

export interface VerifiedReport {
  report: DeviceReport;
  /** sha256 of the signed payload: two copies of one report have the same. */
  payloadSha256: string;
}

/**
 * Parses and verifies a report envelope on its own: size (ERR_TOO_LARGE), strict JSON and shape
 * (ERR_JSON, ERR_SCHEMA), the key matching the device id and the signature by that key
 * (ERR_SIGNATURE). Says nothing about whether the fleet trusts that device: see fleet-state.ts.
 */
export function parseReport(bytes: Uint8Array, what = 'report'): VerifiedReport {
  if (bytes.byteLength > REPORT_MAX_BYTES) throw new FerryError('ERR_TOO_LARGE', `${what} is ${bytes.byteLength} bytes, over the ${REPORT_MAX_BYTES}-byte cap`);
  const envelope = parseEnvelope(bytes, REPORT_MAX_BYTES, what);
  if (envelope.payloadType !== PAYLOAD_TYPES.report) throw new FerryError('ERR_SCHEMA', `${what} has payload type ${envelope.payloadType}, expected ${PAYLOAD_TYPES.report}`);
  const unverified = Buffer.from(envelope.payload, 'base64');
  const report = reportFromJson(parseStrictJson(unverified, REPORT_MAX_BYTES, what), what);
  const publicKey = Buffer.from(report.publicKey, 'hex');
  if (deviceIdOf(publicKey) !== report.deviceId) throw new FerryError('ERR_SIGNATURE', `${what}: device id ${report.deviceId} is not the id of the key it names`);
  // One trusted key, the device's own: a signature by any other key does not count.
  const { payload } = verifyThreshold(envelope, PAYLOAD_TYPES.report, [{ keyid: keyIdOf(publicKey), publicKey }], 1, what);
  return { report, payloadSha256: sha256(payload) };
}

/**
 * The payload of a report envelope as JSON, WITHOUT checking anything: for a quick look at fields
 * whose value decides nothing trusted (the previous sequence of this device's own report, the
 * device a kept inbox file names). null when it is not an envelope of JSON.
 */
export function unverifiedPayload(bytes: Uint8Array): Record<string, unknown> | null {
  try {
    const envelope = JSON.parse(Buffer.from(bytes).toString('utf8')) as { payload?: unknown };
    if (typeof envelope?.payload !== 'string') return null;
    const payload = JSON.parse(Buffer.from(envelope.payload, 'base64').toString('utf8')) as unknown;
    return typeof payload === 'object' && payload !== null && !Array.isArray(payload) ? payload as Record<string, unknown> : null;
  } catch {
    return null;
  }
}

const SHORT = 256;

/** A semver version exactly as semver spells it (the fleet sorts them), at most 128 characters. */
function version(v: JsonObject[string] | undefined, what: string): string {
  const s = str(v, what);
  if (s.length > 128 || semver.valid(s) !== s) throw new FerryError('ERR_SCHEMA', `${what} "${s.slice(0, 40)}" is not a semver version`);
  return s;
}
function optVersion(v: JsonObject[string] | undefined, what: string): string | null {
  return v === null ? null : version(v, what);
}
function optShort(v: JsonObject[string] | undefined, what: string): string | null {
  if (v === null) return null;
  const s = str(v, what);
  if (s.length > SHORT) throw new FerryError('ERR_SCHEMA', `${what} is longer than ${SHORT} characters`);
  return s;
}
function optTime(v: JsonObject[string] | undefined, what: string): string | null {
  return v === null ? null : time(v, what);
}
function oneOf<T extends string>(v: JsonObject[string] | undefined, allowed: readonly T[], what: string): T {
  const s = str(v, what);
  if (!(allowed as readonly string[]).includes(s)) throw new FerryError('ERR_SCHEMA', `${what} must be one of ${allowed.join(', ')}`);
  return s as T;
}

const KINDS = ['full', 'delta', 'chain', 'rollback'] as const;
const OUTCOMES = ['committed', 'rolled-back', 'refused', 'failed', 'in-progress'] as const;

function attemptFromJson(value: JsonObject[string] | undefined, what: string): ReportAttempt | null {
  if (value === null) return null;
  const o = obj(value, what);
  return {
    from: optVersion(o.from, `${what}.from`),
    to: optVersion(o.to, `${what}.to`),
    kind: o.kind === null ? null : oneOf(o.kind, KINDS, `${what}.kind`),
    outcome: oneOf(o.outcome, OUTCOMES, `${what}.outcome`),
    errorCode: o.errorCode === null ? null : (str(o.errorCode, `${what}.errorCode`, /^ERR_[A-Z_]{1,40}$/) as ErrorCode),
    bytesMoved: int(o.bytesMoved, `${what}.bytesMoved`),
    source: optShort(o.source, `${what}.source`),
    startedAt: time(o.startedAt, `${what}.startedAt`),
    finishedAt: optTime(o.finishedAt, `${what}.finishedAt`),
  };
}

/** The report's fields, checked (ERR_SCHEMA naming the field); unknown fields are left out. */
export function reportFromJson(value: unknown, what = 'report'): DeviceReport {
  const o = obj(value as JsonObject, what);
  if (o.type !== 'ferry/report') throw new FerryError('ERR_SCHEMA', `${what}: type must be "ferry/report"`);
  const versions = arr(o.versions, `${what}.versions`);
  if (versions.length > REPORT_MAX_VERSIONS) throw new FerryError('ERR_SCHEMA', `${what}.versions lists more than ${REPORT_MAX_VERSIONS}`);
  return {
    type: 'ferry/report',
    deviceId: str(o.deviceId, `${what}.deviceId`, DEVICE_ID),
    publicKey: str(o.publicKey, `${what}.publicKey`, HEX64),
    app: str(o.app, `${what}.app`, NAME),
    target: str(o.target, `${what}.target`, /^[a-z0-9_]{1,32}-[a-z0-9_]{1,32}$/),
    channel: str(o.channel, `${what}.channel`, NAME),
    sequence: int(o.sequence, `${what}.sequence`, 1),
    time: time(o.time, `${what}.time`),
    currentVersion: optVersion(o.currentVersion, `${what}.currentVersion`),
    lastAttempt: attemptFromJson(o.lastAttempt, `${what}.lastAttempt`),
    freeDiskBytes: o.freeDiskBytes === null ? null : int(o.freeDiskBytes, `${what}.freeDiskBytes`),
    versions: versions.map((v, i) => {
      const vo = obj(v, `${what}.versions[${i}]`);
      return { version: version(vo.version, `${what}.versions[${i}].version`), since: time(vo.since, `${what}.versions[${i}].since`) };
    }),
  };
}
