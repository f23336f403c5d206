// Issue 14 item 7 on the device's apply path: the work an update does once instead of twice, and
// the memory it holds. Small FERRYBD1 patches made with writeFerryPatch (no bsdiff), applied by
// the real applyDelta / applyPatchEntry / stageRelease on real files; each test would fail on the
// code before: a budget the patches ignored, a base hashed by a stream and then read again, a base
// checked only by the caller, a new base buffer per patch, the container plugin loaded by every
// `ferry update`, a full artifact's folders fsynced twice.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { spawnSync } from 'node:child_process';
import { mkdir, open, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { applyDelta, patchMemory } from '../../core/delta/apply-delta.ts';
import { applyPatchEntry, OLD_IN_MEMORY_MAX } from '../../core/delta/patch-apply.ts';
import { ByteBudget } from '../../core/delta/byte-budget.ts';
import { BaseBuffers, LARGE_BASE } from '../../core/delta/base-buffers.ts';
import { writeFerryPatch } from '../../core/delta/patch-encode.ts';
import { CHUNK_SIZE, digestFile, sha256 } from '../../core/io/hash.ts';
import { packFiles } from '../../core/publish/archive.ts';
import { stageRelease } from '../../core/device/stage.ts';
import { homeLayout } from '../../core/device/layout.ts';
import { verifyTree } from '../../core/device/verify-tree.ts';
import type { ArtifactRef, DeltaOp, FileEntry } from '../../core/trust/metadata.ts';
import { assertCodeAsync } from '../helpers/assert-code.ts';
import { pseudoRandomBytes, tempDir, type TempDir } from '../helpers/repo.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** Files patched by the delta, each base BASE_SIZE bytes. */
const PATCHED = 6;
const BASE_SIZE = 20_000;

interface Scene {
  tmp: TempDir;
  baseDir: string;
  pack: string;
  ops: DeltaOp[];
  files: FileEntry[];
  olds: Buffer[];
  news: Buffer[];
}

/** PATCHED bases and a pack of one FERRYBD1 patch per file (one add entry over the whole base, then a few extra bytes). */
async function scene(): Promise<Scene> {
  const tmp = await tempDir('ferry-apply7-');
  const baseDir = join(tmp.path, 'base');
  await mkdir(baseDir);
  const parts: Buffer[] = [];
  const ops: DeltaOp[] = [];
  const files: FileEntry[] = [];
  const olds: Buffer[] = [];
  const news: Buffer[] = [];
  let offset = 0;
  for (let i = 0; i < PATCHED; i++) {
    const old = pseudoRandomBytes(BASE_SIZE, 10 + i);
    const extra = Buffer.from(`new in file ${i}\n`);
    const next = Buffer.concat([old, extra]);
    next[50 + i] = (next[50 + i]! + 1) & 0xff;
    const diff = new Uint8Array(old.length);
    for (let k = 0; k < old.length; k++) diff[k] = (next[k]! - old[k]! + 256) & 0xff;
    const patchFile = join(tmp.path, `p${i}`);
    await writeFerryPatch({ oldSize: old.length, newSize: next.length, control: [old.length, extra.length, 0], diff, extra }, patchFile);
    const bytes = await readFile(patchFile);
    await writeFile(join(baseDir, `f${i}.bin`), old);
    ops.push({ op: 'patch', path: `f${i}.bin`, from: `f${i}.bin`, baseSha256: sha256(old), sha256: sha256(next), entry: { offset, size: bytes.length } });
    files.push({ path: `f${i}.bin`, size: next.length, sha256: sha256(next), mode: 0o644 });
    parts.push(bytes);
    offset += bytes.length;
    olds.push(old);
    news.push(next);
  }
  const pack = join(tmp.path, 'pack');
  await writeFile(pack, Buffer.concat(parts));
  return { tmp, baseDir, pack, ops, files, olds, news };
}

let shared: Scene | undefined;
const get = async () => (shared ??= await scene());

/** Never called: every entry here is FERRYBD1. */
const noPatcher = {
  headerSize: 32,
  outputSize: () => { throw new Error('not a BSDIFF40 test'); },
  patch: async () => { throw new Error('the native patcher was started'); },
  diff: async () => { throw new Error('not a publisher test'); },
};

let runs = 0;
async function applyAll(s: Scene, extra: { budget?: ByteBudget; baseDir?: string } = {}): Promise<string> {
  const out = join(s.tmp.path, `out-${runs++}`);
  await mkdir(out);
  await applyDelta({ baseDir: extra.baseDir ?? s.baseDir, ops: s.ops, targetFiles: s.files, artifact: s.pack, outDir: out, workDir: join(out + '-w'), patcher: noPatcher, ...(extra.budget ? { budget: extra.budget } : {}) });
  return out;
}

const t = suite('issue 14 item 7: applying near the baseline');

t('issue 14 item 7: patches run at once only while what they hold fits the memory budget (the peak held is bounded, not 8 bases)', async () => {
  const s = await get();
  const one = patchMemory(BASE_SIZE, s.files[0]!.size);
  // Room for two patches at once: six patches never hold more than two patches' worth.
  const budget = new ByteBudget(2 * one + 1);
  const out = await applyAll(s, { budget });
  for (let i = 0; i < PATCHED; i++) assert.ok((await readFile(join(out, `f${i}.bin`))).equals(s.news[i]!), `f${i}.bin is the new file`);
  assert.ok(budget.peak >= one, `the patches were counted (peak ${budget.peak} of ${one} per patch)`);
  assert.ok(budget.peak <= 2 * one, `at most two patches held at once (peak ${budget.peak}, two are ${2 * one}); unbounded would be ${PATCHED * one}`);
  assert.is(budget.current, 0, 'every claim was given back');
  // A budget smaller than one patch still makes progress: one patch at a time.
  const tight = new ByteBudget(1);
  await applyAll(s, { budget: tight });
  assert.is(tight.peak, one, 'one patch at a time');
});

t('issue 14 item 7: a patch base held in memory is read once: hashed and patched from the same read (no second read of it)', async () => {
  const s = await get();
  const realOpenSync = fs.openSync;
  const realReadSync = fs.readSync;
  const realCreateReadStream = fs.createReadStream;
  const baseFds = new Set<number>();
  let baseBytesReadAgain = 0;
  let baseStreams = 0;
  const isBase = (p: unknown) => typeof p === 'string' && p.startsWith(s.baseDir);
  fs.openSync = ((path: fs.PathLike, ...rest: unknown[]) => {
    const fd = (realOpenSync as (...a: unknown[]) => number)(path, ...rest);
    if (isBase(String(path))) baseFds.add(fd);
    return fd;
  }) as typeof fs.openSync;
  fs.readSync = ((fd: number, ...rest: unknown[]) => {
    const n = (realReadSync as (...a: unknown[]) => number)(fd, ...rest);
    if (baseFds.has(fd)) baseBytesReadAgain += n;
    return n;
  }) as typeof fs.readSync;
  fs.createReadStream = ((path: fs.PathLike, ...rest: unknown[]) => {
    if (isBase(String(path))) baseStreams++;
    return (realCreateReadStream as (...a: unknown[]) => fs.ReadStream)(path, ...rest);
  }) as typeof fs.createReadStream;
  syncBuiltinESMExports();
  let out: string;
  try {
    out = await applyAll(s);
  } finally {
    fs.openSync = realOpenSync;
    fs.readSync = realReadSync;
    fs.createReadStream = realCreateReadStream;
    syncBuiltinESMExports();
  }
  for (let i = 0; i < PATCHED; i++) assert.ok((await readFile(join(out, `f${i}.bin`))).equals(s.news[i]!));
  assert.is(baseStreams, 0, 'no separate hashing pass streamed a base');
  assert.is(baseBytesReadAgain, 0, 'the patcher read no base byte again: it used the bytes that were hashed');
});

t('issue 14 item 7: a corrupted byte in a patch base is still caught (ERR_HASH_MISMATCH) before anything is written for it', async () => {
  const s = await get();
  const bad = join(s.tmp.path, 'bad-base');
  await mkdir(bad);
  for (let i = 0; i < PATCHED; i++) await writeFile(join(bad, `f${i}.bin`), s.olds[i]!);
  const flipped = Buffer.from(s.olds[3]!);
  flipped[BASE_SIZE - 7] = flipped[BASE_SIZE - 7]! ^ 0x01; // same size: only the hash tells
  await writeFile(join(bad, 'f3.bin'), flipped);
  const out = join(s.tmp.path, 'out-bad');
  await mkdir(out);
  await assertCodeAsync(() => applyDelta({ baseDir: bad, ops: s.ops, targetFiles: s.files, artifact: s.pack, outDir: out, workDir: `${out}-w`, patcher: noPatcher }), 'ERR_HASH_MISMATCH');
  assert.is(await stat(join(out, 'f3.bin')).then(() => true, () => false), false, 'no output for the corrupted base');

  // The entry point itself checks a base it is given the signed hash of: held in memory, and read
  // through a window (a base over oldInMemoryMax).
  const op = s.ops[3] as Extract<DeltaOp, { op: 'patch' }>;
  const range = op.entry as { offset: number; size: number };
  for (const oldInMemoryMax of [BASE_SIZE, 1024]) {
    const outFile = join(s.tmp.path, `entry-${oldInMemoryMax}`);
    await assertCodeAsync(() => applyPatchEntry({ baseFile: join(bad, 'f3.bin'), baseSize: BASE_SIZE, baseSha256: op.baseSha256, patch: { file: s.pack, offset: range.offset, size: range.size }, outFile, newSize: s.files[3]!.size, oldInMemoryMax }), 'ERR_HASH_MISMATCH');
    assert.is(await stat(outFile).then(() => true, () => false), false, `nothing written (oldInMemoryMax ${oldInMemoryMax})`);
    // And the signed base goes through on the same path.
    const good = await applyPatchEntry({ baseFile: join(s.baseDir, 'f3.bin'), baseSize: BASE_SIZE, baseSha256: op.baseSha256, patch: { file: s.pack, offset: range.offset, size: range.size }, outFile, newSize: s.files[3]!.size, oldInMemoryMax });
    assert.is(good.sha256, op.sha256);
  }
});

t('issue 14 item 7: the patches of one delta reuse one base buffer instead of leaving one per patch for the collector', async () => {
  const s = await get();
  const buffers = new BaseBuffers(OLD_IN_MEMORY_MAX);
  for (let i = 0; i < PATCHED; i++) {
    const op = s.ops[i] as Extract<DeltaOp, { op: 'patch' }>;
    const range = op.entry as { offset: number; size: number };
    const outFile = join(s.tmp.path, `reuse-${i}`);
    const got = await applyPatchEntry({ baseFile: join(s.baseDir, `f${i}.bin`), baseSize: BASE_SIZE, baseSha256: op.baseSha256, baseBuffers: buffers, patch: { file: s.pack, offset: range.offset, size: range.size }, outFile, newSize: s.files[i]!.size });
    assert.is(got.sha256, op.sha256);
    assert.is(buffers.freeBytes, BASE_SIZE, `after patch ${i}: one base buffer, given back and reused`);
  }
  // A refused base gives its buffer back too.
  const op = s.ops[0] as Extract<DeltaOp, { op: 'patch' }>;
  const range = op.entry as { offset: number; size: number };
  await assertCodeAsync(() => applyPatchEntry({ baseFile: join(s.baseDir, 'f1.bin'), baseSize: BASE_SIZE, baseSha256: op.baseSha256, baseBuffers: buffers, patch: { file: s.pack, offset: range.offset, size: range.size }, outFile: join(s.tmp.path, 'reuse-bad'), newSize: s.files[0]!.size }), 'ERR_HASH_MISMATCH');
  assert.is(buffers.freeBytes, BASE_SIZE);
});

t('issue 14 item 7: large bases taken smallest first still share one buffer (the pool does not keep each smaller one beside the next)', () => {
  const largest = 8 * LARGE_BASE;
  const buffers = new BaseBuffers(largest);
  for (const size of [2 * LARGE_BASE, 3 * LARGE_BASE + 1, 5 * LARGE_BASE, largest]) {
    const b = buffers.take(size);
    assert.is(b.length, size);
    buffers.give(b);
    assert.is(buffers.freeBytes, largest, `after a base of ${size} bytes: one buffer of the largest size`);
  }
  // Small bases keep buffers of their own size: one does not take the large buffer from a large base.
  const small = buffers.take(1000);
  assert.is(small.length, 1000);
  buffers.give(small);
  assert.is(buffers.freeBytes, largest + 1000);
  assert.is(buffers.take(2 * LARGE_BASE).buffer.byteLength, largest);
});

t('issue 14 item 7: small unchanged files are copied by direct reads and writes (no thread-pool write per file), and a base that is not the signed one is still refused', async () => {
  const s = await get();
  const dir = join(s.tmp.path, 'small');
  const base = join(dir, 'base');
  await mkdir(join(base, 'lib'), { recursive: true });
  const bodies = Array.from({ length: 20 }, (_, i) => Buffer.from(`export const v${i} = ${i};\n`.repeat(i + 1)));
  for (const [i, b] of bodies.entries()) await writeFile(join(base, 'lib', `m${i}.js`), b);
  const files: FileEntry[] = bodies.map((b, i) => ({ path: `lib/m${i}.js`, size: b.length, sha256: sha256(b), mode: i % 2 ? 0o755 : 0o644 }));
  const probe = await open(join(dir, 'probe'), 'w');
  const proto = Object.getPrototypeOf(probe) as { write: (...a: unknown[]) => Promise<unknown> };
  await probe.close();
  const write = proto.write;
  let handleWrites = 0;
  proto.write = function (this: unknown, ...a: unknown[]) {
    handleWrites++;
    return write.apply(this, a);
  };
  const out = join(dir, 'out');
  await mkdir(out);
  try {
    await applyDelta({ baseDir: base, ops: [], targetFiles: files, artifact: s.pack, outDir: out, workDir: `${out}-w`, patcher: noPatcher });
  } finally {
    proto.write = write;
  }
  await verifyTree(out, files);
  assert.is(handleWrites, 0, 'no copy went through a FileHandle write');

  // The same copies refuse a base byte that differs, a base one byte longer, and a base that is a link.
  for (const [name, spoil] of [
    ['flipped', async (p: string) => { const b = await readFile(p); b[3] = b[3]! ^ 1; await writeFile(p, b); }],
    ['longer', async (p: string) => { await writeFile(p, Buffer.concat([await readFile(p), Buffer.from('x')])); }],
    ['link', async (p: string) => { const b = await readFile(p); await writeFile(`${p}.real`, b); await fs.promises.rm(p); await fs.promises.symlink(`${p}.real`, p); }],
  ] as const) {
    const bad = join(dir, `base-${name}`);
    await fs.promises.cp(base, bad, { recursive: true });
    await spoil(join(bad, 'lib', 'm7.js'));
    const o = join(dir, `out-${name}`);
    await mkdir(o);
    await assertCodeAsync(() => applyDelta({ baseDir: bad, ops: [], targetFiles: files, artifact: s.pack, outDir: o, workDir: `${o}-w`, patcher: noPatcher }), 'ERR_HASH_MISMATCH');
    assert.is(await stat(join(o, 'lib', 'm7.js')).then(() => true, () => false), false, `${name}: no copy of the refused base`);
  }
});

t('issue 14 item 7: opening a device and staging a plain tree load no container or OCI code (ferry update does not pay for it)', () => {
  // A fresh node with a module hook that lists the container plugin's and the image check's
  // modules as they load (core/image/requests.ts, the small pure reading of ferry.json's grants,
  // is part of every device's config); it imports what `ferry update` imports on the way to a
  // stage (the device command, open-device, stage).
  const hook = `data:text/javascript,${encodeURIComponent('export async function load(url, context, next) { if (url.includes("/plugins/container/") || (url.includes("/core/image/") && !url.endsWith("/requests.ts"))) console.log("LOADED " + url); return next(url, context); }')}`;
  const script = [
    `import { register } from 'node:module';`,
    `register(${JSON.stringify(hook)});`,
    `await import(${JSON.stringify(join(ROOT, 'cli/commands/device.ts'))});`,
    `await import(${JSON.stringify(join(ROOT, 'plugins/open-device.ts'))});`,
    `await import(${JSON.stringify(join(ROOT, 'core/device/stage.ts'))});`,
    `console.log('DONE');`,
  ].join('\n');
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stdout, /DONE/);
  const loaded = r.stdout.split('\n').filter((l) => l.startsWith('LOADED '));
  assert.equal(loaded, [], `container/OCI modules loaded: ${loaded.join(', ')}`);
});

t('issue 14 item 7: staging a full artifact fsyncs each folder of the tree once (extraction synced them; stage does not walk them again)', async () => {
  const s = await get();
  const tree = join(s.tmp.path, 'full-tree');
  const spec: Record<string, Buffer> = {};
  for (let i = 0; i < 6; i++) spec[`d${i % 3}/sub${i % 2}/f${i}.txt`] = Buffer.from(`file ${i}\n`);
  for (const [path, bytes] of Object.entries(spec)) {
    await mkdir(join(tree, path, '..'), { recursive: true });
    await writeFile(join(tree, path), bytes);
  }
  const artifact = join(s.tmp.path, 'full.tar');
  await packFiles(tree, Object.keys(spec), artifact, false);
  const d = await digestFile(artifact, CHUNK_SIZE);
  const ref: ArtifactRef = { path: 'releases/1.0.0/linux-x64.full.tar', size: d.size, sha256: d.sha256, chunkSize: CHUNK_SIZE, chunks: d.chunks };
  const files: FileEntry[] = Object.entries(spec).map(([path, b]) => ({ path, size: b.length, sha256: sha256(b), mode: 0o644 }));
  const layout = homeLayout(join(s.tmp.path, 'full-home'));
  await mkdir(layout.home, { recursive: true });

  // Every fsync of a folder, by inode: a folder synced twice shows up twice.
  const probe = await open(join(s.tmp.path, 'probe'), 'w');
  const proto = Object.getPrototypeOf(probe) as { sync: () => Promise<void> };
  await probe.close();
  const sync = proto.sync;
  const dirSyncs: number[] = [];
  proto.sync = function (this: { fd: number }) {
    const st = fs.fstatSync(this.fd);
    if (st.isDirectory()) dirSyncs.push(st.ino);
    return sync.apply(this);
  };
  // Descriptor fsyncs too (fs.fsync, synced into node:fs's named exports).
  const fdSync = fs.fsync;
  fs.fsync = ((fd: number, cb: fs.NoParamCallback) => {
    if (fs.fstatSync(fd).isDirectory()) dirSyncs.push(fs.fstatSync(fd).ino);
    return fdSync(fd, cb);
  }) as typeof fs.fsync;
  syncBuiltinESMExports();
  try {
    await stageRelease({
      layout,
      plan: { kind: 'full', to: '1.0.0', artifact: ref, bytes: ref.size },
      releases: new Map([['1.0.0', { files, full: ref, deltas: [] }]]),
      artifacts: new Map([[ref.sha256, artifact]]),
      patcher: noPatcher,
      linkUnchanged: false,
    });
  } finally {
    proto.sync = sync;
    fs.fsync = fdSync;
    syncBuiltinESMExports();
  }
  await verifyTree(layout.release('1.0.0'), files);
  // The tree's root, d0..d2 and their sub0/sub1 folders, and releases/ after the rename.
  const treeDirs = 1 + 3 + 6;
  assert.ok(dirSyncs.length >= treeDirs + 1, `every folder synced (${dirSyncs.length} folder fsyncs)`);
  const repeated = dirSyncs.filter((ino, i) => dirSyncs.indexOf(ino) !== i);
  assert.equal(repeated, [], `no folder fsynced twice (${dirSyncs.length} folder fsyncs)`);
});

t.after(async () => {
  await shared?.tmp.cleanup();
});

t.run();
