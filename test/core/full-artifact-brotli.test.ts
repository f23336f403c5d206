// Full artifacts as brotli tars (issue 14 item 3) and the full update's batched fsyncs (item 7):
// the publisher writes <target>.full.tar.br at ferry's best brotli settings; the device picks the
// decoder from the signed artifact path, so .tar.gz artifacts published before still install; a
// large-window stream decodes; and extraction writes and checks every file before the first fsync.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdir, open, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { brotliDecompressSync, constants, createBrotliCompress, gunzipSync, gzipSync } from 'node:zlib';
import { pipeline } from 'node:stream/promises';
import fs, { createWriteStream } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { Readable } from 'node:stream';
import { archiveCoder, extractArchive, type ExpectedEntry } from '../../core/io/extract.ts';
import { brotliBestOptions, brotliDecoder, brotliWindowBits, collectDecodedGarbage } from '../../core/io/brotli.ts';
import { runInNewContext } from 'node:vm';
import { packFiles } from '../../core/publish/archive.ts';
import { stageRelease } from '../../core/device/stage.ts';
import { homeLayout } from '../../core/device/layout.ts';
import { verifyTree } from '../../core/device/verify-tree.ts';
import { CHUNK_SIZE, digestFile, sha256 } from '../../core/io/hash.ts';
import { skipFsyncAt } from '../../core/io/durable.ts';
import type { ArtifactRef, TargetRelease } from '../../core/trust/metadata.ts';
import { createBsdiffPatcher } from '../../plugins/bsdiff/patcher.ts';
import { makeRepo, pseudoRandomBytes, sampleApp, tempDir, writeTree, type TestRepo, type TempDir, type TreeSpec } from '../helpers/repo.ts';
import { spawnSync } from 'node:child_process';
import { ROOT } from '../helpers/cli.ts';
import { assertCodeAsync } from '../helpers/assert-code.ts';
import { tarBytes } from '../helpers/tar-writer.ts';

const TARGET = 'linux-x64';

/** A small tree with text that compresses and bytes that do not. */
function appTree(version: string): TreeSpec {
  const lines = Array.from({ length: 400 }, (_, i) => `export const value${i} = ${i * 7} + '${version}';\n`).join('');
  return { ...sampleApp(version), 'lib/values.js': lines, 'data/blob.bin': pseudoRandomBytes(3000, 7) };
}

let t: TestRepo;
let tmp: TempDir;
let target: TargetRelease;

const full = suite('issue 14 item 3: full artifacts are brotli tars; .tar.gz ones published before still install');

full.before(async () => {
  t = await makeRepo();
  tmp = await tempDir('ferry-full-br-');
  const r = await t.release('1.0.0', appTree('1.0.0'));
  target = r.manifest.targets[TARGET]!;
});

full.after(async () => {
  await tmp.cleanup();
  await t.cleanup();
});

full('issue 14 item 3: ferry release writes <target>.full.tar.br, a brotli tar (decoded by the device decoder) smaller than gzip -9 of the same tar', async () => {
  assert.is(target.full.path, `releases/1.0.0/${TARGET}.full.tar.br`);
  const bytes = await readFile(join(t.repo, target.full.path));
  const tar = brotliDecompressSync(bytes, brotliDecoder());
  assert.ok(tar.subarray(257, 262).toString('latin1') === 'ustar', 'the brotli stream holds a tar');
  const gz = gzipSync(tar, { level: 9 });
  assert.ok(bytes.length < gz.length, `brotli ${bytes.length} B < gzip -9 ${gz.length} B of the same tar`);
});

/** `ferry release` of appTree('2.0.0') into a fresh repository, with `env` and `args`; the full artifact's bytes. */
async function releaseWith(name: string, env: Record<string, string | undefined>, ...args: string[]): Promise<{ status: number | null; stderr: string; bytes?: Buffer }> {
  const repo = await makeRepo({ dir: join(tmp.path, `repo-${name}`) });
  const appDir = join(tmp.path, `app-${name}`);
  await writeTree(appDir, appTree('2.0.0'));
  const childEnv: Record<string, string | undefined> = { ...process.env, NO_COLOR: '1', ...env };
  for (const [k, v] of Object.entries(childEnv)) if (v === undefined) delete childEnv[k];
  const r = spawnSync(process.execPath, ['dist/cli/ferry.js', 'release', appDir, '--repo', repo.repo, '--version', '2.0.0', '--key', join(repo.keysDir, 'release.key'), '--deltas', '0', ...args], { cwd: ROOT, encoding: 'utf8', env: childEnv as NodeJS.ProcessEnv, timeout: 60_000 });
  if (r.status !== 0) return { status: r.status, stderr: r.stderr };
  const gzip = args.includes('gzip');
  return { status: 0, stderr: r.stderr, bytes: await readFile(join(repo.repo, `releases/2.0.0/${TARGET}.full.tar.${gzip ? 'gz' : 'br'}`)) };
}

full('issue 14 item 3: ferry release compresses at quality 11 unless told (byte-identical to --compression-level 11); FERRY_COMPRESSION_LEVEL or the flag trade size for speed; --full-compression gzip writes a .tar.gz of the same tar; 12 is refused', async () => {
  const byDefault = await releaseWith('default', { FERRY_COMPRESSION_LEVEL: undefined });
  const eleven = await releaseWith('eleven', { FERRY_COMPRESSION_LEVEL: undefined }, '--compression-level', '11');
  const five = await releaseWith('five', { FERRY_COMPRESSION_LEVEL: '5' });
  assert.is(byDefault.status, 0, byDefault.stderr);
  assert.ok(byDefault.bytes!.equals(eleven.bytes!), 'the default is quality 11');
  assert.ok(five.bytes!.length > byDefault.bytes!.length, `quality 5 (${five.bytes!.length} B) is larger than 11 (${byDefault.bytes!.length} B)`);
  assert.ok(brotliDecompressSync(five.bytes!, brotliDecoder()).equals(brotliDecompressSync(byDefault.bytes!, brotliDecoder())), 'the same tar either way');
  // For fleets with devices older than ferry 0.2 (they refuse .tar.br): the same tar, gzip -9.
  const gz = await releaseWith('gzip', {}, '--full-compression', 'gzip');
  assert.is(gz.status, 0, gz.stderr);
  assert.ok(gunzipSync(gz.bytes!).equals(brotliDecompressSync(byDefault.bytes!, brotliDecoder())), '--full-compression gzip: a .tar.gz of the same tar');
  const twelve = await releaseWith('twelve', {}, '--compression-level', '12');
  assert.is(twelve.status, 2, 'an out-of-range level is a usage error');
  assert.match(twelve.stderr, /ERR_USAGE/);
});

/** Stages `artifact` (a file, signed as `ref`) as 1.0.0 into a fresh home, as the updater does. */
async function stageFull(name: string, file: string, ref: ArtifactRef): Promise<string> {
  const layout = homeLayout(join(tmp.path, `home-${name}`));
  await mkdir(layout.home, { recursive: true });
  await stageRelease({
    layout,
    plan: { kind: 'full', to: '1.0.0', artifact: ref, bytes: ref.size },
    releases: new Map([['1.0.0', { ...target, full: ref }]]),
    artifacts: new Map([[ref.sha256, file]]),
    patcher: createBsdiffPatcher(),
    linkUnchanged: false,
  });
  return layout.release('1.0.0');
}

async function refOf(file: string, path: string): Promise<ArtifactRef> {
  const d = await digestFile(file, CHUNK_SIZE);
  return { path, size: d.size, sha256: d.sha256, chunkSize: CHUNK_SIZE, chunks: d.chunks };
}

full('issue 14 item 3: the device stages the .tar.br it was signed, and a .tar.gz of the same tree published before (decoder chosen from the signed path)', async () => {
  const br = join(t.repo, target.full.path);
  await verifyTree(await stageFull('br', br, target.full), target.files);

  // What an older publisher wrote: the gzip -9 tar of the same tree, signed as .tar.gz.
  const tree = await stageFull('tree', br, target.full);
  const gz = join(tmp.path, 'old.tar.gz');
  await packFiles(tree, target.files.map((f) => f.path), gz, true);
  await verifyTree(await stageFull('gz', gz, await refOf(gz, `releases/1.0.0/${TARGET}.full.tar.gz`)), target.files);
});

full('issue 14 item 3: the decoder is the signed path\'s, never the bytes\': gzip bytes signed as .tar.br, or an unknown extension, are refused (ERR_UNSAFE_ARCHIVE)', async () => {
  const tree = join(tmp.path, 'home-tree', 'releases', '1.0.0');
  const gz = join(tmp.path, 'mislabelled.gz');
  await packFiles(tree, target.files.map((f) => f.path), gz, true);
  const ref = await refOf(gz, `releases/1.0.0/${TARGET}.full.tar.br`);
  await assertCodeAsync(() => stageFull('mislabelled', gz, ref), 'ERR_UNSAFE_ARCHIVE');
  await assertCodeAsync(() => stageFull('unknown', gz, { ...ref, path: `releases/1.0.0/${TARGET}.full.zip` }), 'ERR_UNSAFE_ARCHIVE');
  assert.is(archiveCoder('releases/1.0.0/x.full.tar.br'), 'brotli');
  assert.is(archiveCoder('releases/1.0.0/x.full.tar.gz'), 'gzip');
  assert.is(archiveCoder('releases/1.1.0/x.from-1.0.0.delta.tar'), 'tar');
});

full('issue 14 item 3: the window just holds the input, up to 16 MiB (the large window, at most 30, only when a caller allows it); a large-window stream extracts', async () => {
  assert.is(brotliWindowBits(0), 10);
  assert.is(brotliWindowBits(1000), 10);
  assert.is(brotliWindowBits(1009), 11);
  assert.is(brotliWindowBits(16 * 1024 * 1024 - 16), 24);
  assert.is(brotliWindowBits(16 * 1024 * 1024 + 1), 25);
  assert.is(brotliWindowBits(50 * 1000 * 1000), 26);
  assert.is(brotliWindowBits(2 ** 33), 30);
  const params = (size: number) => brotliBestOptions(size).params as Record<number, number>;
  assert.is(params(1000)[constants.BROTLI_PARAM_LARGE_WINDOW], undefined);
  assert.is(params(1000)[constants.BROTLI_PARAM_QUALITY], 11);
  assert.is(params(1000)[constants.BROTLI_PARAM_LGWIN], 10);
  assert.is(params(10_000_000)[constants.BROTLI_PARAM_LGWIN], 24);
  assert.is(params(10_000_000)[constants.BROTLI_PARAM_LARGE_WINDOW], undefined);
  // Above 16 MiB the window stays 16 MiB (a device's decoder memory), unless the caller allows more.
  assert.is(params(40 * 1024 * 1024)[constants.BROTLI_PARAM_LARGE_WINDOW], undefined);
  assert.is(params(40 * 1024 * 1024)[constants.BROTLI_PARAM_LGWIN], 24);
  const allowed = brotliBestOptions(40 * 1024 * 1024, 11, 30).params as Record<number, number>;
  assert.is(allowed[constants.BROTLI_PARAM_LARGE_WINDOW], 1);
  assert.is(allowed[constants.BROTLI_PARAM_LGWIN], 26);

  // A small tar in a large-window stream (fast quality: the window is what is tested).
  const content = 'large window\n'.repeat(100);
  const file = join(tmp.path, 'large.tar.br');
  const encoder = createBrotliCompress({ params: { [constants.BROTLI_PARAM_QUALITY]: 5, [constants.BROTLI_PARAM_LARGE_WINDOW]: 1, [constants.BROTLI_PARAM_LGWIN]: 26 } });
  await pipeline(Readable.from([tarBytes([{ name: 'a.txt', content, mode: 0o644 }])]), encoder, createWriteStream(file));
  const stream = await readFile(file);
  assert.throws(() => brotliDecompressSync(stream), /WINDOW_BITS|Decompression failed/i, 'a standard decoder refuses it: it is a large-window stream');
  const dest = join(tmp.path, 'large-out');
  await mkdir(dest);
  const expected = new Map<string, ExpectedEntry>([['a.txt', { size: content.length, sha256: sha256(content), mode: 0o644 }]]);
  await extractArchive(file, dest, expected, undefined, undefined, undefined, archiveCoder(file));
  assert.is(await readFile(join(dest, 'a.txt'), 'utf8'), content);
});

full.run();

// ---------------------------------------------------------------------------------------------

const batched = suite('issue 14 item 7: a full update writes and checks every file, then fsyncs them all');

/**
 * Records every file write and fsync in order while `body` runs, whichever way they are made:
 * FileHandle methods, or descriptor calls of node:fs (patched on the module, and synced into its
 * ESM named exports).
 */
async function recordHandleCalls(body: () => Promise<void>): Promise<string[]> {
  const probe = await open(join(tmp.path, 'probe'), 'w');
  const proto = Object.getPrototypeOf(probe) as Record<string, (...a: unknown[]) => unknown>;
  await probe.close();
  const calls: string[] = [];
  const mod = fs as unknown as Record<string, (...a: unknown[]) => unknown>;
  const patched: [Record<string, (...a: unknown[]) => unknown>, string, 'write' | 'sync'][] = [
    [proto, 'write', 'write'],
    [proto, 'writev', 'write'],
    [proto, 'sync', 'sync'],
    [proto, 'datasync', 'sync'],
    [mod, 'write', 'write'],
    [mod, 'writeSync', 'write'],
    [mod, 'writev', 'write'],
    [mod, 'writevSync', 'write'],
    [mod, 'fsync', 'sync'],
    [mod, 'fsyncSync', 'sync'],
    [mod, 'fdatasync', 'sync'],
    [mod, 'fdatasyncSync', 'sync'],
  ];
  const originals = patched.map(([obj, name]) => obj[name]!);
  patched.forEach(([obj, name, what], i) => {
    const original = originals[i]!;
    obj[name] = function (this: unknown, ...a: unknown[]) {
      calls.push(what);
      return original.apply(this, a);
    };
  });
  syncBuiltinESMExports();
  try {
    await body();
  } finally {
    patched.forEach(([obj, name], i) => { obj[name] = originals[i]!; });
    syncBuiltinESMExports();
  }
  return calls;
}

batched.before(async () => {
  tmp = await tempDir('ferry-batched-fsync-');
});

batched.after(async () => {
  skipFsyncAt([]);
  await tmp.cleanup();
});

/** A plain tar of `count` files of `size` bytes each (several chunks per file), and their signed list. */
async function manyFiles(count: number, size: number): Promise<{ archive: string; expected: Map<string, ExpectedEntry> }> {
  const tree = join(tmp.path, `tree-${count}`);
  const files = Object.fromEntries(Array.from({ length: count }, (_, i) => [`d${i % 3}/f${i}.bin`, pseudoRandomBytes(size, i + 1)]));
  for (const [path, bytes] of Object.entries(files)) {
    await mkdir(join(tree, path, '..'), { recursive: true });
    await writeFile(join(tree, path), bytes);
  }
  const archive = join(tmp.path, `many-${count}.tar`);
  await packFiles(tree, Object.keys(files), archive, false);
  const expected = new Map<string, ExpectedEntry>(Object.entries(files).map(([p, b]) => [p, { size: b.length, sha256: sha256(b), mode: 0o644 }]));
  return { archive, expected };
}

batched('issue 14 item 7: every file is written before the first file fsync, each written file is fsynced once, and the extract.file site still turns them off', async () => {
  const { archive, expected } = await manyFiles(12, 200_000);
  skipFsyncAt(['extract.dirs']); // only file fsyncs are counted here
  const dest = join(tmp.path, 'out-ok');
  await mkdir(dest);
  const calls = await recordHandleCalls(async () => {
    await extractArchive(archive, dest, expected, undefined, undefined, undefined, 'tar');
  });
  const firstSync = calls.indexOf('sync');
  assert.ok(calls.filter((c) => c === 'write').length >= 12, 'the files\' writes were seen');
  assert.ok(firstSync > calls.lastIndexOf('write'), `no fsync before the last write: ${calls.join(' ')}`);
  assert.is(calls.filter((c) => c === 'sync').length, 12, 'one fsync per file');

  skipFsyncAt(['extract.dirs', 'extract.file']);
  const skipped = join(tmp.path, 'out-skipped');
  await mkdir(skipped);
  const none = await recordHandleCalls(async () => {
    await extractArchive(archive, skipped, expected, undefined, undefined, undefined, 'tar');
  });
  assert.is(none.filter((c) => c === 'sync').length, 0, 'FERRY_UNSAFE_SKIP_FSYNC=extract.file still names these fsyncs');
  skipFsyncAt([]);
});

batched('issue 14 item 7: when the last file does not hash to its signed value, no file was fsynced (ERR_HASH_MISMATCH)', async () => {
  const { archive, expected } = await manyFiles(6, 100_000);
  const last = [...expected.keys()].sort().at(-1)!;
  const wrong = new Map(expected);
  wrong.set(last, { ...(expected.get(last) as { size: number; mode: number }), sha256: 'f'.repeat(64) });
  const dest = join(tmp.path, 'out-bad');
  await mkdir(dest);
  const calls = await recordHandleCalls(async () => {
    await assertCodeAsync(() => extractArchive(archive, dest, wrong, undefined, undefined, undefined, 'tar'), 'ERR_HASH_MISMATCH');
  });
  assert.is(calls.filter((c) => c === 'sync').length, 0, `nothing fsynced before every file was checked: ${calls.join(' ')}`);
});

/**
 * Run in a fresh node process, where nothing else allocates: 8 dead 1 MiB Buffers, as a decoder
 * leaves them, then collectDecodedGarbage (unless 'noop'), then up to a second for V8's background
 * sweeper. Prints the MiB of ArrayBuffers before and after, and what the scopes hold of `gc`.
 */
const COLLECTION_PROBE = `
import { collectDecodedGarbage } from ${JSON.stringify(join(ROOT, 'core/io/brotli.ts'))};
import { runInNewContext } from 'node:vm';
const collect = process.argv[2] !== 'noop';
collectDecodedGarbage(); // first, so that none of the Buffers is promoted by it while they are made
let dead = Array.from({ length: 8 }, () => Buffer.alloc(1024 * 1024, 1));
const before = process.memoryUsage().arrayBuffers;
dead = undefined;
if (collect) collectDecodedGarbage();
let after = process.memoryUsage().arrayBuffers;
for (let i = 0; i < 100 && before - after < 6 * 1024 * 1024; i++) {
  await new Promise((resolve) => setTimeout(resolve, 10));
  after = process.memoryUsage().arrayBuffers;
}
console.log(JSON.stringify({ before: before >> 20, after: after >> 20, dead, globalGc: typeof globalThis.gc, contextGc: runInNewContext('typeof gc') }));
`;

batched('issue 14 item 7: the young-generation collection between decoded chunks frees dead Buffers and leaves no gc in any scope', async () => {
  const probe = join(tmp.path, 'collection-probe.mts');
  await writeFile(probe, COLLECTION_PROBE);
  const run = (mode: string) => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', probe, mode], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
    assert.is(r.status, 0, r.stderr);
    return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { before: number; after: number; globalGc: string; contextGc: string };
  };
  const collected = run('collect');
  assert.ok(collected.before - collected.after >= 6, `the dead Buffers were freed: ${collected.before} MiB of ArrayBuffers before, ${collected.after} MiB after`);
  assert.is(collected.globalGc, 'undefined', 'no gc in the global scope');
  assert.is(collected.contextGc, 'undefined', 'the flag is off again: a new context gets no gc');
  // The control: without the collection nothing frees them in that second (so the check above can fail).
  const control = run('noop');
  assert.ok(control.before - control.after < 6, `without the collection the Buffers stay: ${control.before} MiB before, ${control.after} MiB after`);
});

batched.run();
