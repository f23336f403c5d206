// Issue 15 item 2 through podman (daemonless, rootful, vfs storage, the flags engine.ts and
// podman.ts use): 1.0 → 1.1 with the same ferry.json — the 1.1 container answers on the socket
// ferry hands in (podman run --preserve-fds), the 1.0 container is gone, history committed, and
// ferry.json env and mounts are visible inside. Where podman is missing or does not work here,
// a SKIP line names what is missing.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile as execFileCb } from 'node:child_process';
import { promisify } from 'node:util';
import { openDevice } from '../../plugins/open-device.ts';
import { defaultProbe, podmanGlobalArgs } from '../../plugins/container/index.ts';
import { homeLayout } from '../../core/device/layout.ts';
import { containerToolsMissing } from '../helpers/oci-image.ts';
import { containerFixture, type ContainerFixture } from './container-fixture.ts';

const execFile = promisify(execFileCb);
const missing = await containerToolsMissing();
const podmanWhy = missing.length > 0 ? null : await defaultProbe('podman', ['--version']);

if (missing.length > 0 || podmanWhy !== null) {
  console.log(`SKIP: issue 15 item 2 through podman (${missing.length > 0 ? missing.join(', ') : `podman: ${podmanWhy}`}); not registered`);
} else {
  let f: ContainerFixture;
  const id = (v: string) => `${f.name}-${v}`;
  const update = async () => {
    const device = await openDevice(f.home, { container: { settleMs: 300 } });
    try {
      return await device.updater.apply();
    } finally {
      await device.close();
    }
  };

  test.before(async () => {
    f = await containerFixture({ engine: 'podman', healthUrl: true });
  });
  test.after(async () => {
    await f.cleanup();
  });

  test('issue 15 item 2: 1.0 → 1.1 through podman — the 1.1 container answers over its inherited socket, the 1.0 container is gone, history committed', async () => {
    await f.publish({ version: '1.0.0' });
    const first = await update();
    assert.is(first.status, 'committed', JSON.stringify(first));
    assert.is(await f.answer(), '1.0.0\n');
    await f.publish({ version: '1.1.0' });
    const r = await update();
    assert.is(r.status, 'committed', JSON.stringify(r));
    assert.is(await f.answer(), '1.1.0\n');
    assert.equal(await f.containers(), [{ id: id('1.1.0'), status: 'running' }]);
    const last = (await f.device.with((u) => u.history())).find((h) => h.to === '1.1.0');
    assert.is(last?.outcome, 'committed');
    const inside = (await execFile('podman', [...podmanGlobalArgs(homeLayout(f.home)), 'exec', id('1.1.0'), '/bin/sh', '-c', 'echo "$GREETING|$LISTEN_FDS"; cat /data/greeting.txt'])).stdout;
    assert.is(inside, 'from ferry.json|1\nmounted from the device\n');
  });
}

test.run();
