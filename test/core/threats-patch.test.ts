// SECURITY.md row 17, malicious patch: a lying header, a truncated patch, a patch for another
// base, output that does not hash, planted symlinks at the patcher's work paths, and descriptor
// leaks over many failures. Each is met twice: by applyDelta alone (with a patcher that counts
// what reaches native code), and end to end by a device whose repository signed the hostile patch
// with its own release key — there the delta must be refused and the device must fall back to the
// full artifact and commit. Both formats: BSDIFF40 (repositories made before FERRYBD1: the legacy
// path to the native patcher) and FERRYBD1 (issue 14 item 8: ferry's own, applied in process by
// core/delta/patch-apply.ts, which the native patcher never sees).

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { lstat, mkdir, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { applyDelta } from '../../core/delta/apply-delta.ts';
import { createDirSource } from '../../core/ports/dir-source.ts';
import { sha256 } from '../../core/io/hash.ts';
import { Updater } from '../../core/update/updater.ts';
import { FerryError, type ErrorCode } from '../../core/errors.ts';
import type { DeltaOp, FileEntry, ManifestDoc } from '../../core/trust/metadata.ts';
import { writeBsdiff40 } from '../../plugins/bsdiff/patcher.ts';
import { assertCodeAsync } from '../helpers/assert-code.ts';
import { assertInstalled, makeDevice, type TestDevice } from '../helpers/device.ts';
import { makeRepo, pseudoRandomBytes, sampleApp, tempDir, type TempDir, type TestRepo } from '../helpers/repo.ts';
import { snapshotDir } from '../helpers/tamper.ts';
import { bsdiffHeader, countingPatcher, deltaEntries, garbagePatch, openFdCount, packEntries, resignDelta, type CountingPatcher } from '../helpers/hostile-delta.ts';
import { writeFerryPatch } from '../../core/delta/patch-encode.ts';
import { rawPatchBetween } from '../helpers/edit-script.ts';
import { craftFrom } from '../helpers/ferry-patch-craft.ts';
import type { RawPatch } from '../../core/delta/raw-patch.ts';

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

// ---------------------------------------------------------------------------------------------
// applyDelta alone: one file `bin`, patched from a 64 KiB base.

interface Fixture {
  tmp: TempDir;
  baseDir: string;
  base: Buffer;
  target: FileEntry;
  genuine: Buffer;
  /** The same change as a genuine FERRYBD1 patch, and the RawPatch it was written from. */
  ferry: Buffer;
  raw: RawPatch;
  /** Packs `patch` as the delta's one entry; returns the op and artifact for applyDelta. */
  delta(patch: Buffer, opPatch?: Partial<Extract<DeltaOp, { op: 'patch' }>>): Promise<{ ops: DeltaOp[]; artifact: string }>;
  /** Runs applyDelta into a fresh outDir/workDir (or the given ones). */
  apply(d: { ops: DeltaOp[]; artifact: string }, patcher: CountingPatcher, dirs?: { outDir?: string; workDir?: string; baseDir?: string }): Promise<{ outDir: string; workDir: string }>;
}

let fixtureRuns = 0;

async function fixture(baseDirName = 'base'): Promise<Fixture> {
  const tmp = await tempDir('ferry-row17-');
  const baseDir = join(tmp.path, baseDirName);
  await mkdir(baseDir, { recursive: true });
  const base = pseudoRandomBytes(64 * 1024, 17);
  // Edited in place and grown by 4 KiB of new bytes, so the patch's extra block carries data.
  const next = Buffer.concat([base, pseudoRandomBytes(4096, 71)]);
  for (let i = 0; i < 8; i++) next.writeUInt32LE(0xfeedface + i, 500 + i * 7000);
  await writeFile(join(baseDir, 'bin'), base);
  await mkdir(join(tmp.path, 'new'));
  await writeFile(join(tmp.path, 'new', 'bin'), next);
  await writeBsdiff40(join(baseDir, 'bin'), join(tmp.path, 'new', 'bin'), join(tmp.path, 'genuine.bsdiff'));
  const genuine = await readFile(join(tmp.path, 'genuine.bsdiff'));
  const raw = rawPatchBetween(base, next);
  await writeFerryPatch(raw, join(tmp.path, 'genuine.fbd'));
  const ferry = await readFile(join(tmp.path, 'genuine.fbd'));
  const target: FileEntry = { path: 'bin', size: next.length, sha256: sha256(next), mode: 0o644 };
  let n = 0;
  return {
    tmp, baseDir, base, target, genuine, ferry, raw,
    async delta(patch, opPatch = {}) {
      const artifact = join(tmp.path, `delta-${n++}.tar`);
      await packEntries(new Map([['0.bsdiff', patch]]), artifact);
      const op: DeltaOp = { op: 'patch', path: 'bin', from: 'bin', baseSha256: sha256(base), sha256: target.sha256, entry: { path: '0.bsdiff', size: patch.length, sha256: sha256(patch) }, ...opPatch };
      return { ops: [op], artifact };
    },
    async apply(d, patcher, dirs = {}) {
      const run = fixtureRuns++;
      const outDir = dirs.outDir ?? join(tmp.path, `out-${run}`);
      const workDir = dirs.workDir ?? join(tmp.path, `work-${run}`);
      await mkdir(outDir, { recursive: true });
      await applyDelta({ baseDir: dirs.baseDir ?? baseDir, ops: d.ops, targetFiles: [target], artifact: d.artifact, outDir, workDir, patcher });
      return { outDir, workDir };
    },
  };
}

/** Runs `fn` on a fresh fixture and removes its temp folder afterwards, whatever happens. */
async function withFixture(fn: (f: Fixture) => Promise<void>): Promise<void> {
  const f = await fixture();
  try {
    await fn(f);
  } finally {
    await f.tmp.cleanup();
  }
}

/** Runs `fn`, expecting a FerryError with one of `codes`; returns it. */
async function refusedWith(fn: () => Promise<unknown>, codes: ErrorCode[]): Promise<FerryError> {
  try {
    await fn();
  } catch (err) {
    assert.instance(err, FerryError, `a FerryError, got ${String(err)}`);
    const e = err as FerryError;
    assert.ok(codes.includes(e.code), `one of ${codes.join(', ')}, got ${e.code}: ${e.message}`);
    return e;
  }
  assert.unreachable(`expected ${codes.join(' or ')}, but the call resolved`);
  throw new Error('not reached');
}

const unit = suite('row 17 malicious BSDIFF40 patch (the legacy path): applyDelta checks every patch before the patcher sees it');

unit('control: the genuine patch applies, reaches the patcher once, and builds the signed bytes', () => withFixture(async (f) => {
  const p = countingPatcher();
  const { outDir } = await f.apply(await f.delta(f.genuine), p);
  assert.is(p.patchCalls.length, 1);
  assert.is(sha256(await readFile(join(outDir, 'bin'))), f.target.sha256);
}));

unit('a header promising 8 GiB: ERR_PATCH before the patcher runs, fast, with no memory growth', () => withFixture(async (f) => {
  const p = countingPatcher();
  const hostile = garbagePatch(8 * GiB);
  const d = await f.delta(hostile);
  const rss0 = process.memoryUsage().rss;
  const t0 = performance.now();
  let outDir = '';
  const err = await assertCodeAsync(async () => { outDir = join(f.tmp.path, 'out-8g'); await f.apply(d, p, { outDir }); }, 'ERR_PATCH');
  const elapsed = performance.now() - t0;
  const grew = process.memoryUsage().rss - rss0;
  assert.match(err.message, /8589934592/, `the message names the promised size: ${err.message}`);
  assert.is(p.patchCalls.length, 0, 'the patcher never saw the patch');
  // Reading 8 GiB would take minutes; the bound only has to tell that apart (issue 13 item 13).
  assert.ok(elapsed < 20_000, `refused in ${elapsed.toFixed(0)} ms`);
  assert.ok(grew < 64 * MiB, `RSS grew ${(grew / MiB).toFixed(1)} MiB`);
  assert.equal(await readdir(outDir), [], 'nothing written to the output folder');
}));

unit('header block lengths beyond the patch (8 GiB control block), or negative: ERR_PATCH, patcher not called', () => withFixture(async (f) => {
  const p = countingPatcher();
  const body = Buffer.alloc(64, 1);
  for (const header of [
    bsdiffHeader({ ctrlLen: 8 * GiB, dataLen: 0, newSize: f.target.size }),
    bsdiffHeader({ ctrlLen: 0, dataLen: 2 ** 62, newSize: f.target.size }),
    bsdiffHeader({ ctrlLen: -1, dataLen: 16, newSize: f.target.size }),
    bsdiffHeader({ ctrlLen: 16, dataLen: 16, newSize: -1 }),
  ]) {
    await assertCodeAsync(async () => f.apply(await f.delta(Buffer.concat([header, body])), p), 'ERR_PATCH');
  }
  assert.is(p.patchCalls.length, 0);
}));

/** The genuine patch's block boundaries, read from its header. */
function blocks(patch: Buffer): { ctrlEnd: number; dataEnd: number } {
  const ctrl = Number(patch.readBigUInt64LE(8));
  const data = Number(patch.readBigUInt64LE(16));
  return { ctrlEnd: 32 + ctrl, dataEnd: 32 + ctrl + data };
}

unit('a truncated patch: cut inside the header, the control block or the diff block → ERR_PATCH before patching', () => withFixture(async (f) => {
  const p = countingPatcher();
  const { ctrlEnd, dataEnd } = blocks(f.genuine);
  for (const keep of [0, 20, 40, ctrlEnd - 3, Math.floor((ctrlEnd + dataEnd) / 2), dataEnd - 1]) {
    const outDir = join(f.tmp.path, `out-trunc-${keep}`);
    await assertCodeAsync(async () => f.apply(await f.delta(f.genuine.subarray(0, keep)), p, { outDir }), 'ERR_PATCH');
    assert.equal(await readdir(outDir), [], `nothing output for a patch cut to ${keep} bytes`);
  }
  assert.is(p.patchCalls.length, 0, 'the header check caught every cut');
}));

unit('a patch cut inside its extra block (past what the header can check): ERR_PATCH or ERR_HASH_MISMATCH, no output file', () => withFixture(async (f) => {
  const p = countingPatcher();
  const { dataEnd } = blocks(f.genuine);
  assert.ok(f.genuine.length - dataEnd > 64, `the fixture patch has an extra block (${f.genuine.length - dataEnd} bytes)`);
  const outDir = join(f.tmp.path, 'out-tail');
  await refusedWith(async () => f.apply(await f.delta(f.genuine.subarray(0, dataEnd + Math.floor((f.genuine.length - dataEnd) / 2))), p, { outDir }), ['ERR_PATCH', 'ERR_HASH_MISMATCH']);
  assert.is(p.patchCalls.length, 1, 'this one reached the patcher (its header is honest)');
  assert.equal(await readdir(outDir), [], 'no output file');
}));

unit('a patch for another base: refused by the base hash check before patching', () => withFixture(async (f) => {
  const p = countingPatcher();
  // The signed base hash names another file.
  await assertCodeAsync(async () => f.apply(await f.delta(f.genuine, { baseSha256: sha256('another base') }), p), 'ERR_HASH_MISMATCH');
  // The signed base hash is right, but the base on disk is another file.
  const otherBase = join(f.tmp.path, 'other-base');
  await mkdir(otherBase);
  await writeFile(join(otherBase, 'bin'), pseudoRandomBytes(64 * 1024, 99));
  await assertCodeAsync(async () => f.apply(await f.delta(f.genuine), p, { baseDir: otherBase }), 'ERR_HASH_MISMATCH');
  assert.is(p.patchCalls.length, 0, 'the patcher never ran');
}));

/** Plants symlinks named like applyDelta's work files in `workDir`, to a sentinel file and an outside folder. */
async function plantWorkLinks(workDir: string, sentinel: string, outsideDir: string, names: { file: string[]; dir: string[] }): Promise<void> {
  await mkdir(workDir, { recursive: true });
  for (const n of names.file) await symlink(sentinel, join(workDir, n));
  for (const n of names.dir) await symlink(outsideDir, join(workDir, n));
}

async function outside(tmp: TempDir): Promise<{ sentinel: string; dir: string; before: () => Promise<string[]> }> {
  const dir = join(tmp.path, 'outside');
  await mkdir(dir);
  const sentinel = join(dir, 'sentinel');
  await writeFile(sentinel, 'sentinel: must never change\n');
  return { sentinel, dir, before: () => snapshotDir(dir) };
}

unit('symlinks planted at the patch output path (p0) never redirect the genuine patch\'s write outside', () => withFixture(async (f) => {
  const o = await outside(f.tmp);
  const snap = await o.before();
  const workDir = join(f.tmp.path, 'work-planted-p');
  await plantWorkLinks(workDir, o.sentinel, o.dir, { file: ['p0', 'p1'], dir: [] });
  const outDir = join(f.tmp.path, 'out-planted-p');
  let result = 'applied';
  try { await f.apply(await f.delta(f.genuine), countingPatcher(), { outDir, workDir }); } catch (err) { result = String(err); }
  assert.equal(await snapshotDir(o.dir), snap, `nothing outside changed (applyDelta: ${result})`);
  if (result === 'applied') assert.ok((await lstat(join(outDir, 'bin'))).isFile(), 'the output is a regular file, not a link');
}));

unit('a symlink planted at the entries folder (e) never lets delta entries land outside', () => withFixture(async (f) => {
  const o = await outside(f.tmp);
  const snap = await o.before();
  const workDir = join(f.tmp.path, 'work-planted-e');
  await plantWorkLinks(workDir, o.sentinel, o.dir, { file: [], dir: ['e'] });
  let result = 'applied';
  try { await f.apply(await f.delta(f.genuine), countingPatcher(), { workDir }); } catch (err) { result = String(err); }
  assert.equal(await snapshotDir(o.dir), snap, `nothing outside changed (applyDelta: ${result})`);
}));

unit('a long base path (short private link b0) with b0 planted as a symlink: nothing outside is written', async () => {
  const f = await fixture(`${'x'.repeat(120)}/${'y'.repeat(120)}`);
  try {
    assert.ok(join(f.baseDir, 'bin').length > 200, 'the base path takes the short-link route');
    const o = await outside(f.tmp);
    const snap = await o.before();
    const workDir = join(f.tmp.path, 'work-planted-b');
    await plantWorkLinks(workDir, o.sentinel, o.dir, { file: ['b0', 'b1'], dir: [] });
    let result = 'applied';
    try { await f.apply(await f.delta(f.genuine), countingPatcher(), { workDir }); } catch (err) { result = String(err); }
    assert.equal(await snapshotDir(o.dir), snap, `nothing outside changed (applyDelta: ${result})`);
  } finally {
    await f.tmp.cleanup();
  }
});

unit('no descriptor leak over 300 failures that reach the native patcher', () => withFixture(async (f) => {
  const p = countingPatcher();
  // Header consistent with the signed size and the file, garbage blocks: fails inside bspatch.
  const d = await f.delta(garbagePatch(f.target.size));
  await assertCodeAsync(() => f.apply(d, p), 'ERR_PATCH'); // warm-up: lazy handles opened once
  const before = openFdCount();
  for (let i = 0; i < 300; i++) await assertCodeAsync(() => f.apply(d, p), 'ERR_PATCH');
  const after = openFdCount();
  assert.is(p.patchCalls.length, 301, 'every failure reached the native patcher');
  assert.ok(after <= before + 5, `descriptors: ${before} before, ${after} after 300 failures`);
}));

unit('no descriptor leak over 300 failures refused by the header check', () => withFixture(async (f) => {
  const p = countingPatcher();
  const d = await f.delta(garbagePatch(8 * GiB));
  await assertCodeAsync(() => f.apply(d, p), 'ERR_PATCH');
  const before = openFdCount();
  for (let i = 0; i < 300; i++) await assertCodeAsync(() => f.apply(d, p), 'ERR_PATCH');
  const after = openFdCount();
  assert.is(p.patchCalls.length, 0);
  assert.ok(after <= before + 5, `descriptors: ${before} before, ${after} after 300 failures`);
}));

unit.run();

// ---------------------------------------------------------------------------------------------
// The same threats in FERRYBD1 (issue 14 item 8), through applyDelta: the native patcher is never
// called, and every refusal leaves the output folder empty.

const ferryUnit = suite('issue 14 item 8: row 17 malicious FERRYBD1 patch: applyDelta refuses it in process, nothing reaches the native patcher');

/** Applies `patch` as the delta's one entry and expects `codes`; the output folder stays empty and the patcher unused. */
async function ferryRefused(f: Fixture, patch: Buffer, codes: ErrorCode[], opPatch?: Partial<Extract<DeltaOp, { op: 'patch' }>>, dirs: { baseDir?: string } = {}): Promise<FerryError> {
  const p = countingPatcher();
  const outDir = join(f.tmp.path, `out-ferry-${fixtureRuns}`);
  const d = await f.delta(patch, opPatch);
  const err = await refusedWith(() => f.apply(d, p, { outDir, ...dirs }), codes);
  assert.equal(await readdir(outDir), [], 'nothing in the output folder');
  assert.is(p.patchCalls.length, 0, 'the native patcher never ran');
  return err;
}

ferryUnit('control: the genuine FERRYBD1 patch applies in process (the native patcher is never called) and builds the signed bytes', () => withFixture(async (f) => {
  const p = countingPatcher();
  const { outDir } = await f.apply(await f.delta(f.ferry), p);
  assert.is(p.patchCalls.length, 0);
  assert.is(sha256(await readFile(join(outDir, 'bin'))), f.target.sha256);
}));

ferryUnit('a lying header: new size of 8 GiB, old size of another base, stream lengths past the patch → ERR_PATCH, fast, no memory growth', () => withFixture(async (f) => {
  const rss0 = process.memoryUsage().rss;
  const t0 = performance.now();
  const err = await ferryRefused(f, craftFrom(f.raw, { header: { newSize: BigInt(8 * GiB) } }), ['ERR_PATCH']);
  assert.match(err.message, /8589934592/);
  assert.ok(performance.now() - t0 < 20_000);
  assert.ok(process.memoryUsage().rss - rss0 < 64 * MiB);
  await ferryRefused(f, craftFrom(f.raw, { header: { oldSize: BigInt(f.base.length - 1) } }), ['ERR_PATCH']);
  await ferryRefused(f, craftFrom(f.raw, { header: { controlLength: BigInt(8 * GiB) } }), ['ERR_PATCH']);
  await ferryRefused(f, craftFrom(f.raw, { header: { diffLength: 2n ** 62n } }), ['ERR_PATCH']);
}));

ferryUnit('truncated: cut inside the header or any stream, or a stream cut short under a fitted header → ERR_PATCH', () => withFixture(async (f) => {
  const ctrl = Number(f.ferry.readBigUInt64LE(32));
  const diff = Number(f.ferry.readBigUInt64LE(40));
  for (const keep of [0, 20, 56 + (ctrl >> 1), 56 + ctrl + (diff >> 1), f.ferry.length - 1]) await ferryRefused(f, f.ferry.subarray(0, keep), ['ERR_PATCH']);
  for (const which of ['control', 'diff', 'extra'] as const) {
    await ferryRefused(f, craftFrom(f.raw, { streams: (s) => ({ ...s, [which]: s[which].subarray(0, s[which].length >> 1) }) }), ['ERR_PATCH']);
  }
}));

ferryUnit('a patch for another base: refused by the base hash check, or by the base size before patching', () => withFixture(async (f) => {
  await ferryRefused(f, f.ferry, ['ERR_HASH_MISMATCH'], { baseSha256: sha256('another base') });
  const otherBase = join(f.tmp.path, 'other-base');
  await mkdir(otherBase);
  await writeFile(join(otherBase, 'bin'), pseudoRandomBytes(64 * 1024, 99));
  await ferryRefused(f, f.ferry, ['ERR_HASH_MISMATCH'], {}, { baseDir: otherBase });
  // A base that hashes as signed but is another size than the patch's: the patch is for another base.
  const shortBase = join(f.tmp.path, 'short-base');
  await mkdir(shortBase);
  const short = f.base.subarray(0, f.base.length - 10);
  await writeFile(join(shortBase, 'bin'), short);
  await ferryRefused(f, f.ferry, ['ERR_PATCH'], { baseSha256: sha256(short) }, { baseDir: shortBase });
}));

ferryUnit('output that does not hash: a well-formed patch building other bytes of the signed size → ERR_HASH_MISMATCH, nothing output', () => withFixture(async (f) => {
  const diff = Buffer.from(f.raw.diff);
  diff[diff.length >> 1] = (diff[diff.length >> 1]! + 1) & 0xff;
  await ferryRefused(f, craftFrom({ ...f.raw, diff }), ['ERR_HASH_MISMATCH']);
}));

ferryUnit('no descriptor leak over 100 FERRYBD1 failures inside the streams', () => withFixture(async (f) => {
  const p = countingPatcher();
  const d = await f.delta(craftFrom(f.raw, { streams: (s) => ({ ...s, extra: s.extra.subarray(0, s.extra.length >> 1) }) }));
  await assertCodeAsync(() => f.apply(d, p), 'ERR_PATCH');
  const before = openFdCount();
  for (let i = 0; i < 100; i++) await assertCodeAsync(() => f.apply(d, p), 'ERR_PATCH');
  await new Promise((r) => setTimeout(r, 100));
  const after = openFdCount();
  assert.is(p.patchCalls.length, 0);
  assert.ok(after <= before + 5, `descriptors: ${before} before, ${after} after 100 failures`);
}));

ferryUnit.run();

// ---------------------------------------------------------------------------------------------
// End to end: a repository that signs the hostile patch; the device falls back to the full artifact.

const T = 'linux-x64';

interface Scene {
  repo: TestRepo;
  device: TestDevice;
  r1: ManifestDoc;
  r2: ManifestDoc;
}

/** 1.0.0 installed on a device; 1.1.0 published with a delta from 1.0.0 that patches lib/engine.bin. */
async function scene(): Promise<Scene> {
  const repo = await makeRepo();
  const device = await makeDevice({ trust: await repo.trust(), sources: [repo.repo] });
  const r1 = await repo.release('1.0.0', sampleApp('1.0.0'));
  const applied = await device.with((u) => u.apply());
  assert.is(applied.status, 'committed');
  const r2 = await repo.release('1.1.0', sampleApp('1.1.0'));
  const op = r2.manifest.targets[T]!.deltas[0]?.ops.find((o) => o.path === 'lib/engine.bin');
  assert.is(op?.op, 'patch', 'the fixture delta patches lib/engine.bin');
  return { repo, device, r1: r1.manifest, r2: r2.manifest };
}

/** Runs `fn` on a fresh scene and removes its device and repository afterwards, whatever happens. */
async function withScene(fn: (s: Awaited<ReturnType<typeof scene>>) => Promise<void>): Promise<void> {
  const s = await scene();
  try {
    await fn(s);
  } finally {
    await s.device.cleanup();
    await s.repo.cleanup();
  }
}

/** Opens the device with a counting patcher and a captured log. */
async function openCounting(s: Scene): Promise<{ u: Updater; patcher: CountingPatcher; log: string[] }> {
  const patcher = countingPatcher();
  const log: string[] = [];
  const u = await Updater.open({ home: s.device.home, sources: [createDirSource(s.repo.repo)], patcher, health: null, log: (m) => log.push(m) });
  return { u, patcher, log };
}

/** Applies the (tampered) 1.1.0 and checks: the delta was planned and refused, the full artifact committed. */
async function expectFallback(s: Scene, deltaCode: RegExp, opts: { patcherMayRun: boolean; rssBudget?: number }): Promise<{ patcher: CountingPatcher; log: string[] }> {
  const { u, patcher, log } = await openCounting(s);
  try {
    const info = await u.checkUpdate();
    assert.match(info.downloadUrl ?? '', /\.delta$/, `the device plans the signed (hostile) delta: ${info.downloadUrl}`);
    const rss0 = process.memoryUsage().rss;
    const result = await u.apply();
    const grew = process.memoryUsage().rss - rss0;
    assert.is(result.status, 'committed', `committed, got ${JSON.stringify(result)}`);
    const record = (await u.history()).find((h) => h.to === '1.1.0');
    assert.is(record?.outcome, 'committed');
    assert.is(record?.kind, 'full');
    assert.is(record?.fellBackToFull, true, 'history says the full artifact was used after the delta failed');
    assert.ok(log.some((m) => /delta failed/.test(m) && deltaCode.test(m)), `the log says why the delta failed (${deltaCode}): ${JSON.stringify(log)}`);
    const engineCalls = patcher.patchCalls.filter(([oldFile]) => oldFile.endsWith('engine.bin'));
    if (!opts.patcherMayRun) assert.is(engineCalls.length, 0, 'the hostile patch never reached the patcher');
    if (opts.rssBudget !== undefined) assert.ok(grew < opts.rssBudget, `RSS grew ${(grew / MiB).toFixed(1)} MiB`);
    assert.is((await u.status()).phase, 'idle');
  } finally {
    await u.close();
  }
  await assertInstalled(s.device, s.r2);
  assert.equal(await readdir(s.device.layout.staging), [], 'staging is empty');
  return { patcher, log };
}

const e2e = suite('row 17 malicious patch, signed by the publisher (the 8 GiB header is BSDIFF40, the published entries FERRYBD1): the device refuses the delta and installs the full artifact');

e2e('signed patch whose header claims 8 GiB: ERR_PATCH before patching, fallback to full, committed', () => withScene(async (s) => {
  await resignDelta(s.repo, '1.1.0', '1.0.0', { path: 'lib/engine.bin', entry: garbagePatch(8 * GiB) });
  const t0 = performance.now();
  await expectFallback(s, /ERR_PATCH.*8589934592/, { patcherMayRun: false, rssBudget: 128 * MiB });
  assert.ok(performance.now() - t0 < 60_000, 'done without reading 8 GiB');
}));

e2e('signed truncated patch: ERR_PATCH or ERR_HASH_MISMATCH, fallback to full, committed', () => withScene(async (s) => {
  const delta = s.r2.targets[T]!.deltas[0]!;
  // The genuine patch entry, cut to half its length.
  const entry = (await deltaEntries(join(s.repo.repo, delta.artifact.path), delta)).get('lib/engine.bin');
  assert.ok(entry && entry.length > 0, 'the genuine delta patches lib/engine.bin');
  await resignDelta(s.repo, '1.1.0', '1.0.0', { path: 'lib/engine.bin', entry: entry!.subarray(0, Math.floor(entry!.length / 2)) });
  await expectFallback(s, /ERR_PATCH|ERR_HASH_MISMATCH/, { patcherMayRun: true });
}));

e2e('signed patch for another base (baseSha256 of another file): refused before patching, fallback to full', () => withScene(async (s) => {
  await resignDelta(s.repo, '1.1.0', '1.0.0', { path: 'lib/engine.bin', baseSha256: sha256('some other base') });
  await expectFallback(s, /ERR_HASH_MISMATCH/, { patcherMayRun: false });
}));

e2e('symlinks planted in staging/ under every predictable work-file name: nothing outside the home is touched', async () => {
  const s = await scene();
  const o = await tempDir('ferry-row17-outside-');
  try {
    const sentinel = join(o.path, 'sentinel');
    await writeFile(sentinel, 'sentinel: must never change\n');
    await mkdir(join(o.path, 'dir'));
    const snap = await snapshotDir(o.path);
    const { u, patcher } = await openCounting(s);
    try {
      // After open (which clears staging/) and before staging begins.
      const st = s.device.layout.staging;
      for (const n of ['1.1.0-', 'tree', 'p0', 'p1', 'p3', 'b1', 'b3', '0.bsdiff', '1.bsdiff', '3.bsdiff']) await symlink(sentinel, join(st, n));
      for (const n of ['step-0', 'w0', 'e']) await symlink(join(o.path, 'dir'), join(st, n));
      const result = await u.apply();
      assert.is(result.status, 'committed');
      // The genuine delta (FERRYBD1 since the publisher writes it) was applied, not bypassed.
      const record = (await u.history()).find((h) => h.to === '1.1.0');
      assert.is(record?.kind, 'delta', 'installed from the delta');
      assert.not.ok(record?.fellBackToFull, 'no fallback to the full artifact');
      for (const [, out] of patcher.patchCalls) assert.ok(out.startsWith(st + '/'), `patch output ${out} is inside staging/`);
    } finally {
      await u.close();
    }
    assert.equal(await snapshotDir(o.path), snap, 'the sentinel and the outside folder are unchanged');
    await assertInstalled(s.device, s.r2);
  } finally {
    await o.cleanup();
    await s.device.cleanup();
    await s.repo.cleanup();
  }
});

e2e('a symlink planted at the delta\'s predictable cache path (cache/<sha256>.part): nothing outside the home is touched', async () => {
  const s = await scene();
  const o = await tempDir('ferry-row17-outside-');
  try {
    const sentinel = join(o.path, 'sentinel');
    await writeFile(sentinel, 'sentinel: must never change\n');
    const snap = await snapshotDir(o.path);
    const deltaSha = s.r2.targets[T]!.deltas[0]!.artifact.sha256;
    const fullSha = s.r2.targets[T]!.full.sha256;
    await mkdir(s.device.layout.cache, { recursive: true });
    await symlink(sentinel, join(s.device.layout.cache, `${deltaSha}.part`));
    await symlink(sentinel, join(s.device.layout.cache, `${fullSha}.part`));
    const { u } = await openCounting(s);
    let result = '';
    try {
      result = JSON.stringify(await u.apply().then((r) => r.status, (err: unknown) => String(err)));
    } finally {
      await u.close();
    }
    assert.equal(await snapshotDir(o.path), snap, `the sentinel is unchanged (apply: ${result}; sentinel now ${(await readFile(sentinel)).length} bytes)`);
  } finally {
    await o.cleanup();
    await s.device.cleanup();
    await s.repo.cleanup();
  }
});

e2e('a delta artifact whose bytes differ from its signed hash (bad mirror): the download falls back to the full artifact', () => withScene(async (s) => {
  const art = join(s.repo.repo, s.r2.targets[T]!.deltas[0]!.artifact.path);
  const bytes = await readFile(art);
  bytes[bytes.length >> 1] = bytes[bytes.length >> 1]! ^ 0x01;
  await writeFile(art, bytes);
  const { u, log } = await openCounting(s);
  try {
    assert.match((await u.checkUpdate()).downloadUrl ?? '', /\.delta$/, 'the delta is planned');
    const result = await u.apply().catch((err: unknown) => err);
    assert.ok(!(result instanceof Error), `apply must fall back to the full artifact, but failed: ${String(result)} (log ${JSON.stringify(log)})`);
    assert.is((result as { status: string }).status, 'committed');
    const record = (await u.history()).find((h) => h.to === '1.1.0');
    assert.is(record?.fellBackToFull, true);
  } finally {
    await u.close();
  }
  await assertInstalled(s.device, s.r2);
}));

e2e.run();

/** The scene's lib/engine.bin change (1.0.0 → 1.1.0) as a RawPatch. */
function engineRaw(): RawPatch {
  return rawPatchBetween(sampleApp('1.0.0')['lib/engine.bin'] as Buffer, sampleApp('1.1.0')['lib/engine.bin'] as Buffer);
}

const ferryE2e = suite('issue 14 item 8: row 17 malicious FERRYBD1 patch, signed by the publisher: the device refuses the delta and installs the full artifact');

ferryE2e('control: a genuine FERRYBD1 entry signed in place of the BSDIFF40 one installs from the delta, without the native patcher', () => withScene(async (s) => {
  const raw = engineRaw();
  const tmp = await tempDir('ferry-row17-fbd-');
  try {
    await writeFerryPatch(raw, join(tmp.path, 'engine.fbd'));
    await resignDelta(s.repo, '1.1.0', '1.0.0', { path: 'lib/engine.bin', entry: await readFile(join(tmp.path, 'engine.fbd')) });
  } finally {
    await tmp.cleanup();
  }
  const { u, patcher } = await openCounting(s);
  try {
    assert.is((await u.apply()).status, 'committed');
    const record = (await u.history()).find((h) => h.to === '1.1.0');
    assert.is(record?.kind, 'delta');
    assert.not.ok(record?.fellBackToFull);
    assert.equal(patcher.patchCalls.filter(([oldFile]) => oldFile.endsWith('engine.bin')), []);
  } finally {
    await u.close();
  }
  await assertInstalled(s.device, s.r2);
}));

ferryE2e('signed FERRYBD1 patch whose header claims 8 GiB: ERR_PATCH before writing, fallback to full, committed', () => withScene(async (s) => {
  await resignDelta(s.repo, '1.1.0', '1.0.0', { path: 'lib/engine.bin', entry: craftFrom(engineRaw(), { header: { newSize: BigInt(8 * GiB) } }) });
  await expectFallback(s, /ERR_PATCH.*8589934592/, { patcherMayRun: false, rssBudget: 128 * MiB });
}));

ferryE2e('signed FERRYBD1 patch with its diff stream cut short: ERR_PATCH, fallback to full, committed', () => withScene(async (s) => {
  await resignDelta(s.repo, '1.1.0', '1.0.0', { path: 'lib/engine.bin', entry: craftFrom(engineRaw(), { streams: (x) => ({ ...x, diff: x.diff.subarray(0, x.diff.length >> 1) }) }) });
  await expectFallback(s, /ERR_PATCH/, { patcherMayRun: false });
}));

ferryE2e('signed FERRYBD1 patch that builds other bytes: ERR_HASH_MISMATCH, fallback to full, committed', () => withScene(async (s) => {
  const raw = engineRaw();
  const extra = Buffer.from(raw.extra.length > 0 ? raw.extra : raw.diff);
  extra[0] = extra[0]! ^ 0xff;
  await resignDelta(s.repo, '1.1.0', '1.0.0', { path: 'lib/engine.bin', entry: craftFrom(raw.extra.length > 0 ? { ...raw, extra } : { ...raw, diff: extra }) });
  await expectFallback(s, /ERR_HASH_MISMATCH/, { patcherMayRun: false });
}));

ferryE2e.run();
