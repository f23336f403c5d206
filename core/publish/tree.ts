// Reads an application tree into the signed file list: every regular file with its size, mode and
// sha256, sorted by path so the same tree always gives the same list (and the same artifact).

import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { FerryError, fromFsError } from '../errors.ts';
import { sha256File } from '../io/hash.ts';
import { checkRelativePath } from '../io/safe-path.ts';
import type { FileEntry } from '../trust/metadata.ts';

/** Byte-order comparison, so sorting does not depend on locale. */
export function comparePaths(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/**
 * Lists a tree. Only regular files and directories are allowed: a symlink could point outside the
 * release, and a device or FIFO has no bytes to sign, so each is refused with ERR_UNSUPPORTED_FILE.
 * Setuid/setgid/sticky bits are refused too: a release never installs a privileged file.
 */
export async function scanTree(root: string): Promise<FileEntry[]> {
  const out: FileEntry[] = [];
  async function walk(rel: string): Promise<void> {
    let names: string[];
    try {
      names = await readdir(join(root, rel));
    } catch (err) {
      throw fromFsError(err, `reading ${join(root, rel)}`);
    }
    for (const name of names) {
      const path = rel ? `${rel}/${name}` : name;
      const full = join(root, path);
      const st = await lstat(full);
      if (st.isDirectory()) {
        await walk(path);
      } else if (st.isFile()) {
        if (st.mode & 0o7000) throw new FerryError('ERR_UNSUPPORTED_FILE', `${path} has setuid, setgid or sticky bits`);
        checkRelativePath(path, 'release tree');
        out.push({ path, size: st.size, mode: st.mode & 0o777, sha256: await sha256File(full) });
      } else {
        throw new FerryError('ERR_UNSUPPORTED_FILE', `${path} is a ${st.isSymbolicLink() ? 'symlink' : 'special file'}; a release holds only regular files and directories`);
      }
    }
  }
  await walk('');
  return out.sort((a, b) => comparePaths(a.path, b.path));
}
