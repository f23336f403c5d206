// The x86-64 branch filter of FERRYBD1 patches with filter 1 (ARCHITECTURE.md "Patch format";
// issue 14). Code that moves between two releases of a binary changes the relative operand of
// every CALL/JMP and RIP-relative instruction that reaches across the move, and bsdiff's diff
// stream then carries all those changes. Made absolute (the operand plus its own position, like
// xz's BCJ x86 filter), such an operand is the same in both releases as long as its target is the
// same. The publisher diffs filter(old) against filter(new) (core/delta/make-delta.ts); the device
// builds filter(new) from filter(base) and undoes the filter on the output before it hashes it
// (core/delta/patch-apply.ts). Pure byte arithmetic: no I/O, no allocation.
//
// Scanning position i from 0 (positions are the file's, so a chunk knows where it starts):
//   - E8 or E9 (CALL/JMP rel32) with 5 bytes there: when not blocked (i + 1 > readLimit) and the
//     operand's top byte (i + 4) is 0x00 or 0xFF, the operand is a 25-bit signed value v and
//     becomes (v ± (i + 5)) mod 2^25, sign-extended from bit 24 (so its top byte stays 0x00 or
//     0xFF); go on at i + 5. Otherwise readLimit = max(readLimit, i + 4); go on at i + 1.
//   - a REX byte 0x40-0x4F with 7 bytes there: when not blocked (i + 3 > readLimit), byte i + 1 is
//     one of RIP_OPS and the ModRM byte (i + 2) & 0xC7 is 0x05 (RIP-relative), the u32 at i + 3
//     becomes (v ± (i + 7)) mod 2^32; go on at i + 7. Otherwise readLimit = max(readLimit, i + 2);
//     go on at i + 1.
//   - anything else: go on at i + 1.
// + encodes (the publisher, and the device on the base), − decodes (the device on the output).
//
// Why decoding undoes encoding: both directions make the same decision at every position, by
// induction over the scan. A decision at i reads byte i, the bytes the rule names (i + 4 for E8/E9;
// i + 1 and i + 2 for REX) and readLimit (a function of the earlier decisions). None of them
// differs between the filtered and the unfiltered file:
//   - an earlier conversion changed only its own operand and the scan resumed past it, so it did
//     not touch byte i or anything after;
//   - a later conversion at k changes bytes from k + 1 (E8/E9) or k + 3 (REX) on, and is blocked
//     unless that first byte is past readLimit; every candidate that was not converted raised
//     readLimit to the last byte its decision read, so no conversion ever changes a byte an
//     earlier decision read;
//   - a conversion keeps what its own decision read: an E8/E9 operand's top byte stays 0x00 or
//     0xFF (the same class), and the REX, opcode and ModRM bytes lie outside the operand.
// Whether 5 or 7 bytes are there depends only on the file's length, the same both ways.
// (Conditional jumps 0F 8x were measured too, and made a far release pair's patch larger.)
//
// Streaming: a decision at i needs at most bytes up to i + 6. A chunk that is not the file's last
// stops at the first candidate whose bytes run past the chunk's end and returns how far it settled;
// the caller carries the rest (at most X86_LOOKAHEAD bytes) to the front of the next chunk. Since
// the state (readLimit) is not changed by the stop, any split gives the same bytes as one pass.

/** Bytes a chunk may leave unsettled at its end: the most a decision reads past its own byte. */
export const X86_LOOKAHEAD = 6;

/** The opcodes after a REX byte whose ModRM may name a RIP-relative disp32 (MOV, LEA, CMP, ADD, SUB, XOR, MOVSXD, TEST, XCHG, OR, AND). */
const RIP_OPS = new Uint8Array(256);
for (const op of [0x8b, 0x8d, 0x89, 0x3b, 0x39, 0x03, 0x2b, 0x33, 0x63, 0x85, 0x87, 0x01, 0x29, 0x31, 0x0b, 0x09, 0x23, 0x21]) RIP_OPS[op] = 1;

/** 1 for a byte that may start a candidate (E8, E9, a REX byte 40-4F): the scan skips the rest in a tight loop (a pass over esbuild's 10 MB binary took ~23-28 ms warm instead of ~31-38, ~10 ms less cold). */
const CANDIDATE_START = new Uint8Array(256);
for (const b of [0xe8, 0xe9, 0x40, 0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4a, 0x4b, 0x4c, 0x4d, 0x4e, 0x4f]) CANDIDATE_START[b] = 1;

const MASK25 = 0x1ffffff;
const BIT24 = 0x1000000;

/** The filter's state between chunks of one file. */
export interface X86FilterState {
  /** The file position of the chunk's first byte. */
  position: number;
  /** The last file position an unconverted candidate's decision read (-1 at the start). */
  readLimit: number;
}

export function x86FilterStart(): X86FilterState {
  return { position: 0, readLimit: -1 };
}

/**
 * Filters `buf` in place, `buf[0]` being at `state.position` of the file: encode (+) or decode (−).
 * With `last` (the file ends with this chunk) everything settles; otherwise the bytes from the
 * returned index on (at most X86_LOOKAHEAD) are not decided yet and must come again at the front of
 * the next chunk. Returns that index, and moves `state.position` to it.
 */
export function x86Filter(buf: Uint8Array, state: X86FilterState, encode: boolean, last: boolean): number {
  const n = buf.length;
  const base = state.position;
  // readLimit relative to buf[0], so the scan compares small integers only.
  let limit = state.readLimit - base;
  let i = 0;
  while (i < n) {
    while (i < n && CANDIDATE_START[buf[i]!] === 0) i++;
    if (i === n) break;
    const b = buf[i]!;
    if (b === 0xe8 || b === 0xe9) {
      if (i + 5 > n) {
        if (!last) break; // decided when the next chunk is here
        i++;
        continue;
      }
      const top = buf[i + 4]!;
      if (i + 1 > limit && (top === 0x00 || top === 0xff)) {
        const v = buf[i + 1]! | (buf[i + 2]! << 8) | (buf[i + 3]! << 16) | ((top & 1) << 24);
        const pos = (base + i + 5) & MASK25; // bitwise & takes the position mod 2^32, so mod 2^25 too
        const r = (encode ? v + pos : v - pos) & MASK25;
        buf[i + 1] = r & 0xff;
        buf[i + 2] = (r >>> 8) & 0xff;
        buf[i + 3] = (r >>> 16) & 0xff;
        buf[i + 4] = r & BIT24 ? 0xff : 0x00;
        i += 5;
        continue;
      }
      if (i + 4 > limit) limit = i + 4;
      i++;
      continue;
    }
    // A REX byte (CANDIDATE_START holds nothing else).
    if (i + 7 > n) {
      if (!last) break;
      i++;
      continue;
    }
    if (i + 3 > limit && RIP_OPS[buf[i + 1]!] === 1 && (buf[i + 2]! & 0xc7) === 0x05) {
      const v = (buf[i + 3]! | (buf[i + 4]! << 8) | (buf[i + 5]! << 16) | (buf[i + 6]! << 24)) >>> 0;
      const pos = (base + i + 7) >>> 0; // the position mod 2^32
      const r = (encode ? v + pos : v - pos) >>> 0;
      buf[i + 3] = r & 0xff;
      buf[i + 4] = (r >>> 8) & 0xff;
      buf[i + 5] = (r >>> 16) & 0xff;
      buf[i + 6] = r >>> 24;
      i += 7;
      continue;
    }
    if (i + 2 > limit) limit = i + 2;
    i++;
  }
  state.position = base + i;
  state.readLimit = base + limit;
  return i;
}

/** Filters a whole file's bytes in place in one pass (encode or decode); returns `buf`. */
export function x86FilterWhole<T extends Uint8Array>(buf: T, encode: boolean): T {
  x86Filter(buf, x86FilterStart(), encode, true);
  return buf;
}

/**
 * Whether `head` (a file's first bytes, at least 20) is an ELF x86-64 file: magic 7F 'E' 'L' 'F',
 * EI_CLASS 2 (64-bit), e_machine (u16 little-endian at 18) 0x3E. The publisher filters a pair only
 * when both files are.
 */
export function isElfX86_64(head: Uint8Array): boolean {
  return head.length >= 20 && head[0] === 0x7f && head[1] === 0x45 && head[2] === 0x4c && head[3] === 0x46 &&
    head[4] === 2 && (head[18]! | (head[19]! << 8)) === 0x3e;
}
