// Where extraction cases write, and how "nothing was written outside staging" is checked. The
// destination sits five folders below the sandbox's own temp folder (`outer`), so any name with up
// to five ".." segments that escaped would land inside `outer`, among sentinel files:
//
//   outer/outer-sentinel.txt
//   outer/sandbox/sibling/keep.txt           the input file sits in sandbox/ too
//   outer/sandbox/a/b/c/dest                 the staging area: the only place a case may write
//   outer/sandbox/a/b/c/dest-sibling/keep.txt
//   outer/abs/                               where absolute and linked names in hostile tars point
//
// Before and after each case the whole of `outer` except `dest` is snapshotted (kind, mode, size,
// mtime, sha256); any difference is a finding. The planted names ("fuzz-escape", the absolute
// "/fuzz-abs-escape-never-written") are also looked for above `outer`, up to the filesystem root.

import { existsSync } from 'node:fs';
import { lstat, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { sha256 } from '../../core/io/hash.ts';

export interface Sandbox {
  outer: string;
  dest: string;
  /** Where a case writes its input file (outside dest, inside the snapshot). */
  input: string;
  escapeDir: string;
  /** Removes dest and makes it again, empty. */
  resetDest(): Promise<void>;
  snapshot(): Promise<Map<string, string>>;
  /** What differs between two snapshots, and any planted escape name that exists outside dest. */
  escapes(before: Map<string, string>, after: Map<string, string>): string[];
  cleanup(): Promise<void>;
}

export const ABS_ESCAPE = '/fuzz-abs-escape-never-written';

/** Makes a sandbox in a fresh temp folder under `base` (default: the system temp folder). */
export async function makeSandbox(base = tmpdir()): Promise<Sandbox> {
  const outer = await mkdtemp(join(base, 'sandbox-'));
  const sandbox = join(outer, 'sandbox');
  const deep = join(sandbox, 'a', 'b', 'c');
  const dest = join(deep, 'dest');
  const escapeDir = join(outer, 'abs');
  await mkdir(join(sandbox, 'sibling'), { recursive: true });
  await mkdir(join(deep, 'dest-sibling'), { recursive: true });
  await mkdir(escapeDir);
  await mkdir(dest);
  await writeFile(join(outer, 'outer-sentinel.txt'), 'outer sentinel\n');
  await writeFile(join(sandbox, 'sibling', 'keep.txt'), 'sibling sentinel\n');
  await writeFile(join(deep, 'dest-sibling', 'keep.txt'), 'dest sibling sentinel\n');
  await writeFile(join(escapeDir, 'keep.txt'), 'escape target sentinel\n');

  const snapshot = async (): Promise<Map<string, string>> => {
    const out = new Map<string, string>();
    const walk = async (dir: string): Promise<void> => {
      for (const name of (await readdir(dir)).sort()) {
        const path = join(dir, name);
        if (path === dest) continue;
        const st = await lstat(path);
        const kind = st.isDirectory() ? 'dir' : st.isFile() ? 'file' : st.isSymbolicLink() ? 'link' : 'other';
        const content = st.isFile() ? sha256(await readFile(path)) : '';
        out.set(relative(outer, path), `${kind} ${(st.mode & 0o7777).toString(8)} ${st.size} ${st.mtimeMs} ${content}`);
        if (st.isDirectory()) await walk(path);
      }
    };
    await walk(outer);
    return out;
  };

  const planted = (): string[] => {
    const found: string[] = [];
    if (existsSync(ABS_ESCAPE)) found.push(ABS_ESCAPE);
    for (let dir = dirname(outer); ; dir = dirname(dir)) {
      for (const name of ['fuzz-escape', 'abs-escape']) if (existsSync(join(dir, name))) found.push(join(dir, name));
      if (dirname(dir) === dir) break;
    }
    return found;
  };
  // Planted names above `outer` that already exist are reported once, by the case that made them.
  const seen = new Set(planted());
  const plantedOutside = (): string[] => {
    const fresh = planted().filter((p) => !seen.has(p));
    for (const p of fresh) seen.add(p);
    return fresh;
  };

  return {
    outer,
    dest,
    input: join(sandbox, 'input.bin'),
    escapeDir,
    async resetDest() {
      await rm(dest, { recursive: true, force: true });
      await mkdir(dest);
    },
    snapshot,
    escapes(before, after) {
      const diffs: string[] = [];
      for (const [path, what] of after) {
        if (!before.has(path)) diffs.push(`new outside dest: ${path} (${what})`);
        else if (before.get(path) !== what) diffs.push(`changed outside dest: ${path} (${before.get(path)} -> ${what})`);
      }
      for (const path of before.keys()) if (!after.has(path)) diffs.push(`removed outside dest: ${path}`);
      for (const p of plantedOutside()) diffs.push(`planted escape name exists outside dest: ${p}`);
      return diffs;
    },
    cleanup: () => rm(outer, { recursive: true, force: true }),
  };
}
