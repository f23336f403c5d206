// The runtime bundle of one image release: <home>/containers/<version>/ holding the rootfs umoci
// unpacked from releases/<version>/ (the OCI layout), umoci's own config.json kept as
// config.base.json, and ferry's config.json (runtime-spec.ts) rewritten at every prepare, so a
// changed ferry.json (env, mounts, grants) takes effect at the next start.
//
// umoci only reads the release folder (checked: no file in it changes, not even a lock), so the
// immutable release stays as signed (SECURITY.md "Containers"). The rootfs is made in a private
// folder, flushed to disk, and renamed into place: a bundle under its final name is complete, and
// one a kill or power cut left half-made never gets that name (its leftovers are removed here).

import { execFile as execFileCb } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { FerryError } from '../../core/errors.ts';
import { fsyncDir, writeFileAtomic } from '../../core/io/durable.ts';
import { homeLayout } from '../../core/device/layout.ts';
import type { ContainerConfig } from '../../core/device/config.ts';
import { imageRequests, type ContainerGrants } from '../../core/image/requests.ts';
import { checkMountSourcesOnHost } from './mount-sources.ts';
import { readLayoutImage, type LayoutImage } from './image-layout.ts';
import { NOTHING_HANDED_IN, runtimeSpec, type HandedIn, type OciRuntimeConfig } from './runtime-spec.ts';

const execFile = promisify(execFileCb);
const UMOCI_TIMEOUT_MS = 300_000;

export interface PreparedBundle {
  version: string;
  /** <home>/containers/<version> */
  dir: string;
  /** The container's id: <container.name>-<version>. */
  id: string;
  image: LayoutImage;
  /** The config.json written. */
  config: OciRuntimeConfig;
}

export interface PrepareBundleInput {
  home: string;
  version: string;
  container: Pick<ContainerConfig, 'name' | 'env' | 'mounts'>;
  grants: ContainerGrants;
  /** Sockets and readiness channel the engine hands in (none by default). */
  handedIn?: HandedIn;
  /** The cgroup for the container (the engine's default when absent). */
  cgroupsPath?: string;
}

/** <name>-<version>: the id of a version's container (runc and podman accept [A-Za-z0-9_.+-]). */
export function containerId(name: string, version: string): string {
  return `${name}-${version}`;
}

/** The version of a container id of this app, or null when the id is not `<name>-…`. */
export function versionOfContainer(name: string, id: string): string | null {
  return id.startsWith(`${name}-`) && id.length > name.length + 1 ? id.slice(name.length + 1) : null;
}

export function bundleDir(home: string, version: string): string {
  return join(homeLayout(home).containers, version);
}

const PARTIAL = '.partial-';

/** Is `dir` a bundle umoci finished, of exactly this image? */
async function complete(dir: string, image: LayoutImage): Promise<boolean> {
  try {
    const made = JSON.parse(await readFile(join(dir, 'umoci.json'), 'utf8')) as { from_descriptor_path?: { descriptor_walk?: { digest?: string }[] } };
    const digest = made.from_descriptor_path?.descriptor_walk?.[0]?.digest;
    return digest === image.manifestDigest && (await stat(join(dir, 'rootfs'))).isDirectory() && (await stat(join(dir, 'config.base.json'))).isFile();
  } catch {
    return false;
  }
}

/**
 * Makes (or finds) the bundle of `version` and writes its config.json. The caller holds the home's
 * lock (a kill leaves at most leftovers of the same process kind, removed here). Grants are
 * re-checked (runtime-spec.ts): ERR_NOT_GRANTED before anything runs.
 */
export async function prepareBundle(input: PrepareBundleInput): Promise<PreparedBundle> {
  const layout = homeLayout(input.home);
  const release = layout.release(input.version);
  const image = await readLayoutImage(release, input.version);
  const dir = bundleDir(input.home, input.version);
  const id = containerId(input.container.name, input.version);
  await mkdir(layout.containers, { recursive: true });
  // Leftovers of an unpack a kill interrupted: never renamed into place, so never used.
  for (const name of await readdir(layout.containers)) {
    if (name.startsWith(`${PARTIAL}${input.version}-`)) await rm(join(layout.containers, name), { recursive: true, force: true });
  }
  if (!(await complete(dir, image))) {
    await rm(dir, { recursive: true, force: true });
    const partial = join(layout.containers, `${PARTIAL}${input.version}-${randomBytes(4).toString('hex')}`);
    try {
      await execFile('umoci', ['unpack', '--image', `${release}:${image.ref}`, partial], { timeout: UMOCI_TIMEOUT_MS, maxBuffer: 4 << 20 });
    } catch (err) {
      await rm(partial, { recursive: true, force: true });
      const e = err as NodeJS.ErrnoException & { stderr?: string };
      if (e.code === 'ENOENT') throw new FerryError('ERR_CONTAINER_ENGINE', 'umoci is not installed (it unpacks image releases for runc and podman)');
      throw new FerryError('ERR_CONTAINER_ENGINE', `umoci unpack of ${input.version} failed: ${String(e.stderr ?? e.message).trim().split('\n').pop()}`, { cause: err });
    }
    await rename(join(partial, 'config.json'), join(partial, 'config.base.json'));
    // umoci does not fsync: flush the whole filesystem's dirty data before the bundle gets its name,
    // so after a power cut a bundle under its final name has every byte.
    await execFile('sync', ['-f', partial], { timeout: UMOCI_TIMEOUT_MS }).catch(() => execFile('sync', [], { timeout: UMOCI_TIMEOUT_MS }));
    await rename(partial, dir);
    await fsyncDir(layout.containers);
  }
  const base = JSON.parse(await readFile(join(dir, 'config.base.json'), 'utf8')) as OciRuntimeConfig;
  const config = runtimeSpec({
    base,
    image: image.config,
    container: input.container,
    grants: input.grants,
    handedIn: input.handedIn ?? NOTHING_HANDED_IN,
    id,
    ...(input.cgroupsPath ? { cgroupsPath: input.cgroupsPath } : {}),
  });
  // The grants were checked by text (runtimeSpec); the engine binds what a source resolves to.
  await checkMountSourcesOnHost(imageRequests(image.config.Labels).mounts, input.grants, id);
  await writeFileAtomic(join(dir, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
  return { version: input.version, dir, id, image, config };
}

/** Removes the bundles of versions not in `keep` (and any leftovers); the caller stops their containers first. */
export async function removeBundlesExcept(home: string, keep: Set<string>): Promise<string[]> {
  const containers = homeLayout(home).containers;
  const removed: string[] = [];
  const entries = await readdir(containers, { withFileTypes: true }).catch(() => []);
  for (const e of entries) {
    if (!e.isDirectory() || e.name === 'podman') continue;
    if (e.name.startsWith(PARTIAL) || !keep.has(e.name)) {
      await rm(join(containers, e.name), { recursive: true, force: true });
      removed.push(e.name);
    }
  }
  return removed;
}
