// A FERRYBD1 patch's diff stream is written with a window of at most 4 MiB (issue 14 item 7): a
// device's brotli decoder grows its ring buffer with the stream's output up to the window, so a
// window fitted to a 6 MiB diff stream cost the device 6 MiB of memory. The extra stream keeps the
// window that fits it, up to 16 MiB: no stream ferry writes, patch stream or whole-file entry, asks
// a device for more (core/io/brotli.ts). Read from the streams' own headers (RFC 7932 section
// 9.1), then applied.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { applyPatchEntry } from '../../core/delta/patch-apply.ts';
import { DIFF_STREAM_MAX_LGWIN, writeFerryPatch } from '../../core/delta/patch-encode.ts';
import { CODER_BROTLI, PATCH_HEADER_SIZE, readPatchHeader } from '../../core/delta/patch-format.ts';
import { compressFileBest } from '../../core/io/brotli.ts';
import { sha256 } from '../../core/io/hash.ts';
import { pseudoRandomBytes, tempDir, type TempDir } from '../helpers/repo.ts';

const t = suite('FERRYBD1 stream windows');
let tmp: TempDir;
t.before(async () => { tmp = await tempDir('ferry-stream-window-'); });
t.after(async () => { await tmp?.cleanup(); });

/** The window bits a brotli stream declares in its first bits (RFC 7932 section 9.1; large window: 'large'). */
function declaredWindowBits(stream: Buffer): number | 'large' {
  const b = stream[0]!;
  if ((b & 1) === 0) return 16;
  const n = (b >> 1) & 7;
  if (n !== 0) return 17 + n;
  const m = (b >> 4) & 7;
  if (m === 1) return 'large';
  return m === 0 ? 17 : 8 + m;
}

t('the 6 MiB diff stream of a patch is written with a 4 MiB window, the extra stream with one that fits it, and the patch applies', async () => {
  const size = 6 * 1024 * 1024;
  const old = pseudoRandomBytes(size, 7);
  // The first half of the old file patched (a diff of zeros with a changed byte every 4 KiB), then
  // 5 MiB of new bytes (extra).
  const half = size / 2;
  const diff = Buffer.alloc(half);
  for (let i = 0; i < half; i += 4096) diff[i] = 1;
  const extra = pseudoRandomBytes(5 * 1024 * 1024, 8);
  const patched = Buffer.from(old.subarray(0, half).map((v, i) => (v + diff[i]!) & 0xff));
  const baseFile = join(tmp.path, 'old');
  const patchFile = join(tmp.path, 'patch');
  const outFile = join(tmp.path, 'new');
  await writeFile(baseFile, old);
  // One diff stream of 6 MiB: the first half added twice (an entry, then a seek back).
  const bigDiff = Buffer.concat([diff, diff]);
  const twice = Buffer.concat([patched, patched, extra]);
  const size2 = twice.length;
  await writeFerryPatch({ oldSize: size, newSize: size2, control: [half, 0, -half, half, extra.length, 0], diff: bigDiff, extra }, patchFile, { quality: 5 });

  const bytes = await readFile(patchFile);
  const h = readPatchHeader(bytes.subarray(0, PATCH_HEADER_SIZE));
  const diffStart = PATCH_HEADER_SIZE + h.controlLength;
  const extraStart = diffStart + h.diffLength;
  assert.is(declaredWindowBits(bytes.subarray(diffStart)), DIFF_STREAM_MAX_LGWIN, 'diff stream: a 4 MiB window, not one fitted to its 6 MiB');
  assert.is(DIFF_STREAM_MAX_LGWIN, 22);
  assert.is(declaredWindowBits(bytes.subarray(extraStart)), 23, 'extra stream (5 MiB): the window that fits it');

  const got = await applyPatchEntry({ baseFile, baseSize: size, patch: { file: patchFile, offset: 0, size: bytes.length }, outFile, newSize: size2 });
  assert.is(got.sha256, sha256(twice));
  assert.ok((await readFile(outFile)).equals(twice));
});

t('a stream over 16 MiB (a patch\'s extra stream, a whole-file entry) is written with the standard 16 MiB window, coder 1, and decodes', async () => {
  const size = 17 * 1024 * 1024;
  const extra = pseudoRandomBytes(size, 9);
  const baseFile = join(tmp.path, 'one-byte-base');
  await writeFile(baseFile, Buffer.from([7]));
  const patchFile = join(tmp.path, 'big-extra.patch');
  // Quality 1: the window is what is tested, not the size.
  await writeFerryPatch({ oldSize: 1, newSize: size, control: [0, size, 0], diff: Buffer.alloc(0), extra }, patchFile, { quality: 1 });
  const bytes = await readFile(patchFile);
  const h = readPatchHeader(bytes);
  assert.is(h.coder, CODER_BROTLI);
  assert.is(declaredWindowBits(bytes.subarray(PATCH_HEADER_SIZE + h.controlLength + h.diffLength)), 24, 'extra stream: 16 MiB, not the large window fitted to 17 MiB');
  const got = await applyPatchEntry({ baseFile, baseSize: 1, patch: { file: patchFile, offset: 0, size: bytes.length }, outFile: join(tmp.path, 'big-out'), newSize: size });
  assert.is(got.sha256, sha256(extra));

  const whole = join(tmp.path, 'whole.bin');
  await writeFile(whole, extra);
  await compressFileBest(whole, join(tmp.path, 'whole.br'), size, 1);
  assert.is(declaredWindowBits(await readFile(join(tmp.path, 'whole.br'))), 24, 'whole-file entry: 16 MiB');
});

t.run();
