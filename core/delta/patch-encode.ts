// Writes a RawPatch (bsdiff's three streams) as a FERRYBD1 patch file (ARCHITECTURE.md "Patch
// format"): the control triples in columns (control encoding 2), then each stream brotli-compressed with
// ferry's settings (core/io/brotli.ts: quality 11 unless the publisher asks for less) on its own (the zero-heavy diff bytes and the code-like extra bytes compress best apart).
// Publisher side: the RawPatch comes from our own matcher, so a RawPatch that does not describe
// `newSize` bytes built from `oldSize` bytes is a bug (ERR_INTERNAL), never written.

import { constants as fsc } from 'node:fs';
import { open } from 'node:fs/promises';
import { promisify } from 'node:util';
import { brotliCompress } from 'node:zlib';
import { brotliBestOptions } from '../io/brotli.ts';
import { FerryError, fromFsError } from '../errors.ts';
import type { RawPatch } from './raw-patch.ts';
import { CODER_BROTLI, CONTROL_COLUMNS, encodeControlColumns, FILTER_NONE, PATCH_HEADER_SIZE, writePatchHeader, type PatchFilter } from './patch-format.ts';

const compress = promisify(brotliCompress);

/**
 * The diff stream's window: at most 4 MiB. A device's brotli decoder grows its ring buffer with
 * the output up to the window, so a fitted window cost the device as many bytes of memory as the
 * file's diff stream is long (~10 MB for a 10 MB binary, however small its patch: issue 14 item 7).
 * bsdiff's diff bytes are mostly zeros with local changes, which a far window does not help: on
 * esbuild 0.20.0 -> 0.24.2 the 6.6 MB diff stream compressed to 920,350 bytes at 4 MiB and 919,950
 * at 16 MiB (quality 11). The control and extra streams' windows are fitted to them, at most 16 MiB
 * (core/io/brotli.ts).
 */
export const DIFF_STREAM_MAX_LGWIN = 22;

/** Replays `raw`'s control entries with the device's rules (core/delta/patch-apply.ts); throws ERR_INTERNAL on the first broken one. */
function checkRawPatch(raw: RawPatch): void {
  const bad = (why: string) => new FerryError('ERR_INTERNAL', `RawPatch does not build ${raw.newSize} bytes from ${raw.oldSize}: ${why}`);
  const { control } = raw;
  if (control.length % 3 !== 0) throw bad(`${control.length} control numbers is not a list of triples`);
  if (control.length / 3 > 0xffffffff) throw bad('more than 2^32 - 1 entries');
  let newPos = 0;
  let oldPos = 0;
  let diff = 0;
  let extra = 0;
  for (let i = 0; i < control.length; i += 3) {
    const x = control[i]!;
    const y = control[i + 1]!;
    const zz = control[i + 2]!;
    // |z| ≤ 2^52 keeps zigzag(z) ≤ 2^53, exact in a double (patch-format.ts).
    if (!Number.isSafeInteger(x) || !Number.isSafeInteger(y) || !Number.isSafeInteger(zz) || x < 0 || y < 0 || Math.abs(zz) > 2 ** 52) throw bad(`entry ${i / 3} is (${x}, ${y}, ${zz})`);
    if (x > 0 && (oldPos < 0 || oldPos + x > raw.oldSize)) throw bad(`entry ${i / 3} adds old bytes [${oldPos}, ${oldPos + x}) outside [0, ${raw.oldSize})`);
    newPos += x + y;
    if (newPos > raw.newSize) throw bad(`entry ${i / 3} writes past the end`);
    diff += x;
    extra += y;
    oldPos += x + zz;
    if (Math.abs(oldPos) > Number.MAX_SAFE_INTEGER / 2) throw bad(`entry ${i / 3} seeks to ${oldPos}`);
  }
  if (newPos !== raw.newSize) throw bad(`the entries write ${newPos} bytes`);
  if (diff !== raw.diff.length) throw bad(`the entries add ${diff} diff bytes, the stream has ${raw.diff.length}`);
  if (extra !== raw.extra.length) throw bad(`the entries copy ${extra} extra bytes, the stream has ${raw.extra.length}`);
}

/** A RawPatch coded as FERRYBD1: the header and the three compressed streams, in file order. */
export interface EncodedPatch {
  parts: Buffer[];
  /** Bytes of the patch file (the parts' lengths summed). */
  size: number;
}

/**
 * Codes `raw` as FERRYBD1 in memory at `options.quality` (core/io/brotli.ts; 11 unless told).
 * `filter`: what `raw` was diffed between, written into the header for the device to undo —
 * FILTER_NONE (the default) when it is bsdiff of the files themselves, FILTER_X86 when it is
 * bsdiff of their x86-64-filtered copies (core/delta/make-delta.ts). The publisher also calls this
 * at a fast quality only for the size, to rank its candidates (core/delta/pick-candidates.ts).
 */
export async function encodeFerryPatch(raw: RawPatch, options: { quality?: number; filter?: PatchFilter } = {}): Promise<EncodedPatch> {
  checkRawPatch(raw);
  const ctrl = encodeControlColumns(raw.control);
  // The three compress at once on libuv's thread pool: publish time is mostly the diff stream's.
  const [c, d, e] = await Promise.all([
    compress(ctrl, brotliBestOptions(ctrl.length, options.quality)),
    compress(raw.diff, brotliBestOptions(raw.diff.length, options.quality, DIFF_STREAM_MAX_LGWIN)),
    compress(raw.extra, brotliBestOptions(raw.extra.length, options.quality)),
  ]);
  const header = writePatchHeader({
    // Every stream's window is at most 16 MiB (core/io/brotli.ts); coder 2, the large window, is
    // read for patches written before that rule.
    coder: CODER_BROTLI,
    controlEncoding: CONTROL_COLUMNS,
    filter: options.filter ?? FILTER_NONE,
    entries: raw.control.length / 3,
    oldSize: raw.oldSize,
    newSize: raw.newSize,
    controlLength: c!.length,
    diffLength: d!.length,
    extraLength: e!.length,
  });
  return { parts: [header, c!, d!, e!], size: PATCH_HEADER_SIZE + c!.length + d!.length + e!.length };
}

/**
 * Writes `raw` to `outFile` (which must not exist) as FERRYBD1 (encodeFerryPatch); returns the
 * patch's size in bytes.
 */
export async function writeFerryPatch(raw: RawPatch, outFile: string, options: { quality?: number; filter?: PatchFilter } = {}): Promise<number> {
  const { parts, size } = await encodeFerryPatch(raw, options);
  try {
    const h = await open(outFile, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o644);
    try {
      for (const part of parts) await h.writeFile(part); // each goes on where the last ended
    } finally {
      await h.close();
    }
  } catch (err) {
    throw fromFsError(err, `writing the patch ${outFile}`);
  }
  return size;
}
