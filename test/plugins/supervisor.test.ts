// `ferry run` with real processes and real sockets on 127.0.0.1: the supervisor (a child running
// the real CLI command) serves examples/app/server.js from a device home, while this process keeps
// a bounded HTTP load on it (keep-alive and fresh connections) and five updates run from another
// process — two good, one whose /healthz answers 500, one that exits 1 on start, one good. Not one
// request may fail; the broken releases roll back, the good ones commit. Then: a crashed app is
// restarted, and SIGTERM drains everything and exits 0 with no app process left.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ApplyResult } from '../../core/spec.ts';
import { makeDevice, type TestDevice } from '../helpers/device.ts';
import { EXAMPLE_APP_SERVER, exampleAppTree } from '../helpers/example-app.ts';
import { get, Load, type Reply } from '../helpers/load.ts';
import { alive } from '../helpers/proc.ts';
import { makeRepo, type TestRepo, type TreeSpec } from '../helpers/repo.ts';
import { requestSupervisor, type SupervisorStatus } from '../../plugins/run/control.ts';
import { Supervisor } from '../../plugins/run/supervisor.ts';
import { chooseReadiness, parseListen } from '../../plugins/run/supervision.ts';
import { within } from '../helpers/within.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
// Bounds only: five updates take about 30 s on an idle machine and twice that on a loaded one.
const LOAD_MAX_MS = 150_000;
const LOAD_MAX_REQUESTS = 100_000;

/** The real CLI: `ferry run` supervises, `ferry update` from another process hands over through it. */
const RUN_ENTRY = ['dist/cli/ferry.js', 'run'];
const UPDATE_ENTRY = (home: string) => ['dist/cli/ferry.js', 'update', '--home', home, '--json'];

type Variant = 'good' | 'unhealthy' | 'crash';

function appTree(version: string, variant: Variant): TreeSpec {
  let server = EXAMPLE_APP_SERVER;
  if (variant === 'unhealthy') {
    server = EXAMPLE_APP_SERVER.replace('const HEALTHZ_STATUS = 200;', 'const HEALTHZ_STATUS = 500;');
    assert.is.not(server, EXAMPLE_APP_SERVER, 'the example app has the HEALTHZ_STATUS line the unhealthy release changes');
  }
  if (variant === 'crash') server = `console.error('release ${version} cannot start');\nprocess.exit(1);\n`;
  return exampleAppTree(version, { server });
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

interface RunningSupervisor {
  child: ChildProcess;
  exit: Promise<number | null>;
  output: () => string;
}

function startSupervisor(home: string): RunningSupervisor {
  const child = spawn(process.execPath, [
    ...RUN_ENTRY, '--home', home, '--listen', '127.0.0.1:0', '--health', 'http://127.0.0.1/healthz',
    '--ready-timeout', '5s', '--drain-timeout', '10s', '--', process.execPath, 'server.js',
  ], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
  let out = '';
  child.stdout!.on('data', (d) => { out += d; });
  child.stderr!.on('data', (d) => { out += d; });
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, exit, output: () => out };
}

async function waitForStatus(home: string, sup: RunningSupervisor, pred: (s: SupervisorStatus) => boolean, what: string, ms = 15_000): Promise<SupervisorStatus> {
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

function runUpdate(home: string): Promise<{ code: number | null; result: ApplyResult | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, UPDATE_ENTRY(home), { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      let result: ApplyResult | null = null;
      try { result = JSON.parse(stdout) as ApplyResult; } catch { /* reported below */ }
      resolve({ code, result, output: stdout + stderr });
    });
  });
}

let repo: TestRepo;
let device: TestDevice;
let sup: RunningSupervisor;
let port: number;
const pids = new Set<number>();
let watching = true;

async function watchPids(home: string): Promise<void> {
  while (watching) {
    const s = await requestSupervisor(home, { op: 'status' }, 1000).catch(() => null);
    if (s) for (const g of [s.active, s.candidate, ...s.draining]) if (g) pids.add(g.pid);
    await sleep(50);
  }
}

const Run = suite('ferry run');

Run.before(async () => {
  repo = await makeRepo();
  await repo.release('1.0.0', appTree('1.0.0', 'good'), { deltas: 0 });
  device = await makeDevice({ trust: await repo.trust(), sources: [repo.repo] });
  const installed = await device.with((u) => u.apply());
  assert.is(installed.status, 'committed');
  sup = startSupervisor(device.home);
  const s = await waitForStatus(device.home, sup, (st) => st.active?.version === '1.0.0', 'the supervisor starts 1.0.0');
  port = Number(/:(\d+)$/.exec(s.listen[0]!)![1]);
  void watchPids(device.home);
  // The first generation does the listen(2): wait until it answers.
  for (let i = 0; i < 100; i++) {
    if (await get(port, '/', false).then((r) => r.status === 200, () => false)) break;
    await sleep(50);
  }
});

Run.after(async () => {
  watching = false;
  if (sup?.child.exitCode === null) {
    sup.child.kill('SIGTERM');
    await within(sup.exit, 15_000, undefined);
    if (sup.child.exitCode === null) sup.child.kill('SIGKILL');
  }
  await device?.cleanup();
  await repo?.cleanup();
});

Run('five updates in a row under load: no request fails, broken releases roll back, a long request finishes', async () => {
  const load = new Load(port, { maxMs: LOAD_MAX_MS, maxRequests: LOAD_MAX_REQUESTS });
  load.phase('before the updates', ['1.0.0']);
  load.start(['keep-alive', 'keep-alive', 'fresh', 'fresh']);
  await sleep(500);
  const plan: { version: string; variant: Variant; outcome: 'committed' | 'rolled-back' }[] = [
    { version: '1.1.0', variant: 'good', outcome: 'committed' },
    { version: '1.2.0', variant: 'unhealthy', outcome: 'rolled-back' },
    { version: '1.3.0', variant: 'good', outcome: 'committed' },
    { version: '1.4.0', variant: 'crash', outcome: 'rolled-back' },
    { version: '1.5.0', variant: 'good', outcome: 'committed' },
  ];
  let running = '1.0.0';
  const slow: Promise<{ version: string; reply: Reply | Error }>[] = [];
  try {
    for (const step of plan) {
      await repo.release(step.version, appTree(step.version, step.variant), { deltas: 1 });
      load.phase(`update ${running} -> ${step.version}`, [running, step.version]);
      // Started just before the switch: it is in flight on the old generation while it drains.
      const from = running;
      slow.push(get(port, '/slow?ms=3000', false, 20_000).then((reply) => ({ version: from, reply }), (err: Error) => ({ version: from, reply: err })));
      const update = await runUpdate(device.home);
      assert.ok(update.result, `update to ${step.version} printed an ApplyResult: ${update.output}`);
      assert.is(update.result!.status, step.outcome, `update to ${step.version}: ${update.output}`);
      if (step.outcome === 'rolled-back') {
        assert.is(update.code, 10, 'a rollback exits 10');
        assert.is((update.result as { record: { errorCode: string } }).record.errorCode, 'ERR_UNHEALTHY');
      } else {
        assert.is(update.code, 0);
        running = step.version;
      }
      const s = await requestSupervisor(device.home, { op: 'status' }, 2000);
      assert.is(s.active?.version, running, `the supervisor serves ${running} after the update to ${step.version}`);
      assert.is(await device.current(), running, 'current matches what is served');
    }
    await sleep(300);
  } finally {
    await load.stop();
  }
  const slowReplies = await Promise.all(slow);
  for (const { version, reply } of slowReplies) {
    assert.ok(!(reply instanceof Error), `a slow request started on ${version} failed: ${(reply as Error).message}`);
    assert.is((reply as Reply).status, 200);
    assert.ok(['1.0.0', '1.1.0', '1.2.0', '1.3.0', '1.5.0'].includes((reply as Reply).body.trim()));
  }
  assert.equal(load.failures, [], `${load.failures.length} of ${load.requests} requests failed:\n${load.failures.slice(0, 20).join('\n')}\nsupervisor output:\n${sup.output().slice(-4000)}`);
  assert.not.ok(load.hitCap, `the load ran through every update (cap ${LOAD_MAX_REQUESTS} requests / ${LOAD_MAX_MS} ms not reached; ${load.requests} sent)`);
  assert.ok(load.requests > 500, `a real load: ${load.requests} requests`);
  for (const w of load.windows) {
    for (const v of w.seen) assert.ok(w.allowed.has(v), `during ${w.label} a response came from ${v}`);
  }
  const history = await device.with((u) => u.history());
  for (const step of plan) {
    const record = history.find((h) => h.to === step.version);
    assert.ok(record, `history has ${step.version}`);
    assert.is(record!.outcome, step.outcome, `${step.version} ${step.outcome}`);
    if (step.outcome === 'rolled-back') assert.is(record!.errorCode, 'ERR_UNHEALTHY');
  }
  process.stdout.write(`  load: ${load.requests} requests, 0 failed; versions per window: ${load.windows.map((w) => `${w.label}: ${[...w.seen].join('/')}`).join('; ')}\n`);
});

Run('an app killed with SIGKILL is restarted on the same socket', async () => {
  const before = await requestSupervisor(device.home, { op: 'status' }, 2000);
  const pid = before.active!.pid;
  process.kill(pid, 'SIGKILL');
  const after = await waitForStatus(device.home, sup, (s) => !!s.active && s.active.pid !== pid && s.restarts > before.restarts, 'a new pid after the crash');
  assert.is(after.active!.version, '1.5.0');
  let reply: Reply | null = null;
  for (let i = 0; i < 100 && !reply; i++) {
    reply = await get(port, '/', false).catch(() => null);
    if (!reply) await sleep(50);
  }
  assert.is(reply?.body.trim(), '1.5.0');
});

Run('SIGTERM drains the app and exits 0, leaving no app process, pid file or socket', async () => {
  const s = await requestSupervisor(device.home, { op: 'status' }, 2000);
  pids.add(s.active!.pid);
  watching = false;
  assert.ok(pids.size >= 5, `saw the generations' pids: ${[...pids].join(', ')}`);
  sup.child.kill('SIGTERM');
  const code = await within(sup.exit, 20_000, 'timeout' as const);
  assert.is(code, 0, `the supervisor exits 0 on SIGTERM; output:\n${sup.output().slice(-3000)}`);
  for (let i = 0; i < 40 && [...pids].some(alive); i++) await sleep(50);
  assert.equal([...pids].filter(alive), [], 'no app process remains');
  assert.not.ok(existsSync(join(device.home, 'run', 'control.sock')), 'control socket removed');
  assert.not.ok(existsSync(join(device.home, 'run', 'supervisor.pid')), 'pid file removed');
});

Run('a SIGKILLed supervisor leaves no app behind, and the next one takes over its stale files', async () => {
  sup = startSupervisor(device.home);
  const s = await waitForStatus(device.home, sup, (st) => st.active?.version === '1.5.0', 'a second supervisor starts 1.5.0');
  const app = s.active!.pid;
  sup.child.kill('SIGKILL');
  await sup.exit;
  // The app hears of it (SIGTERM by PR_SET_PDEATHSIG via setpriv, or EOF on FERRY_NOTIFY_FD) and drains.
  for (let i = 0; i < 100 && alive(app); i++) await sleep(50);
  assert.not.ok(alive(app), `app pid ${app} exited after its supervisor was killed`);
  assert.ok(existsSync(join(device.home, 'run', 'supervisor.pid')), 'a killed supervisor leaves its pid file');
  sup = startSupervisor(device.home);
  const again = await waitForStatus(device.home, sup, (st) => st.active?.version === '1.5.0', 'a third supervisor starts despite the stale pid file and socket');
  sup.child.kill('SIGTERM');
  assert.is(await sup.exit, 0);
  for (let i = 0; i < 40 && alive(again.active!.pid); i++) await sleep(50);
  assert.not.ok(alive(again.active!.pid));
});

Run('as the spec\'s GracefulUpdater: prepare → healthCheck → execute drains the old generation; stop leaves nothing', async () => {
  const other = (await device.releases()).find((v) => v !== '1.5.0' && v !== '1.2.0' && v !== '1.4.0');
  assert.ok(other, 'an older good release is still installed');
  const supervisor = new Supervisor({
    home: device.home,
    listen: [parseListen('127.0.0.1:0')],
    command: [process.execPath, 'server.js'],
    readiness: chooseReadiness({ notify: true, settleMs: 0, readyTimeoutMs: 5000 }),
    drainTimeoutMs: 5000,
  });
  await supervisor.start();
  try {
    const first = supervisor.status().active!;
    assert.is(first.version, '1.5.0');
    await supervisor.prepare(other!);
    assert.ok(await supervisor.healthCheck(), `${other} reports READY=1`);
    await supervisor.execute();
    const s = supervisor.status();
    assert.is(s.active?.version, other);
    assert.equal(s.draining, [], 'execute() waited for the old generation to drain');
    assert.not.ok(alive(first.pid), 'the old generation is gone');
    const p = Number(/:(\d+)$/.exec(s.listen[0]!)![1]);
    assert.is((await get(p, '/', false)).body.trim(), other);
    await supervisor.prepare('9.9.9').then(() => assert.unreachable('prepare of a version not installed'), (err: Error) => assert.match(err.message, /not installed/));
  } finally {
    const last = supervisor.status().active?.pid;
    await supervisor.stop();
    for (let i = 0; i < 40 && last && alive(last); i++) await sleep(50);
    assert.ok(!last || !alive(last), 'stop() ends the app');
  }
});

Run.run();
