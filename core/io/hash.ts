// sha256 over bytes, files and streams, and the per-chunk hashes that let a peer serve an
// artifact in pieces each of which is checked on its own.

import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
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

/** Hashes a file in one streaming pass: whole-file sha256, size and chunk hashes. */
export async function digestFile(path: string, chunkSize = CHUNK_SIZE): Promise<FileDigest> {
  const whole = createHash('sha256');
  const chunks: string[] = [];
  let chunk = createHash('sha256');
  let inChunk = 0;
  let size = 0;
  for await (const buf of createReadStream(path, { highWaterMark: 256 * 1024 }) as AsyncIterable<Buffer>) {
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
  }
  if (inChunk > 0 || size === 0) chunks.push(chunk.digest('hex'));
  return { size, sha256: whole.digest('hex'), chunks };
}

export async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const buf of createReadStream(path) as AsyncIterable<Buffer>) h.update(buf);
  return h.digest('hex');
}

/** Throws ERR_HASH_MISMATCH unless `actual` equals the signed `expected` digest. */
export function expectHash(actual: string, expected: string, what: string): void {
  if (actual !== expected) throw new FerryError('ERR_HASH_MISMATCH', `${what}: sha256 ${actual.slice(0, 16)}… differs from the signed ${expected.slice(0, 16)}…`);
}
