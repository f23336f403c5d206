// The regular files of a release tree, hashed by the bench's own walk (not ferry's scanner), so a
// check of what ferry installed does not trust ferry's code; and the uncompressed tar that
// xdelta3, zstd and HDiffPatch diff (GNU tar, sorted names, fixed owner and time: the same bytes
// for the same tree on every run).

import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { runChecked } from './measure.ts';

export interface TreeFile {
  size: number;
  /** Whether any execute bit is set: the part of the mode a release must carry. */
  executable: boolean;
  sha256: string;
}

async function sha256Of(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Every regular file under `root` (symlinks followed only at the root), by relative path. */
export async function hashTree(root: string): Promise<Map<string, TreeFile>> {
  const out = new Map<string, TreeFile>();
  const walk = async (rel: string): Promise<void> => {
    const entries = await readdir(join(root, rel), { withFileTypes: true });
    for (const e of entries.sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const path = rel === '' ? e.name : `${rel}/${e.name}`;
      if (e.isDirectory()) await walk(path);
      else if (e.isFile()) {
        const st = await lstat(join(root, path));
        out.set(path, { size: st.size, executable: (st.mode & 0o111) !== 0, sha256: await sha256Of(join(root, path)) });
      }
    }
  };
  await walk('');
  return out;
}

/** null when `got` is exactly `want` (paths, sizes, exec bits, sha256), else the first difference. */
export function treeDifference(got: Map<string, TreeFile>, want: Map<string, TreeFile>): string | null {
  if (got.size !== want.size) return `${got.size} files, want ${want.size}`;
  for (const [path, w] of want) {
    const g = got.get(path);
    if (!g) return `${path} is missing`;
    if (g.size !== w.size || g.sha256 !== w.sha256 || g.executable !== w.executable) return `${path} is ${JSON.stringify(g)}, want ${JSON.stringify(w)}`;
  }
  return null;
}

export const treeBytes = (t: Map<string, TreeFile>) => [...t.values()].reduce((n, f) => n + f.size, 0);

/** Packs `dir` into the uncompressed tar `out`, the same bytes for the same tree every time. */
export async function tarTree(dir: string, out: string): Promise<void> {
  await runChecked('tar', ['--sort=name', '--owner=0', '--group=0', '--numeric-owner', '--mtime=@0', '--format=gnu', '-cf', out, '-C', dir, '.'], 10 * 60_000);
}
