// Issue 15 item 2 with real umoci and runc: a device whose ferry.json has `container` updates
// 1.0 → 1.1 through the ordinary updater (openDevice wires the container switch as the health
// check): the 1.1 container answers on the socket ferry hands in, the 1.0 container is gone, the
// history says committed; a broken 1.2 (exits at start) is rolled back with the 1.1 container
// running and answering again; ferry.json env and mounts are visible inside; reconcile is
// idempotent and restarts a container that died.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile as execFileCb } from 'node:child_process';
import { promisify } from 'node:util';
import { openDevice, withDevice } from '../../plugins/open-device.ts';
import { ensureCurrentContainer } from '../../plugins/container/reconcile.ts';
import { runcRoot } from '../../plugins/container/engine.ts';
import { homeLayout } from '../../core/device/layout.ts';
import { isFerryError } from '../../core/errors.ts';
import { containerToolsMissing } from '../helpers/oci-image.ts';
import { containerFixture, type ContainerFixture } from './container-fixture.ts';

const execFile = promisify(execFileCb);
const missing = await containerToolsMissing();

if (missing.length > 0) {
  console.log(`SKIP: issue 15 item 2 container switch tests (${missing.join(', ')} missing); not registered`);
} else {
  let f: ContainerFixture;
  const OPEN = { container: { settleMs: 300 } };
  const update = async () => {
    const device = await openDevice(f.home, OPEN);
    try {
      return await device.updater.apply();
    } finally {
      await device.close();
    }
  };
  const id = (v: string) => `${f.name}-${v}`;
  const inside = async (v: string, cmd: string) => (await execFile('runc', ['--root', runcRoot(homeLayout(f.home)), 'exec', id(v), '/bin/sh', '-c', cmd])).stdout;

  test.before(async () => {
    f = await containerFixture({ healthUrl: true });
  });
  test.after(async () => {
    await f.cleanup();
  });

  test('issue 15 item 2: 1.0 → 1.1 — the 1.1 container answers over its inherited socket, the 1.0 container is gone, history committed', async () => {
    // 1.0.0 as a plain release tree (the layout as umoci made it: gzip layers), 1.1.0 as
    // `ferry release --image` publishes (uncompressed layers, the signed container field): both run.
    await f.publish({ version: '1.0.0' }, { plain: true });
    const first = await update();
    assert.is(first.status, 'committed', JSON.stringify(first));
    assert.is(await f.answer(), '1.0.0\n');
    await f.publish({ version: '1.1.0' });
    const r = await update();
    assert.is(r.status, 'committed', JSON.stringify(r));
    assert.is(await f.device.current(), '1.1.0');
    assert.is(await f.answer(), '1.1.0\n', 'the new container serves the host port ferry handed in');
    assert.equal(await f.containers(), [{ id: id('1.1.0'), status: 'running' }], 'only the 1.1 container exists');
    const history = await f.device.with((u) => u.history());
    const last = history.find((h) => h.to === '1.1.0');
    assert.is(last?.outcome, 'committed');
    assert.match(last?.message ?? JSON.stringify(last), /container .*1\.1\.0 running/);
  });

  test('issue 15 item 2: ferry.json env and mounts are visible inside the container', async () => {
    assert.is((await inside('1.1.0', 'echo "$GREETING|$LISTEN_FDS|$LISTEN_PID"')).trim(), 'from ferry.json|1|1');
    assert.is(await inside('1.1.0', 'cat /data/greeting.txt'), 'mounted from the device\n');
    const ro = await inside('1.1.0', 'echo x > /data/w 2>/dev/null && echo wrote || echo read-only');
    assert.is(ro.trim(), 'read-only');
  });

  test('issue 15 item 2: a broken 1.2 (exits at start) is rolled back and the 1.1 container runs and answers again', async () => {
    await f.publish({ version: '1.2.0', exitAtStart: true });
    const r = await update();
    assert.is(r.status, 'rolled-back', JSON.stringify(r));
    assert.match(r.status === 'rolled-back' ? r.record.message ?? '' : '', /exited at start.*started again/);
    assert.is(await f.device.current(), '1.1.0');
    assert.is(await f.answer(), '1.1.0\n');
    assert.equal(await f.containers(), [{ id: id('1.1.0'), status: 'running' }], 'the 1.2 container is gone');
  });

  test('issue 15 item 3: a release whose image asks for an ungranted privilege is refused while staging and the running container is untouched', async () => {
    const pidOf = async () => (JSON.parse((await execFile('runc', ['--root', runcRoot(homeLayout(f.home)), 'state', id('1.1.0')])).stdout) as { pid: number }).pid;
    const before = await pidOf();
    await f.publish({ version: '1.3.0', labels: { 'io.ferry.privileged': 'true' } });
    const err = await update().then((r) => new Error(`not refused: ${JSON.stringify(r)}`), (e: unknown) => e);
    assert.ok(isFerryError(err, 'ERR_NOT_GRANTED'), String(err));
    assert.is(await f.device.current(), '1.1.0');
    assert.equal(await f.containers(), [{ id: id('1.1.0'), status: 'running' }]);
    assert.is(await pidOf(), before, 'the same container process, never stopped');
    assert.is(await f.answer(), '1.1.0\n');
  });

  test('issue 15 item 2: reconcile is idempotent and restarts the container of current when it died', async () => {
    const quiet = await withDevice(f.home, () => ensureCurrentContainer(f.home));
    assert.equal(quiet, { version: '1.1.0', running: id('1.1.0'), started: false, stopped: [] });
    await execFile('runc', ['--root', runcRoot(homeLayout(f.home)), 'kill', id('1.1.0'), 'KILL']);
    for (let i = 0; i < 100 && (await f.containers())[0]?.status === 'running'; i++) await new Promise((r) => setTimeout(r, 20));
    const again = await withDevice(f.home, () => ensureCurrentContainer(f.home));
    assert.equal(again, { version: '1.1.0', running: id('1.1.0'), started: true, stopped: [id('1.1.0')] });
    assert.is(await f.answer(), '1.1.0\n');
  });

  test('issue 15 item 2: restore points apply unchanged — a manual rollback switches the container back to 1.0', async () => {
    const device = await openDevice(f.home, OPEN);
    let record;
    try {
      record = await device.updater.rollback();
    } finally {
      await device.close();
    }
    assert.is(record.outcome, 'committed', JSON.stringify(record));
    assert.is(await f.device.current(), '1.0.0');
    assert.is(await f.answer(), '1.0.0\n');
    assert.equal(await f.containers(), [{ id: id('1.0.0'), status: 'running' }]);
  });
}

test.run();
