// The publisher ranks a changed file's candidate entries at a fast quality and encodes at its own
// quality only those near the smallest estimate (core/delta/pick-candidates.ts): quality 11 costs
// seconds per MB, and on a large binary every candidate encoded at 11 was most of publish time. A
// publisher already at the fast quality (or below) encodes every candidate directly.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { applyDelta } from '../../core/delta/apply-delta.ts';
import { makeDelta, type CandidateSize } from '../../core/delta/make-delta.ts';
import { ESTIMATE_MARGIN, ESTIMATE_QUALITY, estimateQuality, pickCandidates } from '../../core/delta/pick-candidates.ts';
import { scanTree } from '../../core/publish/tree.ts';
import { sha256 } from '../../core/io/hash.ts';
import type { Patcher } from '../../core/ports/patcher.ts';
import type { RawPatch } from '../../core/delta/raw-patch.ts';
import { isPackRange, type DeltaOp } from '../../core/trust/metadata.ts';
import { createBsdiffPatcher } from '../../plugins/bsdiff/patcher.ts';
import { pseudoRandomBytes, tempDir, type TempDir } from '../helpers/repo.ts';

const t = suite('delta candidates: ranked at a fast quality, the near ones encoded for real');
let tmp: TempDir;
const real = createBsdiffPatcher();
t.before(async () => { tmp = await tempDir('ferry-pick-candidates-'); });
t.after(async () => {
  await tmp?.cleanup();
  await real.close();
});

t('pickCandidates keeps, in order, the sizes within the margin of the smallest', () => {
  assert.equal(pickCandidates([100, 103, 104, 90], 0), [3]);
  assert.equal(pickCandidates([100, 103, 104], 0.03), [0, 1]);
  assert.equal(pickCandidates([100, 100], 0), [0, 1], 'equals are both kept');
  assert.equal(pickCandidates([7], 0.03), [0]);
  assert.equal(pickCandidates([], 0.03), []);
});

t('estimateQuality ranks only for a publisher slower than the estimate', () => {
  assert.is(estimateQuality(11), ESTIMATE_QUALITY);
  assert.is(estimateQuality(ESTIMATE_QUALITY + 1), ESTIMATE_QUALITY);
  assert.is(estimateQuality(ESTIMATE_QUALITY), undefined);
  assert.is(estimateQuality(1), undefined);
});

const SIZE = 300 * 1024;

/**
 * A far pair (random bytes with one in 7,919 changed, so brotli cannot shrink the whole file) and
 * a patcher that answers the default windows with a valid but poor patch (every byte as extra):
 * of the three candidates (poor patch, fine-window patch, whole file), only the fine patch is small.
 */
async function farPair(name: string): Promise<{ oldDir: string; newDir: string; patcher: Patcher }> {
  const oldDir = join(tmp.path, name, 'old');
  const newDir = join(tmp.path, name, 'new');
  await mkdir(oldDir, { recursive: true });
  await mkdir(newDir, { recursive: true });
  const base = pseudoRandomBytes(SIZE, 1);
  const changed = Buffer.from(base);
  for (let i = 3; i < SIZE; i += 7919) changed[i] = (changed[i]! + 1) & 0xff;
  await writeFile(join(oldDir, 'far.bin'), base);
  await writeFile(join(newDir, 'far.bin'), changed);
  const patcher: Patcher = {
    headerSize: real.headerSize,
    outputSize: (h, n) => real.outputSize(h, n),
    patch: (a, b, c) => real.patch(a, b, c),
    async diff(oldFile, newFile, windows) {
      if (windows !== undefined) return real.diff(oldFile, newFile, windows);
      const bytes = await readFile(newFile);
      const poor: RawPatch = { oldSize: SIZE, newSize: bytes.length, control: [0, bytes.length, 0], diff: new Uint8Array(0), extra: bytes };
      return poor;
    },
  };
  return { oldDir, newDir, patcher };
}

t('at quality 11 the candidates are estimated at the fast quality and only the near one (the fine patch) encoded at 11; the delta builds the new tree', async () => {
  const { oldDir, newDir, patcher } = await farPair('q11');
  const told: CandidateSize[] = [];
  const made = await makeDelta({ oldDir, oldFiles: await scanTree(oldDir), newDir, newFiles: await scanTree(newDir), workDir: join(tmp.path, 'q11', 'work'), outFile: join(tmp.path, 'q11', 'delta'), patcher, onCandidate: (c) => told.push(c) });

  // Only the entry encoded at 11 was written to the work folder: far.bin is file 0, its poor
  // patch would be 0.patch, its fine one 0.fine.patch.
  assert.equal((await readdir(join(tmp.path, 'q11', 'work'))).sort(), ['0.fine.patch']);
  const at = (quality: number) => told.filter((c) => c.quality === quality).map((c) => c.candidate);
  // (The fine patch is under an eighth of the file, so the whole file is not tried.)
  assert.equal(at(ESTIMATE_QUALITY), ['patch', 'fine'], 'both patches estimated');
  assert.equal(at(11), ['fine'], 'only the fine patch encoded at 11');
  const est = (name: string) => told.find((c) => c.candidate === name && c.quality === ESTIMATE_QUALITY)!.size;
  assert.ok(est('patch') > 2 * est('fine'), `the poor patch is far above the fine one: ${JSON.stringify(told)}`);

  const far = made.ops.find((o) => o.path === 'far.bin') as Extract<DeltaOp, { op: 'patch' }>;
  assert.is(far.op, 'patch');
  assert.ok(isPackRange(far.entry));
  assert.is((far.entry as { size: number }).size, told.find((c) => c.quality === 11)!.size, 'the entry is the fine patch at quality 11');
  const outDir = join(tmp.path, 'q11', 'out');
  await applyDelta({ baseDir: oldDir, ops: made.ops, targetFiles: await scanTree(newDir), artifact: made.artifact, outDir, workDir: join(tmp.path, 'q11', 'apply-work'), patcher: real });
  assert.is(sha256(await readFile(join(outDir, 'far.bin'))), sha256(await readFile(join(newDir, 'far.bin'))));
});

t('candidates within the margin of the smallest estimate are all encoded at 11, and the smallest kept', async () => {
  const { oldDir, newDir } = await farPair('near');
  // The same poor patch for both windows: two equal estimates, and the whole file (as random as
  // the poor patch's extra stream) within the margin of them.
  const bytes = await readFile(join(newDir, 'far.bin'));
  const poor = (): RawPatch => ({ oldSize: SIZE, newSize: bytes.length, control: [0, bytes.length, 0], diff: new Uint8Array(0), extra: bytes });
  const patcher: Patcher = { headerSize: real.headerSize, outputSize: (h, n) => real.outputSize(h, n), patch: (a, b, c) => real.patch(a, b, c), diff: async () => poor() };
  const told: CandidateSize[] = [];
  const made = await makeDelta({ oldDir, oldFiles: await scanTree(oldDir), newDir, newFiles: await scanTree(newDir), workDir: join(tmp.path, 'near', 'work'), outFile: join(tmp.path, 'near', 'delta'), patcher, onCandidate: (c) => told.push(c) });

  const estimates = told.filter((c) => c.quality === ESTIMATE_QUALITY);
  assert.equal(estimates.map((c) => c.candidate), ['patch', 'fine', 'whole']);
  const least = Math.min(...estimates.map((c) => c.size));
  assert.ok(estimates.every((c) => c.size <= least * (1 + ESTIMATE_MARGIN)), `all near: ${JSON.stringify(estimates)}`);
  const finals = told.filter((c) => c.quality === 11);
  assert.equal(finals.map((c) => c.candidate), ['patch', 'fine', 'whole'], 'all three encoded at 11');
  const op = made.ops.find((o) => o.path === 'far.bin')!;
  assert.is((op as { entry: { size: number } }).entry.size, Math.min(...finals.map((c) => c.size)), 'the smallest at 11 is the entry');
});

t('a publisher at the fast quality or below encodes every candidate directly, once', async () => {
  const { oldDir, newDir, patcher } = await farPair('q5');
  const told: CandidateSize[] = [];
  await makeDelta({ oldDir, oldFiles: await scanTree(oldDir), newDir, newFiles: await scanTree(newDir), workDir: join(tmp.path, 'q5', 'work'), outFile: join(tmp.path, 'q5', 'delta'), patcher, quality: ESTIMATE_QUALITY, onCandidate: (c) => told.push(c) });
  // The fine patch is under an eighth of the file, so the whole file is not tried.
  assert.equal(told.map((c) => [c.candidate, c.quality]), [['patch', ESTIMATE_QUALITY], ['fine', ESTIMATE_QUALITY]]);
});

t.run();
