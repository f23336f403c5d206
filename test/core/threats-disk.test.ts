// SECURITY.md row 23, disk full: the whole device home on a 3 MB tmpfs, a small 1.0.0 installed,
// then a 1.1.0 of incompressible bytes that fills the disk — once while downloading (the artifact
// alone is larger than the free space) and once while staging (the artifact fits, its extraction
// does not). Each must end in ERR_NO_SPACE (exit code 8 through the CLI), no .part in the cache,
// staging empty, 1.0.0 current with every file as signed, and a history record of the attempt.
// Needs root and tmpfs; without them it prints a SKIP line and registers no test.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, statfsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { initDevice } from '../../core/device/init.ts';
import { homeLayout, type HomeLayout } from '../../core/device/layout.ts';
import { createDirSource } from '../../core/ports/dir-source.ts';
import { Updater } from '../../core/update/updater.ts';
import type { ManifestDoc } from '../../core/trust/metadata.ts';
import { createBsdiffPatcher } from '../../plugins/bsdiff/patcher.ts';
import { assertCodeAsync } from '../helpers/assert-code.ts';
import { assertTree } from '../helpers/device.ts';
import { makeRepo, pseudoRandomBytes, type TestRepo } from '../helpers/repo.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const T = 'linux-x64';

/** Mounts a tmpfs of `size` at a fresh folder; returns it and how to unmount. */
function mountTmpfs(size: string): { dir: string; unmount(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-row23-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0755`, 'tmpfs', dir], { stdio: 'pipe' });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    dir,
    unmount() {
      const r = spawnSync('umount', [dir], { stdio: 'pipe' });
      if (r.status !== 0) spawnSync('umount', ['-l', dir], { stdio: 'pipe' });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function tmpfsWorks(): string | null {
  if (process.getuid?.() !== 0) return 'not root';
  try {
    mountTmpfs('1m').unmount();
    return null;
  } catch (err) {
    return `mount -t tmpfs failed: ${(err as Error).message.split('\n')[0]}`;
  }
}

function freeBytes(dir: string): number {
  const st = statfsSync(dir);
  return st.bavail * st.bsize;
}

interface Scene {
  repo: TestRepo;
  home: string;
  layout: HomeLayout;
  r1: ManifestDoc;
  open(): Promise<Updater>;
}

/** A home on `mnt` with a small 1.0.0 (about 100 KB) installed from a repository on the normal disk. */
async function smallInstalled(mnt: string, repo: TestRepo): Promise<Scene> {
  const home = join(mnt, 'home');
  await initDevice({ home, trustBytes: await repo.trust(), sources: [repo.repo], platform: 'linux', arch: 'x64' });
  const r1 = await repo.release('1.0.0', { 'server.js': 'export const VERSION = "1.0.0";\n', 'lib/data.bin': pseudoRandomBytes(100_000, 23) }, { deltas: 0 });
  const open = () => Updater.open({ home, sources: [createDirSource(repo.repo)], patcher: createBsdiffPatcher(), health: null });
  const u = await open();
  try {
    assert.is((await u.apply()).status, 'committed');
  } finally {
    await u.close();
  }
  return { repo, home, layout: homeLayout(home), r1: r1.manifest, open };
}

/** Everything SECURITY.md's "refused" asks of a disk-full attempt, checked from outside the updater. */
async function assertCleanNoSpace(s: Scene): Promise<void> {
  const cache = await readdir(s.layout.cache).catch(() => [] as string[]);
  assert.equal(cache.filter((n) => n.endsWith('.part')), [], `no partial download in cache/ (${cache.join(', ')})`);
  assert.equal(await readdir(s.layout.staging), [], 'staging/ is empty');
  assert.equal(await readdir(s.layout.releases), ['1.0.0'], 'no 1.1.0 release folder');
  await assertTree(s.layout.current, s.r1.targets[T]!.files, 'current (1.0.0)');
  await assertTree(s.layout.release('1.0.0'), s.r1.targets[T]!.files, 'releases/1.0.0');
  const u = await s.open();
  try {
    assert.is(await u.currentVersion(), '1.0.0');
    const status = await u.status();
    assert.is(status.phase, 'idle');
    const records = (await u.history()).filter((h) => h.to === '1.1.0');
    assert.ok(records.length > 0, `a history record of the attempt (${JSON.stringify(await u.history())})`);
    for (const r of records) {
      assert.is(r.errorCode, 'ERR_NO_SPACE', `record ${r.id}: ${JSON.stringify(r)}`);
      assert.is(r.outcome, 'failed');
      assert.ok(r.finishedAt, 'the record is finished');
    }
  } finally {
    await u.close();
  }
}

/** `ferry apply --home` in a child process: its exit code, and the line it printed. */
function cliApply(home: string): { status: number | null; output: string } {
  const r = spawnSync(process.execPath, [join(ROOT, 'dist', 'cli', 'ferry.js'), 'apply', '--home', home], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

const skip = tmpfsWorks();
if (skip) {
  console.log(`SKIP: row 23 disk-full tests need root and a tmpfs mount (${skip})`);
} else {
  const row23 = suite('row 23 disk full: a home on a 3 MB tmpfs refuses an update that does not fit, cleanly');

  row23('the artifact alone is larger than the free space: ERR_NO_SPACE while downloading, .part removed, 1.0.0 intact; CLI exits 8', async () => {
    const repo = await makeRepo();
    const mnt = mountTmpfs('3m');
    try {
      const s = await smallInstalled(mnt.dir, repo);
      const free = freeBytes(mnt.dir);
      const big = randomBytes(free + 512 * 1024);
      const r2 = await repo.release('1.1.0', { 'server.js': 'export const VERSION = "1.1.0";\n', 'lib/data.bin': big }, { deltas: 0 });
      assert.ok(r2.full.size > free, `the artifact (${r2.full.size}) is larger than the free space (${free})`);
      const u = await s.open();
      try {
        const err = await assertCodeAsync(() => u.apply(), 'ERR_NO_SPACE');
        assert.match(err.message, /no space/i);
        assert.is(err.retryable, true);
      } finally {
        await u.close();
      }
      await assertCleanNoSpace(s);
      assert.ok(freeBytes(mnt.dir) >= free - 64 * 1024, `the space is given back (${freeBytes(mnt.dir)} free, ${free} before)`);

      const cli = cliApply(s.home);
      assert.is(cli.status, 8, `ferry apply exits 8 on a full disk: ${cli.output}`);
      assert.match(cli.output, /ERR_NO_SPACE|no space/i);
      await assertCleanNoSpace(s);
    } finally {
      mnt.unmount();
      await repo.cleanup();
    }
  });

  row23('the artifact fits but its extraction does not: ERR_NO_SPACE while staging, staging emptied, 1.0.0 intact; CLI exits 8', async () => {
    const repo = await makeRepo();
    const mnt = mountTmpfs('3m');
    try {
      const s = await smallInstalled(mnt.dir, repo);
      const free = freeBytes(mnt.dir);
      // ~60% of the free space: the download fits, the same bytes again in staging do not.
      const big = randomBytes(Math.floor(free * 0.6));
      const r2 = await repo.release('1.1.0', { 'server.js': 'export const VERSION = "1.1.0";\n', 'lib/data.bin': big }, { deltas: 0 });
      assert.ok(r2.full.size < free && r2.full.size * 2 > free, `artifact ${r2.full.size} fits once in ${free}, not twice`);
      const log: string[] = [];
      const u = await Updater.open({ home: s.home, sources: [createDirSource(repo.repo)], patcher: createBsdiffPatcher(), health: null, log: (m) => log.push(m) });
      try {
        await assertCodeAsync(() => u.apply(), 'ERR_NO_SPACE');
        const record = (await u.history()).find((h) => h.to === '1.1.0');
        assert.ok((record?.bytesMoved ?? 0) >= r2.full.size, `the download completed before staging filled the disk (bytesMoved ${record?.bytesMoved})`);
      } finally {
        await u.close();
      }
      await assertCleanNoSpace(s);

      const cli = cliApply(s.home);
      assert.is(cli.status, 8, `ferry apply exits 8 on a full disk: ${cli.output}`);
      await assertCleanNoSpace(s);
    } finally {
      mnt.unmount();
      await repo.cleanup();
    }
  });

  row23.run();
}
