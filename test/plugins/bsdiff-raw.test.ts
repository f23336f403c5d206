// The publisher's matcher (plugins/bsdiff): bsdiff-node's BSDIFF40 output split into the raw
// streams of a RawPatch (issue 14 item 1), large files diffed window by window in bounded memory
// and joined into one RawPatch (issue 14 item 6), and the old BSDIFF40 path a device still uses
// for repositories published before FERRYBD1. Every RawPatch is checked by applying it with the
// reference applier below (bspatch semantics) and comparing with the new file. Inputs are KBs;
// the measurements on real 10-127 MB pairs are in bench/diff-windows.ts (run by hand).

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { appendWindowControl, controlOldEnd, planDiffWindows, type DiffWindow } from '../../core/delta/diff-windows.ts';
import type { RawPatch } from '../../core/delta/raw-patch.ts';
import { FerryError } from '../../core/errors.ts';
import { bunzip2 } from '../../plugins/bsdiff/bunzip2.ts';
import { createBsdiffPatcher, diffFiles, writeBsdiff40 } from '../../plugins/bsdiff/patcher.ts';
import { splitBsdiff40 } from '../../plugins/bsdiff/split-bsdiff40.ts';
import { pseudoRandomBytes, tempDir, type TempDir } from '../helpers/repo.ts';

const ROOT = join(import.meta.dirname, '..', '..');

/** bspatch over a RawPatch: add x old+diff bytes, copy y extra bytes, move the old position by z. */
function applyRaw(old: Uint8Array, p: RawPatch): Buffer {
  assert.is(p.oldSize, old.length, 'oldSize is the old file size');
  const out = Buffer.alloc(p.newSize);
  let o = 0; let at = 0; let d = 0; let e = 0;
  for (let i = 0; i < p.control.length; i += 3) {
    const [x, y, z] = [p.control[i]!, p.control[i + 1]!, p.control[i + 2]!];
    assert.ok(x >= 0 && y >= 0 && o + x + y <= p.newSize, `entry ${i / 3} stays inside the new file`);
    for (let k = 0; k < x; k++) out[o + k] = (p.diff[d + k]! + (at + k >= 0 && at + k < old.length ? old[at + k]! : 0)) & 0xff;
    o += x; at += x; d += x;
    out.set(p.extra.subarray(e, e + y), o);
    o += y; e += y; at += z;
  }
  assert.is(o, p.newSize, 'the entries build exactly newSize bytes');
  assert.is(d, p.diff.length, 'the diff stream is used up');
  assert.is(e, p.extra.length, 'the extra stream is used up');
  return out;
}

/** Old and new files of each case: a 24 KiB base edited the way releases edit binaries. */
function cases(): Record<string, { old: Buffer; next: Buffer }> {
  const base = pseudoRandomBytes(24 * 1024, 14);
  const edited = Buffer.from(base);
  for (let i = 0; i < 6; i++) edited.writeUInt32LE(0xc0ffee00 + i, 9000 + i * 900);
  return {
    unchanged: { old: base, next: Buffer.from(base) },
    appended: { old: base, next: Buffer.concat([base, pseudoRandomBytes(3000, 41)]) },
    'edited middle': { old: base, next: Buffer.concat([edited.subarray(0, 12_000), pseudoRandomBytes(700, 42), edited.subarray(12_000)]) },
    'empty old': { old: Buffer.alloc(0), next: pseudoRandomBytes(5000, 43) },
    'empty new': { old: base, next: Buffer.alloc(0) },
  };
}

let tmp: TempDir;
let n = 0;
async function files(old: Uint8Array, next: Uint8Array): Promise<[string, string]> {
  const i = n++;
  const [a, b] = [join(tmp.path, `${i}.old`), join(tmp.path, `${i}.new`)];
  await writeFile(a, old);
  await writeFile(b, next);
  return [a, b];
}

const raw = suite('bsdiff-node as the publisher matcher: raw streams');
raw.before(async () => { tmp = await tempDir('ferry-bsdiff-raw-'); });
raw.after(async () => { await tmp.cleanup(); });

raw('issue 14 item 1: diff returns raw control/diff/extra streams that rebuild the new file (unchanged, appended, edited middle, empty old, empty new)', async () => {
  const patcher = createBsdiffPatcher();
  for (const [name, c] of Object.entries(cases())) {
    const [a, b] = await files(c.old, c.next);
    const p = await patcher.diff(a, b);
    assert.is(p.newSize, c.next.length, `${name}: newSize`);
    assert.equal(applyRaw(c.old, p), c.next, `${name}: the RawPatch rebuilds the new file`);
    // The matcher matched: only bytes with no counterpart in the old file travel as extra.
    if (name === 'unchanged') {
      assert.is(p.extra.length, 0, 'unchanged: no extra bytes');
      assert.ok(p.diff.every((v) => v === 0), 'unchanged: the diff bytes are all zero');
    }
    if (name === 'appended') assert.is(p.extra.length, 3000, 'appended: the appended bytes are the extra');
    if (name === 'edited middle') assert.ok(p.extra.length < 2000, `edited middle: ${p.extra.length} extra bytes, about the 700 inserted`);
    if (name === 'empty old') assert.equal(Buffer.from(p.extra), c.next, 'empty old: everything is extra');
  }
  await patcher.close();
});

raw('issue 14 item 1: a BSDIFF40 file splits into the streams its own header and bspatch agree with', async () => {
  const c = cases()['edited middle']!;
  const [a, b] = await files(c.old, c.next);
  const patchFile = join(tmp.path, 'split.bsdiff');
  await writeBsdiff40(a, b, patchFile);
  const bytes = await readFile(patchFile);
  const p = splitBsdiff40(bytes, c.old.length);
  assert.equal(applyRaw(c.old, p), c.next);
  // A flipped byte inside the bzip2-compressed diff block is caught (block CRC), not published.
  const ctrlLen = bytes.readUInt32LE(8);
  const broken = Buffer.from(bytes);
  broken[32 + ctrlLen + 40]! ^= 0x10;
  try {
    splitBsdiff40(broken, c.old.length);
    assert.unreachable('a corrupt block was accepted');
  } catch (err) {
    assert.instance(err, FerryError);
    assert.is((err as FerryError).code, 'ERR_PATCH');
  }
});

raw('issue 14 item 1: the bzip2 decoder reads multi-block streams and long runs (bsdiff-node at its largest windows)', async () => {
  // bsdiff-node compresses at level 9: 900 kB blocks. A window's diff stream of 1.2 MB spans two
  // blocks, with long zero runs (unchanged regions) and random bytes.
  const old = pseudoRandomBytes(1_200_000, 5);
  const next = Buffer.from(old);
  for (let at = 1000; at < next.length; at += 150_000) pseudoRandomBytes(500, at).copy(next, at);
  const [a, b] = await files(old, next);
  const patchFile = join(tmp.path, 'big.bsdiff');
  await writeBsdiff40(a, b, patchFile);
  const p = splitBsdiff40(await readFile(patchFile), old.length);
  assert.ok(p.diff.length > 900_000, 'the diff stream spans two bzip2 blocks');
  assert.equal(applyRaw(old, p), next);
  assert.equal(bunzip2(Buffer.from('425a683917724538509000000000', 'hex')), new Uint8Array(0), 'an empty stream');
});

raw('issue 14 item 1: without bsdiff-node, diff throws ERR_NO_PATCHER', () => {
  // A child where resolving bsdiff-node fails, as on a device where it was never built.
  const hook = `export async function resolve(s, c, next) { if (s === 'bsdiff-node') throw new Error('Cannot find package bsdiff-node (hidden by the test)'); return next(s, c); }`;
  const script = `
    import { register } from 'node:module';
    register('data:text/javascript,' + encodeURIComponent(${JSON.stringify(hook)}));
    const { createBsdiffPatcher } = await import(${JSON.stringify(pathToFileURL(join(ROOT, 'plugins/bsdiff/patcher.ts')).href)});
    try { await createBsdiffPatcher().diff(process.argv[1], process.argv[1]); console.log('no error'); }
    catch (err) { console.log(err.code + ': ' + err.message); }`;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script, join(ROOT, 'package.json')], { cwd: ROOT, encoding: 'utf8', timeout: 30_000 });
  assert.match(r.stdout, /^ERR_NO_PATCHER: bsdiff-node is missing or not built/, `stdout: ${r.stdout} stderr: ${r.stderr}`);
});

raw('issue 14 item 1: old BSDIFF40 entries still apply on the device (outputSize, then bspatch in the worker)', async () => {
  const c = cases()['edited middle']!;
  const [a, b] = await files(c.old, c.next);
  const patchFile = join(tmp.path, 'legacy.bsdiff');
  await writeBsdiff40(a, b, patchFile);
  const patcher = createBsdiffPatcher();
  try {
    const bytes = await readFile(patchFile);
    assert.is(patcher.outputSize(bytes.subarray(0, patcher.headerSize), bytes.length), c.next.length);
    const out = join(tmp.path, 'legacy.out');
    await patcher.patch(a, out, patchFile);
    assert.equal(await readFile(out), c.next);
  } finally {
    await patcher.close();
  }
});

raw.run();

const windowed = suite('large files: diffed window by window, joined into one RawPatch');
windowed.before(async () => { tmp = await tempDir('ferry-bsdiff-windows-'); });
windowed.after(async () => { await tmp.cleanup(); });

windowed('issue 14 item 6: the window plan (table)', () => {
  const opts = { window: 100, margin: 10 };
  const table: [string, number, number, DiffWindow[]][] = [
    ['empty new: nothing to diff', 50, 0, []],
    ['both fit: one window over both whole files', 100, 80, [{ newStart: 0, newEnd: 80, oldStart: 0, oldEnd: 100 }]],
    ['empty old', 0, 150, [{ newStart: 0, newEnd: 75, oldStart: 0, oldEnd: 0 }, { newStart: 75, newEnd: 150, oldStart: 0, oldEnd: 0 }]],
    ['same size: proportional slices widened by the margin', 300, 300, [
      { newStart: 0, newEnd: 100, oldStart: 0, oldEnd: 110 },
      { newStart: 100, newEnd: 200, oldStart: 90, oldEnd: 210 },
      { newStart: 200, newEnd: 300, oldStart: 190, oldEnd: 300 },
    ]],
    ['new grew: old slices follow the relative position', 200, 250, [
      { newStart: 0, newEnd: 83, oldStart: 0, oldEnd: 76 },
      { newStart: 83, newEnd: 166, oldStart: 56, oldEnd: 143 },
      { newStart: 166, newEnd: 250, oldStart: 123, oldEnd: 200 },
    ]],
    ['old much larger: as many windows as the old file needs', 400, 120, [
      { newStart: 0, newEnd: 30, oldStart: 0, oldEnd: 110 },
      { newStart: 30, newEnd: 60, oldStart: 90, oldEnd: 210 },
      { newStart: 60, newEnd: 90, oldStart: 190, oldEnd: 310 },
      { newStart: 90, newEnd: 120, oldStart: 290, oldEnd: 400 },
    ]],
    ['more windows than new bytes: empty windows are skipped, slices stay small', 500, 3, [
      { newStart: 0, newEnd: 1, oldStart: 90, oldEnd: 210 },
      { newStart: 1, newEnd: 2, oldStart: 290, oldEnd: 410 },
      { newStart: 2, newEnd: 3, oldStart: 390, oldEnd: 500 },
    ]],
  ];
  for (const [name, oldSize, newSize, expected] of table) assert.equal(planDiffWindows(oldSize, newSize, opts), expected, name);
  // Properties over many sizes: contiguous cover of the new file, slices inside the old file and
  // never larger than window + 2 × margin.
  for (const oldSize of [0, 1, 99, 100, 101, 999, 12_345]) {
    for (const newSize of [1, 99, 100, 101, 1000, 54_321]) {
      const ws = planDiffWindows(oldSize, newSize, opts);
      let at = 0;
      for (const w of ws) {
        assert.is(w.newStart, at, `${oldSize}/${newSize}: contiguous`);
        assert.ok(w.newEnd > w.newStart && w.newEnd - w.newStart <= opts.window, `${oldSize}/${newSize}: new window size`);
        assert.ok(w.oldStart >= 0 && w.oldStart <= w.oldEnd && w.oldEnd <= oldSize, `${oldSize}/${newSize}: slice inside old`);
        assert.ok(w.oldEnd - w.oldStart <= opts.window + 2 * opts.margin, `${oldSize}/${newSize}: slice size`);
        at = w.newEnd;
      }
      assert.is(at, newSize, `${oldSize}/${newSize}: covers the new file`);
    }
  }
  assert.throws(() => planDiffWindows(10, 10, { window: 0, margin: 0 }), RangeError);
});

windowed('issue 14 item 6: joining windows fixes the seek at each boundary (table)', () => {
  const w = (oldStart: number): DiffWindow => ({ newStart: 0, newEnd: 1, oldStart, oldEnd: oldStart + 50 });
  // First window at the old file's start: appended as is; the old position ends after x + z.
  const joined: number[] = [];
  let pos = appendWindowControl(joined, 0, w(0), [10, 2, 5, 4, 0, -3]);
  assert.equal(joined, [10, 2, 5, 4, 0, -3]);
  assert.is(pos, 16);
  // Next slice starts at 40: the last seek moves on by 24 so the old position lands there.
  pos = appendWindowControl(joined, pos, w(40), [7, 1, 0]);
  assert.equal(joined, [10, 2, 5, 4, 0, 21, 7, 1, 0]);
  assert.is(pos, 47);
  // A slice that starts before the position (margins overlap): a backward seek.
  pos = appendWindowControl(joined, pos, w(30), [1, 0, 0]);
  assert.equal(joined.slice(6), [7, 1, -17, 1, 0, 0]);
  assert.is(pos, 31);
  assert.is(controlOldEnd(joined), 31, 'the joined entries end where the last window ends');
  // Nothing joined yet and a slice not at 0: an entry that only seeks.
  const lead: number[] = [];
  assert.is(appendWindowControl(lead, 0, w(8), [2, 0, 0]), 10);
  assert.equal(lead, [0, 0, 8, 2, 0, 0]);
});

windowed('issue 14 item 6: a file larger than the window is diffed window by window and the joined RawPatch rebuilds it', async () => {
  const small = { window: 16 * 1024, margin: 2 * 1024 };
  const base = pseudoRandomBytes(100 * 1024, 61);
  const edited = Buffer.from(base);
  for (let i = 0; i < 20; i++) edited.writeUInt32LE(0xabad1dea + i, 700 + i * 5000);
  const pairs: Record<string, [Buffer, Buffer]> = {
    // Content shifts against the proportional position: an insertion early, a deletion later.
    'insert and delete': [base, Buffer.concat([edited.subarray(0, 20_000), pseudoRandomBytes(3000, 62), edited.subarray(20_000, 60_000), edited.subarray(63_000)])],
    'new grew a lot': [base, Buffer.concat([edited, pseudoRandomBytes(50 * 1024, 63)])],
    'old much larger': [Buffer.concat([base, pseudoRandomBytes(80 * 1024, 64)]), edited.subarray(0, 40 * 1024)],
    'empty old': [Buffer.alloc(0), pseudoRandomBytes(40 * 1024, 65)],
  };
  for (const [name, [old, next]] of Object.entries(pairs)) {
    assert.ok(planDiffWindows(old.length, next.length, small).length >= 3, `${name}: the inputs really span several windows`);
    const [a, b] = await files(old, next);
    const p = await diffFiles(a, b, small);
    assert.equal(applyRaw(old, p), next, `${name}: the joined RawPatch rebuilds the new file`);
    if (name === 'insert and delete') assert.ok(p.extra.length < 8000, `${name}: windows still find the moved code (${p.extra.length} extra bytes)`);
  }
  // Through the Patcher, with the window forced by its option.
  const [old, next] = pairs['insert and delete']!;
  const [a, b] = await files(old, next);
  assert.equal(applyRaw(old, await createBsdiffPatcher({ diffWindows: small }).diff(a, b)), next);
});

windowed.run();
