// Anti-rollback and anti-freeze marks (SECURITY.md rows 3-5). They live in a file beside the
// LevelDB store, not in it, so wiping or rebuilding the database never resets them:
//   - per channel: the highest sequence seen, with the hash of that pointer and the release-key
//     set that signed it (a root rotation that changes the release keys resets the mark, so a
//     compromised key's sequence 2^40 cannot freeze the channel forever: row 4)
//   - timeFloor: the highest reading of the device's own clock at a check; expiry is judged against
//     it too, so setting the clock back does not revive expired metadata (row 5)
//   - signedFloor: the highest signed release date seen, with the release-key set that signed it.
//     A signed date may add at most SIGNED_DATE_LEAD_MS past what the device's own clock justifies,
//     and a rotation of the release keys drops it, so neither a compromised key nor a publisher
//     whose clock runs years ahead can freeze the fleet (row 5)
//   - securityFloor: the highest security-fix version installed; nothing goes below it
// Expiry is judged against effectiveNow: max(clock, timeFloor, signedFloor of the current keys).

import { readFile } from 'node:fs/promises';
import * as semver from '../semver.ts';
import { FerryError, fromFsError } from '../errors.ts';
import { writeFileAtomic } from '../io/durable.ts';
import { parseStrictJson, type Json } from '../io/strict-json.ts';
import { HEX64, int, obj, optStr, str, time } from '../io/schema.ts';
import { sha256 } from '../io/hash.ts';
import { isChannel, type Channel, type ChannelDoc } from './metadata.ts';
import type { RootDoc } from './root.ts';

export interface ChannelMark {
  sequence: number;
  sha256: string;
  releaseKeys: string;
}

/** The signed part of the time floor, and the release-key set (releaseKeysOf) that signed it. */
export interface SignedFloor {
  time: string;
  releaseKeys: string;
}

export interface TrustMarks {
  channels: Partial<Record<Channel, ChannelMark>>;
  /** Clock readings only (a marks file written before signedFloor existed may hold signed dates too). */
  timeFloor: string;
  signedFloor: SignedFloor | null;
  securityFloor: string | null;
}

export const EMPTY_MARKS: TrustMarks = { channels: {}, timeFloor: new Date(0).toISOString(), signedFloor: null, securityFloor: null };

/**
 * How far past the time the device's own clock justifies a signed release date may move the time
 * floor. A genuine date is at most a publisher-to-device clock skew ahead; whatever lies beyond is a
 * wrong clock or a compromised key, and the bound is the most either can take off a pointer's
 * lifetime (SECURITY.md row 5).
 */
export const SIGNED_DATE_LEAD_MS = 3_600_000;

/**
 * Every field as writeMarks writes it, through the metadata schema checks. A field of the wrong
 * shape is damage too: a timeFloor that is not a date made expiry compare against NaN, and a mark
 * without a sequence was replaced by whatever pointer came next.
 */
function parseMarks(doc: Json): TrustMarks {
  const o = obj(doc, 'marks');
  const channels: TrustMarks['channels'] = {};
  for (const [name, value] of Object.entries(obj(o.channels, 'marks.channels'))) {
    if (!isChannel(name)) throw new FerryError('ERR_SCHEMA', `marks.channels.${name} is not a channel`);
    const m = obj(value, `marks.channels.${name}`);
    channels[name] = { sequence: int(m.sequence, `marks.channels.${name}.sequence`, 1), sha256: str(m.sha256, `marks.channels.${name}.sha256`, HEX64), releaseKeys: str(m.releaseKeys, `marks.channels.${name}.releaseKeys`) };
  }
  const securityFloor = o.securityFloor === null ? null : optStr(o.securityFloor, 'marks.securityFloor') ?? null;
  if (securityFloor !== null && semver.valid(securityFloor) !== securityFloor) throw new FerryError('ERR_SCHEMA', 'marks.securityFloor must be a version');
  return { channels, timeFloor: time(o.timeFloor, 'marks.timeFloor'), signedFloor: parseSignedFloor(o.signedFloor), securityFloor };
}

/** Absent in a marks file written before it existed: read as none, so an old file still reads. */
function parseSignedFloor(value: Json | undefined): SignedFloor | null {
  if (value === undefined || value === null) return null;
  const o = obj(value, 'marks.signedFloor');
  return { time: time(o.time, 'marks.signedFloor.time'), releaseKeys: str(o.releaseKeys, 'marks.signedFloor.releaseKeys') };
}

export async function readMarks(path: string): Promise<TrustMarks> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (err) {
    // Only a missing file is a device with no marks yet; one that cannot be read is an error.
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return structuredClone(EMPTY_MARKS);
    throw fromFsError(err, `reading ${path}`);
  }
  // A damaged marks file is an error, never silently "no marks": that would re-open rollback.
  const doc = parseStrictJson(bytes, 256 * 1024, path);
  try {
    return parseMarks(doc);
  } catch (err) {
    throw new FerryError('ERR_SCHEMA', `${path} is damaged (${(err as Error).message}); restore it from a backup or re-init the device`, { cause: err });
  }
}

export async function writeMarks(path: string, marks: TrustMarks): Promise<void> {
  await writeFileAtomic(path, JSON.stringify(marks, null, 2) + '\n', 0o644, 'marks.write');
}

/** A fingerprint of the release role: its key ids and threshold. */
export function releaseKeysOf(root: RootDoc): string {
  return `${[...root.roles.release.keyids].sort().join(',')}/${root.roles.release.threshold}`;
}

/** The signed floor's time when the current root's release keys signed it; else nothing (-Infinity). */
function signedFloorFor(marks: TrustMarks, root: RootDoc): number {
  const f = marks.signedFloor;
  return f !== null && f.releaseKeys === releaseKeysOf(root) ? Date.parse(f.time) : -Infinity;
}

/**
 * The time expiry is judged against: max(clock, clock floor, signed floor). A signed floor recorded
 * under other release keys counts for nothing: a rotation undoes what a compromised key raised.
 */
export function effectiveNow(marks: TrustMarks, clock: Date, root: RootDoc): Date {
  return new Date(Math.max(clock.getTime(), Date.parse(marks.timeFloor), signedFloorFor(marks, root)));
}

/**
 * Refuses a channel pointer older than one already seen (a replay: row 3), or one with the same
 * sequence but other bytes (two different documents under one sequence: a forked publisher or a
 * stolen key). Returns nothing when the pointer may be used.
 */
export function checkChannelFreshness(marks: TrustMarks, doc: ChannelDoc, bytes: Uint8Array, root: RootDoc): void {
  const mark = marks.channels[doc.channel];
  if (!mark || mark.releaseKeys !== releaseKeysOf(root)) return;
  if (doc.sequence < mark.sequence) {
    throw new FerryError('ERR_DOWNGRADE', `channels/${doc.channel}.json has sequence ${doc.sequence}, lower than ${mark.sequence} already seen (replayed metadata)`);
  }
  if (doc.sequence === mark.sequence && sha256(bytes) !== mark.sha256) {
    throw new FerryError('ERR_DOWNGRADE', `channels/${doc.channel}.json sequence ${doc.sequence} differs from the one already seen under that sequence`);
  }
}

/** The marks after a pointer was verified and used. Pure: the caller persists them. */
export function raiseChannelMark(marks: TrustMarks, doc: ChannelDoc, bytes: Uint8Array, root: RootDoc): TrustMarks {
  const keys = releaseKeysOf(root);
  const mark = marks.channels[doc.channel];
  if (mark && mark.releaseKeys === keys && mark.sequence >= doc.sequence) return marks;
  return { ...marks, channels: { ...marks.channels, [doc.channel]: { sequence: doc.sequence, sha256: sha256(bytes), releaseKeys: keys } } };
}

/** The marks after the device's clock read `clock` at a check: the clock floor never goes down. Pure. */
export function raiseTimeFloor(marks: TrustMarks, clock: Date): TrustMarks {
  const floor = Math.max(Date.parse(marks.timeFloor), clock.getTime());
  return { ...marks, timeFloor: new Date(floor).toISOString() };
}

/**
 * The most a signed date may raise the floor to: SIGNED_DATE_LEAD_MS past the time the device can
 * justify by itself, its clock or, when the clock is behind, the clock floor (a clock set back
 * earns a signed date no more room).
 */
export function signedDateBound(marks: TrustMarks, clock: Date): number {
  return Math.max(clock.getTime(), Date.parse(marks.timeFloor)) + SIGNED_DATE_LEAD_MS;
}

/**
 * The marks after a verified manifest signed `releaseDate` under `root`'s release keys, read when
 * the clock said `clock`. The date counts up to signedDateBound; a floor recorded under other
 * release keys is replaced, not raised. Pure: the caller persists the marks.
 */
export function raiseSignedFloor(marks: TrustMarks, releaseDate: string, clock: Date, root: RootDoc): TrustMarks {
  const signed = Date.parse(releaseDate);
  if (Number.isNaN(signed)) throw new FerryError('ERR_INTERNAL', `internal: a verified release date "${releaseDate}" that is not a time`);
  const floor = Math.max(signedFloorFor(marks, root), Math.min(signed, signedDateBound(marks, clock)));
  if (floor === signedFloorFor(marks, root)) return marks;
  return { ...marks, signedFloor: { time: new Date(floor).toISOString(), releaseKeys: releaseKeysOf(root) } };
}
