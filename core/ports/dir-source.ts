// The Source over a repository folder on local disk (a `dir:` source, a stick's folder, the
// publisher's own repository). A bundle is unpacked into a private folder and read through this
// too, so both are verified by the same code.

import { constants } from 'node:fs';
import { open, readdir, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { FerryError, fromFsError } from '../errors.ts';
import { checkRelativePath } from '../io/safe-path.ts';
import type { Source } from './source.ts';


/** Bytes per read of a file copied out of the folder. */
const COPY_CHUNK = 1024 * 1024;

/** One copy buffer, kept for the next copy (copies run one at a time; a second one at once takes its own). */
let spare: Buffer | undefined;

/**
 * Copies `from` (from byte `start`) to the end of `to`, at most `maxBytes` (ERR_TOO_LARGE past it),
 * through one reused buffer: a stream would allocate a fresh buffer per read, and those dead
 * buffers pile up outside V8's heap until a collection happens to run (issue 14 item 7).
 */
async function copyCapped(from: FileHandle, to: FileHandle, start: number, maxBytes: number, what: string): Promise<void> {
  const buf = spare ?? Buffer.allocUnsafe(COPY_CHUNK);
  spare = undefined;
  try {
    let position = start;
    let copied = 0;
    for (;;) {
      const { bytesRead } = await from.read(buf, 0, buf.length, position);
      if (bytesRead === 0) return;
      position += bytesRead;
      copied += bytesRead;
      if (copied > maxBytes) throw new FerryError('ERR_TOO_LARGE', `${what} is over its ${maxBytes}-byte cap`);
      for (let off = 0; off < bytesRead; ) off += (await to.write(buf, off, bytesRead - off)).bytesWritten;
    }
  } finally {
    spare = buf;
  }
}

export function createDirSource(root: string, name = `dir:${root}`): Source {
  const resolve = (path: string) => join(root, checkRelativePath(path, 'source path'));
  const openOrUndefined = async (path: string) => {
    try {
      // O_NOFOLLOW: a link planted in a source folder is refused, not followed elsewhere.
      return await open(resolve(path), constants.O_RDONLY | constants.O_NOFOLLOW);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
      throw fromFsError(err, `opening ${path} in ${name}`);
    }
  };
  return {
    name,
    async read(path, maxBytes) {
      const handle = await openOrUndefined(path);
      if (!handle) return undefined;
      try {
        const buf = Buffer.alloc(maxBytes + 1);
        let got = 0;
        for (;;) {
          const { bytesRead } = await handle.read(buf, got, buf.length - got, got);
          if (bytesRead === 0) break;
          got += bytesRead;
          if (got > maxBytes) throw new FerryError('ERR_TOO_LARGE', `${path} is over its ${maxBytes}-byte cap`);
        }
        return buf.subarray(0, got);
      } finally {
        await handle.close();
      }
    },
    offline: true,
    async fetch(path, dest, maxBytes, offset = 0) {
      const handle = await openOrUndefined(path);
      if (!handle) return false;
      try {
        // O_NOFOLLOW: the partial file is written only if it is a file of ours, never a link. From
        // offset 0 it is created or emptied (a kill can leave an empty .part behind).
        const flags = (offset > 0 ? constants.O_APPEND : constants.O_CREAT | constants.O_TRUNC) | constants.O_WRONLY | constants.O_NOFOLLOW;
        const out = await open(dest, flags, 0o600);
        try {
          await copyCapped(handle, out, offset, maxBytes - offset, path);
        } finally {
          await out.close();
        }
      } catch (err) {
        throw fromFsError(err, `copying ${path} from ${name}`);
      } finally {
        await handle.close();
      }
      return true;
    },
    async list(dir) {
      try {
        return (await readdir(dir === '' ? root : resolve(dir))).sort();
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
        throw fromFsError(err, `listing ${dir} in ${name}`);
      }
    },
  };
}
