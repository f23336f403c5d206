// Journals stored by earlier versions of ferry: one flat record with every field nullable and no
// `kind`. The store converts them on read (core/device/journal.ts journalFromStored), so a device
// whose ferry is upgraded in the middle of an attempt still recovers it the way it would have:
// an update cut short before its verdict counts against the release, a manual rollback does not,
// a bare download leaves no record. The records are written into the device's real LevelDB.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Level } from 'level';
import { sampleApp } from '../helpers/repo.ts';
import { cleanupAll as done, repoAndDevice as fresh } from '../helpers/device.ts';
import { assertCode } from '../helpers/assert-code.ts';
import { journalFromStored } from '../../core/device/journal.ts';
import type { Plan } from '../../core/update/plan.ts';
import type { UpdateRecord } from '../../core/spec.ts';

const flat = {
  phase: 'idle', attemptId: null, from: null, to: null, plan: null, source: null, restorePointId: null, bytesMoved: 0, startedAt: null, errorCode: null,
};
const plan: Plan = { kind: 'full', to: '1.1.0', artifact: { path: 'artifacts/x.tar.gz', size: 10, sha256: 'a'.repeat(64), chunkSize: 10, chunks: [] }, bytes: 10 };

const read = suite('journalFromStored: the kind of a flat journal follows from which fields are set');

read('idle, with or without the flat fields, is idle', () => {
  assert.equal(journalFromStored(flat), { phase: 'idle' });
  assert.equal(journalFromStored(undefined), { phase: 'idle' });
  assert.equal(journalFromStored({ phase: 'idle' }), { phase: 'idle' });
});

read('a plan makes an update, a record without a plan a rollback, neither a bare download', () => {
  const update = journalFromStored({ ...flat, phase: 'staged', attemptId: 'h1', from: '1.0.0', to: '1.1.0', plan, source: 'repo', bytesMoved: 10, startedAt: '2026-01-01T00:00:00.000Z' });
  assert.equal(update, { phase: 'staged', from: '1.0.0', to: '1.1.0', kind: 'update', attemptId: 'h1', startedAt: '2026-01-01T00:00:00.000Z', restorePointId: null, errorCode: null, plan, source: 'repo', bytesMoved: 10 });
  const rollback = journalFromStored({ ...flat, phase: 'rolling-back', attemptId: 'h2', from: '1.1.0', to: '1.0.0', restorePointId: 'p', startedAt: '2026-01-01T00:00:00.000Z', errorCode: 'ERR_UNHEALTHY' });
  assert.equal(rollback, { phase: 'rolling-back', from: '1.1.0', to: '1.0.0', kind: 'rollback', attemptId: 'h2', startedAt: '2026-01-01T00:00:00.000Z', restorePointId: 'p', errorCode: 'ERR_UNHEALTHY' });
  const download = journalFromStored({ ...flat, phase: 'downloading', from: '1.0.0', to: '1.1.0' });
  assert.equal(download, { phase: 'downloading', from: '1.0.0', to: '1.1.0', kind: 'download' });
});

read('a journal of the current shape is read as it is; an unknown phase or a flat one naming no version is ERR_SCHEMA', () => {
  const current = { kind: 'download', phase: 'verifying', from: null, to: '1.0.0' };
  assert.equal(journalFromStored(current), current);
  assertCode(() => journalFromStored({ ...flat, phase: 'unpacking' }), 'ERR_SCHEMA');
  assertCode(() => journalFromStored({ ...flat, phase: 'switching', attemptId: 'h3' }), 'ERR_SCHEMA');
});

read.run();

// ---------------------------------------------------------------------------------------------

const recover = suite('a flat journal left in the store by an earlier ferry is recovered on open');

/** Writes `journal` (and history `records`) the way an earlier ferry left them, with the device closed. */
async function leave(state: string, journal: object, records: UpdateRecord[] = []): Promise<void> {
  const db = new Level<string, unknown>(state, { valueEncoding: 'json' });
  await db.open();
  try {
    await db.put('journal', journal);
    for (const r of records) await db.put(`history!${r.id}`, r);
  } finally {
    await db.close();
  }
}

async function failuresOf(state: string, version: string): Promise<number> {
  const db = new Level<string, unknown>(state, { valueEncoding: 'json' });
  await db.open();
  try {
    return ((await db.get(`failures!${version}`)) as number | undefined) ?? 0;
  } finally {
    await db.close();
  }
}

const inProgress = (id: string, from: string, to: string, kind: UpdateRecord['kind']): UpdateRecord => ({
  id, from, to, source: 'repo', kind, bytesMoved: 0, startedAt: '2026-01-01T00:00:00.000Z', finishedAt: null, outcome: 'in-progress', errorCode: null,
});

recover('an update cut while confirming: back on 1.0.0, the attempt rolled back and counted against 1.1.0', async () => {
  const { repo, device } = await fresh();
  try {
    await repo.release('1.0.0', sampleApp('1.0.0'));
    await device.with(async (u) => assert.is((await u.apply()).status, 'committed'));
    await repo.release('1.1.0', sampleApp('1.1.0'));
    await device.with(async (u) => assert.is((await u.apply()).status, 'committed'));
    assert.is(await device.current(), '1.1.0');

    const id = '99999999-legacy-update';
    await leave(device.layout.state, { ...flat, phase: 'confirming', attemptId: id, from: '1.0.0', to: '1.1.0', plan, source: 'repo', startedAt: '2026-01-01T00:00:00.000Z' }, [inProgress(id, '1.0.0', '1.1.0', 'full')]);
    await device.with(async (u) => {
      assert.is(await u.currentVersion(), '1.0.0');
      assert.is((await u.status()).phase, 'idle');
      const record = (await u.history()).find((h) => h.id === id);
      assert.is(record?.outcome, 'rolled-back');
      assert.is(record?.errorCode, 'ERR_INTERRUPTED');
    });
    assert.is(await failuresOf(device.layout.state, '1.1.0'), 1, 'an update cut before its verdict counts');
  } finally {
    await done(device, repo);
  }
});

recover('a manual rollback cut while confirming, and a bare download cut while downloading: neither counts against a release', async () => {
  const { repo, device } = await fresh();
  try {
    await repo.release('1.0.0', sampleApp('1.0.0'));
    await device.with(async (u) => assert.is((await u.apply()).status, 'committed'));
    await repo.release('1.1.0', sampleApp('1.1.0'));
    await device.with(async (u) => assert.is((await u.apply()).status, 'committed'));

    // A rollback from 1.1.0 to 1.0.0 journaled confirming: `current` already on 1.0.0.
    const id = '99999999-legacy-rollback';
    await device.with(async (u) => assert.is((await u.rollback()).to, '1.0.0'));
    await leave(device.layout.state, { ...flat, phase: 'confirming', attemptId: id, from: '1.1.0', to: '1.0.0', startedAt: '2026-01-01T00:00:00.000Z' }, [inProgress(id, '1.1.0', '1.0.0', 'rollback')]);
    await device.with(async (u) => {
      assert.is(await u.currentVersion(), '1.1.0', 'an unconfirmed rollback goes back to where it started');
      assert.is((await u.history()).find((h) => h.id === id)?.outcome, 'rolled-back');
    });
    assert.is(await failuresOf(device.layout.state, '1.0.0'), 0, 'a manual rollback is not an attempt at a release');

    const before = await device.with((u) => u.history());
    await leave(device.layout.state, { ...flat, phase: 'downloading', from: '1.1.0', to: '1.2.0' });
    await device.with(async (u) => {
      assert.is((await u.status()).phase, 'idle');
      assert.equal(await u.history(), before, 'a bare download has no record to close');
    });
  } finally {
    await done(device, repo);
  }
});

recover.run();
