// The agent's container watchdog (plugins/container/watchdog.ts): runc has no restart policy, so
// before it an app container that exited or was killed stayed down until the agent restarted. With
// real umoci and runc: the agent runs, the container's process is SIGKILLed, and within a few of
// ferry.json `container.watchSeconds` the container of `current` runs and answers again.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile as execFileCb } from 'node:child_process';
import { promisify } from 'node:util';
import { Agent } from '../../plugins/agent/agent.ts';
import { openDevice } from '../../plugins/open-device.ts';
import { needsReconcile } from '../../plugins/container/watchdog.ts';
import { runcRoot } from '../../plugins/container/engine.ts';
import { homeLayout } from '../../core/device/layout.ts';
import { containerToolsMissing } from '../helpers/oci-image.ts';
import { containerFixture } from './container-fixture.ts';

const execFile = promisify(execFileCb);

test('needsReconcile: only "exactly the container of current runs" needs nothing', () => {
  const running = (id: string) => ({ id, status: 'running' });
  assert.is(needsReconcile('app-1.0.0', [running('app-1.0.0')]), false);
  assert.is(needsReconcile(null, []), false, 'nothing installed, nothing running');
  assert.is(needsReconcile('app-1.0.0', []), true, 'gone');
  assert.is(needsReconcile('app-1.0.0', [{ id: 'app-1.0.0', status: 'stopped' }]), true, 'exited');
  assert.is(needsReconcile('app-1.0.0', [running('app-1.0.0'), running('app-0.9.0')]), true, 'a stray beside it');
  assert.is(needsReconcile(null, [running('app-0.9.0')]), true, 'a container with nothing installed');
});

const missing = await containerToolsMissing();
if (missing.length > 0) {
  console.log(`SKIP: container watchdog test (${missing.join(', ')} missing); not registered`);
} else {
  test('the agent starts the container of current again after its process was killed', async () => {
    const f = await containerFixture({ container: { watchSeconds: 1 } });
    const stop = new AbortController();
    let running: Promise<unknown> = Promise.resolve();
    try {
      await f.publish({ version: '1.0.0' });
      const device = await openDevice(f.home, { container: { settleMs: 300 } });
      try {
        assert.is((await device.updater.apply()).status, 'committed');
      } finally {
        await device.close();
      }
      assert.is(await f.answer(), '1.0.0\n');
      await f.device.setConfig({ policy: { ...(await f.device.config()).policy, checkInterval: 86_400 } });

      const events: { event: string; fields: Record<string, unknown> }[] = [];
      const agent = new Agent({ home: f.home, log: (event, fields) => { events.push({ event, fields }); } });
      running = agent.run(stop.signal);
      // Until the agent's first round is over, so the kill below is the watchdog's to notice.
      for (let i = 0; i < 200 && !events.some((e) => e.event === 'up-to-date'); i++) await new Promise((r) => setTimeout(r, 50));
      assert.ok(events.some((e) => e.event === 'up-to-date'), `the agent's first round ended: ${JSON.stringify(events)}`);

      const id = `${f.name}-1.0.0`;
      const state = JSON.parse((await execFile('runc', ['--root', runcRoot(homeLayout(f.home)), 'state', id])).stdout) as { pid: number };
      process.kill(state.pid, 'SIGKILL');
      // Bounded: 30 s for a 1 s watch interval.
      const deadline = Date.now() + 30_000;
      while (Date.now() < deadline && !events.some((e) => e.event === 'container')) await new Promise((r) => setTimeout(r, 100));
      const restarted = events.find((e) => e.event === 'container');
      assert.ok(restarted, `the watchdog noticed: ${JSON.stringify(events)}`);
      assert.equal(restarted!.fields, { action: 'restarted', version: '1.0.0', stopped: [id] });
      assert.is(await f.answer(), '1.0.0\n', 'the container answers again');
      assert.equal(await f.containers(), [{ id, status: 'running' }]);
    } finally {
      stop.abort('test');
      await running;
      await f.cleanup();
    }
  });
}

test.run();
