// A Source is where a device (or `ferry verify`) reads a repository from. The core treats every
// byte it returns as untrusted. This one reads a repository folder on local disk; a bundle is
// unpacked into a private folder and read through it too, so both are verified by the same code.

import { constants, createWriteStream } from 'node:fs';
import { open, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import { FerryError, fromFsError } from './errors.ts';
import { checkRelativePath } from './safe-path.ts';

export interface Source {
  /** Says where bytes came from, for history records and messages. */
  readonly name: string;
  /** Reads a small file whole; undefined when it does not exist; ERR_TOO_LARGE past maxBytes. */
  read(path: string, maxBytes: number): Promise<Uint8Array | undefined>;
  /**
   * Copies a file to `dest`; false when absent; ERR_TOO_LARGE past maxBytes. With `offset` > 0,
   * `dest` already holds that many bytes (a .part file) and only the rest is appended.
   */
  fetch(path: string, dest: string, maxBytes: number, offset?: number): Promise<boolean>;
  /** Local folders and bundles are offline sources: DeviceConfig.offlineGraceDays applies to them. */
  readonly offline: boolean;
  /** Names in a folder, when the source can list (a folder can; plain HTTP cannot). */
  list?(dir: string): Promise<string[]>;
}

function capped(maxBytes: number, what: string): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      seen += chunk.length;
      if (seen > maxBytes) return done(new FerryError('ERR_TOO_LARGE', `${what} is over its ${maxBytes}-byte cap`));
      done(null, chunk);
    },
  });
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
        await pipeline(
          handle.createReadStream({ autoClose: false, start: offset }),
          capped(maxBytes - offset, path),
          createWriteStream(dest, { flags: offset > 0 ? 'a' : 'wx' }),
        );
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
