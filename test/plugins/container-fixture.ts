// A real device whose app ships as images (issue 15), shared by the container plugin and crash
// tests: one signed repository, one image family (test/helpers/oci-image.ts: a shared base layer,
// an app layer per version), releases published as ordinary release trees (the OCI layout is then
// releases/<v>/ on the device), and a device home whose ferry.json has a `container` section with a
// host port handed in. Releases are published as `ferry release --image` does, or as plain trees.
// Containers are found and removed by id under the home's own engine state.

import { execFile as execFileCb } from 'node:child_process';
import { existsSync } from 'node:fs';
import { freePort } from '../helpers/net.ts';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { publishRelease } from '../../core/publish/publish.ts';
import { importImage } from '../../core/image/import-image.ts';
import type { ContainerRef } from '../../core/trust/metadata.ts';
import { createBsdiffPatcher } from '../../plugins/bsdiff/patcher.ts';
import { homeLayout } from '../../core/device/layout.ts';
import type { ContainerConfig } from '../../core/device/config.ts';
import { runcRoot, runtimeStateDir } from '../../plugins/container/engine.ts';
import { createPodmanEngine, podmanGlobalArgs } from '../../plugins/container/podman.ts';
import { imageFamily, type ImageFamily, type ImageVersion } from '../helpers/oci-image.ts';
import { makeRepo, tempDir, type TempDir, type TestRepo } from '../helpers/repo.ts';
import { makeDevice, type TestDevice } from '../helpers/device.ts';

const execFile = promisify(execFileCb);

/** A container runc holds state for, as `runc list` reports it. */
export interface ListedContainer {
  id: string;
  status: string;
}

/** Does runc hold state for container `id` of `home`? (Read from its state folder: polled every few ms, cheaper than running runc.) */
export function runcHas(home: string, id: string): boolean {
  return existsSync(join(runcRoot(homeLayout(home)), id, 'state.json'));
}

/** The containers runc holds for `home`. */
export async function runcList(home: string): Promise<ListedContainer[]> {
  const { stdout } = await execFile('runc', ['--root', runcRoot(homeLayout(home)), 'list', '--format', 'json']);
  return ((JSON.parse(stdout || 'null') as ListedContainer[] | null) ?? []).map((c) => ({ id: c.id, status: c.status }));
}

export interface ContainerFixture {
  tmp: TempDir;
  repo: TestRepo;
  family: ImageFamily;
  device: TestDevice;
  home: string;
  /** container.name */
  name: string;
  port: number;
  /** A host folder bound read-only at /data (it holds greeting.txt). */
  dataDir: string;
  /**
   * Builds and publishes `v`: as `ferry release --image` does (importImage: layers uncompressed, the
   * signed container field, verified on the device while staging), or with `plain` as an ordinary
   * release tree holding the layout as umoci made it (gzip layers, nothing image-specific signed).
   */
  publish(v: ImageVersion, options?: { plain?: boolean }): Promise<void>;
  /** GET / on the handed-in port: the serving version (or the error text). */
  answer(): Promise<string>;
  /** Ids of this home's containers with their status, from the engine's own CLI. */
  containers(): Promise<{ id: string; status: string }[]>;
  /** Removes every container of this home by id, then the temp folders. */
  cleanup(): Promise<void>;
}

export async function containerFixture(options: { engine?: 'runc' | 'podman'; container?: Partial<ContainerConfig>; /** ferry.json health.url is the container's /health on the handed-in port. */ healthUrl?: boolean } = {}): Promise<ContainerFixture> {
  const tmp = await tempDir('ferry-container-');
  const repo = await makeRepo({ dir: join(tmp.path, 'repo-dir') });
  const family = await imageFamily(join(tmp.path, 'images'));
  const device = await makeDevice({ trust: await repo.trust(), sources: [repo.repo] });
  const port = await freePort();
  const name = `ferry-t${process.pid}`;
  const dataDir = join(tmp.path, 'data');
  await mkdir(dataDir, { recursive: true });
  await writeFile(join(dataDir, 'greeting.txt'), 'mounted from the device\n');
  const engine = options.engine ?? 'runc';
  const container: ContainerConfig = {
    engine,
    name,
    env: { GREETING: 'from ferry.json' },
    mounts: [{ source: dataDir, destination: '/data', readOnly: true }],
    listen: [`127.0.0.1:${port}`],
    exec: null,
    stopTimeoutMs: 3000,
    watchSeconds: 10,
    allow: { privileged: false, hostNetwork: false, capabilities: [], mountSources: [] },
    ...options.container,
  };
  await device.setConfig({ container, health: options.healthUrl ? { url: `http://127.0.0.1:${port}/health`, timeoutMs: 10_000 } : null });
  const layouts = join(tmp.path, 'layouts');
  const dirs = homeLayout(device.home);
  const engineCli = (args: string[]) => (engine === 'runc' ? execFile('runc', ['--root', runcRoot(dirs), ...args]) : execFile('podman', [...podmanGlobalArgs(dirs), ...args]));
  const containers = async () => {
    if (engine === 'runc') {
      const { stdout } = await engineCli(['list', '--format', 'json']);
      return ((JSON.parse(stdout || 'null') as { id: string; status: string }[] | null) ?? []).map((c) => ({ id: c.id, status: c.status }));
    }
    const { stdout } = await engineCli(['ps', '--all', '--format', 'json']);
    return ((JSON.parse(stdout || '[]') as { Names?: string[]; State?: string }[] | null) ?? []).map((c) => ({ id: c.Names?.[0] ?? '', status: c.State === 'exited' ? 'stopped' : c.State ?? '' }));
  };
  return {
    tmp,
    repo,
    family,
    device,
    home: device.home,
    name,
    port,
    dataDir,
    async publish(v, o = {}) {
      const built = await family.build(v, join(layouts, `${v.version}-built`));
      let dir = built;
      let container: ContainerRef | undefined;
      if (!o.plain) {
        dir = join(layouts, v.version);
        const image = await importImage({ from: built, outDir: dir, workDir: join(layouts, `${v.version}-scratch`), defaultRef: v.version });
        container = { ref: image.ref, manifestDigest: image.manifestDigest, configDigest: image.configDigest };
      }
      await publishRelease({
        repo: repo.repo, appDir: dir, version: v.version, channel: 'stable', keys: [repo.releaseKey], platform: 'linux', arch: 'x64',
        deltas: 2, expiresIn: 30 * 86400, now: new Date(), patcher: createBsdiffPatcher(), compressionLevel: 5,
        ...(container ? { container } : {}),
      });
    },
    async answer() {
      try {
        return await (await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(5000) })).text();
      } catch (err) {
        return `no answer: ${(err as Error).message}`;
      }
    },
    containers,
    async cleanup() {
      for (const c of await containers().catch(() => [])) {
        // podman through its engine: stop() also waits for the container's conmon, which cleans up after `podman rm`.
        if (engine === 'runc') await engineCli(['delete', '--force', c.id]).catch(() => {});
        else await createPodmanEngine(dirs).stop(c.id, 3000).catch(() => {});
      }
      // podman's conmon may still write its exit record for a moment after `podman rm` returned.
      for (let attempt = 0; ; attempt++) {
        try {
          await device.cleanup();
          await rm(engine === 'runc' ? runcRoot(dirs) : runtimeStateDir(dirs, 'podman'), { recursive: true, force: true });
          break;
        } catch (err) {
          if (attempt >= 20) throw err;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      await repo.cleanup();
      await tmp.cleanup();
    },
  };
}
