// A far pair is matched a second time in small windows (FINE_DIFF_WINDOWS) and the smaller patch is
// kept (issue 14: delta size); a close pair is matched once. The patcher here wraps the real
// bsdiff one: asked with its default windows for the far file it answers with a valid but poor
// RawPatch (every byte as extra), so the fine try is the one that must win; the delta is then
// applied to the exact new tree.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { applyDelta } from '../../core/delta/apply-delta.ts';
import { FINE_DIFF_WINDOWS, type WindowOptions } from '../../core/delta/diff-windows.ts';
import { makeDelta } from '../../core/delta/make-delta.ts';
import { scanTree } from '../../core/publish/tree.ts';
import { sha256 } from '../../core/io/hash.ts';
import type { Patcher } from '../../core/ports/patcher.ts';
import type { RawPatch } from '../../core/delta/raw-patch.ts';
import { isPackRange, type DeltaOp } from '../../core/trust/metadata.ts';
import { createBsdiffPatcher } from '../../plugins/bsdiff/patcher.ts';
import { pseudoRandomBytes, tempDir, type TempDir } from '../helpers/repo.ts';

const t = suite('far pairs: a second match in small windows');
let tmp: TempDir;
const real = createBsdiffPatcher();
t.before(async () => { tmp = await tempDir('ferry-fine-windows-'); });
t.after(async () => {
  await tmp?.cleanup();
  await real.close();
});

const SIZE = 300 * 1024;

t('a far pair is diffed again in FINE_DIFF_WINDOWS and the smaller patch kept; a close pair is diffed once; the delta builds the new tree', async () => {
  const oldDir = join(tmp.path, 'old');
  const newDir = join(tmp.path, 'new');
  await mkdir(oldDir, { recursive: true });
  await mkdir(newDir, { recursive: true });
  const base = pseudoRandomBytes(SIZE, 1);
  const changed = (seed: number) => {
    const b = Buffer.from(base);
    for (let i = seed; i < SIZE; i += 7919) b[i] = (b[i]! + 1) & 0xff;
    return b;
  };
  await writeFile(join(oldDir, 'far.bin'), base);
  await writeFile(join(newDir, 'far.bin'), changed(3));
  await writeFile(join(oldDir, 'close.bin'), base);
  await writeFile(join(newDir, 'close.bin'), changed(5));

  const calls: { file: string; windows: WindowOptions | undefined }[] = [];
  const patcher: Patcher = {
    headerSize: real.headerSize,
    outputSize: (h, n) => real.outputSize(h, n),
    patch: (a, b, c) => real.patch(a, b, c),
    async diff(oldFile, newFile, windows) {
      calls.push({ file: newFile.endsWith('far.bin') ? 'far' : 'close', windows });
      if (newFile.endsWith('far.bin') && windows === undefined) {
        const bytes = await readFile(newFile);
        const poor: RawPatch = { oldSize: SIZE, newSize: bytes.length, control: [0, bytes.length, 0], diff: new Uint8Array(0), extra: bytes };
        return poor;
      }
      return real.diff(oldFile, newFile, windows);
    },
  };
  const made = await makeDelta({ oldDir, oldFiles: await scanTree(oldDir), newDir, newFiles: await scanTree(newDir), workDir: join(tmp.path, 'work'), outFile: join(tmp.path, 'delta'), patcher, quality: 5 });

  assert.equal(calls.filter((c) => c.file === 'close').map((c) => c.windows), [undefined], 'the close pair: one diff, default windows');
  assert.equal(calls.filter((c) => c.file === 'far').map((c) => c.windows), [undefined, FINE_DIFF_WINDOWS], 'the far pair: default windows, then fine ones');
  const far = made.ops.find((o) => o.path === 'far.bin') as Extract<DeltaOp, { op: 'patch' }>;
  assert.is(far.op, 'patch');
  assert.ok(isPackRange(far.entry));
  // The fine patch (a few changed bytes) is tiny; the poor one (every byte as extra) is ~ the file.
  assert.ok((far.entry as { size: number }).size < SIZE / 10, `the fine patch was kept (${(far.entry as { size: number }).size} bytes)`);

  const outDir = join(tmp.path, 'out');
  await applyDelta({ baseDir: oldDir, ops: made.ops, targetFiles: await scanTree(newDir), artifact: made.artifact, outDir, workDir: join(tmp.path, 'apply-work'), patcher: real });
  for (const name of ['far.bin', 'close.bin']) assert.is(sha256(await readFile(join(outDir, name))), sha256(await readFile(join(newDir, name))), name);
});

t.run();
