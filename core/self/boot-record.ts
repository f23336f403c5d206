// The boot record of ferry's self-update (ARCHITECTURE.md "Self-update"): the durable note
// of a tentative switch to a new ferry version, and of the versions that failed one. It lives in
// <home>/self/boot.json, beside the `current` link of ferry's own home. What to do with it is
// decided in core/self/boot-decision.ts; this file only reads and writes it.
//
// Why each rule:
//   - Written with writeFileAtomic (core/io/durable.ts): a temp file, fsynced, renamed over the
//     record, then the folder fsynced. A power cut or kill leaves the old record or the new one,
//     never a torn one; a leftover `.boot.json.<random>.tmp` of a killed writer is never read.
//   - Parsed strictly (strict JSON, every field checked, unknown fields and other formats refused):
//     the record decides which code runs next, so a record we do not fully understand is damage.
//   - A damaged or unreadable record is not thrown at the launcher: readBootRecord returns it as
//     `damaged`, and decideStart turns that into the safe choice, the confirmed version `current`.
//   - Versions must be semver (as published): they are also folder names under releases/, so a
//     record naming "../x" cannot point the launcher outside them.

import { mkdir, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import * as semver from '../semver.ts';
import { FerryError, fromFsError } from '../errors.ts';
import { fsyncDir, writeFileAtomic } from '../io/durable.ts';
import { parseStrictJson, type Json } from '../io/strict-json.ts';
import { arr, int, obj, str, time } from '../io/schema.ts';

/** A switch to a new ferry version that has not confirmed itself yet. */
export interface TentativeSwitch {
  /** The ferry version on trial (releases/<version>). */
  version: string;
  /** The confirmed version to return to; `current` names it until the trial version confirms. */
  previous: string;
  /** The starts granted when the switch began (kept for the reason text of a rollback). */
  tries: number;
  /** Starts still allowed; the launcher writes one less, durably, before each start. */
  triesLeft: number;
  switchedAt: string;
  /** After this instant a start no longer runs the trial version. */
  deadline: string;
}

/** A version that failed a tentative switch; it is not begun again without `force`. */
export interface RefusedVersion {
  version: string;
  reason: string;
  at: string;
}

export interface BootRecord {
  tentative: TentativeSwitch | null;
  /** Newest last; at most MAX_REFUSED entries, one per version. */
  refused: RefusedVersion[];
}

/** The record's format number; any other is refused as damaged (it could mean anything). */
export const BOOT_RECORD_FORMAT = 1;
/** A handful of entries is a few KB; anything near the cap is not a record ferry wrote. */
export const MAX_BOOT_RECORD_BYTES = 64 * 1024;
/** Oldest refusals are dropped past this: a version that old is never offered as an update again. */
export const MAX_REFUSED = 32;
export const MAX_TRIES = 100;

/** No switch under way and nothing refused: what a missing file means. */
export function emptyBootRecord(): BootRecord {
  return { tentative: null, refused: [] };
}

/** What reading the record found: a record (a missing file is the empty one) or damage. */
export type BootRead = { state: 'ok'; record: BootRecord } | { state: 'damaged'; error: FerryError };

export function bootRecordPath(home: string): string {
  return join(home, 'self', 'boot.json');
}

export function isVersion(value: string): boolean {
  return semver.valid(value) === value;
}

function version(value: Json | undefined, what: string): string {
  const v = str(value, what);
  if (!isVersion(v)) throw new FerryError('ERR_SCHEMA', `${what} must be a semver version`);
  return v;
}

function onlyKeys(o: { [key: string]: Json }, keys: readonly string[], what: string): void {
  for (const key of Object.keys(o)) {
    if (!keys.includes(key)) throw new FerryError('ERR_SCHEMA', `${what} has an unknown field "${key}"`);
  }
}

function parseTentative(value: Json | undefined): TentativeSwitch | null {
  if (value === null) return null;
  const t = obj(value, 'boot.tentative');
  onlyKeys(t, ['version', 'previous', 'tries', 'triesLeft', 'switchedAt', 'deadline'], 'boot.tentative');
  const tentative: TentativeSwitch = {
    version: version(t.version, 'boot.tentative.version'),
    previous: version(t.previous, 'boot.tentative.previous'),
    tries: int(t.tries, 'boot.tentative.tries', 1, MAX_TRIES),
    triesLeft: int(t.triesLeft, 'boot.tentative.triesLeft', 0, MAX_TRIES),
    switchedAt: time(t.switchedAt, 'boot.tentative.switchedAt'),
    deadline: time(t.deadline, 'boot.tentative.deadline'),
  };
  if (tentative.triesLeft > tentative.tries) throw new FerryError('ERR_SCHEMA', 'boot.tentative.triesLeft must not exceed boot.tentative.tries');
  if (tentative.version === tentative.previous) throw new FerryError('ERR_SCHEMA', 'boot.tentative.version must differ from boot.tentative.previous');
  if (Date.parse(tentative.deadline) <= Date.parse(tentative.switchedAt)) throw new FerryError('ERR_SCHEMA', 'boot.tentative.deadline must be after boot.tentative.switchedAt');
  return tentative;
}

/**
 * The record from its bytes, or a FerryError: ERR_TOO_LARGE over the cap, ERR_JSON for bytes that
 * are not strict JSON, ERR_SCHEMA for JSON of another shape or format.
 */
export function parseBootRecord(bytes: Uint8Array | string, what = 'boot record'): BootRecord {
  const o = obj(parseStrictJson(bytes, MAX_BOOT_RECORD_BYTES, what), 'boot');
  onlyKeys(o, ['format', 'tentative', 'refused'], 'boot');
  if (o.format !== BOOT_RECORD_FORMAT) throw new FerryError('ERR_SCHEMA', `boot.format must be ${BOOT_RECORD_FORMAT}`);
  const refused = arr(o.refused, 'boot.refused').map((value, i): RefusedVersion => {
    const r = obj(value, `boot.refused[${i}]`);
    onlyKeys(r, ['version', 'reason', 'at'], `boot.refused[${i}]`);
    return { version: version(r.version, `boot.refused[${i}].version`), reason: str(r.reason, `boot.refused[${i}].reason`), at: time(r.at, `boot.refused[${i}].at`) };
  });
  if (refused.length > MAX_REFUSED) throw new FerryError('ERR_SCHEMA', `boot.refused has more than ${MAX_REFUSED} entries`);
  if (new Set(refused.map((r) => r.version)).size !== refused.length) throw new FerryError('ERR_SCHEMA', 'boot.refused names a version twice');
  return { tentative: parseTentative(o.tentative), refused };
}

/** The bytes writeBootRecord stores. Refuses (ERR_INTERNAL) a record its own parser would refuse. */
export function serializeBootRecord(record: BootRecord): string {
  const text = JSON.stringify({ format: BOOT_RECORD_FORMAT, tentative: record.tentative, refused: record.refused }, null, 2) + '\n';
  try {
    parseBootRecord(text);
  } catch (err) {
    // Writing a record the next start cannot read would turn a good state into a "damaged" one.
    throw new FerryError('ERR_INTERNAL', `refusing to write an invalid boot record: ${(err as Error).message}`, { cause: err });
  }
  return text;
}

/**
 * Reads <home>/self/boot.json. A missing file is the empty record (no switch ever began, or the
 * last one finished). A record that does not parse, or cannot be read at all, is `damaged`:
 * never an exception, so the start that reads it still runs the confirmed version.
 */
export async function readBootRecord(home: string): Promise<BootRead> {
  const path = bootRecordPath(home);
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { state: 'ok', record: emptyBootRecord() };
    return { state: 'damaged', error: fromFsError(err, `reading ${path}`) };
  }
  try {
    return { state: 'ok', record: parseBootRecord(bytes, path) };
  } catch (err) {
    if (err instanceof FerryError) return { state: 'damaged', error: err };
    return { state: 'damaged', error: new FerryError('ERR_INTERNAL', `parsing ${path}: ${String(err)}`, { cause: err }) };
  }
}

/** Writes the record durably: once this resolves, a power cut leaves exactly this record. */
export async function writeBootRecord(home: string, record: BootRecord): Promise<void> {
  const path = bootRecordPath(home);
  const text = serializeBootRecord(record);
  let created: string | undefined;
  try {
    created = await mkdir(join(home, 'self'), { recursive: true });
    // A new self/ folder is an entry in the home folder: durable only once that folder is fsynced.
    if (created !== undefined) await fsyncDir(dirname(join(home, 'self')));
  } catch (err) {
    throw fromFsError(err, `creating ${join(home, 'self')}`);
  }
  await writeFileAtomic(path, text, 0o644);
}
