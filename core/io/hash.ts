// sha256 over bytes, files and streams, and the per-chunk hashes that let a peer serve an
// artifact in pieces each of which is checked on its own.

import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { FerryError } from '../errors.ts';

export const CHUNK_SIZE = 1024 * 1024;

export function sha256(bytes: Uint8Array | string): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export interface FileDigest {
  size: number;
  sha256: string;
  /** sha256 of each CHUNK_SIZE piece, in order (the last may be shorter). */
  chunks: string[];
}

/** Bytes per read of a file being hashed or copied. */
export const READ_BUFFER = 256 * 1024;

/** Read buffers kept for reuse: enough for the reads that run at once (apply-delta's 8 workers, and a few more). */
const POOLED = 16;
const pool: Buffer[] = [];

/**
 * Reads the file `path` from start to end through one READ_BUFFER buffer taken from a small pool
 * and given back after, handing each filled part to `use` (which must not keep it: the next read
 * overwrites it). A stream would allocate a fresh buffer per read, and those dead buffers pile up
 * outside V8's heap until a collection happens to run: reading 50 MB of files that way took tens of
 * MiB of RSS (bench/apply, issue 14 item 7). Opens with O_NOFOLLOW when `noFollow`.
 */
export async function readFileChunks(path: string, use: (bytes: Buffer) => unknown, noFollow = false): Promise<number> {
  const buf = pool.pop() ?? Buffer.allocUnsafe(READ_BUFFER);
  let h: FileHandle | undefined;
  try {
    h = await open(path, noFollow ? constants.O_RDONLY | constants.O_NOFOLLOW : constants.O_RDONLY);
    let size = 0;
    for (;;) {
      const { bytesRead } = await h.read(buf, 0, buf.length, null);
      if (bytesRead === 0) return size;
      size += bytesRead;
      await use(buf.subarray(0, bytesRead));
    }
  } finally {
    await h?.close();
    if (pool.length < POOLED) pool.push(buf);
  }
}

/** Hashes a file in one pass: whole-file sha256, size and chunk hashes. */
export async function digestFile(path: string, chunkSize = CHUNK_SIZE): Promise<FileDigest> {
  const whole = createHash('sha256');
  const chunks: string[] = [];
  let chunk = createHash('sha256');
  let inChunk = 0;
  let size = 0;
  await readFileChunks(path, (buf) => {
    whole.update(buf);
    size += buf.length;
    let off = 0;
    while (off < buf.length) {
      const take = Math.min(chunkSize - inChunk, buf.length - off);
      chunk.update(buf.subarray(off, off + take));
      inChunk += take;
      off += take;
      if (inChunk === chunkSize) {
        chunks.push(chunk.digest('hex'));
        chunk = createHash('sha256');
        inChunk = 0;
      }
    }
  });
  if (inChunk > 0 || size === 0) chunks.push(chunk.digest('hex'));
  return { size, sha256: whole.digest('hex'), chunks };
}

export async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  await readFileChunks(path, (buf) => h.update(buf));
  return h.digest('hex');
}

/** Throws ERR_HASH_MISMATCH unless `actual` equals the signed `expected` digest. */
export function expectHash(actual: string, expected: string, what: string): void {
  if (actual !== expected) throw new FerryError('ERR_HASH_MISMATCH', `${what}: sha256 ${actual.slice(0, 16)}… differs from the signed ${expected.slice(0, 16)}…`);
}
