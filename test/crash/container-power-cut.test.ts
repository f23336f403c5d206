// Issue 15 item 3 (faults): a power cut during the image switch. The device home (releases, the
// runtime bundles under containers/, the journal) lives on ext4 in a loop-mounted file, as in
// test/crash/power-cut.test.ts; a device on 1.0.0 with its 1.0.0 container running updates to
// 1.1.0 (the real CLI), and at an instant of the switch the filesystem is shut down without a log
// flush (test/helpers/fs-shutdown.py: what was not made durable is lost), then every process dies
// as in a power loss: ferry, and every container process. The "reboot": the runtime state on /run
// is gone (its containers deleted), the filesystem mounted again, and what the agent does when it
// starts (recovery, then ensureCurrentContainer) must leave exactly one complete image running —
// of 1.0.0, or of 1.1.0 when the commit was journaled — answering on the device's port. A cut
// after the commit proves the new version's bundle, made during the switch, was durable.
// Runs in a private mount namespace (inPrivateMountNamespace in test/helpers/crash.ts).

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile as execFileCb } from 'node:child_process';
import { readlink, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { runcRoot } from '../../plugins/container/engine.ts';
import { containersDown, containersUp } from '../../plugins/container/device-containers.ts';
import { withDevice } from '../../plugins/open-device.ts';
import { homeLayout } from '../../core/device/layout.ts';
import { containerToolsMissing } from '../helpers/oci-image.ts';
import {
  STRICT_MOUNT_OPTIONS, afterRemount, armCutter, describeRun, inPrivateMountNamespace, makeLoopFsWith, powerCutUnavailable, running, sleep, startFerry, type LoopFs,
} from '../helpers/crash.ts';
import { containerFixture, runcHas, runcList, type ContainerFixture } from '../plugins/container-fixture.ts';

const execFile = promisify(execFileCb);

/** A power loss for the containers: every process of every container of `home` killed, and /run's state of them gone (deleted). */
async function killAllContainers(home: string): Promise<void> {
  const root = runcRoot(homeLayout(home));
  // A `runc run` the killed ferry had started may still be creating one: repeat until nothing is left.
  for (let round = 0, quiet = 0; round < 100 && quiet < 3; round++) {
    const listed = await runcList(home);
    if (listed.length === 0) quiet++;
    else quiet = 0;
    for (const c of listed) {
      await execFile('runc', ['--root', root, 'kill', '--all', c.id, 'KILL']).catch(() => {});
      await execFile('runc', ['--root', root, 'delete', '--force', c.id]).catch(() => {});
    }
    await sleep(50);
  }
  await rm(root, { recursive: true, force: true });
}

const reason = powerCutUnavailable();
const missing = await containerToolsMissing();
if (reason || missing.length > 0) {
  console.log(`SKIP: issue 15 item 3 power cut during the image switch (${reason ?? `${missing.join(', ')} missing`}); not registered`);
} else if (await inPrivateMountNamespace()) {
  let f: ContainerFixture;
  let disk: LoopFs;

  test.before(async () => {
    f = await containerFixture({ healthUrl: true });
    await f.publish({ version: '1.0.0' });
    const first = await withDevice(f.home, (u) => u.apply());
    assert.is(first.status, 'committed', JSON.stringify(first));
    await containersDown(f.home);
    await f.publish({ version: '1.1.0' });
    disk = await makeLoopFsWith(f.tmp.path, { mountOptions: STRICT_MOUNT_OPTIONS });
  });

  test.after(async () => {
    if (disk) {
      if (!disk.mounted) await disk.mount().catch(() => {});
      await killAllContainers(join(disk.mnt, 'home')).catch(() => {});
      await disk.destroy();
    }
    await f.cleanup();
  });

  type Trigger = { kind: 'phase'; point: string } | { kind: 'switch'; label: string; reached: (home: string) => boolean };
  const old = () => `${f.name}-1.0.0`;
  const next = () => `${f.name}-1.1.0`;
  // (A cut before the container switch begins is the file case, test/crash/power-cut.test.ts: the old container was never touched.)
  const triggers: { name: string; trigger: Trigger; mustEndOn?: string }[] = [
    { name: 'with the old container just stopped', trigger: { kind: 'switch', label: 'old gone', reached: (home) => !runcHas(home, old()) } },
    { name: 'with the new container just started', trigger: { kind: 'switch', label: 'new started', reached: (home) => runcHas(home, next()) } },
    { name: 'at after:committed (the commit journaled)', trigger: { kind: 'phase', point: 'after:committed' }, mustEndOn: '1.1.0' },
  ];

  for (const { name, trigger, mustEndOn } of triggers) {
    test(`issue 15 item 3: a power cut during the switch ${name} — one complete image runs after reboot`, async () => {
      await disk.mount();
      const home = join(disk.mnt, 'home');
      try {
        await rm(home, { recursive: true, force: true });
        await execFile('cp', ['-a', f.home, home]);
        await containersUp(home);
        assert.equal(await runcList(home), [{ id: old(), status: 'running' }]);
        await execFile('sync', ['-f', home]); // the starting point is on disk
        const cutter = await armCutter(disk.mnt);
        const child = startFerry(['update', '--home', home], trigger.kind === 'phase' ? { FERRY_TEST_KILL_AT: trigger.point } : {});
        if (trigger.kind === 'phase') {
          const r = await child.done;
          assert.is(r.signal, 'SIGKILL', describeRun(r));
        } else {
          const deadline = Date.now() + 30_000;
          let seen = false;
          while (!seen && running(child.child) && Date.now() < deadline) {
            seen = trigger.reached(home);
            if (!seen) await sleep(2);
          }
          assert.ok(seen, `the switch reached "${trigger.label}" while the update ran: ${child.stdout()}`);
        }
        await cutter.cut();
        if (running(child.child)) child.child.kill('SIGKILL');
        await child.done;
        await killAllContainers(home);
      } finally {
        await disk.umount();
      }
      await afterRemount(disk, async () => {
        const r = await containersUp(home); // the agent's start: recovery, then reconcile
        const current = (await readlink(join(home, 'current'))).replace(/^releases\//, '');
        const listed = await runcList(home);
        try {
          assert.ok(current === '1.0.0' || current === '1.1.0', current);
          if (mustEndOn) assert.is(current, mustEndOn, 'the commit was journaled before the cut');
          assert.equal(listed, [{ id: `${f.name}-${current}`, status: 'running' }], `exactly the container of current (${current}) runs`);
          assert.is(r.running, `${f.name}-${current}`);
          assert.is(await f.answer(), `${current}\n`, 'and it answers');
          console.log(`  cut ${name}: ${current} running after reboot`);
        } finally {
          await killAllContainers(home); // its rootfs is on the loop filesystem, which is unmounted next
        }
      });
    });
  }
}

test.run();
