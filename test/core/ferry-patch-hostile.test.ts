// issue 14 items 1 and 8: every check applyPatchEntry makes on a FERRYBD1 patch (ARCHITECTURE.md
// "Patch format", SECURITY.md row 17), each met by a patch that breaks exactly that rule
// (test/helpers/ferry-patch-craft.ts). Header lies are refused before the output file exists
// (shown by an outFile that already exists: a check that ran after opening it would say ERR_IO);
// lies found while writing leave no output file, and nothing past the signed size is ever
// written. Also the dispatch on the magic (BSDIFF40 to the native patcher, FERRYZF1 and the rest
// refused) and descriptor hygiene over many failures. KB inputs.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { access, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { brotliCompressSync, constants as z } from 'node:zlib';
import { zstdFromSupported } from '../../core/delta/zstd-from.ts';
import { applyPatchEntry, type PatchEntryInput } from '../../core/delta/patch-apply.ts';
import { writeFerryPatch } from '../../core/delta/patch-encode.ts';
import { encodeControl, MAX_VARINT_BYTES, unzigzag, zigzag } from '../../core/delta/patch-format.ts';
import { sha256 } from '../../core/io/hash.ts';
import { createBsdiffPatcher } from '../../plugins/bsdiff/patcher.ts';
import { assertCodeAsync } from '../helpers/assert-code.ts';
import { brotli, craftFrom, craftPatch } from '../helpers/ferry-patch-craft.ts';
import { rawPatchFromSteps } from '../helpers/edit-script.ts';
import { bsdiffHeader, openFdCount } from '../helpers/hostile-delta.ts';
import type { Patcher } from '../../core/ports/patcher.ts';
import { pseudoRandomBytes, tempDir, type TempDir } from '../helpers/repo.ts';
import type { ErrorCode } from '../../core/errors.ts';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

let tmp: TempDir;
let baseFile: string;
const OLD = pseudoRandomBytes(20_000, 41);
/** A genuine patch: moves, a backward seek, an insert, edits. */
const { raw: RAW, expected: NEW } = rawPatchFromSteps(OLD, [
  { from: 12_000, len: 8000 }, { insert: pseudoRandomBytes(500, 42) }, { from: 0, len: 9000, delta: (i) => (i % 50 === 0 ? 3 : 0) }, { from: 15_000, len: 2000 },
]);
let n = 0;

const exists = (path: string) => access(path).then(() => true, () => false);

async function patchFile(bytes: Uint8Array): Promise<string> {
  const file = join(tmp.path, `p-${n++}`);
  await writeFile(file, bytes);
  return file;
}

/** applyPatchEntry on `bytes` against OLD, expecting NEW's size unless `over` says otherwise. */
async function apply(bytes: Uint8Array, over: Partial<PatchEntryInput> = {}): Promise<{ sha256: string; size: number }> {
  const file = await patchFile(bytes);
  return applyPatchEntry({ baseFile, baseSize: OLD.length, patch: { file, offset: 0, size: bytes.length }, outFile: join(tmp.path, `out-${n++}`), newSize: RAW.newSize, ...over });
}

/** Refused with `code` before the output was opened: an outFile that already exists would otherwise give ERR_IO. */
async function refusedBeforeWriting(bytes: Uint8Array, code: ErrorCode, over: Partial<PatchEntryInput> = {}): Promise<string> {
  const outFile = join(tmp.path, `exists-${n++}`);
  await writeFile(outFile, 'already here');
  const err = await assertCodeAsync(() => apply(bytes, { outFile, ...over }), code);
  assert.is(await readFile(outFile, 'utf8'), 'already here');
  return err.message;
}

/** Refused with ERR_PATCH while writing: no output file is left, and no buffer written ever passed the signed size. */
async function refusedWhileWriting(bytes: Uint8Array, over: Partial<PatchEntryInput> = {}): Promise<string> {
  const outFile = join(tmp.path, `w-${n++}`);
  let most = 0;
  const newSize = over.newSize ?? RAW.newSize;
  const err = await assertCodeAsync(() => apply(bytes, { outFile, onWritten: (b) => { most = Math.max(most, b); }, ...over }), 'ERR_PATCH');
  assert.ok(most <= newSize, `wrote ${most} bytes, signed ${newSize}`);
  assert.not.ok(await exists(outFile), 'no output file is left behind');
  return err.message;
}

const hostile = suite('issue 14 item 8: a hostile FERRYBD1 patch is refused by applyPatchEntry');

hostile.before(async () => {
  tmp = await tempDir('ferry-patch-hostile-');
  baseFile = join(tmp.path, 'base');
  await writeFile(baseFile, OLD);
});
hostile.after(async () => { await tmp?.cleanup(); });

hostile('control: the genuine crafted patch builds the new bytes (so every refusal below is the change it makes)', async () => {
  const got = await apply(craftFrom(RAW));
  assert.equal(got, { sha256: sha256(NEW), size: NEW.length });
  const encoded = join(tmp.path, 'encoded');
  const size = await writeFerryPatch(RAW, encoded);
  assert.equal(await apply(await readFile(encoded)), got);
  assert.is(size, (await readFile(encoded)).length);
});

// ------------------------------------------------------------------------------- before writing

hostile('a lying header: new size of 8 GiB (or one byte more) against the signed size → ERR_PATCH naming both, fast, no memory growth', async () => {
  const rss0 = process.memoryUsage().rss;
  const t0 = performance.now();
  const msg = await refusedBeforeWriting(craftFrom(RAW, { header: { newSize: BigInt(8 * GiB) } }), 'ERR_PATCH');
  assert.match(msg, /8589934592/);
  assert.match(msg, new RegExp(String(RAW.newSize)));
  assert.ok(performance.now() - t0 < 5000);
  assert.ok(process.memoryUsage().rss - rss0 < 64 * MiB);
  await refusedBeforeWriting(craftFrom(RAW, { header: { newSize: BigInt(RAW.newSize + 1) } }), 'ERR_PATCH');
  // And the other way round: the header is honest, the signed size is not the patch's.
  await refusedBeforeWriting(craftFrom(RAW), 'ERR_PATCH', { newSize: RAW.newSize - 1 });
});

hostile('a header for another base size, or a base file of another size than signed → refused before writing', async () => {
  await refusedBeforeWriting(craftFrom(RAW, { header: { oldSize: BigInt(OLD.length + 1) } }), 'ERR_PATCH');
  // The header and the signed base size agree, the file on disk does not: not the signed base.
  const shorter = join(tmp.path, 'shorter-base');
  await writeFile(shorter, OLD.subarray(1));
  await refusedBeforeWriting(craftFrom(RAW), 'ERR_HASH_MISMATCH', { baseFile: shorter });
  await refusedBeforeWriting(craftFrom({ ...RAW, oldSize: OLD.length - 1 }), 'ERR_HASH_MISMATCH', { baseFile, baseSize: OLD.length - 1 });
  await refusedBeforeWriting(craftFrom(RAW), 'ERR_HASH_MISMATCH', { baseFile: join(tmp.path, 'no-such-base') });
});

hostile('unknown coder, unknown control encoding, unknown filter, reserved bits set, sizes over 2^53 → ERR_PATCH before writing', async () => {
  for (const header of [{ coder: 0 }, { coder: 3 }, { coder: 255 }, { encoding: 0 }, { encoding: 3 }, { filter: 2 }, { filter: 255 }, { reserved: 1 }, { reserved: 0x80 }]) {
    await refusedBeforeWriting(craftFrom(RAW, { header }), 'ERR_PATCH');
  }
  for (const field of ['oldSize', 'newSize', 'controlLength', 'diffLength', 'extraLength'] as const) {
    const msg = await refusedBeforeWriting(craftFrom(RAW, { header: { [field]: 2n ** 53n } }), 'ERR_PATCH');
    assert.match(msg, /2\^53|promises|base|states/, `${field}: ${msg}`);
    await refusedBeforeWriting(craftFrom(RAW, { header: { [field]: 2n ** 64n - 1n } }), 'ERR_PATCH');
  }
});

hostile('stream lengths that do not add up to the entry size exactly (trailing bytes, a length past the end, a cut patch) → ERR_PATCH before writing', async () => {
  const genuine = craftFrom(RAW);
  await refusedBeforeWriting(Buffer.concat([genuine, Buffer.from('trailing')]), 'ERR_PATCH');
  await refusedBeforeWriting(genuine.subarray(0, genuine.length - 1), 'ERR_PATCH');
  for (const cut of [0, 7, 8, 30, 55, 56]) await refusedBeforeWriting(genuine.subarray(0, cut), 'ERR_PATCH');
  const ctrlLen = genuine.readBigUInt64LE(32);
  await refusedBeforeWriting(craftFrom(RAW, { header: { controlLength: ctrlLen + 1n } }), 'ERR_PATCH');
  await refusedBeforeWriting(craftFrom(RAW, { header: { controlLength: BigInt(8 * GiB) } }), 'ERR_PATCH');
  // An entry range that runs past the end of the file holding it.
  const file = await patchFile(genuine);
  await assertCodeAsync(() => applyPatchEntry({ baseFile, baseSize: OLD.length, patch: { file, offset: 10, size: genuine.length }, outFile: join(tmp.path, 'past-end'), newSize: RAW.newSize }), 'ERR_PATCH');
});

hostile('the magic decides: FERRYZF1 → the zstd-from reader (ERR_NO_PATCHER on a Node without zstd; with zstd its header check refuses these bytes: ERR_PATCH), BSDIFF40 without a native patcher → ERR_NO_PATCHER, anything else → ERR_PATCH', async () => {
  const genuine = craftFrom(RAW);
  const withMagic = (m: string) => Buffer.concat([Buffer.from(m, 'latin1'), genuine.subarray(8)]);
  // Read as FERRYZF1, the FERRYBD1 header's next bytes are a lying old size: core/delta/zstd-from.ts
  // refuses them before anything is written (a Node without zstd refuses any zstd-from entry).
  assert.match(await refusedBeforeWriting(withMagic('FERRYZF1'), zstdFromSupported() ? 'ERR_PATCH' : 'ERR_NO_PATCHER'), /zstd-from/);
  await refusedBeforeWriting(withMagic('BSDIFF40'), 'ERR_NO_PATCHER');
  for (const m of ['FERRYBD2', 'ferrybd1', 'BSDIFF41', '\0\0\0\0\0\0\0\0']) await refusedBeforeWriting(withMagic(m), 'ERR_PATCH');
});

// ------------------------------------------------------------------------------- while writing

hostile('an entry that writes past the signed size (x, y, or x + y too large, or a 56-bit number) → ERR_PATCH, nothing past the size written', async () => {
  const big = (control: number[], diffLen: number, extraLen: number) => craftPatch({ oldSize: OLD.length, newSize: RAW.newSize, control, diff: new Uint8Array(diffLen), extra: new Uint8Array(extraLen) });
  await refusedWhileWriting(big([RAW.newSize + 1, 0, 0], RAW.newSize + 1, 0));
  await refusedWhileWriting(big([0, RAW.newSize + 1, 0], 0, RAW.newSize + 1));
  await refusedWhileWriting(big([10_000, 9_500, 0, 1, 0, 0], 10_001, 9_500));
  await refusedWhileWriting(big([2 ** 56 - 1, 0, 0], 0, 0));
  // A base of 1.5 MiB, a signed size of 1 MiB + 1: the first buffer is written, the entry past it is not.
  const wide = pseudoRandomBytes(3 * MiB / 2, 43);
  const wideBase = join(tmp.path, 'wide-base');
  await writeFile(wideBase, wide);
  const most: number[] = [];
  const wideBytes = craftPatch({ oldSize: wide.length, newSize: MiB + 1, control: [MiB, 0, 0, 2, 0, 0], diff: new Uint8Array(MiB + 2), extra: new Uint8Array(0) });
  const file = await patchFile(wideBytes);
  const outFile = join(tmp.path, 'wide-out');
  await assertCodeAsync(() => applyPatchEntry({ baseFile: wideBase, baseSize: wide.length, patch: { file, offset: 0, size: wideBytes.length }, outFile, newSize: MiB + 1, onWritten: (b) => most.push(b) }), 'ERR_PATCH');
  assert.equal(most, [MiB], 'the first full buffer was written, nothing after it');
  assert.ok(most.every((b) => b <= MiB + 1), `written: ${most.join(', ')}`);
  assert.not.ok(await exists(outFile));
});

hostile('an add that reads old bytes outside [0, oldSize) is refused (never zero-filled), base in memory or through the window', async () => {
  const n2 = OLD.length;
  const cases: number[][] = [
    [n2 + 1, 0, 0], // past the end from 0
    [100, 0, n2 - 150, 100, 0, 0], // seek to n-50, then 100 bytes
    [10, 0, -20, 5, 0, 0], // seek before the start, then read
    [0, 0, n2, 1, 0, 0], // at exactly oldSize
  ];
  for (const control of cases) {
    const x = control.filter((_, i) => i % 3 === 0).reduce((a, b) => a + b, 0);
    const bytes = craftPatch({ oldSize: n2, newSize: x, control, diff: new Uint8Array(x), extra: new Uint8Array(0) });
    for (const oldInMemoryMax of [undefined, 0]) {
      const msg = await refusedWhileWriting(bytes, { newSize: x, ...(oldInMemoryMax === undefined ? {} : { oldInMemoryMax }) });
      assert.match(msg, /outside the base/, msg);
    }
  }
  // Seeking out of range is allowed when nothing is read there (bsdiff's last seek can land anywhere).
  const ok = craftPatch({ oldSize: n2, newSize: 10, control: [5, 0, -1000, 0, 5, 1e12], diff: new Uint8Array(5), extra: new Uint8Array(5) });
  assert.is((await apply(ok, { newSize: 10 })).size, 10);
  await refusedWhileWriting(craftPatch({ oldSize: n2, newSize: 0, control: [0, 0, 2 ** 53], diff: new Uint8Array(0), extra: new Uint8Array(0) }), { newSize: 0 });
});

hostile('truncated streams: the control, diff or extra stream cut short (header lengths fitted to the cut) → ERR_PATCH', async () => {
  for (const which of ['control', 'diff', 'extra'] as const) {
    for (const keep of [0, 1, 0.5]) {
      const bytes = craftFrom(RAW, { streams: (s) => ({ ...s, [which]: s[which].subarray(0, keep < 1 ? Math.floor(s[which].length * keep) : keep) }) });
      const msg = await refusedWhileWriting(bytes);
      assert.match(msg, new RegExp(which), `${which} cut to ${keep}: ${msg}`);
    }
  }
});

hostile('streams that give too little or too much: fewer entries, more entries, fewer diff or extra bytes, leftover decoded bytes, trailing compressed bytes → ERR_PATCH', async () => {
  const ctrl = RAW.control;
  const entries = ctrl.length / 3;
  const variants: [string, Buffer][] = [
    ['count above the entries', craftFrom(RAW, { header: { entries: entries + 1 } })],
    ['count below the entries', craftFrom(RAW, { header: { entries: entries - 1 } })],
    ['entries stop short of the size', craftFrom({ ...RAW, control: ctrl.slice(0, -3) })],
    ['diff short by one', craftFrom({ ...RAW, diff: RAW.diff.subarray(1) })],
    ['diff one byte over', craftFrom({ ...RAW, diff: Buffer.concat([RAW.diff, Buffer.from([0])]) })],
    ['extra one byte over', craftFrom({ ...RAW, extra: Buffer.concat([RAW.extra, Buffer.from([0])]) })],
    ['extra short by one', craftFrom({ ...RAW, extra: RAW.extra.subarray(1) })],
    ['control stream one varint over', craftFrom(RAW, { control: Buffer.concat([encodeControl(ctrl), Buffer.from([0])]) , header: { entries } })],
    ['a complete brotli stream followed by bytes inside its length', craftFrom(RAW, { streams: (s) => ({ ...s, diff: Buffer.concat([s.diff, Buffer.from('junk')]) }) })],
    ['a stream that is not brotli', craftFrom(RAW, { streams: (s) => ({ ...s, extra: Buffer.alloc(s.extra.length, 0xff) }) })],
    ['an empty compressed stream', craftFrom(RAW, { streams: (s) => ({ ...s, control: Buffer.alloc(0) }) })],
    ['a varint longer than 8 bytes', craftFrom(RAW, { control: Buffer.from([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 0, 0]), header: { entries: 1 } })],
  ];
  for (const [what, bytes] of variants) {
    try {
      await refusedWhileWriting(bytes);
    } catch (err) {
      throw new Error(`${what}: ${(err as Error).message}`);
    }
  }
});

hostile('a decompression bomb in a stream costs one chunk: 64 MiB of zeros behind a patch that needs 1 KB is refused quickly, without the memory', async () => {
  const bomb = brotliCompressSync(Buffer.alloc(64 * MiB), { params: { [z.BROTLI_PARAM_QUALITY]: 1 } });
  assert.ok(bomb.length < MiB, `bomb is ${bomb.length} bytes`);
  const old = OLD.subarray(0, 1024);
  const small = join(tmp.path, 'small-base');
  await writeFile(small, old);
  for (const which of ['diff', 'extra', 'control'] as const) {
    const bytes = craftPatch({ oldSize: 1024, newSize: 1024, control: [512, 512, 0], diff: new Uint8Array(512), extra: new Uint8Array(512), streams: (s) => ({ ...s, [which]: bomb }), ...(which === 'control' ? { header: { entries: 1 } } : {}) });
    const rss0 = process.memoryUsage().rss;
    const t0 = performance.now();
    await refusedWhileWriting(bytes, { baseFile: small, baseSize: 1024, newSize: 1024 });
    const ms = performance.now() - t0;
    const grew = process.memoryUsage().rss - rss0;
    // Decoding it all ahead would hold 64 MiB; one chunk is 64 KiB.
    assert.ok(ms < 3000, `${which}: refused in ${ms.toFixed(0)} ms`);
    assert.ok(grew < 32 * MiB, `${which}: RSS grew ${(grew / MiB).toFixed(1)} MiB`);
  }
});

// ------------------------------------------------------------------------------- BSDIFF40 and hygiene

hostile('BSDIFF40 goes to the native patcher after its size check, from a private folder; a patch inside a pack (offset ≠ 0) is copied out for it', async () => {
  // A stand-in for bsdiff-node (not built on every Node line): the real header check, and a
  // patch() that records what it was given and writes the new bytes.
  const next = Buffer.concat([OLD.subarray(0, 15_000), pseudoRandomBytes(3000, 44), OLD.subarray(15_000)]);
  const entryBytes = Buffer.concat([bsdiffHeader({ ctrlLen: 10, dataLen: 10, newSize: next.length }), Buffer.alloc(40, 0x5a)]);
  const real = createBsdiffPatcher();
  const calls: { base: string; out: string; patch: Buffer }[] = [];
  const legacy: Patcher = {
    headerSize: real.headerSize,
    outputSize: (h, size) => real.outputSize(h, size),
    diff: () => Promise.reject(new Error('not used')),
    async patch(oldFile, newFile, patchFile) {
      calls.push({ base: oldFile, out: newFile, patch: await readFile(patchFile) });
      await writeFile(newFile, next, { flag: 'wx' });
    },
  };
  const pack = await patchFile(Buffer.concat([Buffer.alloc(100, 1), entryBytes, Buffer.alloc(50, 2)]));
  const outFile = join(tmp.path, 'legacy-out');
  const entry = { baseFile, baseSize: OLD.length, legacy };
  const got = await applyPatchEntry({ ...entry, newSize: next.length, patch: { file: pack, offset: 100, size: entryBytes.length }, outFile });
  assert.equal(got, { sha256: sha256(next), size: next.length });
  assert.ok((await readFile(outFile)).equals(next));
  assert.is(calls.length, 1);
  assert.ok(calls[0]!.patch.equals(entryBytes), 'the patcher read exactly the entry\'s bytes');
  assert.is(calls[0]!.base, baseFile);
  assert.ok(calls[0]!.out.startsWith(join(tmp.path, '.bsdiff40-')), `the patcher wrote a private path of ours: ${calls[0]!.out}`);
  assert.ok(!(await exists(calls[0]!.out)), 'the private folder is removed');
  // A header promising another size, or a cut header, never reaches the patcher.
  for (const [size, newSize] of [[entryBytes.length, next.length + 1], [20, next.length]] as const) {
    await assertCodeAsync(() => applyPatchEntry({ ...entry, newSize, patch: { file: pack, offset: 100, size }, outFile: join(tmp.path, `legacy-no-${size}`) }), 'ERR_PATCH');
  }
  assert.is(calls.length, 1);
  // A long base path reaches the patcher through a short private link.
  const longDir = join(tmp.path, 'x'.repeat(120), 'y'.repeat(120));
  await mkdir(longDir, { recursive: true });
  await writeFile(join(longDir, 'base'), OLD);
  await applyPatchEntry({ ...entry, baseFile: join(longDir, 'base'), newSize: next.length, patch: { file: pack, offset: 100, size: entryBytes.length }, outFile: join(tmp.path, 'legacy-long') });
  assert.ok(calls[1]!.base.length < 200, `base handed over as ${calls[1]!.base}`);
});

hostile('no descriptor leak and no leftover file over 200 failures at each stage (header, mid-stream, end of streams)', async () => {
  const files = [
    await patchFile(craftFrom(RAW, { header: { newSize: 5n } })),
    await patchFile(craftFrom(RAW, { streams: (s) => ({ ...s, diff: s.diff.subarray(0, s.diff.length >> 1) }) })),
    await patchFile(craftFrom({ ...RAW, extra: Buffer.concat([RAW.extra, Buffer.from([0])]) })),
  ];
  const run = async (file: string, i: number) => {
    const size = (await readFile(file)).length;
    await assertCodeAsync(() => applyPatchEntry({ baseFile, baseSize: OLD.length, patch: { file, offset: 0, size }, outFile: join(tmp.path, `leak-${i}`), newSize: RAW.newSize }), 'ERR_PATCH');
  };
  for (const f of files) await run(f, -1);
  const before = openFdCount();
  for (let i = 0; i < 200; i++) await run(files[i % 3]!, i);
  // Let the destroyed streams' last reads settle before counting.
  await new Promise((r) => setTimeout(r, 100));
  const after = openFdCount();
  assert.ok(after <= before + 3, `descriptors: ${before} before, ${after} after 200 failures`);
  for (let i = 0; i < 200; i++) assert.not.ok(await exists(join(tmp.path, `leak-${i}`)), `leak-${i} left behind`);
});

hostile('zigzag seeks: every value back exactly, in at most 8 varint bytes, up to ±2^52 (the writer refuses larger seeks)', () => {
  for (const v of [0, -1, 1, -2, 63, -64, 2 ** 40, -(2 ** 40), 2 ** 52, -(2 ** 52), 2 ** 52 - 1]) {
    assert.is(unzigzag(zigzag(v)), v);
    assert.ok(encodeControl([0, 0, v]).length <= 2 + MAX_VARINT_BYTES, `${v}`);
  }
});

hostile.run();
