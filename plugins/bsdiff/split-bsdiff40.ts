// Turns a BSDIFF40 file (what bsdiff-node writes) into bsdiff's raw streams, a RawPatch
// (core/delta/raw-patch.ts): the 32-byte header (magic, control length, diff length, new size),
// then three bzip2 blocks — control (24-byte triples x, y, z), diff and extra. Publisher side:
// the publisher re-codes the streams as FERRYBD1 (ARCHITECTURE.md "Patch format").

import { FerryError } from '../../core/errors.ts';
import type { RawPatch } from '../../core/delta/raw-patch.ts';
import { bunzip2 } from './bunzip2.ts';

export const BSDIFF40_MAGIC = 'BSDIFF40';
export const BSDIFF40_HEADER_SIZE = 32;

function bad(why: string): FerryError {
  return new FerryError('ERR_PATCH', `bsdiff output is malformed: ${why}`);
}

/**
 * bsdiff's 64-bit integer: magnitude in the low 63 bits little-endian, sign in the top bit.
 * Throws beyond 2^53 (no file ferry handles is that large).
 */
export function readBsdiffInt(buf: Uint8Array, at: number): number {
  const view = new DataView(buf.buffer, buf.byteOffset + at, 8);
  const lo = view.getUint32(0, true);
  const hi = view.getUint32(4, true);
  const magHi = hi & 0x7fffffff;
  if (magHi > 0x1fffff) throw bad('an offset beyond 2^53');
  const mag = magHi * 2 ** 32 + lo;
  return hi & 0x80000000 ? -mag : mag;
}

/** Splits and decodes a BSDIFF40 patch made against an old file of `oldSize` bytes. */
export function splitBsdiff40(patch: Uint8Array, oldSize: number): RawPatch {
  if (patch.length < BSDIFF40_HEADER_SIZE || Buffer.from(patch.subarray(0, 8)).toString('latin1') !== BSDIFF40_MAGIC) {
    throw bad('no BSDIFF40 header');
  }
  const ctrlLen = readBsdiffInt(patch, 8);
  const diffLen = readBsdiffInt(patch, 16);
  const newSize = readBsdiffInt(patch, 24);
  if (ctrlLen < 0 || diffLen < 0 || newSize < 0 || BSDIFF40_HEADER_SIZE + ctrlLen + diffLen > patch.length) {
    throw bad('block lengths are negative or exceed the file');
  }
  const diffAt = BSDIFF40_HEADER_SIZE + ctrlLen;
  const extraAt = diffAt + diffLen;
  const ctrlBytes = bunzip2(patch.subarray(BSDIFF40_HEADER_SIZE, diffAt));
  if (ctrlBytes.length % 24 !== 0) throw bad('control block is not whole 24-byte entries');

  const control: number[] = new Array(ctrlBytes.length / 8);
  let diffSize = 0;
  let extraSize = 0;
  for (let i = 0; i < control.length; i += 3) {
    const x = readBsdiffInt(ctrlBytes, i * 8);
    const y = readBsdiffInt(ctrlBytes, i * 8 + 8);
    if (x < 0 || y < 0) throw bad('a control entry with a negative length');
    control[i] = x;
    control[i + 1] = y;
    control[i + 2] = readBsdiffInt(ctrlBytes, i * 8 + 16);
    diffSize += x;
    extraSize += y;
  }
  if (diffSize + extraSize !== newSize) throw bad(`control entries build ${diffSize + extraSize} bytes, the header says ${newSize}`);
  return {
    oldSize,
    newSize,
    control,
    diff: bunzip2(patch.subarray(diffAt, extraAt), diffSize),
    extra: bunzip2(patch.subarray(extraAt), extraSize),
  };
}
