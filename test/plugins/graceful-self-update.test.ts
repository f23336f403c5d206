// The spec's GracefulUpdater for an agent's own update (plugins/self/graceful-self-update.ts) over
// a real signed repository and a real self home: prepare stages exactly the named version,
// drainConnections calls the agent's drain, execute begins the trial and restarts (here the
// restart is caught: it exits the process), healthCheck in the new version confirms.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { makeRepo, sampleApp } from '../helpers/repo.ts';
import { cleanupAll as done, makeDevice, type TestDevice } from '../helpers/device.ts';
import { assertCodeAsync } from '../helpers/assert-code.ts';
import { decideStart } from '../../core/self/boot-decision.ts';
import { readBootRecord, writeBootRecord } from '../../core/self/boot-record.ts';
import { GracefulSelfUpdate, SelfUpdate } from '../../plugins/self/index.ts';
import type { GracefulUpdater } from '../../core/spec.ts';

const made: { cleanup(): Promise<void> }[] = [];

async function selfHome(): Promise<TestDevice> {
  const repo = await makeRepo({ app: 'agent' });
  const device = await makeDevice({ trust: await repo.trust(), sources: [repo.repo] });
  await repo.release('1.0.0', sampleApp('1.0.0'));
  assert.is((await device.with((u) => u.apply())).status, 'committed');
  await repo.release('1.1.0', sampleApp('1.1.0'));
  made.push(device, repo);
  return device;
}

/** A SelfUpdate whose restart() throws instead of exiting this test process. */
class CaughtRestart extends SelfUpdate {
  restarts = 0;
  override restart(): never {
    this.restarts++;
    throw new Error('restart');
  }
}

const graceful = suite('GracefulSelfUpdate: the spec\'s four steps for an agent\'s own update');

graceful.after(() => done(...made));

graceful('prepare → drainConnections → execute → (new process) healthCheck commits 1.1.0', async () => {
  const device = await selfHome();
  const self = new CaughtRestart({ home: device.home, version: '1.0.0' });
  const drained: number[] = [];
  const updater: GracefulUpdater = new GracefulSelfUpdate(self, { drain: async (ms) => void drained.push(ms) });

  await updater.prepare('1.1.0');
  assert.is(await device.current(), '1.0.0', 'prepare stages, never switches');
  await updater.drainConnections(5000);
  assert.equal(drained, [5000], 'the agent\'s own drain ran with the timeout');
  try {
    await updater.execute();
    assert.unreachable('execute restarts the process');
  } catch (err) {
    assert.is((err as Error).message, 'restart');
  }
  assert.is(self.restarts, 1);
  const read = await readBootRecord(device.home);
  assert.is(read.state === 'ok' && read.record.tentative?.version, '1.1.0', 'execute wrote the trial before restarting');

  // The keeper's start, then the new process.
  const start = decideStart(read, '1.0.0', new Date());
  if (start.write) await writeBootRecord(device.home, start.write);
  const next = new GracefulSelfUpdate(new SelfUpdate({ home: device.home, version: '1.1.0' }));
  assert.is(await next.healthCheck(), true);
  assert.is(await device.current(), '1.1.0', 'healthCheck confirmed: current moved');
});

graceful('prepare of a version the self home does not offer stages nothing and refuses with ERR_NOT_FOUND; execute without prepare is ERR_USAGE', async () => {
  const device = await selfHome();
  const self = new CaughtRestart({ home: device.home, version: '1.0.0' });
  const updater = new GracefulSelfUpdate(self);
  await assertCodeAsync(() => updater.prepare('2.0.0'), 'ERR_NOT_FOUND');
  await assertCodeAsync(() => new GracefulSelfUpdate(self).execute(), 'ERR_USAGE');
  assert.is(self.restarts, 0, 'nothing restarted');
  const read = await readBootRecord(device.home);
  assert.is(read.state === 'ok' && read.record.tentative, null, 'no trial begun');
});

graceful('on a start that is not a trial, healthCheck has nothing to confirm and changes nothing', async () => {
  const device = await selfHome();
  assert.is(await new GracefulSelfUpdate(new SelfUpdate({ home: device.home, version: '1.0.0' })).healthCheck(), true);
  assert.is(await device.current(), '1.0.0');
});

graceful.run();
