// The Source over a repository folder on local disk (a `dir:` source, a stick's folder, the
// publisher's own repository). A bundle is unpacked into a private folder and read through this
// too, so both are verified by the same code.

import { constants } from 'node:fs';
import { open, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import { FerryError, fromFsError } from '../errors.ts';
import { checkRelativePath } from '../io/safe-path.ts';
import type { Source } from './source.ts';


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
        // O_NOFOLLOW: the partial file is written only if it is a file of ours, never a link. From
        // offset 0 it is created or emptied (a kill can leave an empty .part behind).
        const flags = (offset > 0 ? constants.O_APPEND : constants.O_CREAT | constants.O_TRUNC) | constants.O_WRONLY | constants.O_NOFOLLOW;
        const out = await open(dest, flags, 0o600);
        // The write stream owns `out` and closes it when it finishes or fails.
        await pipeline(handle.createReadStream({ autoClose: false, start: offset }), capped(maxBytes - offset, path), out.createWriteStream());
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
