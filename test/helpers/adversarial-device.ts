// The scene every adversarial device test starts from (test/adversarial/*): a real signed
// repository holding 1.0.0 and 1.1.0, and a device home put on 1.0.0 by the real CLI. Each case
// gets its own copies (repository and home, so one case's re-signed hostile release never meets
// another's device), a folder of sentinel files beside the home that nothing may touch, and
// helpers to sign a hand-built hostile full artifact for 1.1.0 with the repository's own release
// key (re-pinned in a new manifest and channel pointer, as a compromised publisher would).

import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import * as assert from 'uvu/assert';
import { readDeviceConfig, writeDeviceConfig, parseDeviceConfig } from '../../core/device/config.ts';
import { CHUNK_SIZE, digestFile } from '../../core/io/hash.ts';
import type { ArtifactRef, TreeEntry, ManifestDoc } from '../../core/trust/metadata.ts';
import { describeRun, ferry, signedFiles, TARGET } from './crash.ts';
import { makeRepo, tempDir, type TempDir, type TestRepo, type TreeSpec } from './repo.ts';
import { resignManifest, snapshotDir } from './tamper.ts';
import { tarEntryBytes, TAR_END, type TarEntry } from './tar-writer.ts';

const execFileP = promisify(execFile);

export const OLD = '1.0.0';
export const NEW = '1.1.0';

export interface AdversarialFixture {
  tmp: TempDir;
  repo: TestRepo;
  /** The device home template on 1.0.0 (never used directly: scenes copy it). */
  template: string;
  /** What 1.1.0 was published from (path → bytes and mode), to rebuild its archive by hand. */
  newTree: TreeSpec;
  files: Map<string, TreeEntry[]>;
  cleanup(): Promise<void>;
}

/**
 * Publishes 1.0.0 (`oldTree`), makes a home trusting the repository and updates it to 1.0.0 with
 * the real CLI, then publishes 1.1.0 (`newTree`, with `deltas` deltas).
 */
export async function makeAdversarialFixture(oldTree: TreeSpec, newTree: TreeSpec, options: { deltas?: number } = {}): Promise<AdversarialFixture> {
  const tmp = await tempDir('ferry-adv-');
  const repo = await makeRepo({ dir: join(tmp.path, 'publisher') });
  await repo.release(OLD, oldTree);
  const template = join(tmp.path, 'template');
  for (const args of [
    ['init', template, '--trust', repo.trustPath, '--source', repo.repo, '--platform', 'linux', '--arch', 'x64'],
    ['update', '--home', template],
  ]) {
    const r = await ferry(args);
    if (r.code !== 0) throw new Error(`fixture: ferry ${args[0]} failed: ${describeRun(r)}`);
  }
  await repo.release(NEW, newTree, { deltas: options.deltas ?? 3 });
  const files = new Map([[OLD, await signedFiles(repo.repo, OLD)], [NEW, await signedFiles(repo.repo, NEW)]]);
  return { tmp, repo, template, newTree, files, cleanup: () => tmp.cleanup() };
}

export interface Scene {
  dir: string;
  /** This case's copy of the repository folder (hostile changes go here). */
  repoDir: string;
  home: string;
  /** A folder beside the home holding sentinel files: nothing an update does may change it. */
  outside: string;
  /** Snapshot of `outside` and of the names beside the home, taken when the scene was made. */
  before: string[];
  /** Sets the device's sources in ferry.json. */
  setSources(specs: string[]): Promise<void>;
  /** Asserts nothing outside the home changed: the sentinels, and no new name beside the home. */
  assertOutsideUntouched(): Promise<void>;
  cleanup(): Promise<void>;
}

async function outsideState(dir: string, outside: string): Promise<string[]> {
  return [`beside the home: ${(await readdir(dir)).sort().join(' ')}`, ...(await snapshotDir(outside))];
}

/**
 * A fresh copy of the repository and of the 1.0.0 home. The home goes under `homeParent` when
 * given (a small filesystem), else beside the repository copy; sentinels go beside the home.
 */
export async function makeScene(fx: AdversarialFixture, options: { homeParent?: string } = {}): Promise<Scene> {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-adv-case-'));
  const repoDir = join(dir, 'repo');
  await execFileP('cp', ['-a', fx.repo.repo, repoDir]);
  const parent = options.homeParent ?? dir;
  const home = join(parent, 'home');
  await execFileP('cp', ['-a', fx.template, home]);
  const outside = join(parent, 'outside');
  await mkdir(join(outside, 'dir'), { recursive: true });
  await writeFile(join(outside, 'sentinel'), 'sentinel: must never change\n');
  await writeFile(join(outside, 'dir', 'sentinel'), 'sentinel: must never change\n');
  const before = await outsideState(parent, outside);
  const scene: Scene = {
    dir,
    repoDir,
    home,
    outside,
    before,
    async setSources(specs) {
      const path = join(home, 'ferry.json');
      await writeDeviceConfig(path, parseDeviceConfig(JSON.parse(JSON.stringify({ ...(await readDeviceConfig(path)), sources: specs }))));
    },
    async assertOutsideUntouched() {
      assert.equal(await outsideState(parent, outside), before, 'nothing outside the home changed');
    },
    async cleanup() {
      await execFileP('rm', ['-rf', dir]);
      if (options.homeParent) await execFileP('rm', ['-rf', home, outside]);
    },
  };
  await scene.setSources([repoDir]);
  return scene;
}

/** The genuine entries of `tree` as tar entries (sorted by path), with the tree's modes. */
export function genuineEntries(tree: TreeSpec): TarEntry[] {
  return Object.keys(tree).sort().map((path) => {
    const spec = tree[path]!;
    const content = typeof spec === 'string' || Buffer.isBuffer(spec) ? spec : spec.content;
    const mode = typeof spec === 'object' && !Buffer.isBuffer(spec) ? spec.mode : 0o644;
    return { name: path, content, mode };
  });
}

/** A gzipped tar of `entries`, in memory. */
export function tarGz(entries: (TarEntry | Buffer)[]): Buffer {
  return gzipSync(Buffer.concat([...entries.map((e) => (Buffer.isBuffer(e) ? e : tarEntryBytes(e))), TAR_END]));
}

/**
 * Replaces 1.1.0's full artifact in the scene's repository with `archive` (the bytes, or a file
 * already written at the artifact's path when null) and re-signs: the manifest pins the new
 * size, sha256 and chunks, drops every delta (so the device must take this archive), and lets
 * `mutate` change the rest; the channel pointer re-pins the manifest with sequence + 1.
 */
export async function signFullArtifact(fx: AdversarialFixture, scene: Scene, archive: Buffer | null, mutate: (doc: ManifestDoc) => void = () => {}): Promise<{ manifest: ManifestDoc; ref: ArtifactRef }> {
  const path = `releases/${NEW}/${TARGET}.full.tar.gz`;
  const file = join(scene.repoDir, path);
  if (archive) await writeFile(file, archive);
  const d = await digestFile(file, CHUNK_SIZE);
  const ref: ArtifactRef = { path, size: d.size, sha256: d.sha256, chunkSize: CHUNK_SIZE, chunks: d.chunks };
  const manifest = await resignManifest(scene.repoDir, NEW, [fx.repo.releaseKey], (m) => {
    const t = m.targets[TARGET]!;
    t.full = ref;
    t.deltas = [];
    delete (t as { deltaPacks?: unknown }).deltaPacks; // pack deltas (issue 14) too
    mutate(m);
  });
  return { manifest, ref };
}

/** The full artifact's path inside a scene's repository. */
export function fullArtifactFile(scene: Scene): string {
  return join(scene.repoDir, 'releases', NEW, `${TARGET}.full.tar.gz`);
}

/** Names in a folder (none when it does not exist). */
export async function namesIn(dir: string): Promise<string[]> {
  return (await readdir(dir).catch(() => [] as string[])).sort();
}
