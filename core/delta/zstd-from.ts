// The zstd-from patch (issue 14 item 2): the new file compressed by zstd with the old file as its
// dictionary ("patch-from"), so new code can reference any byte of the old file. On the far esbuild
// pair it is 3,109,102 B against 3,425,951 for bsdiff+brotli (ARCHITECTURE.md "Artifacts and
// deltas"). Node has zstd only from 22.15 (node:zlib zstd*, with `dictionary`); Node 20 has none,
// so both ends check at run time and say ERR_NO_PATCHER where it is missing: a device without it
// falls back to the full artifact, and a publisher emits such entries only when told every device
// can read them (`--patch-from`: devices need Node >= 22.15).
//
// Entry layout (all inside the signed entry bytes):
//   0   8  magic "FERRYZF1"
//   8   8  old size, u64 LE (== the signed base size == the base file's size)
//   16  8  new size, u64 LE (== the signed target size)
//   24  …  one zstd frame (level 19, long-distance matching, window >= old + new, old as dictionary)
// The device checks the header against the signed sizes before a byte is written, decodes as a
// stream with the old file held as the dictionary, caps the output at the new size (a bomb costs
// one chunk), and hashes what it writes (SECURITY.md row 17).

import { constants as fsConstants, createReadStream, createWriteStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import * as zlib from 'node:zlib';
import { FerryError, fromFsError } from '../errors.ts';
import type { PatchEntryInput } from './patch-apply.ts';

export const ZSTD_FROM_MAGIC = Buffer.from('FERRYZF1', 'latin1');
export const ZSTD_FROM_HEADER = 24;

/** zstd's compression level for these entries: 19 is the top of the normal range (ultra levels cost 2-3x the memory for ~2%). */
const LEVEL = 19;
/** zstd's window bounds (ZSTD_WINDOWLOG_MIN, ZSTD_WINDOWLOG_MAX_64: what Node accepts, measured). */
const MIN_WINDOW_LOG = 10;
const MAX_WINDOW_LOG = 31;

/** The slice of node:zlib this needs; Node 20's types (and runtime) have none of it. */
interface ZstdZlib {
  createZstdCompress(options: { params?: Record<number, number>; dictionary?: Buffer; pledgedSrcSize?: number }): Transform;
  createZstdDecompress(options: { params?: Record<number, number>; dictionary?: Buffer }): Transform;
  constants: Record<string, number>;
}

/** node:zlib's zstd, or null on a Node without it (Node 20, or 22 before 22.15). */
function zstdZlib(): ZstdZlib | null {
  const z = zlib as unknown as Partial<ZstdZlib>;
  const c = zlib.constants as unknown as Record<string, number | undefined>;
  if (typeof z.createZstdCompress !== 'function' || typeof z.createZstdDecompress !== 'function') return null;
  if (c.ZSTD_c_windowLog === undefined || c.ZSTD_d_windowLogMax === undefined || c.ZSTD_c_enableLongDistanceMatching === undefined) return null;
  return z as ZstdZlib;
}

/** Whether this Node can write and apply zstd-from entries. */
export function zstdFromSupported(): boolean {
  return zstdZlib() !== null;
}

function requireZstd(what: string): ZstdZlib {
  const z = zstdZlib();
  if (!z) throw new FerryError('ERR_NO_PATCHER', `${what} needs zstd, which Node ${process.versions.node} lacks (Node >= 22.15 has it)`);
  return z;
}

/** The window that lets the new file reach every byte of the old one and of itself: log2(old + new), within zstd's bounds. */
export function zstdFromWindowLog(oldSize: number, newSize: number): number {
  return Math.min(MAX_WINDOW_LOG, Math.max(MIN_WINDOW_LOG, Math.ceil(Math.log2(Math.max(1, oldSize + newSize)))));
}

/** The 24-byte header of an entry. */
export function zstdFromHeader(oldSize: number, newSize: number): Buffer {
  const h = Buffer.alloc(ZSTD_FROM_HEADER);
  ZSTD_FROM_MAGIC.copy(h, 0);
  h.writeBigUInt64LE(BigInt(oldSize), 8);
  h.writeBigUInt64LE(BigInt(newSize), 16);
  return h;
}

/**
 * Reads the whole of a regular file (never through a link); with `size`, it must be exactly that
 * long, or ERR_HASH_MISMATCH: it is not the signed base.
 */
async function readExactly(path: string, size: number | null, what: string): Promise<Buffer> {
  const handle = await open(path, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW);
  try {
    const st = await handle.stat();
    if (!st.isFile()) throw new FerryError('ERR_HASH_MISMATCH', `${what} is not a regular file`);
    if (size !== null && st.size !== size) throw new FerryError('ERR_HASH_MISMATCH', `${what} is ${st.size} bytes, signed ${size}`);
    const buf = Buffer.alloc(st.size);
    let done = 0;
    while (done < buf.length) {
      const { bytesRead } = await handle.read(buf, done, buf.length - done, done);
      if (bytesRead === 0) throw new FerryError('ERR_HASH_MISMATCH', `${what} shrank while read`);
      done += bytesRead;
    }
    return buf;
  } finally {
    await handle.close();
  }
}

/**
 * Publisher: writes the zstd-from entry turning `oldFile` into `newFile` to `outFile` (which must
 * not exist) and returns its size. The old file is held in memory (it is the dictionary); the new
 * one streams. ERR_NO_PATCHER on a Node without zstd.
 */
export async function writeZstdFromPatch(oldFile: string, newFile: string, outFile: string): Promise<number> {
  const z = requireZstd('a zstd-from patch');
  try {
    const old = await readExactly(oldFile, null, oldFile);
    const newSize = (await stat(newFile)).size;
    const c = z.constants;
    const encoder = z.createZstdCompress({
      ...(old.length > 0 ? { dictionary: old } : {}),
      pledgedSrcSize: newSize, // puts the size in the frame header, so the decoder's buffer is bounded by it
      params: {
        [c.ZSTD_c_compressionLevel!]: LEVEL,
        [c.ZSTD_c_windowLog!]: zstdFromWindowLog(old.length, newSize),
        [c.ZSTD_c_enableLongDistanceMatching!]: 1,
        [c.ZSTD_c_checksumFlag!]: 0, // the entry's output is checked against the signed sha256
      },
    });
    const out = createWriteStream(outFile, { flags: 'wx' });
    out.write(zstdFromHeader(old.length, newSize));
    await pipeline(createReadStream(newFile), encoder, out);
    return (await stat(outFile)).size;
  } catch (err) {
    throw fromFsError(err, `writing the zstd-from patch ${outFile}`);
  }
}

/** The entry's header, checked against the signed sizes and the base file's own size. */
async function checkedHeader(input: PatchEntryInput): Promise<void> {
  const { patch } = input;
  if (patch.size < ZSTD_FROM_HEADER + 1) throw new FerryError('ERR_PATCH', `zstd-from entry for ${input.outFile} is ${patch.size} bytes: too short`);
  const head = Buffer.alloc(ZSTD_FROM_HEADER);
  const handle = await open(patch.file, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW);
  try {
    const { bytesRead } = await handle.read(head, 0, ZSTD_FROM_HEADER, patch.offset);
    if (bytesRead !== ZSTD_FROM_HEADER) throw new FerryError('ERR_PATCH', 'zstd-from entry: truncated header');
  } finally {
    await handle.close();
  }
  if (!head.subarray(0, 8).equals(ZSTD_FROM_MAGIC)) throw new FerryError('ERR_PATCH', 'zstd-from entry: bad magic');
  const oldSize = head.readBigUInt64LE(8);
  const newSize = head.readBigUInt64LE(16);
  if (oldSize !== BigInt(input.baseSize)) throw new FerryError('ERR_PATCH', `zstd-from entry is for a ${oldSize}-byte base, signed ${input.baseSize}`);
  if (newSize !== BigInt(input.newSize)) throw new FerryError('ERR_PATCH', `zstd-from entry promises ${newSize} bytes, signed ${input.newSize}`);
}

/**
 * Device: applies a zstd-from entry (the same input as core/delta/patch-apply.ts) and returns the
 * sha256 and size written; the caller compares them with the signed ones. ERR_NO_PATCHER on a Node
 * without zstd (nothing read or written), ERR_PATCH for bytes that are not such an entry, before a
 * byte is written when the header tells.
 */
export async function applyZstdFromEntry(input: PatchEntryInput): Promise<{ sha256: string; size: number }> {
  const z = requireZstd('a zstd-from patch');
  const { patch, newSize } = input;
  try {
    await checkedHeader(input);
    // The dictionary is the whole base, in memory: Node's zstd takes it as one buffer.
    const base = await readExactly(input.baseFile, input.baseSize, `the base of ${input.outFile}`);
    const c = z.constants;
    const decoder = z.createZstdDecompress({
      ...(base.length > 0 ? { dictionary: base } : {}),
      // A frame asking for a larger window than the signed sizes justify is refused by zstd.
      params: { [c.ZSTD_d_windowLogMax!]: zstdFromWindowLog(input.baseSize, newSize) },
    });
    const source = createReadStream(patch.file, { start: patch.offset + ZSTD_FROM_HEADER, end: patch.offset + patch.size - 1 });
    const out = await open(input.outFile, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW, 0o600);
    const hash = createHash('sha256');
    let size = 0;
    try {
      // Pulled one chunk at a time, never drained ahead: past newSize the decoder is dropped.
      const decoded = source.pipe(decoder);
      source.on('error', (err) => decoder.destroy(err));
      try {
        for await (const chunk of decoded as AsyncIterable<Buffer>) {
          size += chunk.length;
          if (size > newSize) throw new FerryError('ERR_PATCH', `zstd-from entry decodes past the signed ${newSize} bytes`);
          hash.update(chunk);
          await out.write(chunk);
        }
      } finally {
        source.destroy();
        decoder.destroy();
      }
    } finally {
      await out.close();
    }
    if (size !== newSize) throw new FerryError('ERR_PATCH', `zstd-from entry decodes to ${size} bytes, signed ${newSize}`);
    return { sha256: hash.digest('hex'), size };
  } catch (err) {
    if (err instanceof FerryError) throw err;
    // zstd's errors carry ZSTD_error_* (or zlib's Z_*) codes: bytes that do not decode are a bogus patch.
    if (/^(ZSTD_error_|Z_)/.test(String((err as NodeJS.ErrnoException)?.code))) {
      throw new FerryError('ERR_PATCH', `zstd-from entry for ${input.outFile} does not decode: ${(err as Error).message}`, { cause: err });
    }
    throw fromFsError(err, `applying the zstd-from patch to ${input.outFile}`);
  }
}
