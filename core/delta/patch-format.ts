// The FERRYBD1 patch header (ARCHITECTURE.md "Patch format"): a fixed 56-byte little-endian
// header, then three complete brotli streams (control, diff, extra). Pure: bytes in, fields out.
// Everything the header alone can prove wrong is refused here, before a byte is written
// (SECURITY.md row 17); core/delta/patch-apply.ts checks it against the signed op and the base.
//
//   offset size  field
//   0      8     magic "FERRYBD1"
//   8      1     coder: 1 = brotli (lgwin ≤ 24), 2 = brotli large window (read, no longer written)
//   9      1     control encoding: 1 = LEB128 varints x, y, zigzag(z) per entry;
//                2 = columns: per group of CONTROL_GROUP entries, every x, every y, every zigzag(z − y)
//   10     1     filter: 0 = none, 1 = x86-64 branch filter (core/delta/x86-filter.ts)
//   11     1     reserved, 0
//   12     4     control entries (u32)
//   16     8     old size (u64)          every u64 ≤ 2^53 − 1
//   24     8     new size (u64)
//   32     8     compressed control length (u64)
//   40     8     compressed diff length (u64)
//   48     8     compressed extra length (u64)
//   56     …     control, diff, extra streams

import { FerryError } from '../errors.ts';

export const FERRYBD1_MAGIC = 'FERRYBD1';
/** Old patches in repositories made before FERRYBD1 (bzip2 blocks, bsdiff-node applies them). */
export const BSDIFF40_MAGIC = 'BSDIFF40';
/** Per-file zstd-from entries (Node ≥ 24 only); another part of the delta engine reads them. */
export const FERRYZF1_MAGIC = 'FERRYZF1';
export const MAGIC_SIZE = 8;
export const PATCH_HEADER_SIZE = 56;

export const CODER_BROTLI = 1;
export const CODER_BROTLI_LARGE_WINDOW = 2;
export const CONTROL_LEB128 = 1;
/**
 * The control entries in columns (what writeFerryPatch writes): per group of CONTROL_GROUP entries
 * (the last one shorter), the group's x varints, then its y varints, then zigzag(z − y). Like values
 * side by side compress better, and z − y is 0 wherever the y new bytes replaced as many old ones
 * (bsdiff then seeks past them). On esbuild 0.20.0 -> 0.24.2 the control stream is 426 KB under
 * brotli instead of 442 KB (issue 14). Groups keep what the device decodes ahead of the entries it
 * checks to one group (core/delta/control-groups.ts).
 */
export const CONTROL_COLUMNS = 2;
export const CONTROL_GROUP = 16384;
export type ControlEncoding = typeof CONTROL_LEB128 | typeof CONTROL_COLUMNS;
/** The streams are bsdiff of the files themselves. */
export const FILTER_NONE = 0;
/**
 * The streams are bsdiff of filter(old) → filter(new), the x86-64 branch filter
 * (core/delta/x86-filter.ts): the device patches filter(base) and undoes the filter on the output.
 * Chosen by the publisher for an ELF x86-64 pair (core/delta/make-delta.ts). A device from before
 * the field existed read it as part of a reserved 0 and refuses the patch (ERR_PATCH), so it takes
 * the full artifact.
 */
export const FILTER_X86 = 1;
export type PatchFilter = typeof FILTER_NONE | typeof FILTER_X86;

export interface PatchHeader {
  coder: typeof CODER_BROTLI | typeof CODER_BROTLI_LARGE_WINDOW;
  controlEncoding: ControlEncoding;
  filter: PatchFilter;
  entries: number;
  oldSize: number;
  newSize: number;
  controlLength: number;
  diffLength: number;
  extraLength: number;
}

const MAX_U64 = BigInt(Number.MAX_SAFE_INTEGER);

/** The first 8 bytes as text ("" when there are fewer). */
export function patchMagic(bytes: Uint8Array): string {
  return bytes.length < MAGIC_SIZE ? '' : Buffer.from(bytes.buffer, bytes.byteOffset, MAGIC_SIZE).toString('latin1');
}

/** The 56 header bytes for `h`. Throws ERR_INTERNAL for a field out of range (a bug in the writer). */
export function writePatchHeader(h: PatchHeader): Buffer {
  const out = Buffer.alloc(PATCH_HEADER_SIZE);
  out.write(FERRYBD1_MAGIC, 0, 'latin1');
  out.writeUInt8(h.coder, 8);
  if (h.controlEncoding !== CONTROL_LEB128 && h.controlEncoding !== CONTROL_COLUMNS) throw new FerryError('ERR_INTERNAL', `control encoding ${String(h.controlEncoding)} is not a known one`);
  out.writeUInt8(h.controlEncoding, 9);
  if (h.filter !== FILTER_NONE && h.filter !== FILTER_X86) throw new FerryError('ERR_INTERNAL', `patch filter ${String(h.filter)} is not a known one`);
  out.writeUInt8(h.filter, 10);
  out.writeUInt8(0, 11);
  if (!Number.isInteger(h.entries) || h.entries < 0 || h.entries > 0xffffffff) throw new FerryError('ERR_INTERNAL', `patch entry count ${h.entries} does not fit a u32`);
  out.writeUInt32LE(h.entries, 12);
  const u64 = [h.oldSize, h.newSize, h.controlLength, h.diffLength, h.extraLength];
  for (const [i, v] of u64.entries()) {
    if (!Number.isSafeInteger(v) || v < 0) throw new FerryError('ERR_INTERNAL', `patch header field ${v} is not a safe non-negative integer`);
    out.writeBigUInt64LE(BigInt(v), 16 + 8 * i);
  }
  return out;
}

function u64(bytes: Buffer, at: number, what: string): number {
  const v = bytes.readBigUInt64LE(at);
  if (v > MAX_U64) throw new FerryError('ERR_PATCH', `FERRYBD1 header: ${what} ${v} is over 2^53`);
  return Number(v);
}

/**
 * Reads the 56-byte header. ERR_PATCH for a short header, another magic, an unknown coder,
 * control encoding or filter, a reserved byte that is not 0, or a size over 2^53.
 */
export function readPatchHeader(bytes: Uint8Array): PatchHeader {
  if (bytes.length < PATCH_HEADER_SIZE) throw new FerryError('ERR_PATCH', `FERRYBD1 header: ${bytes.length} bytes, needs ${PATCH_HEADER_SIZE}`);
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, PATCH_HEADER_SIZE);
  if (patchMagic(b) !== FERRYBD1_MAGIC) throw new FerryError('ERR_PATCH', 'not a FERRYBD1 patch');
  const coder = b.readUInt8(8);
  if (coder !== CODER_BROTLI && coder !== CODER_BROTLI_LARGE_WINDOW) throw new FerryError('ERR_PATCH', `FERRYBD1 header: unknown coder ${coder}`);
  const controlEncoding = b.readUInt8(9);
  if (controlEncoding !== CONTROL_LEB128 && controlEncoding !== CONTROL_COLUMNS) throw new FerryError('ERR_PATCH', `FERRYBD1 header: unknown control encoding ${controlEncoding}`);
  const filter = b.readUInt8(10);
  if (filter !== FILTER_NONE && filter !== FILTER_X86) throw new FerryError('ERR_PATCH', `FERRYBD1 header: unknown filter ${filter}`);
  if (b.readUInt8(11) !== 0) throw new FerryError('ERR_PATCH', 'FERRYBD1 header: reserved byte 11 is not 0');
  return {
    coder,
    controlEncoding,
    filter,
    entries: b.readUInt32LE(12),
    oldSize: u64(b, 16, 'old size'),
    newSize: u64(b, 24, 'new size'),
    controlLength: u64(b, 32, 'control length'),
    diffLength: u64(b, 40, 'diff length'),
    extraLength: u64(b, 48, 'extra length'),
  };
}

/** The whole patch's size as the header states it: header + the three streams. */
export function statedPatchSize(h: PatchHeader): number {
  return PATCH_HEADER_SIZE + h.controlLength + h.diffLength + h.extraLength;
}

/** Appends `v` (a non-negative safe integer) as LEB128 to `out` at `at`; returns the new offset. */
export function writeVarint(out: Uint8Array, at: number, v: number): number {
  while (v >= 0x80) {
    out[at++] = (v % 0x80) | 0x80;
    v = Math.floor(v / 0x80);
  }
  out[at++] = v;
  return at;
}

/** zigzag: 0, -1, 1, -2, … → 0, 1, 2, 3, … (arithmetic, not bit operations: exact for |z| ≤ 2^52, the writer's limit). */
export function zigzag(z: number): number {
  return z >= 0 ? 2 * z : -2 * z - 1;
}

export function unzigzag(u: number): number {
  return u % 2 === 0 ? u / 2 : -(u + 1) / 2;
}

/** Longest varint the decoder accepts: 8 bytes (56 bits) cover every value the writer emits (≤ 2^53). */
export const MAX_VARINT_BYTES = 8;

/** readVarint: `b` ends inside the number. */
export const VARINT_INCOMPLETE = -1;
/** readVarint: the number runs past MAX_VARINT_BYTES. */
export const VARINT_OVERLONG = -2;

/**
 * Reads one LEB128 varint from `b` at `p` into `into[0]`; returns the offset after it, or
 * VARINT_INCOMPLETE / VARINT_OVERLONG (a code, not a throw: a streaming caller fetches more bytes
 * and tries again).
 */
export function readVarint(b: Uint8Array, p: number, into: Float64Array): number {
  let v = 0;
  let mult = 1;
  for (let n = 0; ; n++) {
    if (n === MAX_VARINT_BYTES) return VARINT_OVERLONG;
    if (p >= b.length) return VARINT_INCOMPLETE;
    const byte = b[p++]!;
    v += (byte & 0x7f) * mult;
    if (byte < 0x80) break;
    mult *= 0x80;
  }
  into[0] = v;
  return p;
}

/** Encodes the control triples [x, y, z, …] as LEB128 varints x, y, zigzag(z) per entry. */
export function encodeControl(control: readonly number[]): Buffer {
  const out = Buffer.alloc(control.length * MAX_VARINT_BYTES);
  let at = 0;
  for (let i = 0; i < control.length; i += 3) {
    at = writeVarint(out, at, control[i]!);
    at = writeVarint(out, at, control[i + 1]!);
    at = writeVarint(out, at, zigzag(control[i + 2]!));
  }
  return out.subarray(0, at);
}

/**
 * Encodes the control triples [x, y, z, …] in columns (CONTROL_COLUMNS). ERR_INTERNAL for a seek
 * whose z − y is over 2^52 in size (zigzag would no longer be exact; no real patch comes near).
 */
export function encodeControlColumns(control: readonly number[]): Buffer {
  const out = Buffer.alloc(control.length * MAX_VARINT_BYTES);
  let at = 0;
  const entries = control.length / 3;
  for (let first = 0; first < entries; first += CONTROL_GROUP) {
    const end = Math.min(entries, first + CONTROL_GROUP);
    for (let e = first; e < end; e++) at = writeVarint(out, at, control[3 * e]!);
    for (let e = first; e < end; e++) at = writeVarint(out, at, control[3 * e + 1]!);
    for (let e = first; e < end; e++) {
      const d = control[3 * e + 2]! - control[3 * e + 1]!;
      if (Math.abs(d) > 2 ** 52) throw new FerryError('ERR_INTERNAL', `control entry ${e}: z − y = ${d} is over 2^52`);
      at = writeVarint(out, at, zigzag(d));
    }
  }
  return out.subarray(0, at);
}
