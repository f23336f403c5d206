// Real release trees for the benches: a pinned npm package version, fetched once with `npm pack`
// (the only network traffic a bench makes) into bench/.cache/ and unpacked with the system's tar
// (not ferry's extractor, so the benches do not depend on ferry's archive format). A pinned
// version's tarball never changes, so a cached file is reused as is; npm itself checks the download
// against the registry's integrity hash.

import { mkdir, mkdtemp, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runChecked } from './measure.ts';

export const CACHE_DIR = fileURLToPath(new URL('../.cache/', import.meta.url));

/** `@scope/name@1.2.3` → `scope-name-1.2.3.tgz`, the name `npm pack` gives it. */
export function tarballName(spec: string): string {
  const at = spec.lastIndexOf('@');
  if (at <= 0 || !/^\d+\.\d+\.\d+$/.test(spec.slice(at + 1))) throw new Error(`${spec}: pin an exact version (name@x.y.z)`);
  return `${spec.slice(0, at).replace(/^@/, '').replace('/', '-')}-${spec.slice(at + 1)}.tgz`;
}

/** Returns the path of the cached tarball of `spec`, fetching it first when absent. */
export async function fetchPackage(spec: string, log: (line: string) => void): Promise<string> {
  const cached = join(CACHE_DIR, tarballName(spec));
  if (await stat(cached).then((s) => s.isFile(), () => false)) return cached;
  await mkdir(CACHE_DIR, { recursive: true });
  // Packed into a private folder then renamed, so an interrupted download never looks cached.
  const tmp = await mkdtemp(join(CACHE_DIR, 'pack-'));
  try {
    log(`npm pack ${spec}`);
    await runChecked('npm', ['pack', spec, '--ignore-scripts', '--silent', '--pack-destination', tmp], 5 * 60_000);
    const got = await readdir(tmp);
    if (got.length !== 1 || got[0] !== tarballName(spec)) throw new Error(`npm pack ${spec} left ${JSON.stringify(got)} in ${tmp}`);
    await rename(join(tmp, got[0]), cached);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  return cached;
}

/** Unpacks an npm tarball into `dest` (created) and returns the package root (`dest/package`). */
export async function unpackPackage(tarball: string, dest: string): Promise<string> {
  await mkdir(dest, { recursive: true, mode: 0o700 });
  await runChecked('tar', ['-xzf', tarball, '-C', dest, '--no-same-owner', '--no-same-permissions'], 5 * 60_000);
  const root = join(dest, 'package');
  if (!(await stat(root).then((s) => s.isDirectory(), () => false))) throw new Error(`${tarball} has no package/ folder`);
  return root;
}
