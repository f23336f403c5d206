// Progress while a release is built: extraction of a full artifact reports 'stage', a delta
// reports 'patch', both in bytes of the new tree written, rising to exactly the signed tree size.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Updater } from '../../core/update/updater.ts';
import { createDirSource } from '../../core/ports/dir-source.ts';
import { createBsdiffPatcher } from '../../plugins/bsdiff/patcher.ts';
import type { ProgressEvent } from '../../core/ports/progress.ts';
import { makeRepo, sampleApp, type TestRepo } from '../helpers/repo.ts';
import { makeDevice, type TestDevice } from '../helpers/device.ts';

const test = suite('staging and patching progress');
let repo: TestRepo;
let device: TestDevice;

test.before(async () => {
  repo = await makeRepo();
  await repo.release('1.0.0', sampleApp('1.0.0'));
  device = await makeDevice({ trust: await repo.trust(), sources: [repo.repo] });
});

test.after(async () => {
  await device.cleanup();
  await repo.cleanup();
});

/** Applies the next update with a progress sink; returns the non-download events. */
async function applyWithProgress(): Promise<ProgressEvent[]> {
  const events: ProgressEvent[] = [];
  const u = await Updater.open({ home: device.home, sources: [createDirSource(repo.repo)], patcher: createBsdiffPatcher(), health: null, progress: (e) => events.push(e) });
  try {
    assert.is((await u.apply()).status, 'committed');
  } finally {
    await u.close();
  }
  return events.filter((e) => e.step !== 'download');
}

function treeBytes(version: string, tree = sampleApp(version)): number {
  return Object.values(tree).reduce<number>((n, v) => n + (typeof v === 'string' || Buffer.isBuffer(v) ? Buffer.byteLength(v) : Buffer.byteLength(v.content)), 0);
}

function assertRising(events: ProgressEvent[], step: ProgressEvent['step'], label: string, total: number): void {
  assert.ok(events.length >= 3, `a start, at least one file in between, and an end: ${JSON.stringify(events)}`);
  for (const e of events) {
    assert.is(e.step, step);
    assert.is(e.label, label);
    assert.is(e.total, total, 'total is the signed tree size');
  }
  assert.is(events[0]!.done, 0, 'starts at 0');
  for (let i = 1; i < events.length; i++) assert.ok(events[i]!.done >= events[i - 1]!.done, 'never goes back');
  assert.ok(events.slice(1, -1).every((e) => e.done > 0 && e.done < total), 'the events between are partial');
  assert.is(events.at(-1)!.done, total, 'ends complete');
}

test('a full install reports "stage" in bytes of the tree, from 0 to the signed size', async () => {
  assertRising(await applyWithProgress(), 'stage', '1.0.0', treeBytes('1.0.0'));
});

test('a delta update reports "patch" from the old version to the new, in bytes of the new tree', async () => {
  await repo.release('1.1.0', sampleApp('1.1.0'));
  assertRising(await applyWithProgress(), 'patch', '1.0.0 → 1.1.0', treeBytes('1.1.0'));
});

test.run();
