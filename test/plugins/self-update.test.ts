// The self-update library (plugins/self/self-update.ts) and the Updater additions it stands on
// (Updater.stage, Updater.settleStaged), over real parts: a real signed repository, a real self
// home (initDevice) opened the way the `ferry` command opens it, its real LevelDB store and boot
// record. The keeper's part between switch() and the new version's confirm() (decideStart and its
// durable write) is played by the test with the same pure decisions the keeper uses.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { chmod, readFile, writeFile } from 'node:fs/promises';
import { makeRepo, sampleApp, type TestRepo } from '../helpers/repo.ts';
import { cleanupAll as done, makeDevice, type TestDevice } from '../helpers/device.ts';
import { assertCodeAsync } from '../helpers/assert-code.ts';
import { decideStart } from '../../core/self/boot-decision.ts';
import { readBootRecord, writeBootRecord, type BootRecord } from '../../core/self/boot-record.ts';
import type { UpdateRecord } from '../../core/spec.ts';
import { SelfUpdate, RESTART_EXIT_CODE, type SelfPhase } from '../../plugins/self/index.ts';
import * as ferry from '../../core/index.ts';
import type { Phase } from '../../core/device/journal.ts';

/** A self home with 1.0.0 installed by a normal update, then `policy`, and 1.1.0 published. */
async function selfHome(policy: Parameters<typeof makeDevice>[0]['policy'] = {}): Promise<{ repo: TestRepo; device: TestDevice }> {
  const repo = await makeRepo({ app: 'ferry' });
  const device = await makeDevice({ trust: await repo.trust(), sources: [repo.repo] });
  await repo.release('1.0.0', sampleApp('1.0.0'));
  const first = await device.with((u) => u.apply());
  assert.is(first.status, 'committed', 'the first install is a plain update');
  await device.setConfig({ policy: { ...(await device.config()).policy, ...policy } });
  await repo.release('1.1.0', sampleApp('1.1.0'));
  return { repo, device };
}

async function bootRecord(home: string): Promise<BootRecord> {
  const read = await readBootRecord(home);
  if (read.state !== 'ok') throw read.error;
  return read.record;
}

/** What the keeper does at a start: decide, write the decision's record durably first, run. */
async function keeperStart(device: TestDevice, now = new Date()) {
  const decision = decideStart(await readBootRecord(device.home), (await device.current())!, now);
  if (decision.write) await writeBootRecord(device.home, decision.write);
  return decision;
}

const history = (device: TestDevice) => device.with((u) => u.history());
const attemptsAt = (records: UpdateRecord[], to: string) => records.filter((r) => r.to === to);
const phaseOf = (device: TestDevice) => device.with(async (u) => (await u.status()).phase);

/** A kill point that records every call and throws at one, as a kill there would stop the rest. */
function cutAt(when: 'before' | 'after', phase: Phase | SelfPhase, calls: string[] = []) {
  return (w: 'before' | 'after', p: Phase | SelfPhase) => {
    calls.push(`${w} ${p}`);
    if (w === when && p === phase) throw new Error(`cut ${w} ${p}`);
  };
}

/** Expects `fn` to fail with a message matching `pattern` (the kill point's throw). */
async function rejects(fn: () => Promise<unknown>, pattern: RegExp = /cut /): Promise<void> {
  let failed: unknown = null;
  try {
    await fn();
  } catch (err) {
    failed = err;
  }
  assert.ok(failed instanceof Error, 'the call was cut short');
  assert.match((failed as Error).message, pattern);
}

// ---------------------------------------------------------------------------------------------

const flow = suite('prepare, switch, (restart), confirm: 1.0.0 → 1.1.0');

flow('prepare stages without switching; switch begins the trial; 1.1.0 confirms; history has the commit', async () => {
  const { repo, device } = await selfHome();
  try {
    const calls: string[] = [];
    const old = new SelfUpdate({ home: device.home, version: '1.0.0', tries: 2, confirmWithinMs: 60_000, killPoint: (w, p) => calls.push(`${w} ${p}`) });
    assert.is(await old.onTrial(), false, 'nothing on trial before a switch');

    assert.equal(await old.prepare(), { status: 'staged', version: '1.1.0', from: '1.0.0' });
    assert.is(await device.current(), '1.0.0', 'prepare never switches');
    assert.equal(await device.releases(), ['1.0.0', '1.1.0'], '1.1.0 is staged in releases/');
    assert.is(await phaseOf(device), 'staged');
    assert.equal(await bootRecord(device.home), { tentative: null, refused: [] }, 'prepare writes no boot record');
    assert.ok(calls.includes('before staged'), `the Updater's kill points are handed through (${calls.join(', ')})`);
    assert.equal(await old.prepare(), { status: 'staged', version: '1.1.0', from: '1.0.0' }, 'prepare again: the same staged release');

    calls.length = 0;
    await old.switch('1.1.0');
    assert.equal(calls, ['before self-switch', 'after self-switch']);
    const trial = (await bootRecord(device.home)).tentative;
    assert.ok(trial, 'the boot record names a trial');
    assert.equal({ version: trial!.version, previous: trial!.previous, tries: trial!.tries, triesLeft: trial!.triesLeft }, { version: '1.1.0', previous: '1.0.0', tries: 2, triesLeft: 2 });
    assert.is(Date.parse(trial!.deadline) - Date.parse(trial!.switchedAt), 60_000, 'the deadline is confirmWithinMs after the switch');
    assert.is(await device.current(), '1.0.0', 'switch leaves current on the confirmed version');
    assert.is(await old.onTrial(), false, 'the old version is not the one on trial');

    // restart(): the keeper starts again and runs the trial version, spending a try first.
    const start = await keeperStart(device);
    assert.equal(start.action === 'run' && start.version, '1.1.0');
    const fresh = new SelfUpdate({ home: device.home, version: '1.1.0', killPoint: (w, p) => calls.push(`${w} ${p}`) });
    assert.is(await fresh.onTrial(), true);

    calls.length = 0;
    assert.equal(await fresh.confirm(), { confirmed: true, version: '1.1.0', from: '1.0.0' });
    const order = calls.filter((c) => c.includes('self-') || c.endsWith(' idle'));
    assert.equal(order, ['before self-confirm', 'after self-confirm', 'before self-confirmed', 'after self-confirmed', 'before idle', 'after idle'], 'switch, then the cleared record, then the history');
    assert.is(await device.current(), '1.1.0');
    assert.equal(await bootRecord(device.home), { tentative: null, refused: [] });
    assert.is(await fresh.onTrial(), false);
    assert.is(await phaseOf(device), 'idle');
    const records = attemptsAt(await history(device), '1.1.0');
    assert.is(records.length, 1, 'one attempt at 1.1.0');
    assert.is(records[0]!.outcome, 'committed');
    assert.is(records[0]!.from, '1.0.0');
    assert.is(records[0]!.errorCode, null);
    assert.ok(records[0]!.finishedAt);
    const points = await device.with((u) => u.listRestorePoints());
    assert.ok(points.some((p) => p.version === '1.0.0'), 'a restore point of the version it left, as apply makes');

    // Idempotent: nothing more to confirm, nothing changes.
    assert.equal(await fresh.confirm(), { confirmed: false, version: '1.1.0' });
    assert.is(attemptsAt(await history(device), '1.1.0').length, 1);
    assert.is(await device.current(), '1.1.0');
    assert.equal(await fresh.prepare(), { status: 'up-to-date', current: '1.1.0' });
  } finally {
    await done(device, repo);
  }
});

flow('switch refuses a version that is not staged, and a second trial while one is under way', async () => {
  const { repo, device } = await selfHome();
  try {
    const old = new SelfUpdate({ home: device.home, version: '1.0.0' });
    await assertCodeAsync(() => old.switch('1.1.0'), 'ERR_NOT_FOUND');
    assert.equal(await bootRecord(device.home), { tentative: null, refused: [] }, 'a refused switch writes nothing');
    assert.is((await old.prepare()).status, 'staged');
    await old.switch('1.1.0');
    await assertCodeAsync(() => old.switch('1.1.0'), 'ERR_BUSY');
  } finally {
    await done(device, repo);
  }
});

flow('switch hashes the staged tree again: bytes changed since prepare end the attempt, and no trial begins', async () => {
  const { repo, device } = await selfHome();
  try {
    const old = new SelfUpdate({ home: device.home, version: '1.0.0' });
    assert.is((await old.prepare()).status, 'staged');
    const file = `${device.layout.release('1.1.0')}/server.js`;
    await chmod(file, 0o644);
    await writeFile(file, (await readFile(file, 'utf8')) + '// tampered\n');
    await assertCodeAsync(() => old.switch('1.1.0'), 'ERR_HASH_MISMATCH');
    assert.equal(await bootRecord(device.home), { tentative: null, refused: [] });
    assert.equal(attemptsAt(await history(device), '1.1.0').map((r) => r.outcome), ['failed']);
  } finally {
    await done(device, repo);
  }
});

flow('exports: ferry and ferry/plugins/self; fromEnv reads what the keeper sets', async () => {
  assert.is(ferry.SelfUpdate, SelfUpdate);
  assert.is(ferry.RESTART_EXIT_CODE, 75);
  assert.is(RESTART_EXIT_CODE, 75);
  assert.is(SelfUpdate.fromEnv({}), null, 'not run by a keeper');
  assert.is(SelfUpdate.fromEnv({ FERRY_SELF_HOME: '/x' }), null);
  const s = SelfUpdate.fromEnv({ FERRY_SELF_HOME: '/srv/self', FERRY_SELF_VERSION: '1.2.3' }, { tries: 5 });
  assert.equal(s && { home: s.home, version: s.version, tries: s.tries }, { home: '/srv/self', version: '1.2.3', tries: 5 });
  await assertCodeAsync(async () => new SelfUpdate({ home: '/srv/self', version: '../x' }), 'ERR_USAGE');
});

flow.run();

// ---------------------------------------------------------------------------------------------

const guard = suite('prepare stages nothing while a trial is under way, nor a version that failed one');

guard('busy while on trial, for the old and the new version alike', async () => {
  const { repo, device } = await selfHome();
  try {
    const old = new SelfUpdate({ home: device.home, version: '1.0.0' });
    await old.prepare();
    await old.switch('1.1.0');
    await repo.release('1.2.0', sampleApp('1.2.0'));
    assert.equal(await old.prepare(), { status: 'busy', version: '1.1.0' });
    assert.equal(await new SelfUpdate({ home: device.home, version: '1.1.0' }).prepare(), { status: 'busy', version: '1.1.0' });
    assert.equal(await device.releases(), ['1.0.0', '1.1.0'], '1.2.0 was not fetched');
    assert.is((await device.with((u) => u.status())).pending?.version, '1.1.0', 'the staged trial version is left alone');
  } finally {
    await done(device, repo);
  }
});

guard('a trial that never confirms: the keeper rolls back, settleStaged records why, prepare refuses it; a newer release is staged', async () => {
  const { repo, device } = await selfHome();
  try {
    const old = new SelfUpdate({ home: device.home, version: '1.0.0', tries: 2 });
    await old.prepare();
    await old.switch('1.1.0');
    // Two starts of 1.1.0 that crash before confirming, then the keeper's third start decides.
    assert.is((await keeperStart(device)).action, 'run');
    assert.is((await keeperStart(device)).action, 'run');
    const decision = await keeperStart(device);
    assert.is(decision.action, 'rollback');
    if (decision.action !== 'rollback') return;
    const message = `${decision.from} ${decision.reason}; back on ${decision.to}`;
    const record = await device.with((u) => u.settleStaged('1.1.0', { outcome: 'rolled-back', errorCode: 'ERR_UNHEALTHY', message }));
    assert.ok(record, 'the staged attempt is closed');
    assert.equal({ from: record!.from, to: record!.to, outcome: record!.outcome, errorCode: record!.errorCode, message: record!.message }, { from: '1.0.0', to: '1.1.0', outcome: 'rolled-back', errorCode: 'ERR_UNHEALTHY', message });
    assert.equal(attemptsAt(await history(device), '1.1.0').map((r) => r.outcome), ['rolled-back'], 'history says why');
    assert.is(await phaseOf(device), 'idle');
    assert.is(await device.current(), '1.0.0');
    assert.is(await device.with((u) => u.settleStaged('1.1.0', { outcome: 'rolled-back', errorCode: 'ERR_UNHEALTHY', message })), null, 'settling again changes nothing');
    assert.is(attemptsAt(await history(device), '1.1.0').length, 1);

    const refused = await old.prepare();
    assert.equal(refused, { status: 'refused', version: '1.1.0', reason: decision.reason });
    assert.is(await phaseOf(device), 'idle', 'the refused version is not staged again');
    assert.equal(attemptsAt(await history(device), '1.1.0').map((r) => r.outcome), ['rolled-back'], 'and no new attempt at it');

    await repo.release('1.2.0', sampleApp('1.2.0'));
    assert.equal(await old.prepare(), { status: 'staged', version: '1.2.0', from: '1.0.0' });
  } finally {
    await done(device, repo);
  }
});

guard('policy holds the release: prepare says waiting and switch refuses it until it is approved', async () => {
  const { repo, device } = await selfHome({ requireApproval: true });
  try {
    const old = new SelfUpdate({ home: device.home, version: '1.0.0' });
    const r = await old.prepare();
    assert.is(r.status, 'waiting');
    assert.is(r.status === 'waiting' && r.version, '1.1.0');
    await assertCodeAsync(() => old.switch('1.1.0'), 'ERR_USAGE');
    assert.equal(await bootRecord(device.home), { tentative: null, refused: [] }, 'no trial of a held release');
    await device.with((u) => u.approve('1.1.0'));
    assert.equal(await old.prepare(), { status: 'staged', version: '1.1.0', from: '1.0.0' });
    await old.switch('1.1.0');
    assert.is((await bootRecord(device.home)).tentative?.version, '1.1.0');
  } finally {
    await done(device, repo);
  }
});

guard.run();

// ---------------------------------------------------------------------------------------------

const cut = suite('a confirm cut short is finished by the next confirm (or prepare)');

async function onTrialOf(device: TestDevice): Promise<void> {
  const old = new SelfUpdate({ home: device.home, version: '1.0.0' });
  assert.is((await old.prepare()).status, 'staged');
  await old.switch('1.1.0');
  await keeperStart(device);
}

cut('cut after the switch of current: current is 1.1.0, the trial still recorded; the next confirm finishes', async () => {
  const { repo, device } = await selfHome();
  try {
    await onTrialOf(device);
    const calls: string[] = [];
    const cutShort = new SelfUpdate({ home: device.home, version: '1.1.0', killPoint: cutAt('after', 'self-confirm', calls) });
    await rejects(() => cutShort.confirm(), /cut after self-confirm/);
    assert.is(await device.current(), '1.1.0', 'the switch happened');
    assert.is((await bootRecord(device.home)).tentative?.version, '1.1.0', 'the record was not cleared');
    assert.is(await phaseOf(device), 'staged', 'history not yet closed');
    assert.equal(attemptsAt(await history(device), '1.1.0').map((r) => r.outcome), ['in-progress']);

    const next = new SelfUpdate({ home: device.home, version: '1.1.0' });
    assert.is(await next.onTrial(), true);
    assert.equal(await next.confirm(), { confirmed: true, version: '1.1.0', from: '1.0.0' });
    assert.is(await device.current(), '1.1.0');
    assert.equal(await bootRecord(device.home), { tentative: null, refused: [] });
    assert.equal(attemptsAt(await history(device), '1.1.0').map((r) => [r.from, r.outcome]), [['1.0.0', 'committed']]);
    assert.equal(await next.confirm(), { confirmed: false, version: '1.1.0' });
  } finally {
    await done(device, repo);
  }
});

cut('cut before the switch of current: nothing moved, the next confirm does it all', async () => {
  const { repo, device } = await selfHome();
  try {
    await onTrialOf(device);
    await rejects(() => new SelfUpdate({ home: device.home, version: '1.1.0', killPoint: cutAt('before', 'self-confirm') }).confirm(), /cut before self-confirm/);
    assert.is(await device.current(), '1.0.0');
    assert.equal(await new SelfUpdate({ home: device.home, version: '1.1.0' }).confirm(), { confirmed: true, version: '1.1.0', from: '1.0.0' });
    assert.is(await device.current(), '1.1.0');
    assert.equal(attemptsAt(await history(device), '1.1.0').map((r) => r.outcome), ['committed']);
  } finally {
    await done(device, repo);
  }
});

cut('cut after the cleared record: not on trial any more, and confirm (or prepare) still closes the attempt as committed', async () => {
  for (const finisher of ['confirm', 'prepare'] as const) {
    const { repo, device } = await selfHome();
    try {
      await onTrialOf(device);
      await rejects(() => new SelfUpdate({ home: device.home, version: '1.1.0', killPoint: cutAt('after', 'self-confirmed') }).confirm(), /cut after self-confirmed/);
      assert.equal(await bootRecord(device.home), { tentative: null, refused: [] });
      assert.is(await device.current(), '1.1.0');
      assert.is(await phaseOf(device), 'staged', `${finisher}: the journal still has the attempt staged`);
      const next = new SelfUpdate({ home: device.home, version: '1.1.0' });
      assert.is(await next.onTrial(), false);
      if (finisher === 'confirm') assert.equal(await next.confirm(), { confirmed: true, version: '1.1.0', from: '1.0.0' });
      else assert.equal(await next.prepare(), { status: 'up-to-date', current: '1.1.0' });
      assert.is(await phaseOf(device), 'idle');
      assert.equal(attemptsAt(await history(device), '1.1.0').map((r) => [r.from, r.outcome]), [['1.0.0', 'committed']], `${finisher}: committed, not "superseded"`);
    } finally {
      await done(device, repo);
    }
  }
});

cut('the keeper finishes the record after a cut after the switch; the new version is then not on trial and prepare closes the attempt', async () => {
  const { repo, device } = await selfHome();
  try {
    await onTrialOf(device);
    await rejects(() => new SelfUpdate({ home: device.home, version: '1.1.0', killPoint: cutAt('after', 'self-confirm') }).confirm());
    const start = await keeperStart(device);
    assert.equal(start.action === 'run' && start.version, '1.1.0');
    assert.equal(await bootRecord(device.home), { tentative: null, refused: [] });
    const next = new SelfUpdate({ home: device.home, version: '1.1.0' });
    assert.is(await next.onTrial(), false);
    assert.equal(await next.prepare(), { status: 'up-to-date', current: '1.1.0' });
    assert.equal(attemptsAt(await history(device), '1.1.0').map((r) => r.outcome), ['committed']);
  } finally {
    await done(device, repo);
  }
});

cut.run();

// ---------------------------------------------------------------------------------------------

const updater = suite('Updater.stage and Updater.settleStaged');

updater('stage leaves current alone and makes no restore point; stage again is the same attempt; apply() after stage() commits it', async () => {
  const { repo, device } = await selfHome();
  try {
    const pointsBefore = (await device.with((u) => u.listRestorePoints())).length;
    assert.equal(await device.with((u) => u.stage()), { status: 'staged', version: '1.1.0', from: '1.0.0' });
    assert.is(await device.current(), '1.0.0');
    assert.is(await phaseOf(device), 'staged');
    assert.is((await device.with((u) => u.listRestorePoints())).length, pointsBefore, 'no restore point before a switch that has not happened');
    assert.equal(await device.with((u) => u.stage()), { status: 'staged', version: '1.1.0', from: '1.0.0' });
    assert.equal(attemptsAt(await history(device), '1.1.0').map((r) => r.outcome), ['in-progress'], 'one attempt');

    const applied = await device.with((u) => u.apply());
    assert.is(applied.status, 'committed');
    assert.is(await device.current(), '1.1.0');
    assert.equal(attemptsAt(await history(device), '1.1.0').map((r) => [r.from, r.outcome]), [['1.0.0', 'committed']]);
    assert.equal(await device.with((u) => u.stage()), { status: 'up-to-date', current: '1.1.0' });
  } finally {
    await done(device, repo);
  }
});

updater('stage re-verifies a release staged earlier: a tampered tree ends the attempt instead of being offered again', async () => {
  const { repo, device } = await selfHome();
  try {
    await device.with((u) => u.stage());
    const file = `${device.layout.release('1.1.0')}/server.js`;
    await chmod(file, 0o644);
    await writeFile(file, (await readFile(file, 'utf8')) + '// tampered\n');
    await assertCodeAsync(() => device.with((u) => u.stage()), 'ERR_HASH_MISMATCH');
    assert.is(await phaseOf(device), 'idle');
    assert.equal(attemptsAt(await history(device), '1.1.0').map((r) => r.outcome), ['failed']);
  } finally {
    await done(device, repo);
  }
});

updater('stage waits on policy with the release staged; settleStaged refuses a commit current does not name, and ignores other versions', async () => {
  const { repo, device } = await selfHome({ requireApproval: true });
  try {
    const waiting = await device.with((u) => u.stage());
    assert.is(waiting.status, 'waiting');
    assert.is(await phaseOf(device), 'staged');
    assert.is(await device.current(), '1.0.0');
    await assertCodeAsync(() => device.with((u) => u.settleStaged('1.1.0', { outcome: 'committed' })), 'ERR_INTERNAL');
    assert.is(await phaseOf(device), 'staged', 'a refused settle changes nothing');
    assert.is(await device.with((u) => u.settleStaged('1.2.0', { outcome: 'rolled-back', errorCode: 'ERR_UNHEALTHY' })), null);
    assert.is(await phaseOf(device), 'staged');
    assert.equal(attemptsAt(await history(device), '1.1.0').map((r) => r.outcome), ['in-progress']);
  } finally {
    await done(device, repo);
  }
});

updater('settleStaged committed raises the security floor for a security fix', async () => {
  const repo = await makeRepo({ app: 'ferry' });
  const device = await makeDevice({ trust: await repo.trust(), sources: [repo.repo] });
  try {
    await repo.release('1.0.0', sampleApp('1.0.0'));
    await device.with((u) => u.apply());
    await repo.release('1.1.0', sampleApp('1.1.0'), { securityFix: true });
    const old = new SelfUpdate({ home: device.home, version: '1.0.0' });
    await old.prepare();
    await old.switch('1.1.0');
    await keeperStart(device);
    await new SelfUpdate({ home: device.home, version: '1.1.0' }).confirm();
    assert.is((await device.with((u) => u.status())).securityFloor, '1.1.0');
  } finally {
    await done(device, repo);
  }
});

updater.run();
