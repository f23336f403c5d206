// issue 14: the x86-64 branch filter of FERRYBD1 patches (core/delta/x86-filter.ts; ARCHITECTURE.md
// "Patch format", header byte 10). The filter itself: known conversions, the blocking rule, round
// trips over buffers dense with E8/E9/REX patterns, and streaming at every split of a small buffer
// and at random splits of a large one. Then a real delta of a synthetic ELF x86-64 pair (code with
// many calls and RIP-relative loads into a runtime that does not move, and blocks inserted between
// releases): the publisher chooses the filter, the patch is smaller than without it, the device
// builds the exact new bytes with the base in memory and through a filtered temp file, and refuses
// an unknown filter and a wrong base, leaving nothing behind. ~1.3 MB inputs.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readdirSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { applyDelta } from '../../core/delta/apply-delta.ts';
import { makeDelta } from '../../core/delta/make-delta.ts';
import { applyPatchEntry } from '../../core/delta/patch-apply.ts';
import { writeFerryPatch } from '../../core/delta/patch-encode.ts';
import { FILTER_X86, readPatchHeader, writePatchHeader } from '../../core/delta/patch-format.ts';
import { isElfX86_64, x86Filter, x86FilterStart, x86FilterWhole, X86_LOOKAHEAD } from '../../core/delta/x86-filter.ts';
import { scanTree } from '../../core/publish/tree.ts';
import { sha256 } from '../../core/io/hash.ts';
import { isPackRange, type DeltaOp } from '../../core/trust/metadata.ts';
import { createBsdiffPatcher } from '../../plugins/bsdiff/patcher.ts';
import { assertCodeAsync } from '../helpers/assert-code.ts';
import { rawPatchBetween } from '../helpers/edit-script.ts';
import { tempDir, writeTree, type TempDir } from '../helpers/repo.ts';

/** A small deterministic generator (xorshift32), so every run tests the same bytes. */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    return s;
  };
}

/** Bytes dense with what the filter looks at: E8/E9, REX bytes, RIP opcodes and ModRMs, 00/FF. */
function dense(n: number, seed: number): Buffer {
  const r = rng(seed);
  const pick = [0xe8, 0xe9, 0x48, 0x4c, 0x40, 0x4f, 0x8b, 0x8d, 0x89, 0x63, 0x05, 0x0d, 0x15, 0x3d, 0x00, 0xff, 0x00, 0xff];
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) {
    const v = r();
    b[i] = v % 3 === 0 ? v >>> 24 : pick[(v >>> 8) % pick.length]!;
  }
  return b;
}

/** The filter run over `chunks` of `bytes` (a copy), carrying each chunk's unsettled tail into the next. */
function streamed(bytes: Buffer, cuts: number[], encode: boolean): Buffer {
  const state = x86FilterStart();
  const out: Buffer[] = [];
  let carry = Buffer.alloc(0);
  const ends = [...cuts, bytes.length];
  let from = 0;
  for (const [k, end] of ends.entries()) {
    const chunk = Buffer.concat([carry, bytes.subarray(from, end)]);
    const last = k === ends.length - 1;
    const ready = x86Filter(chunk, state, encode, last);
    assert.ok(last ? ready === chunk.length : chunk.length - ready <= X86_LOOKAHEAD, `a chunk leaves ${chunk.length - ready} bytes unsettled`);
    out.push(Buffer.from(chunk.subarray(0, ready)));
    carry = Buffer.from(chunk.subarray(ready));
    from = end;
  }
  return Buffer.concat(out);
}

const filter = suite('issue 14: the x86-64 branch filter (core/delta/x86-filter.ts)');

filter('known conversions: CALL/JMP rel32 made absolute mod 2^25 (top byte stays 00/FF), a RIP-relative disp32 mod 2^32, each undone by decoding', () => {
  const cases: [number[], number[]][] = [
    // call +0 at 0 → target 5; call -5 at 0 → target 0
    [[0xe8, 0x00, 0x00, 0x00, 0x00], [0xe8, 0x05, 0x00, 0x00, 0x00]],
    [[0xe9, 0xfb, 0xff, 0xff, 0xff], [0xe9, 0x00, 0x00, 0x00, 0x00]],
    // at 15 (after 15 NOPs): 0x00FFFFF0 + 20 wraps past bit 24 → sign-extended, top byte FF
    [[...Array(15).fill(0x90), 0xe8, 0xf0, 0xff, 0xff, 0x00], [...Array(15).fill(0x90), 0xe8, 0x04, 0x00, 0x00, 0xff]],
    // mov rax, [rip+0] at 0 → 7; lea rcx, [rip-7] at 0 → 0 (ModRM 0x0D is RIP-relative too)
    [[0x48, 0x8b, 0x05, 0x00, 0x00, 0x00, 0x00], [0x48, 0x8b, 0x05, 0x07, 0x00, 0x00, 0x00]],
    [[0x48, 0x8d, 0x0d, 0xf9, 0xff, 0xff, 0xff], [0x48, 0x8d, 0x0d, 0x00, 0x00, 0x00, 0x00]],
    // not converted: a top byte that is not 00/FF; a REX before another opcode; a ModRM that is not RIP-relative
    [[0xe8, 0x00, 0x00, 0x00, 0x12], [0xe8, 0x00, 0x00, 0x00, 0x12]],
    [[0x48, 0xc7, 0x05, 0x00, 0x00, 0x00, 0x00], [0x48, 0xc7, 0x05, 0x00, 0x00, 0x00, 0x00]],
    [[0x48, 0x8b, 0x45, 0x00, 0x00, 0x00, 0x00], [0x48, 0x8b, 0x45, 0x00, 0x00, 0x00, 0x00]],
    // blocked: the E8 at 0 read byte 4 (0x12) and was not converted; the E8 at 1 would change byte 4, so it is not converted either
    [[0xe8, 0xe8, 0x00, 0x00, 0x12, 0x00], [0xe8, 0xe8, 0x00, 0x00, 0x12, 0x00]],
    // fewer than 5 (or 7) bytes left at the end of the file: left alone
    [[0x90, 0xe8, 0x00, 0x00, 0x00], [0x90, 0xe8, 0x00, 0x00, 0x00]],
    [[0x48, 0x8b, 0x05, 0x00, 0x00, 0x00], [0x48, 0x8b, 0x05, 0x00, 0x00, 0x00]],
  ];
  for (const [plain, filtered] of cases) {
    const enc = x86FilterWhole(Buffer.from(plain), true);
    assert.equal([...enc], filtered, `encode ${Buffer.from(plain).toString('hex')}`);
    assert.equal([...x86FilterWhole(enc, false)], plain, `decode ${Buffer.from(filtered).toString('hex')}`);
  }
  // Positions past 2^32 (a chunk far into a file) stay exact.
  const far = Buffer.from([0xe8, 0x00, 0x00, 0x00, 0x00, 0x48, 0x8b, 0x05, 0x00, 0x00, 0x00, 0x00]);
  const state = { position: 2 ** 40 + 3, readLimit: -1 };
  x86Filter(far, state, true, true);
  const pos = 2 ** 40 + 3 + 5;
  assert.is(far.readUInt32LE(1), pos % 2 ** 25 >= 2 ** 24 ? (pos % 2 ** 25) + 0xfe000000 : pos % 2 ** 25);
  assert.is(far.readUInt32LE(8), (2 ** 40 + 3 + 12) % 2 ** 32);
  assert.is(state.position, 2 ** 40 + 3 + 12);
});

filter('round trip: decode(encode(x)) = x on buffers dense with E8/E9/REX patterns, and the filter does change them', () => {
  for (let seed = 1; seed <= 40; seed++) {
    const plain = dense(2000 + seed * 37, seed);
    const enc = x86FilterWhole(Buffer.from(plain), true);
    assert.not.ok(enc.equals(plain), `seed ${seed}: something converted`);
    assert.ok(x86FilterWhole(Buffer.from(enc), false).equals(plain), `seed ${seed}: decodes back`);
    // And the other way round (the device's direction on bytes that are not a filtered file).
    assert.ok(x86FilterWhole(x86FilterWhole(Buffer.from(plain), false), true).equals(plain), `seed ${seed}: encode undoes decode`);
  }
});

filter('streaming: every split (and every pair of splits) of a small buffer gives the one-pass bytes, both directions', () => {
  const plain = dense(90, 7);
  const whole = x86FilterWhole(Buffer.from(plain), true);
  for (let a = 0; a <= plain.length; a++) {
    assert.ok(streamed(plain, [a], true).equals(whole), `split at ${a}`);
    assert.ok(streamed(whole, [a], false).equals(plain), `decode split at ${a}`);
    for (let b = a; b <= plain.length; b++) {
      assert.ok(streamed(plain, [a, b], true).equals(whole), `splits at ${a}, ${b}`);
      assert.ok(streamed(whole, [a, b], false).equals(plain), `decode splits at ${a}, ${b}`);
    }
  }
});

filter('streaming: random splits of a 2 MB buffer (chunks of 0 bytes to 300 KB) give the one-pass bytes, both directions', () => {
  const plain = dense(2_000_000, 99);
  const whole = x86FilterWhole(Buffer.from(plain), true);
  const r = rng(5);
  for (let run = 0; run < 6; run++) {
    const cuts: number[] = [];
    for (let at = 0; ;) {
      at += run % 2 === 0 ? r() % 300_000 : r() % 9;
      if (at >= plain.length) break;
      cuts.push(at);
      if (cuts.length > 20_000) break;
    }
    assert.ok(streamed(plain, cuts, true).equals(whole), `run ${run}: ${cuts.length} cuts`);
    assert.ok(streamed(whole, cuts, false).equals(plain), `run ${run}: decoded`);
  }
});

filter('isElfX86_64: ELF magic, 64-bit class and machine 0x3E, nothing else', () => {
  const elf = elfHeader();
  assert.ok(isElfX86_64(elf));
  const changed = (at: number, v: number) => { const b = Buffer.from(elf); b[at] = v; return b; };
  assert.not.ok(isElfX86_64(changed(0, 0x7e)), 'not the magic');
  assert.not.ok(isElfX86_64(changed(4, 1)), 'ELFCLASS32');
  assert.not.ok(isElfX86_64(changed(18, 0xb7)), 'aarch64');
  assert.not.ok(isElfX86_64(changed(19, 0x01)), 'machine 0x13E');
  assert.not.ok(isElfX86_64(elf.subarray(0, 19)), 'too short');
  assert.not.ok(isElfX86_64(Buffer.from('MZ\x90\x00 a PE file, not an ELF one')));
});

filter.run();

// ------------------------------------------------------------------------------------------------
// A synthetic ELF x86-64 pair through the publisher and the device.

/** An ELF64 little-endian x86-64 executable's 64-byte header (the fields the filter check reads, and a plausible rest). */
function elfHeader(): Buffer {
  const h = Buffer.alloc(64);
  h.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1], 0);
  h.writeUInt16LE(2, 16); // ET_EXEC
  h.writeUInt16LE(0x3e, 18); // EM_X86_64
  h.writeUInt32LE(1, 20);
  h.writeBigUInt64LE(0x401000n, 24);
  return h;
}

/** The runtime: hot functions and data at fixed places right after the header, the same in both releases. */
const RUNTIME_END = 4096;
const HOT = Array.from({ length: 24 }, (_, k) => 64 + k * 160);

/**
 * Code-like bytes: blocks of filler (no E8/E9/REX bytes) each ending in a CALL into the runtime
 * or a RIP-relative load from it. `inserted` adds new blocks before the given block indexes, so
 * every later block moves: its relative operands change, its absolute targets do not.
 */
function program(blocks: number, inserted: Map<number, number>, markers: { call: number[]; rex: number[] }): Buffer {
  const r = rng(2024);
  const fresh = rng(77);
  const out = Buffer.alloc(blocks * 60 + 400_000);
  elfHeader().copy(out, 0);
  for (let p = 64; p < RUNTIME_END; p++) out[p] = 0x90 + (p % 7);
  let at = RUNTIME_END;
  const filler = (gen: () => number, n: number) => {
    for (let k = 0; k < n; k++) {
      const v = gen() & 0xff;
      out[at++] = v === 0xe8 || v === 0xe9 || (v & 0xf0) === 0x40 ? 0x90 : v;
    }
  };
  const call = (target: number) => { out[at] = 0xe8; out.writeInt32LE(target - (at + 5), at + 1); at += 5; };
  const load = (target: number) => { out.set([0x48, 0x8b, 0x05], at); out.writeInt32LE(target - (at + 7), at + 3); at += 7; };
  for (let b = 0; b < blocks; b++) {
    for (let k = inserted.get(b) ?? 0; k > 0; k--) { filler(fresh, 30); call(HOT[fresh() % HOT.length]!); }
    filler(r, 20 + (r() % 30));
    const v = r();
    if (v % 3 === 0) load(HOT[v % HOT.length]! + 8);
    else call(HOT[v % HOT.length]!);
  }
  const end = at;
  // Calls and loads that straddle the given positions (a chunk or buffer boundary), NOPs before
  // them so the scan meets each at its first byte.
  for (const [list, write] of [[markers.call, call], [markers.rex, load]] as const) {
    for (const p of list) {
      out.fill(0x90, p - 12, p);
      at = p;
      write(HOT[3]!);
    }
  }
  return out.subarray(0, end);
}

const MiB = 1024 * 1024;
/**
 * Old: a call and a load across the temp file's 256 KiB read chunks (core/delta/patch-apply.ts
 * BASE_READ_CHUNK); new: a call across the first flush of the output buffer, which holds 1 MiB
 * plus the filter's 6-byte lookahead (OUT_CHUNK + X86_LOOKAHEAD).
 */
const OLD_MARKERS = { call: [262_144 - 2], rex: [2 * 262_144 - 3] };
const NEW_MARKERS = { call: [MiB + X86_LOOKAHEAD - 2], rex: [] };
const OLD_ELF = program(30_000, new Map(), OLD_MARKERS).subarray(0, 1_150_000);
const NEW_ELF = program(30_000, new Map([[3000, 40], [9000, 7], [15_000, 90], [25_000, 3]]), NEW_MARKERS).subarray(0, 1_160_000);
const NEW_TOOL = program(900, new Map([[300, 5]]), { call: [], rex: [] });
const OLD_TOOL = program(900, new Map(), { call: [], rex: [] });

const patcher = createBsdiffPatcher();
let tmp: TempDir;
interface Made { oldDir: string; newDir: string; ops: DeltaOp[]; artifact: string; bytes: Buffer }
let made: Made;

const real = suite('issue 14: a delta of an ELF x86-64 pair carries filter 1 and builds the exact new bytes');

real.before(async () => {
  tmp = await tempDir('ferry-patch-x86-');
  const oldDir = join(tmp.path, 'old');
  const newDir = join(tmp.path, 'new');
  // bin/tool is small enough for a solid block, beside two small changed text files that go into one.
  await writeTree(oldDir, { 'bin/app': OLD_ELF, 'bin/tool': OLD_TOOL, 'lib/a.js': 'export const a = 1;\n'.repeat(40), 'lib/b.js': 'export const b = 1;\n'.repeat(40) });
  await writeTree(newDir, { 'bin/app': NEW_ELF, 'bin/tool': NEW_TOOL, 'lib/a.js': 'export const a = 2;\n'.repeat(40), 'lib/b.js': 'export const b = 2;\n'.repeat(40) });
  const d = await makeDelta({ oldDir, oldFiles: await scanTree(oldDir), newDir, newFiles: await scanTree(newDir), workDir: join(tmp.path, 'work'), outFile: join(tmp.path, 'delta'), patcher, quality: 5 });
  made = { oldDir, newDir, ops: d.ops, artifact: d.artifact, bytes: await readFile(d.artifact) };
});
real.after(async () => {
  await tmp?.cleanup();
  await patcher.close();
});

function entryOf(path: string): { op: Extract<DeltaOp, { op: 'patch' }>; bytes: Buffer } {
  const op = made.ops.find((o) => o.path === path);
  assert.ok(op?.op === 'patch' && isPackRange(op.entry), `${path} is a patch op with its own range: ${JSON.stringify(op)}`);
  const e = op.entry as { offset: number; size: number };
  return { op, bytes: made.bytes.subarray(e.offset, e.offset + e.size) };
}

/** Entries beside the output: what a patch leaves behind in the output's folder. */
const leftovers = (outFile: string) => readdirSync(dirname(outFile)).filter((n) => n.startsWith('.x86-base-'));

real('the publisher chose the filter for both ELF files (header byte 10 = 1), not for the text files; the small ELF keeps an entry of its own (no solid member carries a filter)', async () => {
  assert.is(OLD_ELF.length, 1_150_000);
  assert.is(NEW_ELF.length, 1_160_000);
  // The boundary instructions are converted (so the chunked paths carry a real conversion).
  for (const [bytes, markers] of [[OLD_ELF, OLD_MARKERS], [NEW_ELF, NEW_MARKERS]] as const) {
    const f = x86FilterWhole(Buffer.from(bytes), true);
    for (const p of markers.call) assert.not.ok(f.subarray(p, p + 5).equals(bytes.subarray(p, p + 5)), `call at ${p}`);
    for (const p of markers.rex) assert.not.ok(f.subarray(p, p + 7).equals(bytes.subarray(p, p + 7)), `load at ${p}`);
  }
  for (const path of ['bin/app', 'bin/tool']) {
    const { bytes } = entryOf(path);
    assert.is(bytes.subarray(0, 8).toString('latin1'), 'FERRYBD1');
    assert.is(readPatchHeader(bytes).filter, FILTER_X86, path);
    assert.is(bytes[10], 1);
  }
  const a = made.ops.find((o) => o.path === 'lib/a.js');
  assert.ok(a && (a.op === 'patch' || a.op === 'whole'));
  assert.ok(isPackRange(a.entry));
  const text = made.bytes.subarray(a.entry.offset, a.entry.offset + a.entry.size);
  assert.is(text.subarray(0, 8).toString('latin1'), 'FERRYSB1', 'the text files share a solid block');
  const tool = entryOf('bin/tool');
  assert.not.equal(tool.op.entry, a.entry);
});

real('the filtered patch is smaller than the same pair patched without the filter', async () => {
  const { bytes } = entryOf('bin/app');
  const plain = await writeFerryPatch(await patcher.diff(join(made.oldDir, 'bin/app'), join(made.newDir, 'bin/app')), join(tmp.path, 'app.unfiltered'), { quality: 5 });
  assert.ok(bytes.length < plain * 0.5, `filtered ${bytes.length} B, unfiltered ${plain} B`);
});

real('the device builds the signed tree from the delta (applyDelta), the ELF files to their exact bytes', async () => {
  const out = join(tmp.path, 'applied');
  await mkdir(out);
  const newFiles = await scanTree(made.newDir);
  await applyDelta({ baseDir: made.oldDir, ops: made.ops, targetFiles: newFiles, artifact: made.artifact, outDir: out, workDir: join(tmp.path, 'apply-work'), patcher });
  assert.equal(await scanTree(out), newFiles);
  assert.ok((await readFile(join(out, 'bin/app'))).equals(NEW_ELF));
  assert.is(leftovers(join(out, 'bin/app')).length, 0);
});

/** The bin/app entry applied on its own from a file, with `over`. */
async function applyApp(name: string, over: { baseFile?: string; oldInMemoryMax?: number; patch?: Buffer; onWritten?: (n: number) => void } = {}) {
  const { bytes } = entryOf('bin/app');
  const patch = over.patch ?? bytes;
  const dir = join(tmp.path, name);
  await mkdir(dir);
  const patchFile = join(dir, 'patch');
  await writeFile(patchFile, patch);
  const outFile = join(dir, 'out');
  const run = () => applyPatchEntry({
    baseFile: over.baseFile ?? join(made.oldDir, 'bin/app'), baseSize: OLD_ELF.length, baseSha256: sha256(OLD_ELF),
    patch: { file: patchFile, offset: 0, size: patch.length }, outFile, newSize: NEW_ELF.length,
    ...(over.oldInMemoryMax === undefined ? {} : { oldInMemoryMax: over.oldInMemoryMax }), ...(over.onWritten ? { onWritten: over.onWritten } : {}),
  });
  return { outFile, run };
}

real('a base too large to hold (oldInMemoryMax below it) is read filtered from a private temp file beside the output, removed afterwards; the output is exact', async () => {
  let sawTemp = false;
  const { outFile, run } = await applyApp('temp-path', { oldInMemoryMax: 64 * 1024, onWritten: () => { sawTemp ||= leftovers(outFile).length > 0; } });
  const got = await run();
  assert.equal(got, { sha256: sha256(NEW_ELF), size: NEW_ELF.length });
  assert.ok((await readFile(outFile)).equals(NEW_ELF));
  assert.ok(sawTemp, 'the filtered base was a temp file beside the output while the patch ran');
  assert.equal(leftovers(outFile), [], 'and it is gone');
  // Held in memory (the default), no temp file at all.
  let sawTempInMemory = false;
  const mem = await applyApp('memory-path', { onWritten: () => { sawTempInMemory ||= leftovers(mem.outFile).length > 0; } });
  assert.equal(await mem.run(), got);
  assert.not.ok(sawTempInMemory);
});

real('an unknown filter (byte 10 = 2) → ERR_PATCH before any output exists', async () => {
  const { bytes } = entryOf('bin/app');
  const h = readPatchHeader(bytes);
  const header = writePatchHeader(h);
  header[10] = 2;
  for (const oldInMemoryMax of [undefined, 1024]) {
    let wrote = false;
    const { outFile, run } = await applyApp(`filter-2-${oldInMemoryMax ?? 'mem'}`, { patch: Buffer.concat([header, bytes.subarray(header.length)]), oldInMemoryMax, onWritten: () => { wrote = true; } });
    const err = await assertCodeAsync(run, 'ERR_PATCH');
    assert.match(err.message, /filter 2/);
    assert.not.ok(wrote || existsSync(outFile), 'no output');
    assert.equal(leftovers(outFile), []);
  }
});

real('a filtered patch against a base that is not the signed one (same size, one byte off) → ERR_HASH_MISMATCH, no output, no temp file; through applyDelta too', async () => {
  const wrong = Buffer.from(OLD_ELF);
  wrong[500_000] = wrong[500_000]! ^ 1;
  const wrongFile = join(tmp.path, 'wrong-base');
  await writeFile(wrongFile, wrong);
  for (const oldInMemoryMax of [undefined, 1024]) {
    const { outFile, run } = await applyApp(`wrong-base-${oldInMemoryMax ?? 'mem'}`, { baseFile: wrongFile, oldInMemoryMax });
    await assertCodeAsync(run, 'ERR_HASH_MISMATCH');
    assert.not.ok(existsSync(outFile));
    assert.equal(leftovers(outFile), []);
  }
  const base = join(tmp.path, 'wrong-tree');
  await writeTree(base, { 'bin/app': wrong });
  await mkdir(join(tmp.path, 'wrong-out'));
  const newFiles = await scanTree(made.newDir);
  const ops = made.ops.filter((o) => o.path === 'bin/app');
  await assertCodeAsync(() => applyDelta({ baseDir: base, ops, targetFiles: newFiles.filter((f) => f.path === 'bin/app'), artifact: made.artifact, outDir: join(tmp.path, 'wrong-out'), workDir: join(tmp.path, 'wrong-work'), patcher }), 'ERR_HASH_MISMATCH');
  assert.not.ok(existsSync(join(tmp.path, 'wrong-out', 'bin/app')));
  await rm(join(tmp.path, 'wrong-out'), { recursive: true, force: true });
});

real('tiny files with filter 1 (0 to 9 bytes, ending inside a CALL or a RIP-relative load): built exactly, in memory and through the temp file', async () => {
  const tails = [[], [0xe8], [0xe8, 0x00, 0x00, 0x00], [0xe8, 0x10, 0x00, 0x00, 0x00], [0x48, 0x8b, 0x05, 0x01, 0x00, 0x00], [0x48, 0x8b, 0x05, 0x01, 0x00, 0x00, 0x00], [0x90, 0x90, 0xe9, 0xff, 0xff, 0xff, 0xff, 0x48, 0x8d]];
  let k = 0;
  for (const oldTail of tails) {
    for (const newTail of tails) {
      const old = Buffer.from(oldTail);
      const next = Buffer.from(newTail);
      const dir = join(tmp.path, `tiny-${k++}`);
      await mkdir(dir);
      await writeFile(join(dir, 'base'), old);
      const size = await writeFerryPatch(rawPatchBetween(x86FilterWhole(Buffer.from(old), true), x86FilterWhole(Buffer.from(next), true)), join(dir, 'patch'), { filter: FILTER_X86 });
      for (const oldInMemoryMax of [undefined, 0]) {
        const outFile = join(dir, `out-${oldInMemoryMax ?? 'mem'}`);
        const got = await applyPatchEntry({ baseFile: join(dir, 'base'), baseSize: old.length, baseSha256: sha256(old), patch: { file: join(dir, 'patch'), offset: 0, size }, outFile, newSize: next.length, ...(oldInMemoryMax === undefined ? {} : { oldInMemoryMax }) });
        assert.equal(got, { sha256: sha256(next), size: next.length }, `${old.toString('hex')} → ${next.toString('hex')}`);
        assert.ok((await readFile(outFile)).equals(next));
      }
    }
  }
});

real.run();

// ------------------------------------------------------------------------------------------------
// The filter is a candidate, not a rule: an ELF pair whose calls move with their targets.

const local = suite('issue 14: an ELF x86-64 pair the filter would make worse keeps the unfiltered patch');

/**
 * ELF code whose every CALL targets the code just after it (a relative operand of 200, the same
 * wherever the block sits): `shift` bytes of new filler at the front move all of it, which leaves
 * every relative operand as it was and changes every absolute one.
 */
function movingCode(shift: number): Buffer {
  const r = rng(99);
  const out = Buffer.alloc(64 + shift + 200_000);
  elfHeader().copy(out, 0);
  let at = 64;
  for (let k = 0; k < shift; k++) out[at++] = 0x90;
  while (at + 40 < out.length) {
    for (let k = 0; k < 30; k++) {
      const v = r() & 0xff;
      out[at++] = v === 0xe8 || v === 0xe9 || (v & 0xf0) === 0x40 ? 0x90 : v;
    }
    out[at] = 0xe8;
    out.writeInt32LE(200, at + 1);
    at += 5;
  }
  return out.subarray(0, at);
}

local('both patches are made; the unfiltered one, smaller here, is kept (filter 0), and builds the new file', async () => {
  const dir = join(tmp.path, 'moving');
  const oldDir = join(dir, 'old');
  const newDir = join(dir, 'new');
  const oldBytes = movingCode(0);
  const newBytes = movingCode(5000);
  await writeTree(oldDir, { 'bin/app': oldBytes });
  await writeTree(newDir, { 'bin/app': newBytes });
  const patcher = createBsdiffPatcher();
  try {
    const d = await makeDelta({ oldDir, oldFiles: await scanTree(oldDir), newDir, newFiles: await scanTree(newDir), workDir: join(dir, 'work'), outFile: join(dir, 'delta'), patcher, quality: 5 });
    const op = d.ops.find((o) => o.path === 'bin/app');
    assert.ok(op?.op === 'patch' && isPackRange(op.entry));
    const entry = (await readFile(d.artifact)).subarray(op.entry.offset, op.entry.offset + op.entry.size);
    assert.is(entry.subarray(0, 8).toString('latin1'), 'FERRYBD1');
    assert.is(readPatchHeader(entry).filter, 0, 'the unfiltered patch was kept');
    await writeFile(join(dir, 'old-x86'), x86FilterWhole(Buffer.from(oldBytes), true));
    await writeFile(join(dir, 'new-x86'), x86FilterWhole(Buffer.from(newBytes), true));
    const filtered = await writeFerryPatch(await patcher.diff(join(dir, 'old-x86'), join(dir, 'new-x86')), join(dir, 'filtered.patch'), { quality: 5, filter: FILTER_X86 });
    assert.ok(entry.length < filtered, `kept ${entry.length} B, the filtered one is ${filtered} B`);
    const out = join(dir, 'applied');
    await mkdir(out);
    await applyDelta({ baseDir: oldDir, ops: d.ops, targetFiles: await scanTree(newDir), artifact: d.artifact, outDir: out, workDir: join(dir, 'apply-work'), patcher });
    assert.ok((await readFile(join(out, 'bin/app'))).equals(newBytes));
  } finally {
    await patcher.close();
  }
});

local.before(async () => { tmp = await tempDir('ferry-patch-x86-local-'); });
local.after(async () => { await tmp?.cleanup(); });
local.run();
