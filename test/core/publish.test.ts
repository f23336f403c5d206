// Publishing releases (SECURITY.md rows 1, 9, 11): a release is a signed manifest pinning a
// deterministic full artifact and per-file deltas that rebuild the new tree byte for byte; a
// refused or failed release leaves the repository exactly as it was; channel pointers only move
// forward.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { FerryError } from '../../core/errors.ts';
import { lstat, mkdir, readdir, readFile, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { publishRelease } from '../../core/publish/publish.ts';
import { createDirSource } from '../../core/ports/dir-source.ts';
import { verifyRepository } from '../../core/trust/verify-repo.ts';
import { readChannel } from '../../core/trust/trusted-metadata.ts';
import { readRepoRoot, repoSource } from '../../core/publish/repository.ts';
import { archiveCoder, extractArchive } from '../../core/io/extract.ts';
import { applyDelta } from '../../core/delta/apply-delta.ts';
import { sha256, sha256File } from '../../core/io/hash.ts';
import { parseManifestPayload, regularFiles, type DeltaOp, type ManifestDoc, type TreeEntry } from '../../core/trust/metadata.ts';
import { createBsdiffPatcher } from '../../plugins/bsdiff/patcher.ts';
import { makeRepo, pseudoRandomBytes, sampleApp, tempDir, writeTree, type TestRepo, type TreeSpec } from '../helpers/repo.ts';
import { assertCodeAsync } from '../helpers/assert-code.ts';
import { flipByte, readPayload, snapshotDir } from '../helpers/tamper.ts';

async function verify(t: TestRepo, now = new Date()) {
  const scratch = await tempDir('ferry-scratch-');
  try {
    return await verifyRepository(createDirSource(t.repo), await t.trust(), { now, scratch: scratch.path, partial: false });
  } finally {
    await scratch.cleanup();
  }
}

/** Runs `body` with a fresh repository and removes it afterwards, pass or fail. */
async function withRepo(body: (t: TestRepo) => Promise<void>): Promise<void> {
  const t = await makeRepo();
  try {
    await body(t);
  } finally {
    await t.cleanup();
  }
}

function specContent(spec: TreeSpec[string]): Buffer {
  return Buffer.from(typeof spec === 'string' || Buffer.isBuffer(spec) ? spec : spec.content);
}

function specMode(spec: TreeSpec[string]): number {
  return typeof spec === 'object' && !Buffer.isBuffer(spec) ? spec.mode : 0o644;
}

/** Every regular file under `dir` with its sha256 and permission bits, sorted by path. */
async function readTreeState(dir: string): Promise<{ path: string; sha256: string; mode: number }[]> {
  const out: { path: string; sha256: string; mode: number }[] = [];
  for (const rel of (await readdir(dir, { recursive: true })).map(String).sort()) {
    const st = await lstat(join(dir, rel));
    if (st.isDirectory()) continue;
    assert.ok(st.isFile(), `${rel} is a regular file`);
    out.push({ path: rel, sha256: await sha256File(join(dir, rel)), mode: st.mode & 0o7777 });
  }
  return out;
}

function specState(tree: TreeSpec) {
  return Object.keys(tree).sort().map((path) => ({ path, sha256: sha256(specContent(tree[path]!)), mode: specMode(tree[path]!) }));
}

function manifestState(files: TreeEntry[]) {
  return regularFiles(files).sort((a, b) => (a.path < b.path ? -1 : 1)).map((f) => ({ path: f.path, sha256: f.sha256, mode: f.mode }));
}

async function readManifestDoc(t: TestRepo, version: string): Promise<ManifestDoc> {
  // Parsed, so deltas of both wire layouts (`deltas`, `deltaPacks`) come back as one list (a
  // separate file list inlined by readPayload).
  return parseManifestPayload(Buffer.from(JSON.stringify(await readPayload<ManifestDoc>(join(t.repo, 'releases', version, 'manifest.json')))));
}

// ---------------------------------------------------------------------------------------------

const roundTrip = suite('publishes releases a pinned root verifies');

roundTrip('releases 1.0.0 and 1.1.0; verifyRepository is ok and lists both', () => withRepo(async (t) => {
  const r1 = await t.release('1.0.0', sampleApp('1.0.0'));
  const r2 = await t.release('1.1.0', sampleApp('1.1.0'));
  assert.is(r1.target, 'linux-x64');
  assert.is(r1.manifest.version, '1.0.0');
  assert.is(r2.channel.targets['linux-x64']?.version, '1.1.0');
  assert.equal(r2.deltas.map((d) => d.from), ['1.0.0']);

  const report = await verify(t);
  assert.equal(report.problems, []);
  assert.is(report.ok, true);
  assert.equal(report.releases.map((r) => r.version), ['1.0.0', '1.1.0']);
  for (const r of report.releases) {
    assert.equal(r.targets, ['linux-x64']);
    assert.ok(r.artifacts.length > 0);
    for (const a of r.artifacts) assert.is(a.status, 'ok', `${a.path} verified`);
  }
  assert.equal(report.channels.map((c) => [c.channel, c.targets]), [['stable', { 'linux-x64': '1.1.0' }]]);
}));

roundTrip('the manifest file list is exactly the source tree: paths, sizes, modes, hashes', () => withRepo(async (t) => {
  const tree = sampleApp('1.1.0');
  const r = await t.release('1.1.0', tree);
  const files = r.manifest.targets['linux-x64']!.files;
  assert.equal(manifestState(files), specState(tree));
  for (const f of regularFiles(files)) assert.is(f.size, specContent(tree[f.path]!).length);
}));

roundTrip.run();

// ---------------------------------------------------------------------------------------------

const refuses = suite('refuses a release that cannot be right, leaving the repository byte for byte');

refuses('refuses a version that is not semver (ERR_VERSION)', () => withRepo(async (t) => {
  await t.release('1.0.0', sampleApp('1.0.0'));
  const before = await snapshotDir(t.repo);
  for (const v of ['1.1', 'v1.1.0', '1.1.0.0', 'latest', '01.1.0']) {
    await assertCodeAsync(() => t.release(v, sampleApp('1.1.0')), 'ERR_VERSION');
  }
  assert.equal(await snapshotDir(t.repo), before);
}));

refuses('refuses a version not greater than the channel latest (ERR_VERSION)', () => withRepo(async (t) => {
  await t.release('1.0.0', sampleApp('1.0.0'));
  await t.release('1.2.0', sampleApp('1.2.0'));
  const before = await snapshotDir(t.repo);
  const err = await assertCodeAsync(() => t.release('1.1.0', sampleApp('1.1.0')), 'ERR_VERSION');
  assert.match(err.message, /not greater than 1\.2\.0/);
  await assertCodeAsync(() => t.release('1.2.0-rc.1', sampleApp('1.1.0')), 'ERR_VERSION');
  assert.equal(await snapshotDir(t.repo), before);
}));

refuses('refuses a version already published for the target (ERR_ALREADY_PUBLISHED)', () => withRepo(async (t) => {
  // 1.0.0 is on beta for linux-x64; releasing it again on stable (no latest there) is a republish.
  await t.release('1.0.0', sampleApp('1.0.0'), { channel: 'beta' });
  const before = await snapshotDir(t.repo);
  await assertCodeAsync(() => t.release('1.0.0', sampleApp('1.1.0'), { channel: 'stable' }), 'ERR_ALREADY_PUBLISHED');
  assert.equal(await snapshotDir(t.repo), before);
}));

refuses('refuses a key the root does not delegate for releases (ERR_UNKNOWN_KEY)', () => withRepo(async (t) => {
  await t.release('1.0.0', sampleApp('1.0.0'));
  const before = await snapshotDir(t.repo);
  await assertCodeAsync(() => t.release('1.1.0', sampleApp('1.1.0'), { keys: [t.rootKey] }), 'ERR_UNKNOWN_KEY');
  await assertCodeAsync(() => t.release('1.1.0', sampleApp('1.1.0'), { keys: [t.releaseKey, t.rootKey] }), 'ERR_UNKNOWN_KEY');
  assert.equal(await snapshotDir(t.repo), before);
}));

refuses('refuses a tree holding a symlink to /etc/passwd, out of the tree (ERR_UNSUPPORTED_FILE)', () => withRepo(async (t) => {
  await t.release('1.0.0', sampleApp('1.0.0'));
  const before = await snapshotDir(t.repo);
  const appDir = join(t.dir, 'app-with-link');
  await writeTree(appDir, sampleApp('1.1.0'));
  await symlink('/etc/passwd', join(appDir, 'lib', 'passwd'));
  const err = await assertCodeAsync(() => publishRelease({
    repo: t.repo, appDir, version: '1.1.0', channel: 'stable', keys: [t.releaseKey], platform: 'linux', arch: 'x64',
    deltas: 3, expiresIn: 86400, now: new Date(), patcher: createBsdiffPatcher(),
  }), 'ERR_UNSUPPORTED_FILE');
  assert.match(err.message, /lib\/passwd is a symlink/);
  assert.equal(await snapshotDir(t.repo), before);
  assert.is((await verify(t)).ok, true);
}));

refuses('refuses a setuid file in the tree (ERR_UNSUPPORTED_FILE)', () => withRepo(async (t) => {
  const before = await snapshotDir(t.repo);
  await assertCodeAsync(() => t.release('1.0.0', { ...sampleApp('1.0.0'), 'bin/su': { content: 'x', mode: 0o4755 } }), 'ERR_UNSUPPORTED_FILE');
  assert.equal(await snapshotDir(t.repo), before);
}));

refuses('a release failing mid-way (corrupt base artifact while making deltas) leaves no trace', () => withRepo(async (t) => {
  await t.release('1.0.0', sampleApp('1.0.0'));
  // The base full artifact is damaged after publishing: building the delta from it must fail,
  // after the work folder was made inside the repository, and that folder must be gone again.
  const full = join(t.repo, 'releases', '1.0.0', 'linux-x64.full.tar.br');
  const bytes = await readFile(full);
  await flipByte(full, bytes.length - 12); // inside the brotli stream's tail
  const before = await snapshotDir(t.repo);
  // The damage is refused as a malformed stream or as entry bytes that do not hash, depending on
  // where the brotli stream's tail puts it; either way nothing is left behind.
  const refused = await t.release('1.1.0', sampleApp('1.1.0')).then(() => undefined, (err: unknown) => err);
  assert.ok(refused instanceof FerryError && ['ERR_UNSAFE_ARCHIVE', 'ERR_HASH_MISMATCH'].includes(refused.code), `refused with ERR_UNSAFE_ARCHIVE or ERR_HASH_MISMATCH, got ${String(refused)}`);
  assert.equal(await snapshotDir(t.repo), before);
  assert.not.ok(before.some((line) => line.startsWith('.ferry-work-')));
}));

refuses.run();

// ---------------------------------------------------------------------------------------------

const determinism = suite('builds the same artifact bytes from the same tree');

determinism('one tree released for two platforms gives identical full artifacts', () => withRepo(async (t) => {
  const a = await t.release('1.0.0', sampleApp('1.0.0'), { platform: 'linux', arch: 'x64' });
  const b = await t.release('1.0.0', sampleApp('1.0.0'), { platform: 'linux', arch: 'arm64' });
  assert.is.not(a.full.path, b.full.path);
  assert.is(a.full.sha256, b.full.sha256);
  assert.is(a.full.size, b.full.size);
  const bytesA = await readFile(join(t.repo, a.full.path));
  const bytesB = await readFile(join(t.repo, b.full.path));
  assert.ok(bytesA.equals(bytesB), 'byte-identical full artifacts');
}));

determinism('one tree released in two separate repositories gives identical full artifacts', async () => {
  const one = await makeRepo();
  const two = await makeRepo();
  try {
    // Written at different times in different folders: mtimes and paths must not leak in.
    const a = await one.release('2.0.0', sampleApp('2.0.0', 3));
    await new Promise((r) => setTimeout(r, 1100));
    const b = await two.release('2.0.0', sampleApp('2.0.0', 3));
    assert.is(a.full.sha256, b.full.sha256);
    assert.ok((await readFile(join(one.repo, a.full.path))).equals(await readFile(join(two.repo, b.full.path))));
    // A one-byte change in one file changes the artifact.
    const c = await two.release('2.0.1', { ...sampleApp('2.0.0', 3), 'assets/logo.txt': 'ferrz\n' });
    assert.is.not(c.full.sha256, a.full.sha256);
  } finally {
    await one.cleanup();
    await two.cleanup();
  }
});

determinism.run();

// ---------------------------------------------------------------------------------------------

const deltas = suite('makes deltas that rebuild the new tree byte for byte');

/** Extracts `base`'s full artifact, applies the delta from it to `target`, returns the output dir. */
async function rebuildFromDelta(t: TestRepo, work: string, base: ManifestDoc, target: ManifestDoc): Promise<string> {
  const key = 'linux-x64';
  const baseRel = base.targets[key]!;
  const newRel = target.targets[key]!;
  const delta = newRel.deltas.find((d) => d.from === base.version);
  assert.ok(delta, `${target.version} has a delta from ${base.version}`);
  const baseDir = join(work, `base-${base.version}-for-${target.version}`);
  const outDir = join(work, `out-${base.version}-to-${target.version}`);
  await mkdir(baseDir);
  await mkdir(outDir);
  await extractArchive(join(t.repo, baseRel.full.path), baseDir, new Map(baseRel.files.map((f) => [f.path, f])), undefined, undefined, undefined, archiveCoder(baseRel.full.path));
  await applyDelta({
    baseDir,
    ops: delta!.ops,
    targetFiles: newRel.files,
    artifact: join(t.repo, delta!.artifact.path),
    outDir,
    workDir: join(work, `w-${base.version}-to-${target.version}`),
    patcher: createBsdiffPatcher(),
  });
  return outDir;
}

deltas('every delta among 1.0.0, 1.1.0, 1.2.0 rebuilds its target tree (hashes and modes)', () => withRepo(async (t) => {
  const trees: Record<string, TreeSpec> = { '1.0.0': sampleApp('1.0.0'), '1.1.0': sampleApp('1.1.0'), '1.2.0': sampleApp('1.2.0') };
  for (const [v, tree] of Object.entries(trees)) await t.release(v, tree);
  const docs = Object.fromEntries(await Promise.all(Object.keys(trees).map(async (v) => [v, await readManifestDoc(t, v)] as const)));
  assert.equal(docs['1.1.0']!.targets['linux-x64']!.deltas.map((d) => d.from), ['1.0.0']);
  assert.equal(docs['1.2.0']!.targets['linux-x64']!.deltas.map((d) => d.from).sort(), ['1.0.0', '1.1.0']);

  const work = join(t.dir, 'rebuild');
  await mkdir(work);
  let checked = 0;
  for (const target of Object.values(docs)) {
    for (const delta of target.targets['linux-x64']!.deltas) {
      const out = await rebuildFromDelta(t, work, docs[delta.from]!, target);
      const got = await readTreeState(out);
      assert.equal(got, manifestState(target.targets['linux-x64']!.files), `${delta.from} -> ${target.version} matches the manifest`);
      assert.equal(got, specState(trees[target.version]!), `${delta.from} -> ${target.version} matches the source tree`);
      checked++;
    }
  }
  assert.is(checked, 3);
}));

deltas('a renamed unchanged file becomes a copy op from its old path', () => withRepo(async (t) => {
  const doc = pseudoRandomBytes(50_000, 99);
  await t.release('1.0.0', { 'docs/manual.pdf': doc, 'app.js': 'v1\n' });
  const r = await t.release('1.1.0', { 'docs/guide.pdf': doc, 'app.js': 'v2\n' });
  const ops = r.manifest.targets['linux-x64']!.deltas[0]!.ops;
  const byPath = new Map<string, DeltaOp>(ops.map((op) => [op.path, op]));
  assert.equal(byPath.get('docs/guide.pdf'), { op: 'copy', path: 'docs/guide.pdf', from: 'docs/manual.pdf', sha256: sha256(doc) });
  assert.is.not(byPath.get('app.js')?.op, 'copy');
  const work = join(t.dir, 'rebuild');
  await mkdir(work);
  const out = await rebuildFromDelta(t, work, await readManifestDoc(t, '1.0.0'), r.manifest);
  assert.ok((await readFile(join(out, 'docs/guide.pdf'))).equals(doc));
  assert.equal((await readdir(out, { recursive: true })).map(String).sort(), ['app.js', 'docs', 'docs/guide.pdf']);
}));

deltas('a changed binary becomes a patch op much smaller than the file', () => withRepo(async (t) => {
  await t.release('1.0.0', sampleApp('1.0.0'));
  const r = await t.release('1.1.0', sampleApp('1.1.0'));
  const rel = r.manifest.targets['linux-x64']!;
  const op = rel.deltas[0]!.ops.find((o) => o.path === 'lib/engine.bin');
  const file = regularFiles(rel.files).find((f) => f.path === 'lib/engine.bin')!;
  assert.ok(op && op.op === 'patch', `engine.bin is patched, got ${op?.op}`);
  if (op?.op !== 'patch') return;
  assert.is(op.from, 'lib/engine.bin');
  assert.is(file.size, 200_000);
  assert.ok(op.entry.size < file.size / 10, `patch ${op.entry.size} bytes for a ${file.size}-byte file`);
  assert.ok(r.deltas[0]!.size < r.full.size, 'the delta artifact is smaller than the full one');
  // Unchanged files are implied (issue 14 item 5: no op), the new file is whole.
  assert.ok(regularFiles(rel.files).some((f) => f.path === 'assets/logo.txt'));
  assert.is(rel.deltas[0]!.ops.find((o) => o.path === 'assets/logo.txt'), undefined);
  assert.is(rel.deltas[0]!.ops.find((o) => o.path === 'lib/feature-1.js')?.op, 'whole');
}));

deltas.run();

// ---------------------------------------------------------------------------------------------

const channels = suite('moves channel pointers forward one step per release');

channels('a second platform added to an existing version keeps the first platform pinned and valid', () => withRepo(async (t) => {
  const x64 = await t.release('1.0.0', sampleApp('1.0.0'), { arch: 'x64' });
  const x64Full = await readFile(join(t.repo, x64.full.path));
  const arm = await t.release('1.0.0', sampleApp('1.0.0'), { arch: 'arm64' });
  assert.equal(Object.keys(arm.manifest.targets).sort(), ['linux-arm64', 'linux-x64']);
  assert.equal(arm.channel.targets['linux-x64'], arm.channel.targets['linux-arm64']);
  const manifestBytes = await readFile(join(t.repo, 'releases', '1.0.0', 'manifest.json'));
  assert.is(arm.channel.targets['linux-x64']?.manifest.sha256, sha256(manifestBytes));
  assert.ok((await readFile(join(t.repo, x64.full.path))).equals(x64Full), 'first platform artifact untouched');

  const report = await verify(t);
  assert.equal(report.problems, []);
  assert.is(report.ok, true);
  assert.equal(report.channels[0]?.targets, { 'linux-arm64': '1.0.0', 'linux-x64': '1.0.0' });
}));

channels('the channel sequence increases by exactly one per release', () => withRepo(async (t) => {
  const { root } = await readRepoRoot(t.repo);
  const seqs: number[] = [];
  seqs.push((await t.release('1.0.0', sampleApp('1.0.0'))).channel.sequence);
  seqs.push((await t.release('1.0.0', sampleApp('1.0.0'), { arch: 'arm64' })).channel.sequence);
  seqs.push((await t.release('1.1.0', sampleApp('1.1.0'))).channel.sequence);
  seqs.push((await t.release('1.2.0', sampleApp('1.2.0'), { deltas: 0 })).channel.sequence);
  assert.equal(seqs, [1, 2, 3, 4]);
  const onDisk = await readChannel(repoSource(t.repo), root, 'stable', new Date());
  assert.is(onDisk?.doc.sequence, 4);
  // Another channel starts its own count.
  assert.is((await t.release('2.0.0', sampleApp('2.0.0'), { channel: 'beta', deltas: 0 })).channel.sequence, 1);
  assert.is((await readChannel(repoSource(t.repo), root, 'stable', new Date()))?.doc.sequence, 4);
}));

channels.run();
