// Deterministic archives: the same files give the same bytes (sorted entries, fixed mtime, no
// owner names or ids), so a release can be rebuilt and checked, and artifacts dedupe in caches.
// A symlink among `paths` is stored as a link entry with its target (tar never follows it here).
// Hard-linked files are each stored whole: a signed tree lists regular files, and extraction admits
// no hard-link entries (SECURITY.md row 14); node-gyp leaves such pairs in node_modules.

import { writeFile } from 'node:fs/promises';
import { gzipSync } from 'node:zlib';
import { create } from 'tar';
import { fromFsError } from '../errors.ts';
import { comparePaths } from './tree.ts';

const EPOCH = new Date(0);

/** A tar link cache that never remembers, so tar never writes a hard-link entry. */
class NoHardLinks extends Map<`${number}:${number}`, string> {
  override set(): this {
    return this;
  }
}

/** The end-of-archive marker: two zero blocks, all a tar with no entries holds. */
const EMPTY_TAR = Buffer.alloc(1024);

/**
 * Writes a tar (gzip level 9 when `gzip`) of `paths`, relative to `cwd`, in byte order. No paths
 * give the empty archive (node-tar refuses to create one): the delta of a release that only
 * deletes files has no entries (ARCHITECTURE.md "Artifacts and deltas").
 */
export async function packFiles(cwd: string, paths: string[], outFile: string, gzip: boolean): Promise<void> {
  const sorted = [...paths].sort(comparePaths);
  try {
    if (sorted.length === 0) {
      await writeFile(outFile, gzip ? gzipSync(EMPTY_TAR, { level: 9 }) : EMPTY_TAR);
      return;
    }
    await create(
      {
        cwd,
        file: outFile,
        portable: true,
        mtime: EPOCH,
        noDirRecurse: true,
        follow: false,
        linkCache: new NoHardLinks(),
        strict: true,
        ...(gzip ? { gzip: { level: 9 } } : {}),
      },
      sorted,
    );
  } catch (err) {
    throw fromFsError(err, `writing archive ${outFile}`);
  }
}
