// systemd socket activation, with a real stand-in for systemd: test/helpers/socket-activate.py binds
// and listens on 127.0.0.1 (port 0), then starts ferry with that socket as fd 3, LISTEN_FDS=1 and
// LISTEN_PID = ferry's own pid, and keeps its own copy, as a `.socket` unit with Accept=no does.
// Shown with real processes and /proc: `ferry run` serves examples/app/server.js on the inherited
// socket and binds no port of its own; `ferry agent -- <cmd>` hands the socket to its `ferry run`
// as `--listen fd:3`, picks up a newly published release and hands over to it under a bounded load
// with no failed request, on the same socket; a unix socket works the same; variables meant for
// another pid are ignored; and --listen values that contradict what systemd passed are refused
// with ERR_USAGE. The decisions themselves (takeSystemdListenFds, resolveListen) are table-tested
// first, without processes.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, fstatSync, openSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { resolveListen, takeSystemdListenFds, type InheritedFd } from '../../plugins/run/listen-fds.ts';
import { FerryError } from '../../core/errors.ts';
import type { SupervisorStatus } from '../../plugins/run/control.ts';
import { adoptInherited } from '../../plugins/run/sockets.ts';
import { requestSupervisor } from '../../plugins/run/control.ts';
import { ferry, ROOT } from '../helpers/cli.ts';
import { makeDevice, type TestDevice } from '../helpers/device.ts';
import { exampleAppTree } from '../helpers/example-app.ts';
import { get, Load } from '../helpers/load.ts';
import { alive } from '../helpers/proc.ts';
import { makeRepo, tempDir, type TempDir, type TestRepo, type TreeSpec } from '../helpers/repo.ts';
import { within } from '../helpers/within.ts';

const LAUNCHER = join(ROOT, 'test/helpers/socket-activate.py');
const LOAD_MAX_MS = 60_000;
const LOAD_MAX_REQUESTS = 20_000;

function appTree(version: string): TreeSpec {
  return exampleAppTree(version);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function python3(): boolean {
  return spawnSync('python3', ['--version']).status === 0;
}

// ---------------------------------------------------------------------------------------------
// The stand-in for systemd

interface ActivationInfo {
  /** The port the launcher bound (the kernel's choice). */
  port: number;
  /** The inode of the launcher's socket: the same socket wherever it shows up in /proc. */
  inode: number;
  launcher: number;
  /** The activated process: ferry itself (LISTEN_PID names it). */
  pid: number;
}

interface Activated {
  launcher: ChildProcess;
  info: ActivationInfo;
  output(): string;
  exit: Promise<number | null>;
}

const started = new Set<number>();
let tmp: TempDir;
let infos = 0;

/** `ferry <args>` started the way systemd starts a socket-activated service. */
async function activate(ferryArgs: string[], options: { mismatch?: boolean; unix?: string } = {}): Promise<Activated> {
  const infoFile = join(tmp.path, `activation-${infos++}.json`);
  const launcherOptions = [...(options.mismatch ? ['--mismatch'] : []), ...(options.unix ? ['--unix', options.unix] : [])];
  const launcher = spawn('python3', [LAUNCHER, infoFile, ...launcherOptions, '--', process.execPath, 'dist/cli/ferry.js', ...ferryArgs], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NO_COLOR: '1' },
  });
  started.add(launcher.pid!);
  let out = '';
  launcher.stdout!.on('data', (d) => { out += d; });
  launcher.stderr!.on('data', (d) => { out += d; });
  let info: ActivationInfo | null = null;
  const exit = new Promise<number | null>((resolve) => launcher.on('exit', (code) => {
    // Forget pids that are gone, so cleanup never signals a pid the system has given to another process:
    // a launcher that exited with a code has reaped ferry first.
    started.delete(launcher.pid!);
    if (code !== null && info) started.delete(info.pid);
    resolve(code);
  }));
  for (let i = 0; i < 200 && !info; i++) {
    info = (() => { try { return JSON.parse(readFileSync(infoFile, 'utf8')) as ActivationInfo; } catch { return null; } })();
    if (!info) await sleep(50);
  }
  assert.ok(info, `the launcher wrote ${infoFile}; output: ${out}`);
  if (launcher.exitCode === null) started.add(info!.pid);
  return { launcher, info: info!, output: () => out, exit };
}

/** Waits for the activated process to exit (bounded) and returns the launcher's exit code (= ferry's). */
async function exited(a: Activated, ms = 20_000): Promise<number | null> {
  const code = await within(a.exit, ms, 'timeout' as const);
  assert.is.not(code, 'timeout', `ferry exited within ${ms} ms; output:\n${a.output().slice(-3000)}`);
  return code as number | null;
}

/** True while the launcher runs: until then ferry's pid is its unreaped child, safe to signal. */
function launcherRunning(a: Activated): boolean {
  return a.launcher.exitCode === null && a.launcher.signalCode === null;
}

async function stop(a: Activated): Promise<number | null> {
  if (launcherRunning(a)) process.kill(a.info.pid, 'SIGTERM');
  return exited(a);
}

// ---------------------------------------------------------------------------------------------
// What /proc says about sockets

/** Socket inodes among the open fds of `pid`. */
function socketInodes(pid: number): Set<number> {
  const out = new Set<number>();
  let fds: string[] = [];
  try { fds = readdirSync(`/proc/${pid}/fd`); } catch { return out; }
  for (const fd of fds) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) out.add(Number(m[1]));
    } catch { /* closed meanwhile */ }
  }
  return out;
}

interface TcpEntry {
  port: number;
  /** /proc/net/tcp st: 0A is listening. */
  state: string;
}

function tcpTable(): Map<number, TcpEntry> {
  const out = new Map<number, TcpEntry>();
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try { text = readFileSync(file, 'utf8'); } catch { continue; }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10) continue;
      out.set(Number(f[9]), { port: parseInt(f[1]!.split(':')[1]!, 16), state: f[3]! });
    }
  }
  return out;
}

/** `pid` and every process below it (the agent → ferry run → the app generations). */
function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(name)]);
    } catch { /* gone */ }
  }
  const out: number[] = [];
  const queue = [pid];
  while (queue.length > 0 && out.length < 1000) {
    const p = queue.shift()!;
    out.push(p);
    queue.push(...(children.get(p) ?? []));
  }
  return out;
}

/**
 * Every listening TCP socket the processes of `pids` hold: inode and port. (A socket only bound,
 * as bindUnpolled leaves one until an app listens on it, is not in /proc/net/tcp; the apps listen
 * on every socket ferry hands them, so a port ferry bound for them shows up here.)
 */
function listeningSockets(pids: number[]): { pid: number; inode: number; port: number; state: string }[] {
  const table = tcpTable();
  const out: { pid: number; inode: number; port: number; state: string }[] = [];
  for (const pid of pids) {
    for (const inode of socketInodes(pid)) {
      const e = table.get(inode);
      if (e && e.state === '0A') out.push({ pid, inode, ...e });
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// HTTP

/** Polls GET / until it answers `version` (bounded); returns the last body seen. */
async function waitServing(port: number | string, version: string, what: string, ms = 20_000): Promise<void> {
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

// ---------------------------------------------------------------------------------------------
// Agent log lines

interface AgentEvent {
  event: string;
  version?: string | null;
  pid?: number | null;
  [key: string]: unknown;
}

function agentEvents(output: string): AgentEvent[] {
  const out: AgentEvent[] = [];
  for (const line of output.split('\n')) {
    if (!line.startsWith('{')) continue;
    try { out.push(JSON.parse(line) as AgentEvent); } catch { /* ferry run's lines share the stream */ }
  }
  return out;
}

async function waitEvent(a: Activated, pred: (e: AgentEvent) => boolean, what: string, ms = 30_000): Promise<AgentEvent> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const hit = agentEvents(a.output()).find(pred);
    if (hit) return hit;
    if (a.launcher.exitCode !== null) break;
    await sleep(100);
  }
  assert.unreachable(`waiting for ${what}; output:\n${a.output().slice(-3000)}`);
  throw new Error('unreachable');
}

// ---------------------------------------------------------------------------------------------

let repo: TestRepo;
let device: TestDevice;
const running: Activated[] = [];

const activation = suite('socket activation');

activation.before(async () => {
  tmp = await tempDir('ferry-socket-activation-');
  repo = await makeRepo();
  await repo.release('1.0.0', appTree('1.0.0'), { deltas: 0 });
  device = await makeDevice({ trust: await repo.trust(), sources: [repo.repo], policy: { checkInterval: 1 } });
  const installed = await device.with((u) => u.apply());
  assert.is(installed.status, 'committed');
});

/** SIGTERM to whatever a test left running (it failed half-way), SIGKILL after a bounded wait. */
async function stopLeftovers(): Promise<void> {
  for (const a of running.splice(0)) {
    if (!launcherRunning(a)) continue;
    try { process.kill(a.info.pid, 'SIGTERM'); } catch { /* exiting */ }
    await within(a.exit, 20_000, undefined);
  }
  for (const pid of started) if (alive(pid)) process.kill(pid, 'SIGKILL');
}

// A test that fails half-way must not leave a supervisor holding the home for the next one.
activation.after.each(stopLeftovers);

activation.after(async () => {
  await stopLeftovers();
  await device?.cleanup();
  await repo?.cleanup();
  await tmp?.cleanup();
});

activation('ferry run under socket activation serves the app on the socket systemd passed and listens on no port of its own', async () => {
  const a = await activate(['run', '--home', device.home, '--notify', '--ready-timeout', '10s', '--drain-timeout', '5s', '--', process.execPath, 'server.js']);
  running.push(a);
  await waitServing(a.info.port, '1.0.0', 'ferry run under activation');
  const status = await requestSupervisor(device.home, { op: 'status' }, 2000);
  assert.is(status.pid, a.info.pid, 'the supervisor is the activated process itself (LISTEN_PID named it)');
  assert.equal(status.listen, [`127.0.0.1:${a.info.port}`], 'it serves on the launcher\'s socket only');
  const tree = processTree(a.info.pid);
  assert.ok(tree.includes(status.active!.pid), 'the app is a child of ferry run');
  const bound = listeningSockets(tree);
  assert.ok(bound.length > 0, 'the app listens on a socket /proc shows');
  assert.equal(bound.filter((b) => b.inode !== a.info.inode), [], `no TCP socket listened on by ferry or the app other than systemd's: ${JSON.stringify(bound)}`);
  assert.ok(socketInodes(a.info.pid).has(a.info.inode), 'ferry run holds systemd\'s socket (so it outlives a crashed app)');
  assert.ok(socketInodes(status.active!.pid).has(a.info.inode), 'the app holds systemd\'s socket');
  assert.match(a.output(), /inherited fd 3, http/, 'the log says where the socket came from, with LISTEN_FDNAMES');
  assert.is(await stop(a), 0, `SIGTERM: ferry run drains and exits 0; output:\n${a.output().slice(-2000)}`);
  assert.not.ok(alive(status.active!.pid), 'no app left');
});

activation('ferry agent under socket activation hands the socket to ferry run as fd:3, and an update published meanwhile hands over on it with no failed request', async () => {
  const a = await activate(['agent', '--home', device.home, '--log-format', 'json', '--drain-timeout', '10s', '--', process.execPath, 'server.js']);
  running.push(a);
  const app = await waitEvent(a, (e) => e.event === 'app', 'the agent starts ferry run');
  const runPid = Number(app.pid);
  await waitServing(a.info.port, '1.0.0', 'the app under the agent');

  // The `ferry run` child got the socket at fd 3 by name, and none of the variables meant for the agent.
  const argv = readFileSync(`/proc/${runPid}/cmdline`, 'utf8').split('\0');
  assert.ok(argv.join(' ').includes('--listen fd:3'), `ferry run is told --listen fd:3: ${argv.join(' ')}`);
  const env = readFileSync(`/proc/${runPid}/environ`, 'utf8').split('\0');
  assert.equal(env.filter((v) => /^LISTEN_(FDS|PID|FDNAMES)=/.test(v)), [], 'ferry run was started without the agent\'s LISTEN_* variables');
  assert.ok(socketInodes(runPid).has(a.info.inode), 'ferry run holds systemd\'s socket');
  const before = listeningSockets(processTree(a.info.pid));
  assert.equal(before.filter((b) => b.inode !== a.info.inode), [], `nothing under the agent listens on a TCP port of its own: ${JSON.stringify(before)}`);

  const load = new Load(a.info.port, { maxMs: LOAD_MAX_MS, maxRequests: LOAD_MAX_REQUESTS });
  load.start(['keep-alive', 'keep-alive', 'fresh', 'fresh']);
  try {
    await sleep(500);
    await repo.release('1.1.0', appTree('1.1.0'), { deltas: 1 });
    await waitEvent(a, (e) => e.event === 'committed' && e.version === '1.1.0', 'the agent commits 1.1.0', 60_000);
    await waitServing(a.info.port, '1.1.0', 'after the handover');
    await sleep(300);
  } finally {
    await load.stop();
  }
  assert.equal(load.failures, [], `${load.failures.length} of ${load.requests} requests failed:\n${load.failures.slice(0, 20).join('\n')}\noutput:\n${a.output().slice(-4000)}`);
  assert.not.ok(load.hitCap, `the load ran through the update (cap ${LOAD_MAX_REQUESTS} requests / ${LOAD_MAX_MS} ms not reached; ${load.requests} sent)`);
  assert.ok(load.requests > 100, `a real load: ${load.requests} requests`);
  assert.ok(load.versions.has('1.0.0') && load.versions.has('1.1.0'), `the load saw both versions: ${[...load.versions].join(', ')}`);

  const status: SupervisorStatus = await requestSupervisor(device.home, { op: 'status' }, 2000);
  assert.is(status.active?.version, '1.1.0');
  assert.is(status.pid, runPid, 'the same ferry run handed over (it was not restarted)');
  assert.equal(status.listen, [`127.0.0.1:${a.info.port}`], 'still on systemd\'s socket');
  assert.ok(socketInodes(status.active!.pid).has(a.info.inode), 'the new generation serves systemd\'s socket');
  const after = listeningSockets(processTree(a.info.pid));
  assert.equal(after.filter((b) => b.inode !== a.info.inode), [], `still no listening TCP port of ferry's own: ${JSON.stringify(after)}`);
  process.stdout.write(`  load: ${load.requests} requests, 0 failed, on 127.0.0.1:${a.info.port} (versions ${[...load.versions].join(', ')})\n`);

  assert.is(await stop(a), 0, `SIGTERM: the agent exits 0; output:\n${a.output().slice(-2000)}`);
  for (let i = 0; i < 40 && (alive(runPid) || alive(status.active!.pid)); i++) await sleep(50);
  assert.not.ok(alive(runPid), 'ferry run is gone');
  assert.not.ok(alive(status.active!.pid), 'the app is gone');
});

activation('LISTEN_PID naming another process: ferry run ignores the variables, binds --listen itself, and without --listen refuses with ERR_USAGE', async () => {
  const refused = await activate(['run', '--home', device.home, '--notify', '--', process.execPath, 'server.js'], { mismatch: true });
  running.push(refused);
  assert.is(await exited(refused), 2, 'exit 2 (usage)');
  assert.match(refused.output(), /ferry: ERR_USAGE: no --listen given .*LISTEN_PID names another process/);

  const systemd = await activate(['run', '--home', device.home, '--listen', 'systemd', '--notify', '--', process.execPath, 'server.js'], { mismatch: true });
  running.push(systemd);
  assert.is(await exited(systemd), 2, '--listen systemd with variables for another pid: exit 2');
  assert.match(systemd.output(), /ferry: ERR_USAGE: --listen systemd, but no sockets were passed/);

  const own = await activate(['run', '--home', device.home, '--listen', '127.0.0.1:0', '--notify', '--ready-timeout', '10s', '--drain-timeout', '5s', '--', process.execPath, 'server.js'], { mismatch: true });
  running.push(own);
  let status: SupervisorStatus | null = null;
  for (let i = 0; i < 200 && !status?.active; i++) {
    status = await requestSupervisor(device.home, { op: 'status' }, 1000).catch(() => null);
    if (!status?.active || status.pid !== own.info.pid) {
      status = null;
      await sleep(100);
    }
  }
  assert.ok(status?.active, `ferry run started; output:\n${own.output()}`);
  const port = Number(/:(\d+)$/.exec(status!.listen[0]!)![1]);
  assert.is.not(port, own.info.port, 'it serves on a port it bound, not the launcher\'s');
  await waitServing(port, (await device.current())!, 'ferry run on its own port');
  const appSockets = socketInodes(status!.active!.pid);
  assert.not.ok(appSockets.has(own.info.inode), 'the app was not handed the socket meant for another pid');
  const bound = listeningSockets([own.info.pid, status!.active!.pid]);
  assert.ok(bound.some((b) => b.port === port && b.inode !== own.info.inode), `the listener is ferry's own socket: ${JSON.stringify(bound)}`);
  assert.is(await stop(own), 0);
});

activation('under socket activation, --listen PORT (a second owner of the port) and --listen fd:N for an fd systemd did not pass are refused with ERR_USAGE', async () => {
  const port = await activate(['run', '--home', device.home, '--listen', '127.0.0.1:0', '--', process.execPath, 'server.js']);
  running.push(port);
  assert.is(await exited(port), 2);
  assert.match(port.output(), /ferry: ERR_USAGE: --listen 127\.0\.0\.1:0 would bind a port of ferry's own, but systemd passed 1 socket/);

  const fd = await activate(['run', '--home', device.home, '--listen', 'fd:4', '--', process.execPath, 'server.js']);
  running.push(fd);
  assert.is(await exited(fd), 2);
  assert.match(fd.output(), /ferry: ERR_USAGE: --listen fd:4: systemd passed fds 3 only/);

  const agent = await activate(['agent', '--home', device.home, '--listen', '8080', '--', process.execPath, 'server.js']);
  running.push(agent);
  assert.is(await exited(agent), 2, 'the agent refuses the same contradiction before it starts anything');
  assert.match(agent.output(), /ERR_USAGE: --listen 8080 would bind a port of ferry's own/);
});

activation('a unix socket passed by systemd is served too, and stays served across a handover to a new generation (SIGHUP)', async () => {
  const path = join(tmp.path, 'app.sock');
  const a = await activate(['run', '--home', device.home, '--notify', '--ready-timeout', '10s', '--drain-timeout', '5s', '--', process.execPath, 'server.js'], { unix: path });
  running.push(a);
  const version = (await device.current())!;
  await waitServing(path, version, 'ferry run on a unix socket');
  const before = await requestSupervisor(device.home, { op: 'status' }, 2000);
  assert.equal(before.listen, ['fd:3'], 'a socket without an IP address is shown by its fd');
  assert.ok(socketInodes(before.active!.pid).has(a.info.inode), 'the app holds systemd\'s unix socket');
  process.kill(a.info.pid, 'SIGHUP');
  let after: SupervisorStatus | null = null;
  for (let i = 0; i < 200 && !(after?.active && after.active.pid !== before.active!.pid); i++) {
    await sleep(100);
    after = await requestSupervisor(device.home, { op: 'status' }, 1000).catch(() => null);
  }
  assert.ok(after?.active && after.active.pid !== before.active!.pid, `a new generation took over; output:\n${a.output().slice(-2000)}`);
  assert.ok(socketInodes(after!.active!.pid).has(a.info.inode), 'the new generation holds the same unix socket');
  await waitServing(path, version, 'after the handover');
  assert.is(await stop(a), 0);
});

// ---------------------------------------------------------------------------------------------
// The decisions, as tables (no processes)

const decisions = suite('which sockets ferry serves on');

decisions('takeSystemdListenFds takes fds only for LISTEN_PID = this pid, and removes the LISTEN_* variables in every case', () => {
  const cases: { env: Record<string, string>; want: InheritedFd[] }[] = [
    { env: { LISTEN_FDS: '2', LISTEN_PID: '42', LISTEN_FDNAMES: 'http:admin' }, want: [{ fd: 3, name: 'http' }, { fd: 4, name: 'admin' }] },
    { env: { LISTEN_FDS: '1', LISTEN_PID: '42' }, want: [{ fd: 3, name: 'unknown' }] },
    { env: { LISTEN_FDS: '1', LISTEN_PID: '41' }, want: [] },
    { env: { LISTEN_FDS: '1' }, want: [] },
    { env: { LISTEN_FDS: '1', LISTEN_PID: '42abc' }, want: [] },
    { env: { LISTEN_FDS: '0', LISTEN_PID: '42' }, want: [] },
    { env: { LISTEN_FDS: '-1', LISTEN_PID: '42' }, want: [] },
    { env: { LISTEN_FDS: '1.5', LISTEN_PID: '42' }, want: [] },
    { env: { LISTEN_PID: '42' }, want: [] },
    { env: {}, want: [] },
  ];
  for (const c of cases) {
    const env: NodeJS.ProcessEnv = { ...c.env, FERRY_RUN: '1', PATH: '/bin' };
    assert.equal(takeSystemdListenFds(env, 42), c.want, JSON.stringify(c.env));
    assert.equal(env, { FERRY_RUN: '1', PATH: '/bin' }, `only the LISTEN_* variables are removed: ${JSON.stringify(c.env)}`);
  }
  const huge: NodeJS.ProcessEnv = { LISTEN_FDS: '9007199254740991', LISTEN_PID: '42' };
  assert.throws(() => takeSystemdListenFds(huge, 42), (err: Error) => err instanceof FerryError && err.code === 'ERR_USAGE', 'an absurd LISTEN_FDS is refused, not looped over');
  assert.equal(huge, {}, 'and its variables are removed all the same');
});

decisions('resolveListen: inherited sockets are used without --listen or with systemd/fd:N; ports contradicting them, unknown fds and doubles are ERR_USAGE', () => {
  const two: InheritedFd[] = [{ fd: 3, name: 'http' }, { fd: 4, name: 'admin' }];
  const fd = (n: number, name = 'unknown') => ({ kind: 'fd', fd: n, name });
  const ok: { specs: string[] | undefined; passed: InheritedFd[]; want: unknown[] }[] = [
    { specs: undefined, passed: two, want: [fd(3, 'http'), fd(4, 'admin')] },
    { specs: [], passed: two, want: [fd(3, 'http'), fd(4, 'admin')] },
    { specs: ['systemd'], passed: two, want: [fd(3, 'http'), fd(4, 'admin')] },
    { specs: ['fd:4', 'fd:3'], passed: two, want: [fd(4, 'admin'), fd(3, 'http')] },
    { specs: ['fd:3'], passed: [], want: [fd(3)] },
    { specs: ['fd:7', '127.0.0.1:0'], passed: [], want: [fd(7), { kind: 'address', address: { host: '127.0.0.1', port: 0, family: 4 }, spec: '127.0.0.1:0' }] },
    { specs: ['8080'], passed: [], want: [{ kind: 'address', address: { host: '0.0.0.0', port: 8080, family: 4 }, spec: '8080' }] },
  ];
  for (const c of ok) assert.equal(resolveListen(c.specs, c.passed), c.want, `${JSON.stringify(c.specs)} with ${c.passed.length} passed`);
  const refused: { specs: string[] | undefined; passed: InheritedFd[]; message: RegExp }[] = [
    { specs: undefined, passed: [], message: /no --listen given/ },
    { specs: ['systemd'], passed: [], message: /--listen systemd, but no sockets were passed/ },
    { specs: ['8080'], passed: two, message: /would bind a port of ferry's own, but systemd passed 2 socket/ },
    { specs: ['fd:3', '8080'], passed: two, message: /would bind a port of ferry's own/ },
    { specs: ['fd:5'], passed: two, message: /systemd passed fds 3, 4 only/ },
    { specs: ['fd:2'], passed: [], message: /N must be 3 to 1023/ },
    { specs: ['fd:1024'], passed: [], message: /N must be 3 to 1023/ },
    { specs: ['fd:x'], passed: [], message: /is not fd:N/ },
    { specs: ['fd:3', 'systemd'], passed: two, message: /names fd 3 twice/ },
    { specs: ['fd:3', 'fd:3'], passed: [], message: /names fd 3 twice/ },
    { specs: ['nonsense'], passed: [], message: /is not PORT, HOST:PORT/ },
  ];
  for (const c of refused) {
    try {
      resolveListen(c.specs, c.passed);
      assert.unreachable(`${JSON.stringify(c.specs)} with ${c.passed.length} passed is refused`);
    } catch (err) {
      assert.ok(err instanceof FerryError && err.code === 'ERR_USAGE', `${JSON.stringify(c.specs)}: ERR_USAGE, not ${(err as Error).message}`);
      assert.match((err as Error).message, c.message);
    }
  }
});

decisions('adoptInherited refuses an fd that is not open, or is a file and not a socket, with ERR_USAGE and leaves the file open', async () => {
  const dir = await tempDir('ferry-adopt-');
  const file = join(dir.path, 'not-a-socket');
  writeFileSync(file, 'x');
  const fd = openSync(file, 'r');
  try {
    assert.throws(() => adoptInherited(fd, 'x'), (err: Error) => err instanceof FerryError && err.code === 'ERR_USAGE' && /not a socket/.test(err.message));
    assert.ok(fstatSync(fd).isFile(), 'the file is still open');
  } finally {
    closeSync(fd);
    await dir.cleanup();
  }
  assert.throws(() => adoptInherited(fd, 'x'), (err: Error) => err instanceof FerryError && err.code === 'ERR_USAGE' && /no such open file descriptor/.test(err.message));
});

decisions('ferry agent -- <cmd> with --listen fd:N for an fd it does not have refuses at start with ERR_USAGE (exit 2), before any attempt', async () => {
  const r0 = await makeRepo();
  const d = await makeDevice({ trust: await r0.trust(), sources: [r0.repo] });
  try {
    const r = ferry('agent', '--home', d.home, '--listen', 'fd:700', '--', process.execPath, 'server.js');
    assert.is(r.status, 2, r.stderr);
    assert.match(r.stderr, /ferry: ERR_USAGE: --listen fd:700: no such open file descriptor/);
    assert.not.match(r.stdout, /check/, 'no update attempt was made');
  } finally {
    await d.cleanup();
    await r0.cleanup();
  }
});

decisions.run();
if (python3()) activation.run();
else console.log('SKIP: socket activation needs python3 to play systemd (.ci/run installs it)');
