// Review of the container plugin (session 22): a hostile tester's findings, each with the test that
// failed before its fix.
//   - An image mount request checked only by its text: a granted folder holding a symlink (which a
//     container with that folder bound rw can plant) would bind what the link points to on the host.
//   - Capabilities in the inheritable and ambient sets: a non-root image User kept them across execve.
//   - A health command (container.exec) ignoring SIGTERM: runc exec forwarded the timeout's SIGTERM
//     and waited, so the check ran past its deadline (forever for a hung command) and a late exit 0
//     counted as healthy.
//   - The engine state folder named by the home's spelling: the agent (--home /srv/dev) and a
//     `ferry container up --home ./dev` saw different runc roots, so each started its own container.
//   - Containers recognised by the name prefix: after ferry.json container.name changed ("web" to
//     "web-admin"), the old name's container was not this app's any more and kept running beside
//     the new one (and a name that prefixes another's, "web" vs "web-admin", parsed versions wrong).

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { checkMountSourcesOnHost } from '../../plugins/container/mount-sources.ts';
import { runtimeSpec, DEFAULT_CAPABILITIES } from '../../plugins/container/runtime-spec.ts';
import { prepareBundle } from '../../plugins/container/bundle.ts';
import { startVersion, type ContainerContext } from '../../plugins/container/start-container.ts';
import { reconcileContainers, stopAllContainers } from '../../plugins/container/reconcile.ts';
import { detectEngine, runtimeStateDir, type ContainerEngine } from '../../plugins/container/engine.ts';
import { relative } from 'node:path';
import { NO_GRANTS } from '../../core/image/requests.ts';
import { homeLayout } from '../../core/device/layout.ts';
import { containerToolsMissing, imageFamily } from '../helpers/oci-image.ts';
import { tempDir, type TempDir } from '../helpers/repo.ts';
import { assertCodeAsync } from '../helpers/assert-code.ts';

let tmp: TempDir;
let granted: string;

test.before(async () => {
  tmp = await tempDir('ferry-container-review-');
  granted = join(tmp.path, 'srv-data');
  await mkdir(join(granted, 'inside'), { recursive: true });
  await mkdir(join(tmp.path, 'host-etc'), { recursive: true });
  await writeFile(join(tmp.path, 'host-etc', 'shadow'), 'secret');
  // What a container with srv-data bound rw can leave behind.
  await symlink(join(tmp.path, 'host-etc'), join(granted, 'planted'));
  await symlink('../host-etc', join(granted, 'relative'));
});
test.after(async () => {
  await tmp?.cleanup();
});

const req = (source: string) => [{ source, destination: '/in', readOnly: false }];

test('review: an image mount whose granted source is a symlink out of the granted folder is ERR_NOT_GRANTED; a real folder inside passes', async () => {
  const grants = { ...NO_GRANTS, mountSources: [granted] };
  await checkMountSourcesOnHost(req(join(granted, 'inside')), grants, 'img');
  await checkMountSourcesOnHost(req(granted), grants, 'img');
  for (const link of ['planted', 'relative']) {
    const err = await assertCodeAsync(() => checkMountSourcesOnHost(req(join(granted, link)), grants, 'img'), 'ERR_NOT_GRANTED');
    assert.match(err.message, /resolves to .*host-etc/);
  }
  await assertCodeAsync(() => checkMountSourcesOnHost(req(join(granted, 'missing')), grants, 'img'), 'ERR_NOT_GRANTED');
});

test('review: the runtime spec gives no inheritable or ambient capabilities (a non-root image User keeps none across execve)', () => {
  const c = runtimeSpec({
    base: { process: { user: { uid: 0, gid: 0 }, env: [] } },
    image: { Cmd: ['/x'], User: '1000', Labels: { 'io.ferry.capabilities': 'CAP_NET_ADMIN' } },
    container: { env: {}, mounts: [] },
    grants: { ...NO_GRANTS, capabilities: ['CAP_NET_ADMIN'] },
    handedIn: { listenFds: 0, notifyFd: null },
    id: 'ferry-app-1.0.0',
  });
  const caps = c.process!.capabilities!;
  assert.equal(caps.inheritable, []);
  assert.equal(caps.ambient, []);
  assert.equal(caps.effective, [...DEFAULT_CAPABILITIES, 'CAP_NET_ADMIN'].sort());
  assert.equal(caps.bounding, caps.effective);
});

test('review: one home spelled differently (relative, trailing slash, through a symlink) has one engine state folder', async () => {
  const home = join(tmp.path, 'same-home');
  await mkdir(home, { recursive: true });
  await symlink(home, join(tmp.path, 'home-link'));
  const spellings = [home, `${home}/`, relative(process.cwd(), home), join(tmp.path, 'home-link'), join(tmp.path, 'x', '..', 'same-home')];
  for (const engine of ['runc', 'podman'] as const) {
    const dirs = spellings.map((h) => runtimeStateDir(homeLayout(h), engine));
    assert.equal(new Set(dirs).size, 1, `${engine}: ${spellings.join(' | ')} → ${dirs.join(' | ')}`);
  }
});

const missing = await containerToolsMissing();
if (missing.length > 0) {
  console.log(`SKIP: prepareBundle refusing a symlinked mount source, a hung health exec (${missing.join(', ')} missing)`);
} else {
  let home: string;
  const container = { name: `ferry-review${process.pid}`, env: {}, mounts: [] };
  let engine: ContainerEngine;
  const started: string[] = [];

  test.before(async () => {
    home = join(tmp.path, 'home');
    const family = await imageFamily(join(tmp.path, 'images'));
    await mkdir(homeLayout(home).releases, { recursive: true });
    await family.build({ version: '1.0.0', labels: { 'io.ferry.mounts': `${join(granted, 'planted')}:/hostetc:rw` } }, homeLayout(home).release('1.0.0'));
    await family.build({ version: '1.0.1' }, homeLayout(home).release('1.0.1'));
    engine = await detectEngine({ engine: 'runc' }, homeLayout(home));
  });
  test.after(async () => {
    for (const id of started) await engine.stop(id, 1000).catch(() => {});
  });

  test('review: prepareBundle refuses an image whose granted mount source is a planted symlink', async () => {
    const grants = { ...NO_GRANTS, mountSources: [granted] };
    const err = await assertCodeAsync(() => prepareBundle({ home, version: '1.0.0', container, grants }), 'ERR_NOT_GRANTED');
    assert.match(err.message, /planted/);
  });

  test('review: a health exec that ignores SIGTERM ends at its deadline (runc exec used to wait for it)', async () => {
    const bundle = await prepareBundle({ home, version: '1.0.1', container, grants: NO_GRANTS });
    started.push(bundle.id);
    await engine.start({ id: bundle.id, bundle: bundle.dir, logFile: join(homeLayout(home).containers, `${bundle.id}.log`), handIn: null });
    const t0 = Date.now();
    const r = await engine.exec(bundle.id, ['/bin/sh', '-c', 'trap "" TERM; sleep 5; exit 0'], 400);
    const took = Date.now() - t0;
    assert.is(r.code, null, 'timed out, not the late exit 0');
    assert.ok(took < 3000, `exec returned after ${took} ms (deadline 400 ms)`);
    await engine.stop(bundle.id, 1000);
  });

  test('review: after ferry.json container.name changed, reconcile stops the container under the old name (no second copy)', async () => {
    const config = (name: string) => ({ app: 'review', container: { engine: 'runc', name, env: {}, mounts: [], listen: [], exec: null, stopTimeoutMs: 2000, allow: NO_GRANTS } }) as unknown as ContainerContext['config'];
    await symlink('releases/1.0.1', homeLayout(home).current);
    const before = { home, config: config(`web${process.pid}`), engine, log: () => {} };
    const oldId = await startVersion(before, '1.0.1');
    started.push(oldId);
    const after = { ...before, config: config(`web${process.pid}-admin`) };
    const r = await reconcileContainers(after);
    started.push(r.running!);
    assert.equal(r.stopped, [oldId]);
    assert.equal((await engine.list('')).map((c) => [c.id, c.status]), [[`web${process.pid}-admin-1.0.1`, 'running']]);
    assert.equal(await stopAllContainers(after), [`web${process.pid}-admin-1.0.1`]);
  });
}

test.run();
