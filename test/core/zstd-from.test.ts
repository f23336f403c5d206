// The zstd-from patch (issue 14 item 2), honest on both Node lines CI runs: on a Node with zstd
// (>= 22.15, CI's Node 24 subset) an entry round-trips, is smaller than zstd without the old file,
// and every lie in it is refused before or while writing; on Node 20 both ends say ERR_NO_PATCHER
// and nothing is written (the device then takes the full artifact).

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as zlib from 'node:zlib';
import { applyZstdFromEntry, writeZstdFromPatch, zstdFromHeader, zstdFromSupported, zstdFromWindowLog, ZSTD_FROM_HEADER } from '../../core/delta/zstd-from.ts';
import type { PatchEntryInput } from '../../core/delta/patch-apply.ts';
import { sha256 } from '../../core/io/hash.ts';
import { pseudoRandomBytes, tempDir, type TempDir } from '../helpers/repo.ts';
import { assertCodeAsync } from '../helpers/assert-code.ts';

/** Whether this Node has zstd, decided from its version alone (not from the code under test). */
function nodeHasZstd(): boolean {
  const [major, minor] = process.versions.node.split('.').map(Number) as [number, number];
  return major > 22 || (major === 22 && minor >= 15);
}

/** node:zlib's zstd constants (absent from Node 20's types and runtime). */
const ZSTD = zlib.constants as unknown as Record<string, number | undefined>;

let tmp: TempDir;
let oldFile: string;
let newFile: string;
let oldBytes: Buffer;
let newBytes: Buffer;
let n = 0;

/** An old file and a new one that keeps most of it (a block moved, some bytes changed, new code appended). */
async function pair(): Promise<void> {
  const a = pseudoRandomBytes(40_000, 11);
  oldBytes = Buffer.concat([a, Buffer.from('old tail\n'.repeat(200))]);
  const changed = Buffer.from(a);
  for (let i = 0; i < changed.length; i += 997) changed[i] = changed[i]! ^ 0xff;
  newBytes = Buffer.concat([changed.subarray(20_000), changed.subarray(0, 20_000), pseudoRandomBytes(2_000, 12)]);
  oldFile = join(tmp.path, 'old.bin');
  newFile = join(tmp.path, 'new.bin');
  await writeFile(oldFile, oldBytes);
  await writeFile(newFile, newBytes);
}

function input(patchFile: string, over: Partial<PatchEntryInput> = {}, offset = 0, size?: number): PatchEntryInput {
  return {
    baseFile: oldFile,
    baseSize: oldBytes.length,
    patch: { file: patchFile, offset, size: size ?? 0 },
    outFile: join(tmp.path, `out-${n++}`),
    newSize: newBytes.length,
    ...over,
  };
}

const both = suite('issue 14 item 2: zstd-from is detected at run time');

both.before(async () => {
  tmp = await tempDir('ferry-zstd-from-');
  await pair();
});

both('issue 14 item 2: zstdFromSupported() says what this Node has (Node >= 22.15: yes; Node 20: no)', () => {
  assert.is(zstdFromSupported(), nodeHasZstd(), `Node ${process.versions.node}`);
  assert.is(zstdFromWindowLog(40_000, 42_000), 17);
  assert.is(zstdFromWindowLog(0, 0), 10);
  assert.is(zstdFromWindowLog(2 ** 40, 1), 31);
});

both.run();

const without = suite('issue 14 item 2: on a Node without zstd, both ends say ERR_NO_PATCHER');

without('issue 14 item 2: writeZstdFromPatch and applyZstdFromEntry refuse with ERR_NO_PATCHER and write nothing (the device takes the full artifact)', async () => {
  if (nodeHasZstd()) return; // the suites below prove the other side on this Node
  const out = join(tmp.path, 'never.zf');
  await assertCodeAsync(() => writeZstdFromPatch(oldFile, newFile, out), 'ERR_NO_PATCHER');
  assert.is(existsSync(out), false);
  // A well-formed header and any frame: refused before the header is read.
  const entry = join(tmp.path, 'entry.zf');
  await writeFile(entry, Buffer.concat([zstdFromHeader(oldBytes.length, newBytes.length), Buffer.from('28b52ffd', 'hex'), Buffer.alloc(20)]));
  const i = input(entry, {}, 0, (await stat(entry)).size);
  await assertCodeAsync(() => applyZstdFromEntry(i), 'ERR_NO_PATCHER');
  assert.is(existsSync(i.outFile), false);
});

without.run();

const withZstd = suite('issue 14 item 2: on a Node with zstd, entries round-trip and lies are refused');

let entryFile = '';
let entrySize = 0;

withZstd.before(async () => {
  if (!nodeHasZstd()) return;
  entryFile = join(tmp.path, 'good.zf');
  entrySize = await writeZstdFromPatch(oldFile, newFile, entryFile);
});

withZstd('issue 14 item 2: an entry rebuilds the new file (hashed as written, 0600), and is smaller than zstd 19 of the new file without the old one', async () => {
  if (!nodeHasZstd()) return;
  assert.is(entrySize, (await stat(entryFile)).size);
  const plain = (zlib as unknown as { zstdCompressSync(b: Buffer, o: object): Buffer }).zstdCompressSync(newBytes, { params: { [ZSTD.ZSTD_c_compressionLevel!]: 19 } });
  assert.ok(entrySize < plain.length / 2, `zstd-from ${entrySize} B vs ${plain.length} B without the old file`);
  // Inside a pack at an offset, as a delta artifact holds it.
  const pack = join(tmp.path, 'pack.bin');
  const bytes = await readFile(entryFile);
  await writeFile(pack, Buffer.concat([Buffer.alloc(777, 1), bytes, Buffer.alloc(99, 2)]));
  const i = input(pack, {}, 777, bytes.length);
  const got = await applyZstdFromEntry(i);
  assert.equal(got, { sha256: sha256(newBytes), size: newBytes.length });
  assert.ok((await readFile(i.outFile)).equals(newBytes));
  assert.is((await stat(i.outFile)).mode & 0o777, 0o600);
  await assertCodeAsync(() => applyZstdFromEntry({ ...i }), 'ERR_IO'); // the output exists: O_EXCL
});

withZstd('issue 14 item 2: a header that disagrees with the signed sizes, or a base of another size, is refused before the output is created', async () => {
  if (!nodeHasZstd()) return;
  const cases: [Partial<PatchEntryInput>, 'ERR_PATCH' | 'ERR_HASH_MISMATCH'][] = [
    [{ baseSize: oldBytes.length + 1 }, 'ERR_PATCH'],
    [{ newSize: newBytes.length - 1 }, 'ERR_PATCH'],
  ];
  for (const [over, code] of cases) {
    const i = input(entryFile, over, 0, entrySize);
    await assertCodeAsync(() => applyZstdFromEntry(i), code);
    assert.is(existsSync(i.outFile), false);
  }
  // The header and the signed base size agree, the base on disk does not.
  const shortBase = join(tmp.path, 'short-base.bin');
  await writeFile(shortBase, oldBytes.subarray(1));
  const i = input(entryFile, { baseFile: shortBase }, 0, entrySize);
  await assertCodeAsync(() => applyZstdFromEntry(i), 'ERR_HASH_MISMATCH');
  assert.is(existsSync(i.outFile), false);
  // Bad magic; too short to hold a frame.
  const bytes = await readFile(entryFile);
  const bad = join(tmp.path, 'bad-magic.zf');
  await writeFile(bad, Buffer.concat([Buffer.from('FERRYBD1'), bytes.subarray(8)]));
  await assertCodeAsync(() => applyZstdFromEntry(input(bad, {}, 0, entrySize)), 'ERR_PATCH');
  await assertCodeAsync(() => applyZstdFromEntry(input(entryFile, {}, 0, ZSTD_FROM_HEADER)), 'ERR_PATCH');
});

withZstd('issue 14 item 2: bogus, truncated and bomb frames are ERR_PATCH (the output never passes the signed size)', async () => {
  if (!nodeHasZstd()) return;
  const bytes = await readFile(entryFile);
  const header = bytes.subarray(0, ZSTD_FROM_HEADER);
  const write = async (name: string, body: Buffer) => {
    const f = join(tmp.path, name);
    await writeFile(f, Buffer.concat([header, body]));
    return f;
  };
  const garbage = await write('garbage.zf', Buffer.from('not a zstd frame at all, just words'));
  await assertCodeAsync(() => applyZstdFromEntry(input(garbage, {}, 0, ZSTD_FROM_HEADER + 35)), 'ERR_PATCH');
  const truncated = await write('truncated.zf', bytes.subarray(ZSTD_FROM_HEADER, bytes.length - 40));
  await assertCodeAsync(() => applyZstdFromEntry(input(truncated, {}, 0, bytes.length - 40)), 'ERR_PATCH');
  const z = zlib as unknown as { zstdCompressSync(b: Buffer, o?: object): Buffer };
  // A bomb: 4 MiB of zeros (100x the new file) under a header that promises the signed size.
  const bomb = z.zstdCompressSync(Buffer.alloc(4 * 1024 * 1024));
  const bombFile = await write('bomb.zf', bomb);
  const i = input(bombFile, {}, 0, ZSTD_FROM_HEADER + bomb.length);
  await assertCodeAsync(() => applyZstdFromEntry(i), 'ERR_PATCH');
  assert.ok((await stat(i.outFile).catch(() => ({ size: 0 }))).size <= newBytes.length, 'never more than the signed size written');
  // Streamed without its content size, in a 1 KiB window (so zstd cannot refuse it up front):
  // the cap stops it while it is written.
  const streamed = await new Promise<Buffer>((resolve, reject) => {
    const enc = (zlib as unknown as { createZstdCompress(o: object): NodeJS.ReadWriteStream }).createZstdCompress({ params: { [ZSTD.ZSTD_c_windowLog!]: 10 } });
    const parts: Buffer[] = [];
    enc.on('data', (c: Buffer) => parts.push(c)).on('end', () => resolve(Buffer.concat(parts))).on('error', reject);
    for (let k = 0; k < 4; k++) enc.write(Buffer.alloc(1024 * 1024));
    enc.end();
  });
  const streamedFile = await write('streamed-bomb.zf', streamed);
  const j = input(streamedFile, {}, 0, ZSTD_FROM_HEADER + streamed.length);
  const capped = await assertCodeAsync(() => applyZstdFromEntry(j), 'ERR_PATCH');
  assert.match(capped.message, /decodes past the signed/);
  assert.ok((await stat(j.outFile).catch(() => ({ size: 0 }))).size <= newBytes.length, 'never more than the signed size written');
});

withZstd.after(async () => {
  await tmp.cleanup();
});

withZstd.run();
