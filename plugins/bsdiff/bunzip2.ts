// A bzip2 decoder (one stream, as bsdiff-node writes each of BSDIFF40's three blocks), so the
// publisher can turn bsdiff-node's output into the raw streams of a RawPatch
// (plugins/bsdiff/split-bsdiff40.ts). Publisher side only: its input is the file bsdiff-node just
// wrote from the publisher's own trees, yet every length is still checked and every block's CRC
// verified, so a bug here fails loudly instead of publishing a wrong patch (the device re-checks
// every output by hash anyway: SECURITY.md row 17).
//
// Ours rather than an npm package: the pure-JS candidates (seek-bzip 2.0.0, unbzip2-stream 1.4.3)
// have had no release for years, print a Buffer() deprecation warning at run time (seek-bzip) or
// pull browser shims (unbzip2-stream), and the format is small and fixed (bzip2 1.0 blocks:
// Huffman → MTF/RLE2 → inverse BWT → RLE1), ~200 lines.

import { FerryError } from '../../core/errors.ts';

const BLOCK_MAGIC_HI = 0x314159;
const BLOCK_MAGIC_LO = 0x265359;
const END_MAGIC_HI = 0x177245;
const END_MAGIC_LO = 0x385090;
const GROUP_SIZE = 50;
const MAX_CODE_LEN = 20;

function corrupt(why: string): FerryError {
  return new FerryError('ERR_PATCH', `bzip2 block from bsdiff is corrupt: ${why}`);
}

/** bzip2's CRC-32 (polynomial 0x04c11db7, most significant bit first). */
const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i << 24;
    for (let k = 0; k < 8; k++) c = c & 0x80000000 ? (c << 1) ^ 0x04c11db7 : c << 1;
    t[i] = c >>> 0;
  }
  return t;
})();

/** Reads bits most significant first. */
class BitReader {
  private pos = 0;
  private acc = 0;
  private n = 0;
  constructor(private readonly data: Uint8Array) {}

  /** The next `k` bits (k ≤ 24) as an unsigned number. */
  bits(k: number): number {
    while (this.n < k) {
      if (this.pos >= this.data.length) throw corrupt('ends early');
      this.acc = ((this.acc << 8) | this.data[this.pos++]!) >>> 0;
      this.n += 8;
    }
    this.n -= k;
    const v = (this.acc >>> this.n) & ((1 << k) - 1);
    this.acc &= (1 << this.n) - 1;
    return v;
  }

  bit(): number {
    return this.bits(1);
  }

  /** Bytes not yet read (after the end-of-stream marker and its padding). */
  remaining(): number {
    return this.data.length - this.pos;
  }
}

/** A canonical Huffman code as bzip2 builds it: codes by length, then by symbol. */
interface Code {
  /** Number of codes of each length. */
  counts: Uint16Array;
  /** Symbols in code order. */
  symbols: Uint16Array;
}

function makeCode(lengths: Uint8Array): Code {
  const counts = new Uint16Array(MAX_CODE_LEN + 1);
  for (const len of lengths) counts[len]!++;
  const offsets = new Uint16Array(MAX_CODE_LEN + 2);
  for (let len = 1; len <= MAX_CODE_LEN; len++) offsets[len + 1] = offsets[len]! + counts[len]!;
  const symbols = new Uint16Array(lengths.length);
  for (let s = 0; s < lengths.length; s++) symbols[offsets[lengths[s]!]!++] = s;
  return { counts, symbols };
}

function decodeSymbol(r: BitReader, code: Code): number {
  let value = 0; // the code read so far
  let first = 0; // the first code of this length
  let index = 0; // where this length's symbols start
  for (let len = 1; len <= MAX_CODE_LEN; len++) {
    value |= r.bit();
    const count = code.counts[len]!;
    if (value - first < count) return code.symbols[index + value - first]!;
    index += count;
    first = (first + count) << 1;
    value <<= 1;
  }
  throw corrupt('bad Huffman code');
}

/** A growable output buffer. */
class Output {
  buf: Uint8Array;
  length = 0;
  constructor(initial: number) {
    this.buf = new Uint8Array(Math.max(initial, 1024));
  }
  ensure(extra: number): void {
    if (this.length + extra <= this.buf.length) return;
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.length + extra));
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
  }
}

/**
 * Decodes one block's symbols into `tt` (byte values in the low 8 bits, as the inverse BWT wants
 * them) and returns how many bytes the block holds.
 */
function readBlockSymbols(r: BitReader, tt: Uint32Array, byteCount: Uint32Array): number {
  // Which byte values occur: 16 ranges of 16.
  const ranges = r.bits(16);
  const seqToByte: number[] = [];
  for (let i = 0; i < 16; i++) {
    if (!(ranges & (0x8000 >> i))) continue;
    const used = r.bits(16);
    for (let j = 0; j < 16; j++) if (used & (0x8000 >> j)) seqToByte.push(i * 16 + j);
  }
  if (seqToByte.length === 0) throw corrupt('no symbols in use');
  const alphaSize = seqToByte.length + 2;
  const nGroups = r.bits(3);
  if (nGroups < 2 || nGroups > 6) throw corrupt('bad number of Huffman groups');
  const nSelectors = r.bits(15);
  if (nSelectors < 1) throw corrupt('no selectors');
  // Selectors: unary MTF indices.
  const mtfGroups = [0, 1, 2, 3, 4, 5].slice(0, nGroups);
  const selectors = new Uint8Array(nSelectors);
  for (let i = 0; i < nSelectors; i++) {
    let j = 0;
    while (r.bit()) if (++j >= nGroups) throw corrupt('bad selector');
    const g = mtfGroups[j]!;
    mtfGroups.splice(j, 1);
    mtfGroups.unshift(g);
    selectors[i] = g;
  }
  // Code lengths per group, delta-coded.
  const codes: Code[] = [];
  for (let g = 0; g < nGroups; g++) {
    const lengths = new Uint8Array(alphaSize);
    let len = r.bits(5);
    for (let s = 0; s < alphaSize; s++) {
      for (;;) {
        if (len < 1 || len > MAX_CODE_LEN) throw corrupt('bad code length');
        if (!r.bit()) break;
        len += r.bit() ? -1 : 1;
      }
      lengths[s] = len;
    }
    codes.push(makeCode(lengths));
  }

  // Symbols: MTF indices with zero-runs coded as RUNA/RUNB, ended by EOB.
  const mtf = new Uint8Array(256);
  for (let i = 0; i < seqToByte.length; i++) mtf[i] = seqToByte[i]!;
  const eob = alphaSize - 1;
  let count = 0;
  let run = 0;
  let runWeight = 1;
  let group = 0;
  let left = 0;
  let code = codes[0]!;
  for (;;) {
    if (left === 0) {
      if (group >= nSelectors) throw corrupt('ran out of selectors');
      code = codes[selectors[group++]!]!;
      left = GROUP_SIZE;
    }
    left--;
    const sym = decodeSymbol(r, code);
    if (sym <= 1) {
      // RUNA adds 1×weight, RUNB 2×weight (bijective base 2).
      run += (sym + 1) * runWeight;
      runWeight <<= 1;
      if (run > tt.length) throw corrupt('run longer than the block');
      continue;
    }
    if (run > 0) {
      if (count + run > tt.length) throw corrupt('block longer than its declared size');
      const b = mtf[0]!;
      byteCount[b]! += run;
      tt.fill(b, count, count + run);
      count += run;
      run = 0;
      runWeight = 1;
    }
    if (sym === eob) break;
    if (count >= tt.length) throw corrupt('block longer than its declared size');
    const idx = sym - 1;
    const b = mtf[idx]!;
    mtf.copyWithin(1, 0, idx);
    mtf[0] = b;
    byteCount[b]!++;
    tt[count++] = b;
  }
  return count;
}

/** Decodes one bzip2 stream; `expectedSize`, when known, sizes the output and is checked. */
export function bunzip2(input: Uint8Array, expectedSize?: number): Uint8Array {
  const r = new BitReader(input);
  if (r.bits(8) !== 0x42 || r.bits(8) !== 0x5a || r.bits(8) !== 0x68) throw corrupt('no BZh header');
  const level = r.bits(8) - 0x30;
  if (level < 1 || level > 9) throw corrupt('bad block size');
  const tt = new Uint32Array(level * 100_000);
  const out = new Output(expectedSize ?? input.length * 4);
  let streamCrc = 0;
  for (;;) {
    const hi = r.bits(24);
    const lo = r.bits(24);
    if (hi === END_MAGIC_HI && lo === END_MAGIC_LO) {
      const crc = ((r.bits(16) << 16) | r.bits(16)) >>> 0;
      if (crc !== streamCrc) throw corrupt('stream CRC mismatch');
      break;
    }
    if (hi !== BLOCK_MAGIC_HI || lo !== BLOCK_MAGIC_LO) throw corrupt('bad block magic');
    const blockCrc = ((r.bits(16) << 16) | r.bits(16)) >>> 0;
    if (r.bit()) throw corrupt('randomised blocks are not supported (bzip2 0.9.0 and older)');
    const origPtr = r.bits(24);
    const byteCount = new Uint32Array(256);
    const count = readBlockSymbols(r, tt, byteCount);
    if (origPtr >= count) throw corrupt('BWT origin out of range');

    // Inverse BWT: each entry's upper 24 bits become the index of the next byte.
    let sum = 0;
    for (let b = 0; b < 256; b++) {
      const c = byteCount[b]!;
      byteCount[b] = sum;
      sum += c;
    }
    for (let i = 0; i < count; i++) {
      const b = tt[i]! & 0xff;
      tt[byteCount[b]!++]! |= i << 8;
    }

    // Walk the BWT and undo the initial run-length step: after 4 equal bytes, a count byte.
    let crc = 0xffffffff;
    let pos = tt[origPtr]! >>> 8;
    let last = -1;
    let same = 0;
    for (let i = 0; i < count; i++) {
      const entry = tt[pos]!;
      const b = entry & 0xff;
      pos = entry >>> 8;
      if (same === 4) {
        out.ensure(b);
        out.buf.fill(last, out.length, out.length + b);
        out.length += b;
        for (let k = 0; k < b; k++) crc = (crc << 8) ^ CRC_TABLE[((crc >>> 24) ^ last) & 0xff]!;
        same = 0;
        continue;
      }
      same = b === last ? same + 1 : 1;
      last = b;
      out.ensure(1);
      out.buf[out.length++] = b;
      crc = (crc << 8) ^ CRC_TABLE[((crc >>> 24) ^ b) & 0xff]!;
    }
    crc = ~crc >>> 0;
    if (crc !== blockCrc) throw corrupt('block CRC mismatch');
    streamCrc = (((streamCrc << 1) | (streamCrc >>> 31)) ^ crc) >>> 0;
  }
  if (r.remaining() !== 0) throw corrupt('bytes after the end of the stream');
  if (expectedSize !== undefined && out.length !== expectedSize) {
    throw corrupt(`holds ${out.length} bytes, the control block adds up to ${expectedSize}`);
  }
  return out.length === out.buf.length ? out.buf : out.buf.slice(0, out.length);
}
