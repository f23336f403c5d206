// The image side of `ferry run --container` (plugins/container/generation.ts): turns an installed
// release (its folder is an OCI image layout) into a root filesystem and the runtime spec umoci
// derives from the image config. The rootfs is unpacked once per version and shared, read-only, by
// every generation of that version (ARCHITECTURE.md "ferry run"); each generation gets its own
// config.json (generation.ts). A thin seam so the engine's bundle code can take its place.

import { execFile as execFileCb } from 'node:child_process';
import { mkdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { FerryError } from '../../core/errors.ts';

const execFile = promisify(execFileCb);

/** The parts of an OCI runtime spec (config.json) the supervisor reads or changes; the rest passes through. */
export interface RuntimeSpec {
  process: { terminal?: boolean; env?: string[]; args?: string[]; [k: string]: unknown };
  root: { path: string; readonly?: boolean };
  mounts?: { destination: string; type?: string; source?: string; options?: string[] }[];
  [k: string]: unknown;
}

export interface ImageBundle {
  /** The unpacked root filesystem (absolute). */
  rootfs: string;
  /** The spec made for this image (process args, env, cwd from the image config). */
  spec: RuntimeSpec;
}

/** The tag of the one image in the layout at `layoutDir` (index.json's ref.name), or null for untagged. */
async function onlyImageRef(layoutDir: string): Promise<string | null> {
  const text = await readFile(join(layoutDir, 'index.json'), 'utf8').catch(() => {
    throw new FerryError('ERR_NOT_FOUND', `${layoutDir} is not an OCI image layout (no index.json): is this a container release?`);
  });
  let index: { manifests?: { annotations?: Record<string, string> }[] };
  try {
    index = JSON.parse(text) as typeof index;
  } catch {
    throw new FerryError('ERR_JSON', `${layoutDir}/index.json is not JSON`);
  }
  const manifests = index.manifests ?? [];
  if (manifests.length !== 1) throw new FerryError('ERR_SCHEMA', `${layoutDir}/index.json lists ${manifests.length} images (a container release holds one)`);
  return manifests[0]!.annotations?.['org.opencontainers.image.ref.name'] ?? null;
}

/**
 * Unpacks the image of release folder `layoutDir` into `outDir` (made fresh: unpacked under a
 * temporary name, then renamed, so a half-unpacked tree is never used).
 */
export async function unpackImage(layoutDir: string, outDir: string): Promise<ImageBundle> {
  const ref = await onlyImageRef(layoutDir);
  const tmp = `${outDir}.unpacking`;
  await rm(tmp, { recursive: true, force: true });
  await rm(outDir, { recursive: true, force: true });
  await mkdir(join(outDir, '..'), { recursive: true, mode: 0o700 });
  try {
    await execFile('umoci', ['unpack', '--image', ref ? `${layoutDir}:${ref}` : layoutDir, tmp], { maxBuffer: 1 << 20 });
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    throw new FerryError('ERR_CONTAINER_ENGINE', e.code === 'ENOENT' ? 'umoci is not installed (ferry run --container unpacks images with it)' : `umoci unpack ${layoutDir}: ${(e.stderr ?? e.message).trim()}`);
  }
  await rename(tmp, outDir);
  const spec = JSON.parse(await readFile(join(outDir, 'config.json'), 'utf8')) as RuntimeSpec;
  return { rootfs: join(outDir, 'rootfs'), spec };
}
