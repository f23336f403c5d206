// The FERRYSB1 solid block (ARCHITECTURE.md "Patch format"): the entries of many small files of a
// 'pack' delta compressed together as ONE brotli stream, so what they share (a thousand-file JS
// tree repeats the same change in many modules) is paid for once, and a small entry costs a few
// bytes of framing instead of FERRYBD1's 56-byte header and three brotli streams. Every op whose
// entry is in the block names the block's whole range, and finds its member by the first bytes of
// its signed sha256 (so ops can be listed, dropped or re-laid without renumbering anything).
// Pure: bytes in, members out. Everything the bytes can prove wrong is refused here (ERR_PATCH);
// core/delta/patch-apply.ts checks a member against its signed op and base.
//
// The block, as it lies in the artifact:
//   "FERRYSB1" | varint members | varint decoded size (≤ SOLID_MAX_DECODED) | one brotli stream
// The brotli stream decodes to exactly `decoded size` bytes, in sections (each member in order
// within a section; patch-only sections skip the whole members):
//   H  per member: kind (1 whole | 2 patch), the first 4 bytes of the sha256 it builds (its id);
//      whole: varint newSize; patch: varint oldSize,
//      varint newSize, varint control entries, varint count of non-zero diff bytes
//   C  per patch member: its control entries as FERRYBD1's (x, y, zigzag z) varints
//   G  per patch member: for each non-zero diff byte, the run of zero diff bytes before it (varint)
//   V  per patch member: its non-zero diff bytes (bsdiff's diff is mostly zeros: sparse is smaller)
//   E  per patch member: its extra bytes (Σy)
//   W  per whole member: its bytes (newSize)

import { FerryError } from '../errors.ts';
import { encodeControl, MAX_VARINT_BYTES, readVarint, VARINT_INCOMPLETE, VARINT_OVERLONG, writeVarint } from './patch-format.ts';
import type { RawPatch } from './raw-patch.ts';

export const SOLID_MAGIC = 'FERRYSB1';
/** What a block may decode to at most: the device holds each decoded block until the last op that names it is applied (core/delta/solid-blocks.ts; ARCHITECTURE.md "Patch format"). */
export const SOLID_MAX_DECODED = 2 * 1024 * 1024;
/** A file joins the block only if it is at most this large (new size, and old size for a patch). */
export const SOLID_MAX_FILE = 1024 * 1024;
/** Members a block may hold (a header states its count before anything is decoded). */
export const SOLID_MAX_MEMBERS = 65_536;

const KIND_WHOLE = 1;
const KIND_PATCH = 2;

/** Bytes of the built file's sha256 that name a member. */
export const SOLID_ID_BYTES = 4;

/** A member to write: `sha256` (hex) is the file it builds. */
export type SolidInput = { sha256: string } & ({ kind: 'whole'; data: Uint8Array } | { kind: 'patch'; raw: RawPatch });

/** A member as read from a decoded block: views into it, never copies. */
export type SolidMember =
  | { kind: 'whole'; id: string; newSize: number; data: Buffer }
  | { kind: 'patch'; id: string; oldSize: number; newSize: number; entries: number; control: Buffer; diffLength: number; gaps: Buffer; values: Buffer; extra: Buffer };

const bogus = (why: string) => new FerryError('ERR_PATCH', `FERRYSB1 block: ${why}`);

/** The decoded bytes of a block holding `members` (publisher side; the RawPatches are already checked). */
export function encodeSolid(members: readonly SolidInput[]): Buffer {
  const head: Buffer[] = [];
  const control: Buffer[] = [];
  const gaps: Buffer[] = [];
  const values: Buffer[] = [];
  const extra: Buffer[] = [];
  const whole: Buffer[] = [];
  const varints = (...vs: number[]) => {
    const b = Buffer.alloc(vs.length * MAX_VARINT_BYTES + 1);
    let at = 0;
    for (const v of vs) at = writeVarint(b, at, v);
    return b.subarray(0, at);
  };
  for (const m of members) {
    if (m.kind === 'whole') {
      head.push(Buffer.from([KIND_WHOLE]), idOf(m.sha256), varints(m.data.length));
      whole.push(Buffer.from(m.data.buffer, m.data.byteOffset, m.data.length));
      continue;
    }
    const { raw } = m;
    const g: number[] = [];
    const v: number[] = [];
    let run = 0;
    for (const d of raw.diff) {
      if (d === 0) { run++; continue; }
      g.push(run);
      v.push(d);
      run = 0;
    }
    head.push(Buffer.from([KIND_PATCH]), idOf(m.sha256), varints(raw.oldSize, raw.newSize, raw.control.length / 3, v.length));
    control.push(encodeControl(raw.control));
    gaps.push(varints(...g));
    values.push(Buffer.from(v));
    extra.push(Buffer.from(raw.extra.buffer, raw.extra.byteOffset, raw.extra.length));
  }
  return Buffer.concat([...head, ...control, ...gaps, ...values, ...extra, ...whole]);
}

function idOf(sha256: string): Buffer {
  return Buffer.from(sha256.slice(0, 2 * SOLID_ID_BYTES), 'hex');
}

/** The block's framing before its brotli stream. */
export function writeSolidHeader(members: number, decodedSize: number): Buffer {
  const b = Buffer.alloc(8 + 2 * MAX_VARINT_BYTES);
  b.write(SOLID_MAGIC, 0, 'latin1');
  return b.subarray(0, writeVarint(b, writeVarint(b, 8, members), decodedSize));
}

/** Reads the framing from the first bytes of the block (up to 8 + 16). ERR_PATCH for anything off. */
export function readSolidHeader(bytes: Buffer): { members: number; decodedSize: number; headerSize: number } {
  if (bytes.length < 8 || bytes.toString('latin1', 0, 8) !== SOLID_MAGIC) throw bogus('no FERRYSB1 magic');
  const r = new VarintReader(bytes, 8, 'header');
  const members = r.next();
  const decodedSize = r.next();
  if (members === 0 || members > SOLID_MAX_MEMBERS) throw bogus(`${members} members (1 to ${SOLID_MAX_MEMBERS})`);
  if (decodedSize > SOLID_MAX_DECODED) throw bogus(`decodes to ${decodedSize} bytes, over the ${SOLID_MAX_DECODED} a block may hold`);
  return { members, decodedSize, headerSize: r.at };
}

/** LEB128 reader over a buffer; ERR_PATCH when a number runs past the end or past 8 bytes. */
class VarintReader {
  private readonly value = new Float64Array(1);

  constructor(private readonly b: Buffer, public at: number, private readonly section: string) {}

  next(): number {
    const p = readVarint(this.b, this.at, this.value);
    if (p === VARINT_OVERLONG) throw bogus(`a number in section ${this.section} is longer than ${MAX_VARINT_BYTES} bytes`);
    if (p === VARINT_INCOMPLETE) throw bogus(`section ${this.section} ends inside a number`);
    this.at = p;
    return this.value[0]!;
  }
}

/**
 * Splits a decoded block into its `count` members, checking that the sections add up exactly to
 * the decoded bytes (none short, none left over), that every size is within SOLID_MAX_FILE, that
 * the control entries' x and y never add past the member's new size, that the gaps stay inside the
 * member's diff and that every value is non-zero (one encoding per block).
 */
export function parseSolid(decoded: Buffer, count: number): SolidMember[] {
  const h = new VarintReader(decoded, 0, 'H');
  const heads: Array<{ kind: number; id: string; oldSize: number; newSize: number; entries: number; nonZero: number }> = [];
  for (let i = 0; i < count; i++) {
    if (decoded.length - h.at < 1 + SOLID_ID_BYTES) throw bogus(`section H ends at member ${i} of ${count}`);
    const kind = decoded[h.at]!;
    const id = decoded.toString('hex', h.at + 1, h.at + 1 + SOLID_ID_BYTES);
    h.at += 1 + SOLID_ID_BYTES;
    if (kind === KIND_WHOLE) {
      heads.push({ kind, id, oldSize: 0, newSize: h.next(), entries: 0, nonZero: 0 });
    } else if (kind === KIND_PATCH) {
      heads.push({ kind, id, oldSize: h.next(), newSize: h.next(), entries: h.next(), nonZero: h.next() });
    } else {
      throw bogus(`member ${i} has an unknown kind ${kind}`);
    }
    const m = heads[i]!;
    if (m.newSize > SOLID_MAX_FILE || m.oldSize > SOLID_MAX_FILE) throw bogus(`member ${i} states a file over ${SOLID_MAX_FILE} bytes`);
    // (A huge entry or diff-byte count cannot cost more than the decoded bytes: the sections below
    // run out first.)
  }
  const patches = heads.map((m, i) => ({ m, i })).filter(({ m }) => m.kind === KIND_PATCH);
  // C: the control entries; only their sums are needed here (patch-apply replays and checks each).
  const c = new VarintReader(decoded, h.at, 'C');
  const sums = patches.map(({ m, i }) => {
    const start = c.at;
    let x = 0;
    let y = 0;
    for (let e = 0; e < m.entries; e++) {
      x += c.next();
      y += c.next();
      c.next();
      if (x + y > m.newSize) throw bogus(`member ${i}'s control entries write past its ${m.newSize} bytes`);
    }
    return { control: decoded.subarray(start, c.at), x, y };
  });
  // G: every gap keeps its non-zero byte inside the member's diff.
  const g = new VarintReader(decoded, c.at, 'G');
  const gapViews = patches.map(({ m, i }, k) => {
    const start = g.at;
    let pos = 0;
    for (let n = 0; n < m.nonZero; n++) {
      pos += g.next() + 1;
      if (pos > sums[k]!.x) throw bogus(`member ${i}'s diff gaps run past its ${sums[k]!.x} diff bytes`);
    }
    return decoded.subarray(start, g.at);
  });
  let at = g.at;
  const take = (n: number, what: string): Buffer => {
    if (n > decoded.length - at) throw bogus(`section ${what} ends early`);
    const view = decoded.subarray(at, at + n);
    at += n;
    return view;
  };
  const valueViews = patches.map(({ m, i }) => {
    const v = take(m.nonZero, 'V');
    if (v.includes(0)) throw bogus(`member ${i} has a zero among its non-zero diff bytes`);
    return v;
  });
  const extraViews = patches.map(({ i }, k) => take(sums[k]!.y, `E (member ${i})`));
  const out: SolidMember[] = [];
  let p = 0;
  for (const [i, m] of heads.entries()) {
    if (m.kind === KIND_WHOLE) {
      out.push({ kind: 'whole', id: m.id, newSize: m.newSize, data: take(m.newSize, `W (member ${i})`) });
      continue;
    }
    out.push({ kind: 'patch', id: m.id, oldSize: m.oldSize, newSize: m.newSize, entries: m.entries, control: sums[p]!.control, diffLength: sums[p]!.x, gaps: gapViews[p]!, values: valueViews[p]!, extra: extraViews[p]! });
    p++;
  }
  if (at !== decoded.length) throw bogus(`${decoded.length - at} bytes past its last member`);
  return out;
}

/** The member's diff stream, zeros put back (≤ SOLID_MAX_FILE bytes: parseSolid checked the gaps). */
export function expandDiff(m: Extract<SolidMember, { kind: 'patch' }>): Buffer {
  const diff = Buffer.alloc(m.diffLength);
  const r = new VarintReader(m.gaps, 0, 'G');
  let pos = 0;
  for (const v of m.values) {
    pos += r.next();
    diff[pos++] = v;
  }
  return diff;
}
