// Patcher over bsdiff-node (classic BSDIFF40: bzip2-compressed control, diff and extra blocks).
// bsdiff-node follows a symlink at its output path, reads whole files into memory and crashes on
// very long paths, so the core hands it short private paths that do not exist yet and checks the
// header against the signed target size first (THREATS.md row 17).

import bsdiff from 'bsdiff-node';
import { FerryError } from '../../core/errors.ts';
import type { Patcher } from '../../core/patcher.ts';

const MAGIC = 'BSDIFF40';
const HEADER_SIZE = 32;

/** bsdiff's signed 64-bit little-endian offset: sign in the top bit, magnitude in the rest. */
function readOff(buf: Uint8Array, at: number): number {
  const view = new DataView(buf.buffer, buf.byteOffset + at, 8);
  const lo = view.getUint32(0, true);
  const hi = view.getUint32(4, true);
  if (hi & 0x80000000) return -1;
  if (hi > 0x1fffff) return Number.MAX_SAFE_INTEGER; // beyond 2^53: certainly a lie
  return hi * 2 ** 32 + lo;
}

export function createBsdiffPatcher(): Patcher {
  return {
    headerSize: HEADER_SIZE,
    outputSize(header, patchSize) {
      if (header.length < HEADER_SIZE || Buffer.from(header.subarray(0, 8)).toString('latin1') !== MAGIC) {
        throw new FerryError('ERR_PATCH', 'not a BSDIFF40 patch');
      }
      const ctrlLen = readOff(header, 8);
      const dataLen = readOff(header, 16);
      const newSize = readOff(header, 24);
      if (ctrlLen < 0 || dataLen < 0 || newSize < 0 || HEADER_SIZE + ctrlLen + dataLen > patchSize) {
        throw new FerryError('ERR_PATCH', 'bsdiff header block lengths are negative or exceed the patch');
      }
      return newSize;
    },
    async diff(oldFile, newFile, patchFile) {
      try {
        await bsdiff.diff(oldFile, newFile, patchFile);
      } catch (cause) {
        throw new FerryError('ERR_PATCH', `bsdiff failed: ${String(cause)}`, { cause });
      }
    },
    async patch(oldFile, newFile, patchFile) {
      try {
        await bsdiff.patch(oldFile, newFile, patchFile);
      } catch (cause) {
        throw new FerryError('ERR_PATCH', `bspatch failed: ${String(cause)}`, { cause });
      }
    },
  };
}
