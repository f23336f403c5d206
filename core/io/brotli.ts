// ferry's brotli settings, in one place (ARCHITECTURE.md "Artifacts and deltas"): what the
// publisher compresses whole files and full artifacts with, and what the device decodes them with.
// Quality 11 is brotli's best and lands within 1.00-1.02x of xz -9e on release trees (quality 9
// is 1.13x). The window holds the input up to 16 MiB (lgwin 24, standard brotli) and no more:
// a device's decoder grows its ring buffer with its output up to the window, so every stream ferry
// writes costs a device at most 16 MiB to decode. Patches and full artifacts from before this
// rule may use brotli's large window (up to 2^30), so brotliDecoder() always accepts it.

import { createReadStream, createWriteStream } from 'node:fs';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { constants, createBrotliCompress, createBrotliDecompress, type BrotliCompress, type BrotliDecompress, type BrotliOptions } from 'node:zlib';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { FerryError } from '../errors.ts';

/** The largest window of standard brotli: 2^24 bytes minus 16 (RFC 7932); more needs the large window. */
export const STANDARD_MAX_LGWIN = 24;
const LARGE_MAX_LGWIN = constants.BROTLI_LARGE_MAX_WINDOW_BITS; // 30

/** brotli's smallest window (BROTLI_MIN_WINDOW_BITS). */
const MIN_LGWIN = 10;

/**
 * The window that sees all of `size` bytes (a window of lgwin bits holds 2^lgwin - 16 bytes): no
 * larger, since at quality 11 the encoder's match finder is sized by the window (a 24-bit window
 * costs ~40 ms per stream however small the input, which a delta of a thousand small files pays a
 * thousand times); the same output size, measured. Standard brotli up to 24 (16 MiB), the large
 * window above, at most 30.
 */
export function brotliWindowBits(size: number): number {
  return Math.min(LARGE_MAX_LGWIN, Math.max(MIN_LGWIN, Math.ceil(Math.log2(size + 16))));
}

/**
 * The quality a publisher compresses with unless told otherwise: 11, the smallest output (and the
 * slowest: ~3 s per MB of binary). A publisher who wants speed over size (a test suite, a
 * pipeline that publishes every commit) passes a lower one (`ferry release --compression-level`).
 */
export const DEFAULT_QUALITY = constants.BROTLI_MAX_QUALITY;

/** A brotli quality, 0-11, or ERR_USAGE. */
export function checkQuality(quality: number): number {
  if (!Number.isInteger(quality) || quality < constants.BROTLI_MIN_QUALITY || quality > constants.BROTLI_MAX_QUALITY) {
    throw new FerryError('ERR_USAGE', `compression level ${quality} is not an integer from 0 to 11`);
  }
  return quality;
}

/**
 * Encoder options for `size` bytes (exact, or an estimate for a stream): the quality (11 unless
 * told), the size hint, and the window: one that sees all of `size`, but at most `maxLgwin` bits.
 * The default cap is STANDARD_MAX_LGWIN, 16 MiB: a decoder's ring buffer grows with its output up
 * to the window, so a window fitted to biome 2.2.4's 42 MB binary (lgwin 26) cost a device 64 MiB
 * to decode its whole-file entry, for 0.8% fewer bytes (9,839,627 against 9,917,199 at lgwin 24,
 * quality 11). A larger cap writes brotli's large window (at most 2^30), which only ferry's own
 * decoder reads.
 */
export function brotliBestOptions(size: number, quality: number = DEFAULT_QUALITY, maxLgwin: number = STANDARD_MAX_LGWIN): BrotliOptions {
  const lgwin = Math.min(maxLgwin, brotliWindowBits(size));
  return {
    params: {
      [constants.BROTLI_PARAM_QUALITY]: checkQuality(quality),
      [constants.BROTLI_PARAM_LGWIN]: lgwin,
      ...(lgwin > STANDARD_MAX_LGWIN ? { [constants.BROTLI_PARAM_LARGE_WINDOW]: 1 } : {}),
      // The hint only tunes the encoder; brotli takes at most 2^30 here.
      [constants.BROTLI_PARAM_SIZE_HINT]: Math.min(size, 2 ** 30),
    },
  };
}

/** A streaming encoder with ferry's best settings for about `sizeHint` bytes (the full artifact's tar). */
export function createBrotliBest(sizeHint: number, quality?: number): BrotliCompress {
  return createBrotliCompress(brotliBestOptions(sizeHint, quality));
}

/** Compresses the `size`-byte file `src` into `dst`, which must not exist (created 'wx'). */
export async function compressFileBest(src: string, dst: string, size: number, quality?: number): Promise<void> {
  await pipeline(createReadStream(src), createBrotliBest(size, quality), createWriteStream(dst, { flags: 'wx' }));
}

/**
 * Bytes compressFileBest would write for the `size`-byte file `src` at `quality`, writing nothing:
 * the publisher's estimate of a whole-file entry at a fast quality (core/delta/pick-candidates.ts).
 */
export async function compressedFileSize(src: string, size: number, quality: number): Promise<number> {
  let bytes = 0;
  const count = new Writable({
    write(chunk: Buffer, _encoding, done) {
      bytes += chunk.length;
      done();
    },
  });
  await pipeline(createReadStream(src), createBrotliBest(size, quality), count);
  return bytes;
}

/**
 * Decoder options that accept large-window streams as well as standard ones (without the flag a
 * large-window stream fails with ERR__ERROR_FORMAT_WINDOW_BITS). The flag is no bomb: brotli's
 * decoder grows its ring buffer with the output (up to the next power of two above what was
 * written plus one meta-block, ≤ 16 MiB), and every caller caps the output at a signed size.
 */
export function brotliDecoder(): BrotliOptions {
  return { params: { [constants.BROTLI_DECODER_PARAM_LARGE_WINDOW]: 1 } };
}

/**
 * Decoded bytes per output chunk of a streaming decoder. Node's default (16 KiB) makes every
 * 16 KiB of output a round trip to the thread pool and a stream event: decoding a 50 MB tree took
 * ~0.7 s that way and ~0.14 s with 256 KiB (bench/apply, issue 14 item 7). A bomb still costs at
 * most one chunk past its signed cap: every caller counts the chunks it is handed.
 */
export const DECODE_CHUNK = 256 * 1024;

/** A streaming decoder for any stream ferry writes (standard or large window), DECODE_CHUNK bytes per chunk. */
export function createBrotliDecoder(chunkSize: number = DECODE_CHUNK): BrotliDecompress {
  return createBrotliDecompress({ ...brotliDecoder(), chunkSize });
}

/**
 * Decoded bytes after which a long decode asks V8 for a young-generation collection
 * (collectDecodedGarbage). A streaming decoder hands out every chunk in a fresh Buffer, and Node's
 * public zlib API has no way to decode into a reused one; the dead chunks are freed only when V8
 * collects, and V8 collects the young generation on its own only once ~32 MiB of young
 * ArrayBuffers have piled up (2x its default semi-space) or its JS heap fills. Decoding a 50 MB
 * tree held 29-33 MiB of dead chunks that way (issue 14 item 7); collecting every 4 MiB holds
 * ~9 (8 MiB: ~15), and `ferry update` of that tree peaks at 96-97 MiB instead of 103-104.
 */
export const COLLECT_EVERY = 4 * 1024 * 1024;

type MinorGc = (options: { type: 'minor' | 'major' }) => void;

/** V8's gc() for this process, fetched once; null when it cannot be had (the collection is then V8's own). */
let gc: MinorGc | null | undefined;

/**
 * Collects V8's young generation now, freeing the dead decoded chunks a stream left behind (a
 * fraction of a millisecond: what survives is small). The collector is V8's own `gc` function,
 * exposed by turning on --expose-gc for one new vm context and off again at once: only that
 * context (never ferry's or the app's global scope) ever holds it. When the flag is refused (a
 * future Node), this does nothing and V8 collects when it would have anyway.
 */
export function collectDecodedGarbage(): void {
  if (gc === undefined) {
    gc = null;
    try {
      setFlagsFromString('--expose-gc');
      const found: unknown = runInNewContext('typeof gc === "function" ? gc : null');
      if (typeof found === 'function') gc = found as MinorGc;
    } catch {
      // no collector: V8's own schedule
    } finally {
      setFlagsFromString('--no-expose-gc');
    }
  }
  gc?.({ type: 'minor' });
}
