// Reads an application tree into the signed file list: every regular file with its size, mode and
// sha256, every symlink with its target, sorted by path so the same tree always gives the same
// list (and the same artifact). Nothing is ever read through a link.

import { constants } from 'node:fs';
import { lstat, open, readdir, readlink } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { FerryError, fromFsError } from '../errors.ts';
import { checkRelativePath, linkProblem } from '../io/safe-path.ts';
import type { TreeEntry } from '../trust/metadata.ts';

/** Byte-order comparison, so sorting does not depend on locale. */
export function comparePaths(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/** sha256 of a regular file, opened O_NOFOLLOW: a link swapped in after the lstat is not read through. */
async function hashRegularFile(path: string): Promise<string> {
  const handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  const hash = createHash('sha256');
  try {
    for await (const buf of handle.createReadStream({ autoClose: false }) as AsyncIterable<Buffer>) hash.update(buf);
  } finally {
    await handle.close();
  }
  return hash.digest('hex');
}

/**
 * Lists a tree as it is on disk: regular files, and symlinks with their exact target (never
 * followed). A device or FIFO has no bytes to sign, and setuid/setgid/sticky bits would install a
 * privileged file: each is refused with ERR_UNSUPPORTED_FILE. Link targets are not judged here
 * (see scanTree); re-verification compares them with the signed ones instead.
 */
export async function listTree(root: string): Promise<TreeEntry[]> {
  const out: TreeEntry[] = [];
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
        out.push({ path, size: st.size, mode: st.mode & 0o777, sha256: await hashRegularFile(full) });
      } else if (st.isSymbolicLink()) {
        checkRelativePath(path, 'release tree');
        const raw = await readlink(full, { encoding: 'buffer' });
        const target = raw.toString('utf8');
        // Signed as text: bytes that are not UTF-8 would be signed as something else.
        if (!Buffer.from(target).equals(raw)) throw new FerryError('ERR_UNSUPPORTED_FILE', `${path} is a symlink whose target is not UTF-8`);
        out.push({ path, type: 'symlink', target });
      } else {
        throw new FerryError('ERR_UNSUPPORTED_FILE', `${path} is a special file; a release holds only regular files, directories and symlinks`);
      }
    }
  }
  await walk('');
  return out.sort((a, b) => comparePaths(a.path, b.path));
}

/**
 * Lists a tree to publish. Beyond listTree, every symlink must be relative and resolve (through
 * any other links) to a file or folder inside the tree: a link out of the release, a dangling one
 * or a loop is refused with ERR_UNSUPPORTED_FILE (SECURITY.md row 14). A link to an empty folder
 * counts as dangling, since a release does not carry empty folders.
 */
export async function scanTree(root: string): Promise<TreeEntry[]> {
  const entries = await listTree(root);
  const unsafe = linkProblem(entries);
  if (unsafe) throw new FerryError('ERR_UNSUPPORTED_FILE', `${unsafe.path} is a symlink that ${unsafe.why}; a release holds only links that resolve inside it`);
  return entries;
}
