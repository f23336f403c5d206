// issue 14 item 1: ferry's own patch format FERRYBD1 (core/delta/patch-format.ts), written by
// writeFerryPatch and applied by the pure-TypeScript streaming patcher applyPatchEntry. Round
// trips over RawPatches built from known edit scripts (test/helpers/edit-script.ts): insertions,
// deletions, moves, backward seeks, empty old, empty new, entries with x = 0 or y = 0; the base
// held in memory and read through the positioned-read window; a patch inside a larger file. KB
// inputs; the 10 MB esbuild pairs are measured by bench/ferry-patch-pair.mjs, by hand.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { lstat, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { brotliCompressSync, constants as z } from 'node:zlib';
import { applyPatchEntry, type PatchEntryInput } from '../../core/delta/patch-apply.ts';
import { writeFerryPatch } from '../../core/delta/patch-encode.ts';
import { brotliBestOptions } from '../../core/io/brotli.ts';
import { CODER_BROTLI, CODER_BROTLI_LARGE_WINDOW, CONTROL_LEB128, encodeControl, FILTER_NONE, FILTER_X86, PATCH_HEADER_SIZE, readPatchHeader, writePatchHeader, type PatchHeader } from '../../core/delta/patch-format.ts';
import type { RawPatch } from '../../core/delta/raw-patch.ts';
import { sha256 } from '../../core/io/hash.ts';
import { assertCodeAsync } from '../helpers/assert-code.ts';
import { rawPatchBetween, rawPatchFromSteps, type Step } from '../helpers/edit-script.ts';
import { pseudoRandomBytes, tempDir, type TempDir } from '../helpers/repo.ts';

let tmp: TempDir;
let n = 0;

/** Writes `old`, encodes `raw`, applies it (with `extra` input fields) and returns what was built. */
async function roundTrip(old: Uint8Array, raw: RawPatch, extra: Partial<PatchEntryInput> = {}): Promise<{ bytes: Buffer; got: { sha256: string; size: number }; patchSize: number; patchFile: string }> {
  const i = n++;
  const baseFile = join(tmp.path, `old-${i}`);
  const patchFile = join(tmp.path, `patch-${i}`);
  const outFile = join(tmp.path, `new-${i}`);
  await writeFile(baseFile, old);
  const patchSize = await writeFerryPatch(raw, patchFile);
  assert.is((await stat(patchFile)).size, patchSize, 'writeFerryPatch returns the size it wrote');
  const got = await applyPatchEntry({ baseFile, baseSize: old.length, patch: { file: patchFile, offset: 0, size: patchSize }, outFile, newSize: raw.newSize, ...extra });
  return { bytes: await readFile(outFile), got, patchSize, patchFile };
}

const OLD = pseudoRandomBytes(40_000, 14);

/** Edit scripts over OLD, each named for the shape it exercises. */
const SCRIPTS: Record<string, Step[]> = {
  'unchanged (one add entry)': [{ from: 0, len: OLD.length }],
  'in-place edits (diff bytes not zero)': [{ from: 0, len: OLD.length, delta: (i) => (i % 97 === 0 ? 1 + (i % 5) : 0) }],
  'insertions (x = 0 entries between adds)': [{ from: 0, len: 10_000 }, { insert: pseudoRandomBytes(3000, 1) }, { from: 10_000, len: 30_000 }, { insert: Buffer.from('tail') }],
  'deletions (forward seeks)': [{ from: 0, len: 5000 }, { from: 9000, len: 20_000 }, { from: 35_000, len: 5000 }],
  'moves and backward seeks': [{ from: 30_000, len: 10_000 }, { from: 0, len: 15_000, delta: (i) => i & 3 }, { from: 20_000, len: 10_000 }, { from: 1, len: 2 }],
  'a new file made only of inserts (y only, x = 0 everywhere)': [{ insert: pseudoRandomBytes(5000, 2) }, { insert: pseudoRandomBytes(70, 3) }],
  'empty new file': [],
  'the same old bytes used many times': Array.from({ length: 50 }, (_, i) => ({ from: (i * 7919) % 39_000, len: 1000 })),
};

const rt = suite('issue 14 item 1: FERRYBD1 round trips (writeFerryPatch → applyPatchEntry)');

rt.before(async () => { tmp = await tempDir('ferry-patch-'); });
rt.after(async () => { await tmp?.cleanup(); });

for (const [name, steps] of Object.entries(SCRIPTS)) {
  for (const merge of [false, true]) {
    rt(`${name}${merge ? ', add and insert in one entry' : ''}: builds exactly the new bytes, base in memory and through the window`, async () => {
      const { raw, expected } = rawPatchFromSteps(OLD, steps, { merge });
      for (const oldInMemoryMax of [undefined, 0]) {
        const { bytes, got, patchSize } = await roundTrip(OLD, raw, oldInMemoryMax === undefined ? {} : { oldInMemoryMax });
        assert.ok(bytes.equals(expected), `built bytes differ (${bytes.length} vs ${expected.length})`);
        assert.equal(got, { sha256: sha256(expected), size: expected.length }, 'returns the sha256 and size of what it wrote');
        if (name.startsWith('unchanged')) assert.ok(patchSize < 200, `an unchanged 40 KB file patches in ${patchSize} bytes`);
      }
    });
  }
}

rt('an empty old file (everything from extra), and empty old to empty new', async () => {
  const next = pseudoRandomBytes(9000, 5);
  const a = await roundTrip(new Uint8Array(0), rawPatchBetween(new Uint8Array(0), next));
  assert.ok(a.bytes.equals(next));
  const b = await roundTrip(new Uint8Array(0), { oldSize: 0, newSize: 0, control: [], diff: new Uint8Array(0), extra: new Uint8Array(0) });
  assert.is(b.bytes.length, 0);
  assert.equal(b.got, { sha256: sha256(''), size: 0 });
});

rt('the output is larger than the 1 MiB write buffer (several flushes) and the window refills across seeks', async () => {
  const old = pseudoRandomBytes(300_000, 6);
  const steps: Step[] = [];
  for (let k = 0; k < 12; k++) steps.push({ from: (k * 104_729) % 200_000, len: 100_000, delta: (i) => (i % 1013 === 0 ? 7 : 0) }, { insert: pseudoRandomBytes(1000, 100 + k) });
  const { raw, expected } = rawPatchFromSteps(old, steps);
  assert.ok(expected.length > 1024 * 1024);
  for (const oldInMemoryMax of [undefined, 0]) {
    const { bytes, got } = await roundTrip(old, raw, oldInMemoryMax === undefined ? {} : { oldInMemoryMax });
    assert.ok(bytes.equals(expected));
    assert.is(got.size, expected.length);
  }
});

rt('a patch entry inside a larger file (offset ≠ 0) is read from its own byte range only', async () => {
  const { raw, expected } = rawPatchFromSteps(OLD, SCRIPTS['moves and backward seeks']!);
  const solo = join(tmp.path, 'solo.patch');
  const size = await writeFerryPatch(raw, solo);
  const pack = join(tmp.path, 'pack');
  await writeFile(pack, Buffer.concat([pseudoRandomBytes(777, 9), await readFile(solo), pseudoRandomBytes(333, 10)]));
  const baseFile = join(tmp.path, 'pack-base');
  await writeFile(baseFile, OLD);
  const outFile = join(tmp.path, 'pack-out');
  const got = await applyPatchEntry({ baseFile, baseSize: OLD.length, patch: { file: pack, offset: 777, size }, outFile, newSize: raw.newSize });
  assert.ok((await readFile(outFile)).equals(expected));
  assert.is(got.sha256, sha256(expected));
});

rt('the output is created 0600, exclusively: an existing file or a planted symlink at outFile is refused, never written through', async () => {
  const { raw } = rawPatchFromSteps(OLD, SCRIPTS['insertions (x = 0 entries between adds)']!);
  const { patchFile, patchSize } = await roundTrip(OLD, raw);
  const baseFile = join(tmp.path, 'old-0');
  const outFile = join(tmp.path, 'fresh-out');
  await applyPatchEntry({ baseFile, baseSize: OLD.length, patch: { file: patchFile, offset: 0, size: patchSize }, outFile, newSize: raw.newSize });
  assert.is((await lstat(outFile)).mode & 0o777, 0o600);
  const sentinel = join(tmp.path, 'sentinel');
  await writeFile(sentinel, 'must not change');
  const planted = join(tmp.path, 'planted-out');
  await symlink(sentinel, planted);
  for (const target of [outFile, planted]) {
    await assertCodeAsync(() => applyPatchEntry({ baseFile, baseSize: OLD.length, patch: { file: patchFile, offset: 0, size: patchSize }, outFile: target, newSize: raw.newSize }), 'ERR_IO');
  }
  assert.is(await readFile(sentinel, 'utf8'), 'must not change');
  assert.ok((await lstat(planted)).isSymbolicLink());
});

rt('the header: 56 bytes, little-endian, read back field for field (filter in byte 10, byte 11 reserved 0); coder 1 below 16 MiB per stream', async () => {
  const h: PatchHeader = { coder: CODER_BROTLI_LARGE_WINDOW, controlEncoding: CONTROL_LEB128, filter: FILTER_X86, entries: 0xfffffffe, oldSize: 2 ** 53 - 1, newSize: 123, controlLength: 1, diffLength: 2 ** 40, extraLength: 3 };
  const bytes = writePatchHeader(h);
  assert.is(bytes.length, PATCH_HEADER_SIZE);
  assert.is(bytes.subarray(0, 8).toString('latin1'), 'FERRYBD1');
  assert.is(bytes.readUInt32LE(12), 0xfffffffe);
  assert.equal([bytes[10], bytes[11]], [1, 0]);
  assert.is(bytes.readBigUInt64LE(40), 2n ** 40n);
  assert.equal(readPatchHeader(bytes), h);
  const { raw } = rawPatchFromSteps(OLD, SCRIPTS['moves and backward seeks']!);
  const { patchFile } = await roundTrip(OLD, raw);
  const written = readPatchHeader(await readFile(patchFile));
  assert.is(written.coder, CODER_BROTLI);
  assert.is(written.filter, FILTER_NONE, 'writeFerryPatch writes filter 0 unless told');
  const filtered = join(tmp.path, 'filtered.patch');
  await writeFerryPatch(raw, filtered, { filter: FILTER_X86 });
  assert.is(readPatchHeader(await readFile(filtered)).filter, FILTER_X86);
  assert.is((await readFile(filtered))[10], 1);
  assert.is(written.entries, raw.control.length / 3);
  assert.equal([written.oldSize, written.newSize], [OLD.length, raw.newSize]);
  // Standard window while the stream fits 2^24 - 16 bytes; above it the large window (sized to the stream, at most 2^30) only when the caller allows it.
  const params = (size: number) => brotliBestOptions(size, 11, 30).params as Record<number, number>;
  assert.is((brotliBestOptions(16 * 1024 * 1024 + 1).params as Record<number, number>)[z.BROTLI_PARAM_LGWIN], 24);
  assert.is(params(16 * 1024 * 1024 - 16)[z.BROTLI_PARAM_LARGE_WINDOW], undefined);
  assert.is(params(16 * 1024 * 1024 - 16)[z.BROTLI_PARAM_LGWIN], 24);
  assert.is(params(16 * 1024 * 1024 + 1)[z.BROTLI_PARAM_LARGE_WINDOW], 1);
  assert.is(params(16 * 1024 * 1024 + 1)[z.BROTLI_PARAM_LGWIN], 25);
  assert.is(params(2 ** 33)[z.BROTLI_PARAM_LGWIN], 30);
});

rt('coder 2 (large-window brotli streams) decodes too: the decoder always allows the large window', async () => {
  const { raw, expected } = rawPatchFromSteps(OLD, SCRIPTS['moves and backward seeks']!);
  const large = { [z.BROTLI_PARAM_LARGE_WINDOW]: 1, [z.BROTLI_PARAM_LGWIN]: 26, [z.BROTLI_PARAM_QUALITY]: 5 };
  const streams = [encodeControl(raw.control), raw.diff, raw.extra].map((s) => brotliCompressSync(s, { params: large }));
  const header = writePatchHeader({ coder: CODER_BROTLI_LARGE_WINDOW, controlEncoding: CONTROL_LEB128, filter: FILTER_NONE, entries: raw.control.length / 3, oldSize: OLD.length, newSize: raw.newSize, controlLength: streams[0]!.length, diffLength: streams[1]!.length, extraLength: streams[2]!.length });
  const patch = Buffer.concat([header, ...streams]);
  const patchFile = join(tmp.path, 'large.patch');
  await writeFile(patchFile, patch);
  const baseFile = join(tmp.path, 'large-base');
  await writeFile(baseFile, OLD);
  const got = await applyPatchEntry({ baseFile, baseSize: OLD.length, patch: { file: patchFile, offset: 0, size: patch.length }, outFile: join(tmp.path, 'large-out'), newSize: raw.newSize });
  assert.is(got.sha256, sha256(expected));
});

rt('writeFerryPatch refuses a RawPatch that does not build newSize bytes from oldSize (ERR_INTERNAL: a matcher bug), and an existing outFile', async () => {
  const good = rawPatchFromSteps(OLD, SCRIPTS['deletions (forward seeks)']!).raw;
  const bad: RawPatch[] = [
    { ...good, newSize: good.newSize + 1 },
    { ...good, control: [...good.control, 0] },
    { ...good, diff: good.diff.subarray(1) },
    { ...good, oldSize: 100 },
    { ...good, control: [-1, 1, 0] },
  ];
  for (const [i, raw] of bad.entries()) await assertCodeAsync(() => writeFerryPatch(raw, join(tmp.path, `bad-${i}`)), 'ERR_INTERNAL');
  const exists = join(tmp.path, 'exists.patch');
  await writeFile(exists, 'x');
  await assertCodeAsync(() => writeFerryPatch(good, exists), 'ERR_IO');
  assert.is(await readFile(exists, 'utf8'), 'x');
});

rt.run();
