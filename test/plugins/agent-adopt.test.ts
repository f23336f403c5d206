// `ferry run` outlives the agent and is adopted (plugins/agent/app-child.ts, adopt-supervisor.ts),
// with real processes on 127.0.0.1: `ferry agent -- node server.js` serves examples/app under a
// bounded load; the agent's whole process group is SIGKILLed (as the self-update keeper kills a
// hung agent) and the app keeps serving through its `ferry run`; a second agent on the same home
// adopts that `ferry run` instead of starting another (which would fail with ERR_BUSY), an update
// published meanwhile hands over through it, and not one request of the load fails from start to
// end. A SIGTERM to the agent that adopted stops `ferry run` and the app. An agent run as the keeper
// runs it that switches to a new version of itself exits 75 and leaves `ferry run` serving, for
// the next agent to adopt. The adoption decision is
// table-tested first, without processes.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { decideAdoption, processRunning } from '../../plugins/agent/adopt-supervisor.ts';
import { SUPERVISOR_START_MS } from '../../plugins/agent/app-child.ts';
import { requestSupervisor } from '../../plugins/run/control.ts';
import { readBootRecord } from '../../core/self/boot-record.ts';
import { ROOT } from '../helpers/cli.ts';
import { makeDevice, type TestDevice } from '../helpers/device.ts';
import { exampleAppTree } from '../helpers/example-app.ts';
import { get, Load } from '../helpers/load.ts';
import { freePort } from '../helpers/net.ts';
import { alive } from '../helpers/proc.ts';
import { makeRepo, type TestRepo } from '../helpers/repo.ts';

const LOAD_MAX_MS = 120_000;
const LOAD_MAX_REQUESTS = 60_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `p`, or 'timeout' after `ms`; the timer goes with it (a pending one would keep the test process up). */
async function within<T>(p: Promise<T>, ms: number): Promise<T | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<'timeout'>((r) => { timer = setTimeout(() => r('timeout'), ms); })]);
  } finally {
    clearTimeout(timer);
  }
}

// ---------------------------------------------------------------------------------------------

const decision = suite('adopting ferry run: the decision');

decision('what answers is adopted; a young pid file of a live process is waited for; anything else starts one', () => {
  const self = 100;
  const young = SUPERVISOR_START_MS - 1;
  assert.equal(decideAdoption({ answered: 4242, pidFile: { pid: 4242, running: true, ageMs: 60_000 }, self }), { action: 'adopt', pid: 4242 });
  assert.equal(decideAdoption({ answered: 4242, pidFile: null, self }), { action: 'adopt', pid: 4242 }, 'the answering status names the pid, whatever the file says');
  assert.equal(decideAdoption({ answered: self, pidFile: null, self }), { action: 'spawn' }, 'never itself (an in-process Supervisor)');
  assert.equal(decideAdoption({ answered: 0, pidFile: null, self }), { action: 'spawn' }, 'a nonsense pid is not adopted');
  assert.equal(decideAdoption({ answered: null, pidFile: { pid: 4242, running: true, ageMs: 200 }, self }), { action: 'wait' }, 'starting: pid file written, control socket not open yet');
  assert.equal(decideAdoption({ answered: null, pidFile: { pid: 4242, running: true, ageMs: young }, self }), { action: 'wait' });
  assert.equal(decideAdoption({ answered: null, pidFile: { pid: 4242, running: true, ageMs: SUPERVISOR_START_MS }, self }), { action: 'spawn' }, 'an old pid file whose pid runs is a reused pid');
  assert.equal(decideAdoption({ answered: null, pidFile: { pid: 4242, running: false, ageMs: 200 }, self }), { action: 'spawn' }, 'a dead supervisor');
  assert.equal(decideAdoption({ answered: null, pidFile: { pid: self, running: true, ageMs: 200 }, self }), { action: 'spawn' });
  assert.equal(decideAdoption({ answered: null, pidFile: null, self }), { action: 'spawn' });
});

decision('processRunning: this process runs, a reaped child does not', async () => {
  assert.ok(processRunning(process.pid));
  const child = spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' });
  const pid = child.pid!;
  await new Promise((r) => child.once('exit', r));
  assert.not.ok(processRunning(pid));
});

decision.run();

// ---------------------------------------------------------------------------------------------
// Real agents

interface AgentEvent {
  event: string;
  pid?: number | null;
  version?: string | null;
  adopted?: boolean;
  [key: string]: unknown;
}

interface RunningAgent {
  child: ChildProcess;
  output(): string;
  events(): AgentEvent[];
  exit: Promise<number | null>;
}

const agents: RunningAgent[] = [];

/** `ferry agent` as its own process group (as a service manager starts it), JSON lines on stdout. */
function startAgent(home: string, port: number, env: Record<string, string> = {}): RunningAgent {
  const child = spawn(process.execPath, [
    'dist/cli/ferry.js', 'agent', '--home', home, '--log-format', 'json', '--no-share',
    '--listen', `127.0.0.1:${port}`, '--health', 'http://127.0.0.1/healthz', '--drain-timeout', '5s',
    '--', process.execPath, 'server.js',
  ], { cwd: ROOT, detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1', ...env } });
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => { out += d; });
  // `ferry run`'s output: it writes to the agent's stderr, and goes on writing after the agent died.
  child.stderr!.setEncoding('utf8').on('data', (d: string) => { err += d; });
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const a: RunningAgent = {
    child,
    output: () => `stdout:\n${out.slice(-3000)}\nstderr:\n${err.slice(-3000)}`,
    events: () => out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as AgentEvent),
    exit,
  };
  agents.push(a);
  return a;
}

async function waitEvent(a: RunningAgent, pred: (e: AgentEvent) => boolean, what: string, ms = 30_000): Promise<AgentEvent> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const hit = a.events().find(pred);
    if (hit) return hit;
    if (a.child.exitCode !== null || a.child.signalCode !== null) break;
    await sleep(100);
  }
  assert.unreachable(`waiting for ${what}; ${a.output()}`);
  throw new Error('unreachable');
}

async function waitServing(port: number, version: string, what: string, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  let last = '';
  while (Date.now() < deadline) {
    const r = await get(port, '/', false, 2000).catch((err: Error) => ({ status: 0, body: err.message }));
    last = `${r.status} ${r.body.trim()}`;
    if (r.status === 200 && r.body.trim() === version) return;
    await sleep(100);
  }
  assert.unreachable(`${what}: port ${port} did not answer ${version} within ${ms} ms (last: ${last})`);
}

/** The processes whose parent is `pid`, with their command lines. */
function childrenOf(pid: number): { pid: number; cmdline: string }[] {
  const out: { pid: number; cmdline: string }[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) !== pid) continue;
      out.push({ pid: Number(name), cmdline: readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0').join(' ') });
    } catch { /* gone */ }
  }
  return out;
}

async function waitGone(pid: number, ms: number): Promise<boolean> {
  for (let i = 0; i * 50 < ms && alive(pid); i++) await sleep(50);
  return !alive(pid);
}

let repo: TestRepo;
let device: TestDevice;
const pids = new Set<number>();

const adopt = suite('adopting ferry run: real agents');

adopt.before(async () => {
  repo = await makeRepo();
  await repo.release('1.0.0', exampleAppTree('1.0.0'), { deltas: 0 });
  device = await makeDevice({ trust: await repo.trust(), sources: [repo.repo], policy: { checkInterval: 1 } });
  const installed = await device.with((u) => u.apply());
  assert.is(installed.status, 'committed');
});

adopt.after(async () => {
  for (const a of agents) {
    if (a.child.exitCode !== null || a.child.signalCode !== null) continue;
    a.child.kill('SIGTERM');
    await within(a.exit, 20_000);
  }
  for (const pid of pids) if (alive(pid)) process.kill(pid, 'SIGKILL');
  await device?.cleanup();
  await repo?.cleanup();
});

adopt('the agent\'s process group SIGKILLed under load: the app keeps serving; the next agent adopts its ferry run, hands over an update through it with 0 failed requests, and stops it on SIGTERM', async () => {
  const port = await freePort();
  const first = startAgent(device.home, port);
  const app = await waitEvent(first, (e) => e.event === 'app', 'the first agent starts ferry run');
  assert.not.ok(app.adopted, 'nothing to adopt on a fresh home');
  const runPid = Number(app.pid);
  pids.add(runPid);
  await waitServing(port, '1.0.0', 'the app under the first agent');
  const before = await requestSupervisor(device.home, { op: 'status' }, 2000);
  assert.is(before.pid, runPid);
  pids.add(before.active!.pid);

  const load = new Load(port, { maxMs: LOAD_MAX_MS, maxRequests: LOAD_MAX_REQUESTS });
  load.phase('the first agent', ['1.0.0']);
  load.start(['keep-alive', 'keep-alive', 'fresh', 'fresh']);
  let second: RunningAgent;
  try {
    await sleep(500);
    // As the keeper kills a hung agent: the whole group, at once, no chance to clean up.
    process.kill(-first.child.pid!, 'SIGKILL');
    await first.exit;
    load.phase('no agent', ['1.0.0']);
    await sleep(1500);
    assert.ok(alive(runPid), `ferry run survives its agent's process group; ${first.output()}`);
    assert.ok(alive(before.active!.pid), 'the app survives');

    load.phase('the second agent', ['1.0.0']);
    second = startAgent(device.home, port);
    const adopted = await waitEvent(second, (e) => e.event === 'app', 'the second agent supervises the app');
    assert.is(adopted.adopted, true, `adopted; ${second.output()}`);
    assert.is(adopted.pid, runPid, 'the ferry run that already served');
    await waitEvent(second, (e) => e.event === 'up-to-date', 'the second agent checks');
    const spawned = childrenOf(second.child.pid!).filter((c) => / run /.test(c.cmdline));
    assert.equal(spawned, [], 'the second agent started no ferry run of its own');
    assert.ok(second.child.exitCode === null, `the second agent runs on (no ERR_BUSY); ${second.output()}`);

    load.phase('the update through the second agent', ['1.0.0', '1.1.0']);
    await repo.release('1.1.0', exampleAppTree('1.1.0'), { deltas: 1 });
    await waitEvent(second, (e) => e.event === 'committed' && e.version === '1.1.0', 'the second agent commits 1.1.0', 60_000);
    await waitServing(port, '1.1.0', 'after the handover');
    await sleep(300);
  } finally {
    await load.stop();
  }
  assert.equal(load.failures, [], `${load.describe()}\nfirst agent: ${first.output()}\nsecond agent: ${second!.output()}`);
  assert.not.ok(load.hitCap, `the load ran to the end (cap ${LOAD_MAX_REQUESTS} requests / ${LOAD_MAX_MS} ms not reached; ${load.requests} sent)`);
  assert.ok(load.requests > 100, `a real load: ${load.requests} requests`);
  const noAgent = load.windows.find((w) => w.label === 'no agent')!;
  assert.ok(noAgent.seen.has('1.0.0'), 'the app answered while no agent ran');
  assert.ok(load.versions.has('1.1.0'), 'the load saw the update');

  const after = await requestSupervisor(device.home, { op: 'status' }, 2000);
  assert.is(after.pid, runPid, 'the same ferry run handed over');
  assert.is(after.active?.version, '1.1.0');
  assert.is(after.handovers.healthy, 1);
  const appPid = after.active!.pid;
  pids.add(appPid);
  process.stdout.write(`  load: ${load.requests} requests, 0 failed, across the agent's SIGKILL, the adoption and the update\n`);

  second!.child.kill('SIGTERM');
  assert.is(await within(second!.exit, 30_000), 0, `SIGTERM: the agent exits 0; ${second!.output()}`);
  assert.ok(await waitGone(runPid, 5000), 'the adopted ferry run is stopped with the agent');
  assert.ok(await waitGone(appPid, 5000), 'and the app with it');
  // ferry run still writes to the stderr it got from the first agent.
  assert.match(first.output(), /ferry run: SIGTERM: draining the app/, 'ferry run was told to drain, not killed');
});

adopt('an agent that switched to a new version of itself exits 75 and leaves ferry run serving (0 failed requests); the next agent adopts it', async () => {
  // The agent's self home: ferry 1.0.0 installed, 1.1.0 published (tiny trees; only the switch matters here).
  const selfRepo = await makeRepo();
  await selfRepo.release('1.0.0', { 'dist/cli/ferry.js': "console.log('ferry 1.0.0');\n" });
  const self = await makeDevice({ trust: await selfRepo.trust(), sources: [selfRepo.repo] });
  try {
    assert.is((await self.with((u) => u.apply())).status, 'committed');
    await selfRepo.release('1.1.0', { 'dist/cli/ferry.js': "console.log('ferry 1.1.0');\n" });

    const port = await freePort();
    const load = new Load(port, { maxMs: LOAD_MAX_MS, maxRequests: LOAD_MAX_REQUESTS });
    // As the keeper starts it (plugins/self/launch.ts): FERRY_SELF_HOME and FERRY_SELF_VERSION.
    const switching = startAgent(device.home, port, { FERRY_SELF_HOME: self.home, FERRY_SELF_VERSION: '1.0.0' });
    let next: RunningAgent;
    let runPid = 0;
    try {
      const app = await waitEvent(switching, (e) => e.event === 'app', 'the agent starts ferry run');
      runPid = Number(app.pid);
      pids.add(runPid);
      await waitServing(port, '1.1.0', 'the app (1.1.0 since the test before)');
      load.start(['keep-alive', 'keep-alive', 'fresh', 'fresh']);
      assert.is(await within(switching.exit, 30_000), 75, `RESTART_EXIT_CODE; ${switching.output()}`);
      const names = switching.events().map((e) => e.event);
      assert.ok(names.includes('self-update'), `self-update logged: ${names.join(', ')}`);
      assert.ok(alive(runPid), 'ferry run is left serving');
      await sleep(1000);

      next = startAgent(device.home, port);
      const adopted = await waitEvent(next, (e) => e.event === 'app', 'the next agent supervises the app');
      assert.is(adopted.adopted, true);
      assert.is(adopted.pid, runPid);
      await waitEvent(next, (e) => e.event === 'up-to-date', 'the next agent checks');
      await sleep(300);
    } finally {
      await load.stop();
    }
    assert.equal(load.failures, [], `${load.describe()}\n${switching.output()}`);
    assert.ok(load.requests > 50, `a real load: ${load.requests} requests`);
    const read = await readBootRecord(self.home);
    assert.is(read.state === 'ok' ? read.record.tentative?.version : null, '1.1.0', 'the switch is written for the keeper');
    assert.is(await self.current(), '1.0.0', 'current still names the confirmed version');

    next!.child.kill('SIGTERM');
    assert.is(await within(next!.exit, 30_000), 0);
    assert.ok(await waitGone(runPid, 5000), 'the adopted ferry run is stopped with the agent');
  } finally {
    await self.cleanup();
    await selfRepo.cleanup();
  }
});

adopt.run();
