// The application tree the apply bench ships: real binaries and JS from pinned npm packages (the
// bulk of the bytes, and what makes a delta realistic) plus generated modules and assets, so the
// tree has a few hundred files the way an app does. Version n+1 takes the next release of each
// package and edits a few generated files: some modules changed, a binary asset patched in place,
// a module added and one removed.

import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { pseudoRandomBytes } from '../../test/helpers/repo.ts';
import { fetchPackage, unpackPackage } from './npm-pack.ts';

/** A package in the app: where it goes under the tree, and its version in 1.0.0 and 1.1.0. */
export interface AppPackage {
  dir: string;
  name: string;
  from: string;
  to: string;
}

export const APP_PACKAGES: AppPackage[] = [
  // A 10 MB Go binary (the largest file of the tree).
  { dir: 'node_modules/@esbuild/linux-x64', name: '@esbuild/linux-x64', from: '0.24.0', to: '0.24.2' },
  // 22 MB of JS in 121 files, a few of them near 9 MB.
  { dir: 'node_modules/typescript', name: 'typescript', from: '5.6.2', to: '5.6.3' },
];

export const GENERATED_MODULES = 200;
export const GENERATED_ASSETS = 40;
/** Modules whose body changes in 1.1.0, assets patched in 1.1.0. */
const CHANGED_MODULES = [3, 41, 97, 120, 150, 188];
const CHANGED_ASSETS = [5, 33];
const REMOVED_MODULE = 199;

/** Deterministic words for generated modules, so they compress like source code does (not like noise). */
const WORDS = ['const', 'return', 'value', 'state', 'handler', 'config', 'request', 'result', 'index', 'options', 'buffer', 'await', 'error', 'length', 'render', 'update', 'items', 'cache'];

function moduleText(n: number, edit: number): string {
  let x = n * 2654435761 + 1;
  const next = () => { x = (x * 1103515245 + 12345) >>> 0; return x; };
  const lines = [`// generated module ${n}`, `import { helper } from './mod-${String((n + 1) % GENERATED_MODULES).padStart(3, '0')}.js';`];
  const count = 300 + (n % 7) * 60;
  for (let i = 0; i < count; i++) {
    const a = WORDS[next() % WORDS.length]!;
    const b = WORDS[next() % WORDS.length]!;
    // An edit changes a run of lines in the middle, as a code change would.
    const k = edit > 0 && i > count / 2 && i < count / 2 + 30 ? next() + edit : next() % 1000;
    lines.push(`export function ${a}_${n}_${i}(${b}) { return helper(${b}, ${k}) ?? '${a}-${b}'; }`);
  }
  return lines.join('\n') + '\n';
}

function assetBytes(n: number, edit: number): Buffer {
  const bytes = pseudoRandomBytes(150_000 + (n % 5) * 40_000, 1000 + n);
  // A patched asset differs in a handful of bytes (e.g. an embedded version stamp).
  for (let i = 0; i < edit * 8; i++) bytes.writeUInt32LE(0xfeed0000 + i, 4096 + i * 4099);
  return bytes;
}

async function put(dir: string, path: string, data: string | Buffer): Promise<void> {
  await mkdir(dirname(join(dir, path)), { recursive: true });
  await writeFile(join(dir, path), data, { mode: 0o644 });
}

/**
 * Writes the app tree of `version` ('1.0.0' or '1.1.0') into `dir` (created), fetching the
 * packages into bench/.cache first if needed. `scratch` is a private folder for unpacking.
 */
export async function writeAppTree(version: '1.0.0' | '1.1.0', dir: string, scratch: string, log: (line: string) => void): Promise<void> {
  const next = version === '1.1.0';
  await mkdir(dir, { recursive: true });
  for (const [i, pkg] of APP_PACKAGES.entries()) {
    const tarball = await fetchPackage(`${pkg.name}@${next ? pkg.to : pkg.from}`, log);
    const unpacked = await unpackPackage(tarball, join(scratch, `pkg-${i}`));
    await mkdir(dirname(join(dir, pkg.dir)), { recursive: true });
    await rename(unpacked, join(dir, pkg.dir));
    await rm(join(scratch, `pkg-${i}`), { recursive: true, force: true });
  }
  await put(dir, 'package.json', JSON.stringify({ name: 'bench-app', version, type: 'module' }, null, 2) + '\n');
  for (let n = 0; n < GENERATED_MODULES + (next ? 2 : 0); n++) {
    if (next && n === REMOVED_MODULE) continue;
    await put(dir, `src/modules/mod-${String(n).padStart(3, '0')}.js`, moduleText(n, next && CHANGED_MODULES.includes(n) ? 1 : 0));
  }
  for (let n = 0; n < GENERATED_ASSETS; n++) {
    await put(dir, `assets/blob-${String(n).padStart(2, '0')}.bin`, assetBytes(n, next && CHANGED_ASSETS.includes(n) ? 1 : 0));
  }
}
