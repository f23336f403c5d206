// How plugins/usb looks at a mount point: a bounded, link-free listing of one folder, and the test
// for "this folder is a repository". The source (what to read) and the watcher (when to look again)
// both walk a mount this way, so they always agree on which places hold an offer.

import { lstat, opendir } from 'node:fs/promises';
import { join } from 'node:path';

/** Directory entries read per folder: a stick full of photos is not walked to the end. */
export const MAX_DIR_ENTRIES = 512;
/** Subfolders of a folder looked into. */
export const MAX_SUBDIRS = 32;

/**
 * Full paths of the files and (at most MAX_SUBDIRS) folders in `dir`, sorted, from its first
 * MAX_DIR_ENTRIES entries. Links are skipped (never followed), and so are hidden names, which
 * include macOS "._x.ferry" resource forks. A folder that is missing, unreadable or goes away
 * mid-listing (a stick pulled) gives what was listed so far.
 */
export async function listFolder(dir: string): Promise<{ files: string[]; dirs: string[] }> {
  const files: string[] = [];
  const dirs: string[] = [];
  try {
    const handle = await opendir(dir);
    let n = 0;
    for await (const entry of handle) {
      if (++n > MAX_DIR_ENTRIES) break;
      if (entry.name.startsWith('.')) continue;
      if (entry.isFile()) files.push(join(dir, entry.name));
      else if (entry.isDirectory()) dirs.push(join(dir, entry.name));
    }
  } catch {
    // Gone or unreadable: what was listed so far is all there is.
  }
  return { files: files.sort(), dirs: dirs.sort().slice(0, MAX_SUBDIRS) };
}

/** A repository folder: root.json a file and channels/ a folder (neither a link). */
export async function isRepoFolder(dir: string): Promise<boolean> {
  const [root, channels] = await Promise.all([lstat(join(dir, 'root.json')).catch(() => null), lstat(join(dir, 'channels')).catch(() => null)]);
  return !!root?.isFile() && !!channels?.isDirectory();
}
