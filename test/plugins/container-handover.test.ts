// `ferry run --container` with real runc, umoci and sockets on 127.0.0.1 (issue 15 item 4): the
// supervisor (the real CLI) holds the socket and runs each version of an OCI image release as a
// container that takes it as LISTEN_FDS; this process keeps a bounded HTTP load on it while
// `ferry apply` (another process) switches 1.0 → 1.1, then tries a 1.2 that exits at start. Not
// one request may fail. Then a SIGKILLed supervisor must leave no container running, and the next
// `ferry run --container` deletes a container an earlier one left behind.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile as execFileCb, spawn, type ChildProcess } from 'node:child_process';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { ApplyResult } from '../../core/spec.ts';
import type { DeviceConfig } from '../../core/device/config.ts';
import { makeDevice, type TestDevice } from '../helpers/device.ts';
import { get, Load } from '../helpers/load.ts';
import { containerToolsMissing, imageFamily } from '../helpers/oci-image.ts';
import { makeRepo, tempDir, type TempDir, type TestRepo, type TreeSpec } from '../helpers/repo.ts';
import { within } from '../helpers/within.ts';
import { requestSupervisor, type SupervisorStatus } from '../../plugins/run/control.ts';
import { generationSpec } from '../../plugins/container/generation.ts';

const execFile = promisify(execFileCb);
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const LOAD_MAX_MS = 90_000;
const LOAD_MAX_REQUESTS = 50_000;

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** An OCI layout folder as a release tree (published as ordinary files). */
async function treeOf(dir: string): Promise<TreeSpec> {
  const tree: TreeSpec = {};
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else tree[relative(dir, p)] = await readFile(p);
    }
  };
  await walk(dir);
  return tree;
}

interface RunningSupervisor {
  child: ChildProcess;
  exit: Promise<number | null>;
  output: () => string;
}

function startSupervisor(home: string): RunningSupervisor {
  // No --listen: ferry.json container.listen says where.
  const child = spawn(process.execPath, [
    'dist/cli/ferry.js', 'run', '--home', home, '--container', '--notify',
    '--ready-timeout', '10s', '--drain-timeout', '5s', '--trial', '1s',
  ], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
  let out = '';
  child.stdout!.on('data', (d) => { out += d; });
  child.stderr!.on('data', (d) => { out += d; });
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, exit, output: () => out };
}

async function waitForStatus(home: string, sup: RunningSupervisor, pred: (s: SupervisorStatus) => boolean, what: string, ms = 20_000): Promise<SupervisorStatus> {
  const deadline = Date.now() + ms;
  let last: SupervisorStatus | null = null;
  while (Date.now() < deadline) {
    last = await requestSupervisor(home, { op: 'status' }, 1000).catch(() => null);
    if (last && pred(last)) return last;
    if (sup.child.exitCode !== null) break;
    await sleep(100);
  }
  assert.unreachable(`${what}; last status ${JSON.stringify(last)}; supervisor output:\n${sup.output()}`);
  throw new Error('unreachable');
}

function runApply(home: string): Promise<{ code: number | null; result: ApplyResult | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['dist/cli/ferry.js', 'apply', '--home', home, '--json'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      let result: ApplyResult | null = null;
      try { result = JSON.parse(stdout) as ApplyResult; } catch { /* reported by the caller */ }
      resolve({ code, result, output: stdout + stderr });
    });
  });
}

/** Containers under the home's runc root with their status (runc list --format json). */
async function containers(home: string): Promise<{ id: string; status: string }[]> {
  const { stdout } = await execFile('runc', ['--root', join(home, 'run', 'runc'), 'list', '--format', 'json']);
  return (JSON.parse(stdout || 'null') as { id: string; status: string }[] | null) ?? [];
}

const missing = await containerToolsMissing();
const Handover = suite('ferry run --container');

Handover('a generation\'s config.json: shared rootfs read-only, no terminal, the handover variables win over the image\'s', () => {
  const spec = generationSpec(
    { rootfs: '/h/containers/1.0.0/rootfs', spec: { root: { path: 'rootfs' }, process: { terminal: true, env: ['PATH=/bin', 'LISTEN_FDS=9', 'LISTEN_PID=77', 'APP=x'] }, mounts: [{ destination: '/proc', type: 'proc', source: 'proc' }] } },
    { LISTEN_FDS: '2', LISTEN_FDNAMES: 'listen-0:ferry-health', FERRY_NOTIFY_FD: '5', FERRY_VERSION: '1.0.0', FERRY_GENERATION: '3' },
  );
  assert.equal(spec.root, { path: '/h/containers/1.0.0/rootfs', readonly: true });
  assert.is(spec.process!.terminal, false);
  const env = spec.process!.env!;
  for (const kv of ['PATH=/bin', 'APP=x', 'LISTEN_FDS=2', 'LISTEN_PID=1', 'LISTEN_FDNAMES=listen-0:ferry-health', 'FERRY_NOTIFY_FD=5', 'FERRY_GENERATION=3']) assert.ok(env.includes(kv), `${kv} in ${env.join(' ')}`);
  assert.is(env.filter((kv) => kv.startsWith('LISTEN_FDS=')).length, 1, 'one LISTEN_FDS');
  assert.equal(spec.mounts!.map((m) => m.destination), ['/proc', '/tmp']);
});

if (missing.length > 0) {
  process.stdout.write(`SKIP: ferry run --container handover tests (${missing.join(', ')})\n`);
} else {
  let tmp: TempDir;
  let repo: TestRepo;
  let device: TestDevice;
  let sup: RunningSupervisor;
  let port: number;
  const layouts: Record<string, string> = {};

  Handover.before(async () => {
    tmp = await tempDir('ferry-container-handover-');
    const family = await imageFamily(join(tmp.path, 'family'));
    layouts['1.0.0'] = await family.build({ version: '1.0.0' }, join(tmp.path, 'image-1.0.0'));
    layouts['1.1.0'] = await family.build({ version: '1.1.0' }, join(tmp.path, 'image-1.1.0'));
    layouts['1.2.0'] = await family.build({ version: '1.2.0', exitAtStart: true }, join(tmp.path, 'image-1.2.0'));
    repo = await makeRepo();
    await repo.release('1.0.0', await treeOf(layouts['1.0.0']), { deltas: 0 });
    device = await makeDevice({ trust: await repo.trust(), sources: [repo.repo] });
    await device.setConfig({ container: { listen: ['127.0.0.1:0'] } } as unknown as Partial<DeviceConfig>);
    const installed = await device.with((u) => u.apply());
    assert.is(installed.status, 'committed');
    sup = startSupervisor(device.home);
    const s = await waitForStatus(device.home, sup, (st) => st.active?.version === '1.0.0', 'the supervisor starts the 1.0.0 container');
    port = Number(/:(\d+)$/.exec(s.listen[0]!)![1]);
    let first = '';
    for (let i = 0; i < 100 && !first; i++) {
      first = await get(port, '/', false).then((r) => r.body.trim(), () => '');
      if (!first) await sleep(50);
    }
    assert.is(first, '1.0.0', `the 1.0.0 container answers on the held socket; output:\n${sup.output()}`);
  });

  Handover.after(async () => {
    if (sup?.child.exitCode === null) {
      sup.child.kill('SIGTERM');
      await within(sup.exit, 15_000, undefined);
      if (sup.child.exitCode === null) sup.child.kill('SIGKILL');
    }
    if (device) {
      for (const c of await containers(device.home).catch(() => [])) await execFile('runc', ['--root', join(device.home, 'run', 'runc'), 'delete', '--force', c.id]).catch(() => {});
      await device.cleanup();
    }
    await repo?.cleanup();
    await tmp?.cleanup();
  });

  Handover('issue 15 item 4: zero failed requests while the container switches 1.0 → 1.1 under load', async () => {
    const before = await containers(device.home);
    assert.is(before.length, 1, `one container runs: ${JSON.stringify(before)}`);
    assert.match(before[0]!.id, /-1\.0\.0-/);
    const load = new Load(port, { maxMs: LOAD_MAX_MS, maxRequests: LOAD_MAX_REQUESTS });
    load.phase('before the update', ['1.0.0']);
    load.start(['keep-alive', 'keep-alive', 'fresh', 'fresh']);
    try {
      await sleep(400);
      await repo.release('1.1.0', await treeOf(layouts['1.1.0']!), { deltas: 1 });
      load.phase('update 1.0.0 -> 1.1.0', ['1.0.0', '1.1.0']);
      const update = await runApply(device.home);
      assert.ok(update.result, `ferry apply printed an ApplyResult: ${update.output}`);
      assert.is(update.result!.status, 'committed', `update to 1.1.0: ${update.output}\nsupervisor:\n${sup.output().slice(-3000)}`);
      assert.is(update.code, 0);
      load.phase('after the update', ['1.1.0']);
      await sleep(600);
    } finally {
      await load.stop();
    }
    assert.equal(load.failures, [], `${load.describe()}\nsupervisor output:\n${sup.output().slice(-4000)}`);
    assert.not.ok(load.hitCap, `the load ran through the update (${load.requests} sent)`);
    assert.ok(load.requests > 100, `a real load: ${load.requests} requests`);
    for (const w of load.windows) for (const v of w.seen) assert.ok(w.allowed.has(v), `during ${w.label} a response came from ${v}`);
    assert.equal([...load.windows[0]!.seen], ['1.0.0'], '1.0.0 answered before the update');
    assert.equal([...load.windows[2]!.seen], ['1.1.0'], 'only 1.1.0 answers after the update');
    const s = await requestSupervisor(device.home, { op: 'status' }, 2000);
    assert.is(s.active?.version, '1.1.0');
    assert.is(await device.current(), '1.1.0');
    // The 1.0.0 container drains and is gone (runc deleted it), within a bounded wait.
    let left = await containers(device.home);
    for (let i = 0; i < 100 && left.some((c) => /-1\.0\.0-/.test(c.id)); i++) {
      await sleep(100);
      left = await containers(device.home);
    }
    assert.equal(left.filter((c) => /-1\.0\.0-/.test(c.id)), [], `the 1.0.0 container is gone: ${JSON.stringify(left)}`);
    assert.equal(left.map((c) => c.status), ['running'], `one container (1.1.0) runs: ${JSON.stringify(left)}`);
    process.stdout.write(`  load: ${load.requests} requests, 0 failed; ${load.windows.map((w) => `${w.label}: ${[...w.seen].join('/')}`).join('; ')}\n`);
  });

  Handover('issue 15 item 4: a 1.2 container that exits at start is refused while 1.1 keeps serving', async () => {
    const load = new Load(port, { maxMs: LOAD_MAX_MS, maxRequests: LOAD_MAX_REQUESTS });
    load.phase('update 1.1.0 -> broken 1.2.0', ['1.1.0']);
    load.start(['keep-alive', 'fresh']);
    let update: Awaited<ReturnType<typeof runApply>>;
    try {
      await repo.release('1.2.0', await treeOf(layouts['1.2.0']!), { deltas: 1 });
      update = await runApply(device.home);
      await sleep(300);
    } finally {
      await load.stop();
    }
    assert.ok(update.result, `ferry apply printed an ApplyResult: ${update.output}`);
    assert.is(update.result!.status, 'rolled-back', update.output);
    assert.is(update.code, 10, 'a rollback exits 10');
    assert.equal(load.failures, [], `${load.describe()}\nsupervisor output:\n${sup.output().slice(-4000)}`);
    assert.ok(load.requests > 20, `a real load: ${load.requests} requests`);
    assert.equal([...load.windows[0]!.seen], ['1.1.0'], 'only 1.1.0 answered');
    assert.is(await device.current(), '1.1.0', 'current is back on 1.1.0');
    const s = await requestSupervisor(device.home, { op: 'status' }, 2000);
    assert.is(s.active?.version, '1.1.0');
    let left = await containers(device.home);
    for (let i = 0; i < 50 && left.length !== 1; i++) {
      await sleep(100);
      left = await containers(device.home);
    }
    assert.is(left.length, 1, `only the 1.1.0 container is left: ${JSON.stringify(left)}`);
    assert.match(left[0]!.id, /-1\.1\.0-/);
  });

  Handover('issue 15 item 4: a SIGKILLed supervisor leaves no container running; the next one deletes what an earlier one left', async () => {
    const running = await containers(device.home);
    assert.is(running.length, 1);
    sup.child.kill('SIGKILL');
    await sup.exit;
    // runc gets SIGTERM by pdeathsig and forwards it; the app also sees EOF on FERRY_NOTIFY_FD.
    let left = await containers(device.home);
    for (let i = 0; i < 100 && left.some((c) => c.status === 'running'); i++) {
      await sleep(100);
      left = await containers(device.home);
    }
    assert.equal(left.filter((c) => c.status === 'running'), [], `no container runs 10 s after the supervisor was killed: ${JSON.stringify(left)}`);

    // A container left behind (as by a supervisor and its runc both SIGKILLed): made here under
    // the home's runc root from 1.1.0's unpacked image, sleeping.
    const bundle = join(tmp.path, 'stale-bundle');
    await execFile('umoci', ['unpack', '--image', `${layouts['1.1.0']}:1.1.0`, bundle]);
    const spec = JSON.parse(await readFile(join(bundle, 'config.json'), 'utf8')) as { process: { terminal: boolean; args: string[] } };
    spec.process.terminal = false;
    spec.process.args = ['/bin/sleep', '120'];
    await writeFile(join(bundle, 'config.json'), JSON.stringify(spec));
    const stale = 'ferry-stale-1.1.0-1-1';
    await new Promise<void>((resolve, reject) => {
      const c = spawn('runc', ['--root', join(device.home, 'run', 'runc'), 'run', '--detach', '--bundle', bundle, stale], { stdio: 'ignore' });
      c.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`runc run --detach exited ${code}`))));
    });
    assert.ok((await containers(device.home)).some((c) => c.id === stale && c.status === 'running'), 'the stale container runs');

    sup = startSupervisor(device.home);
    const s = await waitForStatus(device.home, sup, (st) => st.active?.version === '1.1.0', 'a second supervisor starts 1.1.0');
    port = Number(/:(\d+)$/.exec(s.listen[0]!)![1]);
    let reply = '';
    for (let i = 0; i < 100 && !reply; i++) {
      reply = await get(port, '/', false).then((r) => r.body.trim(), () => '');
      if (!reply) await sleep(50);
    }
    assert.is(reply, '1.1.0');
    // It answers, so its container exists: the only one under the home's root.
    const now = await containers(device.home);
    assert.not.ok(now.some((c) => c.id === stale), `the stale container was deleted: ${JSON.stringify(now)}`);
    assert.equal(now.map((c) => c.status), ['running'], JSON.stringify(now));
    assert.match(now[0]!.id, /-1\.1\.0-/);
    assert.match(sup.output(), /deleting container ferry-stale-1\.1\.0-1-1/);
  });
}

Handover.run();
