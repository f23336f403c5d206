// The container plugin's parts (issue 15 item 2): the runtime config as a pure function of image,
// ferry.json and grants (table tests), and with real umoci and runc a bundle prepared from a release
// folder that stays untouched, a container started with a host socket handed in, answering, exec'd
// into, and stopped; a bundle a kill left half-made is remade; detection names what it tried.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile as execFileCb } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { controlSocketPath, runDir, serveControl } from '../../plugins/run/control.ts';
import { containersUp } from '../../plugins/container/device-containers.ts';
import { ensureCurrentContainer } from '../../plugins/container/reconcile.ts';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { runtimeSpec, mergeEnv, DEFAULT_CAPABILITIES, type OciRuntimeConfig, type RuntimeSpecInput } from '../../plugins/container/runtime-spec.ts';
import { prepareBundle } from '../../plugins/container/bundle.ts';
import { detectEngine, runcRoot, type ContainerEngine } from '../../plugins/container/engine.ts';
import { listeningHandIn } from '../../plugins/container/host-sockets.ts';
import { NO_GRANTS } from '../../core/image/requests.ts';
import { homeLayout } from '../../core/device/layout.ts';
import { isFerryError } from '../../core/errors.ts';
import { containerToolsMissing, imageFamily } from '../helpers/oci-image.ts';
import { tempDir, type TempDir } from '../helpers/repo.ts';

const execFile = promisify(execFileCb);

const BASE: OciRuntimeConfig = {
  ociVersion: '1.0.0',
  process: { terminal: true, user: { uid: 0, gid: 0 }, args: ['/old'], env: ['PATH=/usr/bin:/bin', 'TERM=xterm'], cwd: '/', capabilities: { bounding: ['CAP_KILL'] }, noNewPrivileges: true },
  mounts: [{ destination: '/proc', type: 'proc', source: 'proc' }],
  linux: { namespaces: [{ type: 'pid' }, { type: 'network' }, { type: 'mount' }], maskedPaths: ['/proc/kcore'], readonlyPaths: ['/proc/sys'] },
};

function input(over: Partial<RuntimeSpecInput> = {}): RuntimeSpecInput {
  return {
    base: BASE,
    image: { Env: ['A=image', 'B=image'], Cmd: ['/bin/server'], WorkingDir: '/app', Labels: {} },
    container: { env: {}, mounts: [] },
    grants: NO_GRANTS,
    handedIn: { listenFds: 0, notifyFd: null },
    id: 'ferry-app-1.0.0',
    ...over,
  };
}

const hasNet = (c: OciRuntimeConfig) => (c.linux?.namespaces ?? []).some((n) => n.type === 'network');

test('runtime spec: command, env layering, handover variables, no terminal, private network', () => {
  const c = runtimeSpec(input({ image: { Env: ['A=image', 'B=image'], Entrypoint: ['/bin/sh', '-c'], Cmd: ['echo hi'], WorkingDir: '/app' }, container: { env: { B: 'device', C: 'device' }, mounts: [] }, handedIn: { listenFds: 2, notifyFd: 5 } }));
  assert.is(c.process!.terminal, false);
  assert.equal(c.process!.args, ['/bin/sh', '-c', 'echo hi']);
  assert.is(c.process!.cwd, '/app');
  assert.equal(c.process!.env, ['PATH=/usr/bin:/bin', 'A=image', 'B=device', 'C=device', 'LISTEN_FDS=2', 'LISTEN_PID=1', 'LISTEN_FDNAMES=ferry:ferry', 'FERRY_NOTIFY_FD=5']);
  assert.ok(hasNet(c));
  assert.equal(c.process!.capabilities!.bounding, [...DEFAULT_CAPABILITIES].sort());
  assert.is(c.process!.noNewPrivileges, true);
  assert.equal(BASE.process!.args, ['/old'], 'the base is not modified');
  assert.equal(mergeEnv(['X=1', 'Y=2'], ['X=3']), ['X=3', 'Y=2']);
});

test('runtime spec: numeric user, mounts from the device and granted image mounts', () => {
  const c = runtimeSpec(input({
    image: { Cmd: ['/x'], User: '1000:50', Labels: { 'io.ferry.mounts': '/srv/data/in:/in:rw' } },
    container: { env: {}, mounts: [{ source: '/etc/app', destination: '/etc/app', readOnly: true }] },
    grants: { ...NO_GRANTS, mountSources: ['/srv/data'] },
  }));
  assert.equal(c.process!.user, { uid: 1000, gid: 50 });
  const binds = c.mounts!.filter((m) => m.type === 'bind');
  assert.equal(binds.map((m) => [m.source, m.destination, m.options![1]]), [['/etc/app', '/etc/app', 'ro'], ['/srv/data/in', '/in', 'rw']]);
});

test('runtime spec: host network, capabilities and privileged only when asked AND granted; ungranted refused', () => {
  const asks = { 'io.ferry.network': 'host', 'io.ferry.capabilities': 'CAP_NET_ADMIN' };
  const granted = runtimeSpec(input({ image: { Cmd: ['/x'], Labels: asks }, grants: { ...NO_GRANTS, hostNetwork: true, capabilities: ['CAP_NET_ADMIN', 'CAP_SYS_TIME'] } }));
  assert.not.ok(hasNet(granted));
  assert.ok(granted.process!.capabilities!.effective!.includes('CAP_NET_ADMIN'));
  assert.not.ok(granted.process!.capabilities!.effective!.includes('CAP_SYS_TIME'), 'granted but not asked: not given');
  // Granted but not asked: nothing changes.
  const quiet = runtimeSpec(input({ grants: { privileged: true, hostNetwork: true, capabilities: ['CAP_NET_ADMIN'], mountSources: ['/'] } }));
  assert.ok(hasNet(quiet));
  assert.equal(quiet.process!.capabilities!.effective, [...DEFAULT_CAPABILITIES].sort());
  assert.equal(quiet.linux!.maskedPaths, ['/proc/kcore']);
  const priv = runtimeSpec(input({ image: { Cmd: ['/x'], Labels: { 'io.ferry.privileged': 'true' } }, grants: { ...NO_GRANTS, privileged: true } }));
  assert.ok(priv.process!.capabilities!.effective!.includes('CAP_SYS_ADMIN'));
  assert.equal(priv.linux!.maskedPaths, []);
  assert.is(priv.process!.noNewPrivileges, false);
  const refusedCases: Record<string, string>[] = [asks, { 'io.ferry.privileged': 'true' }, { 'io.ferry.mounts': '/etc:/etc' }];
  for (const labels of refusedCases) {
    try {
      runtimeSpec(input({ image: { Cmd: ['/x'], Labels: labels } }));
      assert.unreachable(`refused: ${JSON.stringify(labels)}`);
    } catch (err) {
      assert.ok(isFerryError(err, 'ERR_NOT_GRANTED'), String(err));
    }
  }
  try {
    runtimeSpec(input({ image: { Labels: {} } }));
    assert.unreachable('no command');
  } catch (err) {
    assert.ok(isFerryError(err, 'ERR_SCHEMA'), String(err));
  }
});

test('detection: no engine that works is ERR_CONTAINER_ENGINE naming each one tried', async () => {
  const probe = async (cmd: string) => (cmd === 'runc' ? 'not installed' : cmd === 'podman' ? 'cgroups in hybrid mode not supported' : null);
  try {
    await detectEngine({ engine: 'auto' }, { containers: '/nonexistent' }, probe);
    assert.unreachable('no engine');
  } catch (err) {
    assert.ok(isFerryError(err, 'ERR_CONTAINER_ENGINE'), String(err));
    assert.match((err as Error).message, /runc \(not installed\), podman \(cgroups in hybrid mode not supported\)/);
  }
  const only = await detectEngine({ engine: 'runc' }, { containers: '/x' }, async () => null);
  assert.is(only.kind, 'runc');
});

test('a reconcile (ferry container up, the agent at start) refuses with ERR_BUSY while ferry run --container supervises the home', async () => {
  const home = await mkdtemp(join(tmpdir(), 'ferry-supervised-'));
  const server = net.createServer();
  try {
    await writeFile(join(home, 'ferry.json'), JSON.stringify({ app: 'demo', platform: 'linux', arch: 'x64', sources: [], container: {} }));
    await mkdir(runDir(home), { recursive: true });
    serveControl(server, { status: () => ({ pid: process.pid }) as never, handover: async () => ({ healthy: false, detail: 'unused' }) }, () => {});
    await new Promise<void>((resolve) => server.listen(controlSocketPath(home), resolve));
    for (const run of [() => containersUp(home), () => ensureCurrentContainer(home)]) {
      const err = await run().then(() => null, (e: unknown) => e);
      assert.ok(isFerryError(err, 'ERR_BUSY'), `ERR_BUSY, got ${String(err)}`);
      assert.match((err as Error).message, /ferry run --container supervises/);
    }
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await rm(home, { recursive: true, force: true });
  }
});

const missing = await containerToolsMissing();
if (missing.length > 0) {
  console.log(`SKIP: the runc container tests (${missing.join(', ')} missing); the pure runtime-spec tests ran`);
} else {
  let tmp: TempDir;
  let home: string;
  let engine: ContainerEngine;
  const started: string[] = [];

  async function treeDigest(dir: string): Promise<string> {
    const h = createHash('sha256');
    const walk = async (d: string): Promise<void> => {
      for (const name of (await readdir(d)).sort()) {
        const p = join(d, name);
        const st = await stat(p);
        h.update(`${p.slice(dir.length)} ${st.mode} ${st.mtimeMs} ${st.size}\n`);
        if (st.isDirectory()) await walk(p);
        else h.update(await readFile(p));
      }
    };
    await walk(dir);
    return h.digest('hex');
  }

  test.before(async () => {
    tmp = await tempDir('ferry-container-engine-');
    home = join(tmp.path, 'home');
    const family = await imageFamily(join(tmp.path, 'images'));
    await mkdir(homeLayout(home).releases, { recursive: true });
    await family.build({ version: '1.0.0' }, homeLayout(home).release('1.0.0'));
    engine = await detectEngine({ engine: 'runc' }, homeLayout(home));
  });

  test.after(async () => {
    for (const id of started) await execFile('runc', ['--root', runcRoot(homeLayout(home)), 'delete', '--force', id]).catch(() => {});
    await rm(runcRoot(homeLayout(home)), { recursive: true, force: true });
    await tmp.cleanup();
  });

  test('issue 15 item 2: a bundle from the release folder (left untouched) runs under runc with a host socket handed in, and stops', async () => {
    const layout = homeLayout(home);
    const before = await treeDigest(layout.release('1.0.0'));
    const container = { name: `ferry-eng${process.pid}`, env: { GREETING: 'from-ferry-json' }, mounts: [] };
    // A kill during an earlier unpack left a partial folder and a bundle without umoci's record.
    await mkdir(join(layout.containers, '.partial-1.0.0-dead'), { recursive: true });
    await mkdir(join(layout.containers, '1.0.0', 'rootfs'), { recursive: true });
    await writeFile(join(layout.containers, '1.0.0', 'config.json'), '{');
    const sockets = listeningHandIn(['127.0.0.1:0']);
    const bundle = await prepareBundle({ home, version: '1.0.0', container, grants: NO_GRANTS, handedIn: { listenFds: 1, notifyFd: null } });
    assert.is(await treeDigest(layout.release('1.0.0')), before, 'umoci wrote nothing into the release folder');
    assert.not.ok((await readdir(layout.containers)).some((n) => n.startsWith('.partial-')), 'leftovers removed');
    started.push(bundle.id);
    await engine.start({ id: bundle.id, bundle: bundle.dir, logFile: join(layout.containers, `${bundle.id}.log`), handIn: sockets });
    assert.is(await engine.status(bundle.id), 'running');
    const port = sockets.addresses()[0]!.port;
    const answer = await (await fetch(`http://127.0.0.1:${port}/`)).text();
    assert.is(answer, '1.0.0\n', 'the container answers on the socket ferry bound (its own network namespace has no route to the host)');
    const env = await engine.exec(bundle.id, ['/bin/sh', '-c', 'echo $GREETING $LISTEN_FDS'], 10_000);
    assert.is(env.code, 0);
    assert.is(env.output.trim(), 'from-ferry-json 1');
    assert.is((await engine.exec(bundle.id, ['/bin/false'], 10_000)).code, 1);
    assert.equal((await engine.list(container.name)).map((c) => c.id), [bundle.id]);
    await engine.stop(bundle.id, 5_000);
    assert.is(await engine.status(bundle.id), null);
    const refused = await fetch(`http://127.0.0.1:${port}/`).then(() => 'answered', () => 'refused');
    assert.is(refused, 'refused', 'the port went with the container');
    await rm(join(layout.containers, `${bundle.id}.log`), { force: true });
  });
}

test.run();
