// The 'pack' delta artifact (ARCHITECTURE.md "Artifacts and deltas"): the ops' entries
// concatenated with no framing at all, each op naming its entry as {offset, size}. The artifact
// as a whole is signed (size, sha256, chunk hashes) and checked when it is fetched, so an entry
// needs no hash of its own, and the device reads each entry in place by range: there is no unpack
// step. A patch bump of a thousand-file tree costs its patches, not 512 bytes of tar header per
// entry plus padding and the end block. Several ops may name the same range: a FERRYSB1 solid
// block holding their small files' entries together (core/delta/solid-format.ts).

import { createReadStream } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import type { PackRange } from '../trust/metadata.ts';

export interface PackWriter {
  /** Appends the bytes of `file`; returns where they now are in the pack. */
  add(file: string): Promise<PackRange>;
  close(): Promise<void>;
}

/** Starts a pack at `outFile` (which must not exist). An empty pack is an empty file. */
export async function appendPack(outFile: string): Promise<PackWriter> {
  const out: FileHandle = await open(outFile, 'wx', 0o644);
  let offset = 0;
  return {
    async add(file) {
      const start = offset;
      for await (const chunk of createReadStream(file, { highWaterMark: 1024 * 1024 }) as AsyncIterable<Buffer>) {
        await out.write(chunk, 0, chunk.length, offset);
        offset += chunk.length;
      }
      return { offset: start, size: offset - start };
    },
    close: () => out.close(),
  };
}

/** The bytes of `range` of `file` as a stream (empty for a 0-byte entry). */
export function packRangeStream(file: string, range: PackRange): Readable {
  // createReadStream's `end` is inclusive, so it cannot say "no bytes".
  if (range.size === 0) return Readable.from([]);
  return createReadStream(file, { start: range.offset, end: range.offset + range.size - 1, highWaterMark: 256 * 1024 });
}
