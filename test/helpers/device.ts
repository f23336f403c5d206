// Real device homes for tests, examples and crash tests: a home made by initDevice that trusts a
// test repository, opened as an Updater over real sources (a repository folder or a .ferry
// bundle), the bsdiff patcher, and whatever fake clock and health check the test hands in.
// Also an independent check of an installed tree (own walk, own hashing), so a test does not
// trust the code it is testing to say whether the bytes are right.

import { createHash } from 'node:crypto';
import { lstat, readdir, readFile, readlink, stat } from 'node:fs/promises';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import { initDevice } from '../../core/device/init.ts';
import { homeLayout, type HomeLayout } from '../../core/device/layout.ts';
import { parseDeviceConfig, readDeviceConfig, writeDeviceConfig, type DeviceConfig } from '../../core/device/config.ts';
import { createDirSource } from '../../core/ports/dir-source.ts';
import type { Source } from '../../core/ports/source.ts';
import { createBundleSource } from '../../core/publish/bundle.ts';
import { Updater } from '../../core/update/updater.ts';
import { createBsdiffPatcher } from '../../plugins/bsdiff/patcher.ts';
import type { HealthCheck, HealthResult } from '../../core/ports/health.ts';
import { isLink, type FileEntry, type TreeEntry, type ManifestDoc } from '../../core/trust/metadata.ts';
import type { UpdatePolicy } from '../../core/spec.ts';
import { makeRepo, tempDir, type TempDir, type TestRepo } from './repo.ts';

export interface OpenOptions {
  clock?: () => Date;
  health?: HealthCheck | null;
  /** Source specs (folder or .ferry file); default: the ones in ferry.json. */
  sources?: string[];
  log?: (message: string) => void;
}

export interface TestDevice {
  home: string;
  layout: HomeLayout;
  /** Opens an Updater on this home (takes its lock); the caller closes it. */
  open(options?: OpenOptions): Promise<Updater>;
  /** Opens, runs `fn`, closes (also on error). */
  with<T>(fn: (u: Updater) => Promise<T>, options?: OpenOptions): Promise<T>;
  config(): Promise<DeviceConfig>;
  /** Rewrites ferry.json through parseDeviceConfig (so only valid configs are written). */
  setConfig(patch: Partial<DeviceConfig>): Promise<void>;
  /** The version `current` links to, read with readlink (null when there is no link). */
  current(): Promise<string | null>;
  /** Installed release folders, sorted. */
  releases(): Promise<string[]>;
  cleanup(): Promise<void>;
}

let privateDirs = 0;

/** Source objects for specs, the way the CLI makes them: a folder, or a bundle unpacked under staging/. */
export async function sourcesFor(specs: string[], layout: HomeLayout): Promise<Source[]> {
  const out: Source[] = [];
  for (const spec of specs) {
    const st = await stat(spec).catch(() => null);
    // A bundle is unpacked lazily, after open() has taken the lock and cleared staging/.
    out.push(st?.isFile() ? createBundleSource(spec, join(layout.staging, `source-t${process.pid}-${privateDirs++}`)) : createDirSource(spec));
  }
  return out;
}

export async function makeDevice(input: {
  trust: Uint8Array;
  sources: string[];
  platform?: string;
  arch?: string;
  policy?: Partial<UpdatePolicy>;
  keepRestorePoints?: number;
  /** Defaults used by every open() unless it overrides them. */
  clock?: () => Date;
  health?: HealthCheck | null;
}): Promise<TestDevice> {
  const tmp: TempDir = await tempDir('ferry-device-');
  const home = join(tmp.path, 'home');
  await initDevice({
    home,
    trustBytes: input.trust,
    sources: input.sources,
    platform: input.platform ?? 'linux',
    arch: input.arch ?? 'x64',
    ...(input.policy ? { policy: input.policy } : {}),
    ...(input.keepRestorePoints !== undefined ? { keepRestorePoints: input.keepRestorePoints } : {}),
  });
  const layout = homeLayout(home);
  const device: TestDevice = {
    home,
    layout,
    async open(o = {}) {
      const config = await readDeviceConfig(layout.config);
      const clock = o.clock ?? input.clock;
      return Updater.open({
        home,
        sources: await sourcesFor(o.sources ?? config.sources, layout),
        patcher: createBsdiffPatcher(),
        health: o.health !== undefined ? o.health : (input.health ?? null),
        ...(clock ? { clock } : {}),
        ...(o.log ? { log: o.log } : {}),
      });
    },
    async with(fn, o) {
      const u = await device.open(o);
      try {
        return await fn(u);
      } finally {
        await u.close();
      }
    },
    config: () => readDeviceConfig(layout.config),
    async setConfig(patch) {
      const next = parseDeviceConfig(JSON.parse(JSON.stringify({ ...(await readDeviceConfig(layout.config)), ...patch })));
      await writeDeviceConfig(layout.config, next);
    },
    async current() {
      try {
        const target = await readlink(layout.current);
        const m = /^releases\/(.+)$/.exec(target);
        assert.ok(m, `current links to releases/<version>, not ${target}`);
        return m![1]!;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
        throw err;
      }
    },
    async releases() {
      return (await readdir(layout.releases)).sort();
    },
    cleanup: tmp.cleanup,
  };
  return device;
}

/** A clock that starts at `start` and moves `stepMs` forward on every reading (so ids stay ordered). */
export function fakeClock(start: Date, stepMs = 1): (() => Date) & { set(d: Date): void } {
  let t = start.getTime();
  const clock = () => new Date((t += stepMs));
  return Object.assign(clock, { set: (d: Date) => { t = d.getTime(); } });
}

/** A health check that answers from a script (true = healthy) and records what it was asked. */
export function fakeHealth(answers: boolean | boolean[]): HealthCheck & { calls: { version: string; dir: string }[] } {
  const calls: { version: string; dir: string }[] = [];
  return {
    calls,
    async check(target): Promise<HealthResult> {
      calls.push(target);
      const healthy = Array.isArray(answers) ? (answers[calls.length - 1] ?? answers[answers.length - 1] ?? true) : answers;
      return { healthy, detail: healthy ? 'fake: healthy' : 'fake: unhealthy' };
    },
  };
}

/**
 * Every regular file under `dir` with its sha256 and mode, by an own walk. A symlink is a failure,
 * unless `links` is given: then it is put there (path → target, read with readlink) instead.
 */
export async function hashTree(dir: string, links?: Map<string, string>): Promise<Map<string, { sha256: string; mode: number; size: number }>> {
  const out = new Map<string, { sha256: string; mode: number; size: number }>();
  async function walk(rel: string): Promise<void> {
    for (const name of await readdir(join(dir, rel))) {
      const path = rel ? `${rel}/${name}` : name;
      const st = await lstat(join(dir, path));
      if (st.isDirectory()) await walk(path);
      else if (st.isFile()) {
        const bytes = await readFile(join(dir, path));
        out.set(path, { sha256: createHash('sha256').update(bytes).digest('hex'), mode: st.mode & 0o7777, size: bytes.length });
      } else if (links && st.isSymbolicLink()) links.set(path, await readlink(join(dir, path)));
      else assert.unreachable(`${dir}/${path} is neither a file nor a folder`);
    }
  }
  await walk('');
  return out;
}

/** Asserts `dir` holds exactly the signed files, each with its signed sha256, size and mode, and the signed links with their targets. */
export async function assertTree(dir: string, entries: TreeEntry[], what = dir): Promise<void> {
  const links = new Map<string, string>();
  const got = await hashTree(dir, links);
  const files = entries.filter((f): f is FileEntry => !isLink(f));
  assert.equal([...got.keys()].sort(), files.map((f) => f.path).sort(), `${what}: the signed file set`);
  assert.equal(Object.fromEntries([...links].sort()), Object.fromEntries(entries.filter(isLink).map((l) => [l.path, l.target]).sort()), `${what}: the signed links and their targets`);
  for (const f of files) {
    const g = got.get(f.path)!;
    assert.is(g.sha256, f.sha256, `${what}/${f.path} sha256`);
    assert.is(g.size, f.size, `${what}/${f.path} size`);
    assert.is(g.mode, f.mode, `${what}/${f.path} mode`);
  }
}

/** Asserts `current` links to `version` and the tree behind it is exactly `manifest`'s linux-x64 (or `target`) file list. */
export async function assertInstalled(device: TestDevice, manifest: ManifestDoc, target = 'linux-x64'): Promise<void> {
  assert.is(await device.current(), manifest.version, 'current links to the expected version');
  const files = manifest.targets[target]?.files;
  assert.ok(files, `manifest ${manifest.version} has a ${target} release`);
  await assertTree(device.layout.current, files!, `current (${manifest.version})`);
  await assertTree(device.layout.release(manifest.version), files!, `releases/${manifest.version}`);
}

/** A new signed test repository and a device home that trusts it and reads it as its only source. */
export async function repoAndDevice(policy: Partial<UpdatePolicy> = {}, extra: Partial<Parameters<typeof makeDevice>[0]> = {}): Promise<{ repo: TestRepo; device: TestDevice }> {
  const repo = await makeRepo();
  const device = await makeDevice({ trust: await repo.trust(), sources: [repo.repo], policy, ...extra });
  return { repo, device };
}

/** Cleans up each of `things` in turn (devices, repositories, temp folders). */
export async function cleanupAll(...things: { cleanup(): Promise<void> }[]): Promise<void> {
  for (const t of things) await t.cleanup();
}
