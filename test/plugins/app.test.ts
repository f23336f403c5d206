// ferry/app (plugins/run/app.ts), the library an app runs under `ferry run` with, shown with real
// processes on 127.0.0.1 and the app's release tree as a device has it (ferry/app vendored in
// node_modules/ferry/ by test/helpers/example-app.ts, no ferry installed around it):
//   - under the real `ferry run --notify` (node dist/cli/ferry.js), updates from another process
//     while a bounded keep-alive load runs: not one request fails; a release that never reports
//     ready (`ready: false`, no reportReady()) rolls back, one that reports late is waited for;
//   - the drain on SIGTERM, run alone: an in-flight request finishes (with Connection: close), a
//     request sent on a just-idle keep-alive connection is still answered on it (the race a plain
//     http.Server#close loses), an idle connection is closed, and the process exits 0 after that;
//   - run alone it listens on $PORT; where to listen is decided from the environment as documented;
//   - the vendored files import node: built-ins and each other only.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import { join } from 'node:path';
import type { ApplyResult } from '../../core/spec.ts';
import { listenTargets } from '../../plugins/run/app-sockets.ts';
import { shouldCloseIdle } from '../../plugins/run/app-drain.ts';
import { requestSupervisor, type SupervisorStatus } from '../../plugins/run/control.ts';
import { ROOT } from '../helpers/cli.ts';
import { makeDevice, type TestDevice } from '../helpers/device.ts';
import { exampleAppTree, vendoredFerryApp } from '../helpers/example-app.ts';
import { get, Load, type Reply } from '../helpers/load.ts';
import { freePort } from '../helpers/net.ts';
import { alive } from '../helpers/proc.ts';
import { makeRepo, tempDir, writeTree, type TreeSpec } from '../helpers/repo.ts';
import { within } from '../helpers/within.ts';

// Bounds well above what three updates take, even on a busy 2-core machine (~40 s, ~7,000 requests).
const LOAD_LIMITS = { maxMs: 120_000, maxRequests: 50_000 };
const SLOW_MS = 1500;

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * An app built on ferry/app, as an app author would write it. `ready`: listens and reports ready at
 * once (the default); `late`: `ready: false`, then reportReady() after a warm-up; `never`:
 * `ready: false` and never reports, so it never listens either.
 */
type Readiness = 'ready' | 'late' | 'never';

function appSource(readiness: Readiness): string {
  return `import { serve, reportReady } from 'ferry/app';
const version = process.env.FERRY_VERSION;
await serve((req, res) => {
  if (req.url.startsWith('/slow')) return void setTimeout(() => res.end(version + '\\n'), ${SLOW_MS});
  res.end(version + '\\n');
}, { ready: ${readiness === 'ready'} });
${readiness === 'late' ? 'setTimeout(() => reportReady(), 800); // warming up' : ''}${readiness === 'never' ? 'setInterval(() => {}, 60_000); // warming up forever' : ''}
`;
}

function appTree(version: string, readiness: Readiness): TreeSpec {
  return {
    'package.json': JSON.stringify({ name: 'sample-app', version, type: 'module' }, null, 2) + '\n',
    'server.js': appSource(readiness),
    ...vendoredFerryApp(),
  };
}

// ---------------------------------------------------------------------------------------------
// Processes

interface Child {
  child: ChildProcess;
  exit: Promise<number | null>;
  output(): string;
}

function start(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): Child {
  const child = spawn(command, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1', ...env } });
  let out = '';
  child.stdout!.on('data', (d) => { out += d; });
  child.stderr!.on('data', (d) => { out += d; });
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, exit, output: () => out };
}

/** SIGTERM by its own pid, SIGKILL if it has not exited within `ms`. */
async function stop(c: Child | undefined, ms = 20_000): Promise<void> {
  if (!c || c.child.exitCode !== null || c.child.signalCode !== null) return;
  c.child.kill('SIGTERM');
  await within(c.exit, ms, undefined);
  if (c.child.exitCode === null && c.child.signalCode === null) {
    c.child.kill('SIGKILL');
    await c.exit;
  }
}

function runUpdate(home: string): Promise<{ code: number | null; result: ApplyResult | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['dist/cli/ferry.js', 'update', '--home', home, '--json'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
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

async function waitForStatus(home: string, sup: Child, pred: (s: SupervisorStatus) => boolean, what: string, ms = 15_000): Promise<SupervisorStatus> {
  const deadline = Date.now() + ms;
  let last: SupervisorStatus | null = null;
  while (Date.now() < deadline) {
    last = await requestSupervisor(home, { op: 'status' }, 1000).catch(() => null);
    if (last && pred(last)) return last;
    if (sup.child.exitCode !== null) break;
    await sleep(100);
  }
  assert.unreachable(`${what}; last status ${JSON.stringify(last)}; supervisor output:\n${sup.output().slice(-3000)}`);
  throw new Error('unreachable');
}

async function waitAnswering(port: number, what: string, ms = 10_000): Promise<Reply> {
  const deadline = Date.now() + ms;
  let last = '';
  while (Date.now() < deadline) {
    try {
      return await get(port, '/', false, 2000);
    } catch (err) {
      last = (err as Error).message;
    }
    await sleep(50);
  }
  assert.unreachable(`${what}: nothing answered on 127.0.0.1:${port} within ${ms} ms (last: ${last})`);
  throw new Error('unreachable');
}

// ---------------------------------------------------------------------------------------------
// Under `ferry run`

const Run = suite('ferry/app under ferry run');

Run('updates under a keep-alive load: no request fails; readiness is what the app reports', async () => {
  const repo = await makeRepo();
  let device: TestDevice | undefined;
  let sup: Child | undefined;
  try {
    await repo.release('1.0.0', appTree('1.0.0', 'ready'), { deltas: 0 });
    device = await makeDevice({ trust: await repo.trust(), sources: [repo.repo] });
    assert.is((await device.with((u) => u.apply())).status, 'committed');
    sup = start(process.execPath, [
      'dist/cli/ferry.js', 'run', '--home', device.home, '--listen', '127.0.0.1:0', '--notify',
      '--ready-timeout', '4s', '--drain-timeout', '10s', '--', process.execPath, 'server.js',
    ], ROOT);
    const s = await waitForStatus(device.home, sup, (st) => st.active?.version === '1.0.0', 'ferry run starts 1.0.0');
    const port = Number(/:(\d+)$/.exec(s.listen[0]!)![1]);
    assert.is((await waitAnswering(port, '1.0.0')).body.trim(), '1.0.0');

    const load = new Load(port, LOAD_LIMITS);
    load.phase('before the updates', ['1.0.0']);
    load.start(['keep-alive', 'keep-alive', 'keep-alive', 'fresh']);
    await sleep(500);
    const plan: { version: string; readiness: Readiness; outcome: 'committed' | 'rolled-back' }[] = [
      { version: '1.1.0', readiness: 'late', outcome: 'committed' },
      { version: '1.2.0', readiness: 'never', outcome: 'rolled-back' },
      { version: '1.3.0', readiness: 'ready', outcome: 'committed' },
    ];
    let running = '1.0.0';
    const slow: Promise<{ from: string; reply: Reply | Error }>[] = [];
    try {
      for (const step of plan) {
        await repo.release(step.version, appTree(step.version, step.readiness), { deltas: 1 });
        load.phase(`update ${running} -> ${step.version}`, [running, step.version]);
        // In flight on the old generation while it drains.
        const from = running;
        slow.push(get(port, '/slow', false, 20_000).then((reply) => ({ from, reply }), (err: Error) => ({ from, reply: err })));
        await sleep(100);
        const update = await runUpdate(device.home);
        assert.ok(update.result, `update to ${step.version} printed an ApplyResult: ${update.output}`);
        assert.is(update.result!.status, step.outcome, `update to ${step.version}: ${update.output}\nsupervisor output:\n${sup.output().slice(-2000)}`);
        if (step.outcome === 'rolled-back') {
          assert.is((update.result as { record: { errorCode: string } }).record.errorCode, 'ERR_UNHEALTHY');
          assert.match(update.output + sup.output(), new RegExp(`${step.version.replace(/\./g, '\\.')} \\(pid \\d+\\) not ready within`), 'it rolled back for never reporting ready');
        } else {
          running = step.version;
        }
        const now = await requestSupervisor(device.home, { op: 'status' }, 2000);
        assert.is(now.active?.version, running, `ferry run serves ${running} after the update to ${step.version}`);
      }
      await sleep(300);
    } finally {
      await load.stop();
    }
    for (const { from, reply } of await Promise.all(slow)) {
      assert.ok(!(reply instanceof Error), `a request in flight on ${from} during its drain failed: ${(reply as Error).message}`);
      assert.is((reply as Reply).status, 200);
      assert.is((reply as Reply).body.trim(), from, 'the old generation answered the request it had');
    }
    console.log(`  load: ${load.describe()} (versions ${[...load.versions].join(', ')})`);
    assert.equal(load.failures, [], `${load.describe()}\nsupervisor output:\n${sup.output().slice(-4000)}`);
    assert.not.ok(load.hitCap, `the load ran through every update (${load.requests} requests)`);
    assert.ok(load.requests > 300, `a real load: ${load.requests} requests`);
    for (const w of load.windows) for (const v of w.seen) assert.ok(w.allowed.has(v), `during ${w.label} a response came from ${v}`);
    // A generation that is not ready does not listen, so it takes nothing from the shared queue.
    assert.ok(load.versions.has('1.3.0') && !load.versions.has('1.2.0'), `1.2.0 never reported ready and never answered; versions seen: ${[...load.versions].join(', ')}`);

    // SIGTERM to ferry run drains the last generation through ferry/app: exit 0, nothing left.
    const last = (await requestSupervisor(device.home, { op: 'status' }, 2000)).active!.pid;
    sup.child.kill('SIGTERM');
    assert.is(await within(sup.exit, 20_000, 'timeout'), 0, `ferry run exits 0; output:\n${sup.output().slice(-2000)}`);
    for (let i = 0; i < 40 && alive(last); i++) await sleep(50);
    assert.not.ok(alive(last), 'the app exited');
  } finally {
    await stop(sup);
    await device?.cleanup();
    await repo.cleanup();
  }
});

Run.run();

// ---------------------------------------------------------------------------------------------
// The drain, run alone

const Drain = suite('ferry/app drain (run alone on $PORT)');

/** One GET on a given agent; resolves with the reply, its headers, and whether it reused a connection. */
function getOn(port: number, path: string, agent: http.Agent): Promise<{ status: number; body: string; connection: string | undefined; reused: boolean; socket: net.Socket }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, connection: res.headers.connection, reused: req.reusedSocket, socket: req.socket! }));
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 10 s')));
    req.on('error', reject);
  });
}

Drain('SIGTERM: in-flight request finishes, a just-idle connection is still answered, idle ones are closed, exit 0 after', async () => {
  const dir = await tempDir('ferry-app-');
  let app: Child | undefined;
  const agents = [0, 1, 2].map(() => new http.Agent({ keepAlive: true, maxSockets: 1 }));
  try {
    await writeTree(dir.path, exampleAppTree('2.0.0'));
    const port = await freePort();
    app = start(process.execPath, ['server.js'], dir.path, { PORT: String(port), LISTEN_FDS: '', FERRY_RUN: '', FERRY_NOTIFY_FD: '' });
    const first = await waitAnswering(port, 'the example app run alone');
    assert.is(first.body.trim(), '2.0.0');
    assert.match(app.output(), `serving port ${port}`, 'run alone, it says it listens on $PORT');

    const [busy, reuse, idle] = agents as [http.Agent, http.Agent, http.Agent];
    // Three keep-alive connections: one kept idle, one to be reused right after SIGTERM, one with a slow request.
    const idleFirst = await getOn(port, '/', idle);
    assert.is(idleFirst.connection, 'keep-alive');
    const idleClosed = new Promise<number>((resolve) => idleFirst.socket.once('close', () => resolve(Date.now())));
    const reuseFirst = await getOn(port, '/', reuse);
    assert.is(reuseFirst.connection, 'keep-alive');
    const slowStarted = Date.now();
    // Settled either way, so a failure reads as this test's, not as an unhandled rejection.
    const slow = getOn(port, '/slow?ms=1500', busy).then((r) => ({ ...r, at: Date.now() }), (err: Error) => err);
    await sleep(200);

    const termAt = Date.now();
    app.child.kill('SIGTERM');
    await sleep(100);
    // Idle for ~300 ms when the drain began: a client may be sending on it right now, so it must
    // still be open and answer, telling the client to close. (http.Server#close drops it at once.)
    const onReused = await getOn(port, '/', reuse);
    assert.ok(onReused.reused, 'the request went on the connection that was idle when the drain began');
    assert.is(onReused.status, 200);
    assert.is(onReused.connection, 'close', 'a response during the drain says Connection: close');
    // Nothing accepts new connections any more.
    await get(port, '/', false, 2000).then(() => assert.unreachable('a new connection was accepted while draining'), (err: NodeJS.ErrnoException) => assert.is(err.code, 'ECONNREFUSED'));

    const settled = await slow;
    if (settled instanceof Error) throw new Error(`the in-flight request failed: ${settled.message}`);
    const slowReply = settled;
    assert.is(slowReply.status, 200, 'the in-flight request finished');
    assert.is(slowReply.body.trim(), '2.0.0');
    assert.is(slowReply.connection, 'close', 'the in-flight request is answered with Connection: close');
    assert.ok(slowReply.at - slowStarted >= 1400, 'it was answered when done, not cut');

    const idleAt = await within(idleClosed, 5000, null);
    assert.ok(idleAt !== null, 'the idle keep-alive connection was closed by the app');
    assert.ok(idleAt! - termAt < 3000, `closed ${idleAt! - termAt} ms after SIGTERM`);

    const code = await within(app.exit, 10_000, 'timeout');
    assert.is(code, 0, `the app exits 0 once every connection is closed; output:\n${app.output()}`);
  } finally {
    for (const a of agents) a.destroy();
    await stop(app);
    await dir.cleanup();
  }
});

Drain('ready: false listens on nothing until reportReady()', async () => {
  const dir = await tempDir('ferry-app-');
  let app: Child | undefined;
  try {
    await writeTree(dir.path, {
      'package.json': JSON.stringify({ name: 'sample-app', version: '3.0.0', type: 'module' }) + '\n',
      'server.js': `import { serve, reportReady } from 'ferry/app';
await serve((req, res) => res.end('warm\\n'), { ready: false });
console.log('serve() returned');
setTimeout(async () => { console.log('reporting ready'); await reportReady(); console.log('ready'); }, 1500);
`,
      ...vendoredFerryApp(),
    });
    const port = await freePort();
    app = start(process.execPath, ['server.js'], dir.path, { PORT: String(port), LISTEN_FDS: '', FERRY_RUN: '', FERRY_NOTIFY_FD: '' });
    for (let i = 0; i < 100 && !app.output().includes('serve() returned'); i++) await sleep(20);
    assert.match(app.output(), 'serve() returned');
    if (!app.output().includes('reporting ready')) {
      await get(port, '/', false, 2000).then(() => assert.unreachable('it answered before reportReady()'), (err: NodeJS.ErrnoException) => assert.is(err.code, 'ECONNREFUSED'));
    }
    const reply = await waitAnswering(port, 'after reportReady()');
    assert.is(reply.body, 'warm\n');
    assert.match(app.output(), 'reporting ready', `output: ${app.output()}`);
    app.child.kill('SIGTERM');
    assert.is(await within(app.exit, 10_000, 'timeout'), 0);
  } finally {
    await stop(app);
    await dir.cleanup();
  }
});

Drain.run();

// ---------------------------------------------------------------------------------------------
// Decisions and the vendored tree

const Unit = suite('ferry/app decisions and vendoring');

Unit('where to listen: passed sockets first, then options.port, $PORT, 8080', () => {
  const pid = 4242;
  assert.equal(listenTargets({ LISTEN_FDS: '3', LISTEN_PID: String(pid), LISTEN_FDNAMES: 'listen-0:listen-1:ferry-health' }, pid, { port: 9000 }), [
    { kind: 'fd', fd: 3, name: 'listen-0' }, { kind: 'fd', fd: 4, name: 'listen-1' }, { kind: 'fd', fd: 5, name: 'ferry-health' },
  ], 'under ferry every passed socket, the health one too; options.port does not override the supervisor');
  assert.equal(listenTargets({ LISTEN_FDS: '2', LISTEN_PID: '1', PORT: '7000' }, pid), [{ kind: 'port', port: 7000 }], 'sockets meant for another pid are not ours');
  assert.equal(listenTargets({ LISTEN_FDS: '1', LISTEN_PID: '1', FERRY_RUN: '1' }, pid), [{ kind: 'fd', fd: 3, name: 'fd-3' }], 'FERRY_RUN=1 takes them behind a wrapper');
  assert.equal(listenTargets({ PORT: '7000' }, pid, { port: 7001, host: '127.0.0.1' }), [{ kind: 'port', port: 7001, host: '127.0.0.1' }]);
  assert.equal(listenTargets({ PORT: '7000' }, pid), [{ kind: 'port', port: 7000 }]);
  assert.equal(listenTargets({}, pid), [{ kind: 'port', port: 8080 }]);
  assert.throws(() => listenTargets({ PORT: 'http' }, pid), /\$PORT "http" is not a port/);
  assert.throws(() => listenTargets({ LISTEN_FDS: 'x' }, pid), /LISTEN_FDS "x"/);
});

Unit('during a drain an idle connection is closed only once idle for a while', () => {
  assert.not.ok(shouldCloseIdle({ inFlight: 1, idleSince: 0, ending: false }, 10_000, 1000), 'a request in flight');
  assert.not.ok(shouldCloseIdle({ inFlight: 0, idleSince: 9_500, ending: false }, 10_000, 1000), 'idle a moment: the next request may be on its way');
  assert.ok(shouldCloseIdle({ inFlight: 0, idleSince: 9_000, ending: false }, 10_000, 1000));
  assert.not.ok(shouldCloseIdle({ inFlight: 0, idleSince: 0, ending: true }, 10_000, 1000), 'told once');
});

Unit('the vendored ferry/app is regular files importing node: built-ins and each other only', () => {
  const tree = vendoredFerryApp();
  const files = Object.keys(tree).sort();
  assert.ok(files.includes('node_modules/ferry/app.js') && files.includes('node_modules/ferry/package.json'), files.join(', '));
  const pkg = JSON.parse(String(tree['node_modules/ferry/package.json']));
  assert.equal(pkg, { name: 'ferry', type: 'module', exports: { './app': './app.js' } });
  for (const file of files.filter((f) => f.endsWith('.js'))) {
    const source = String(tree[file]);
    const specifiers = [
      ...source.matchAll(/^\s*(?:import|export)\b[^'"]*?from\s+['"]([^'"]+)['"]/gm), // import x from '…', export { x } from '…'
      ...source.matchAll(/^\s*import\s+['"]([^'"]+)['"]/gm), // import '…'
      ...source.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g), // import('…')
    ].map((m) => m[1]!);
    if (file.endsWith('/app.js')) assert.ok(specifiers.includes('node:http') && specifiers.includes('./app-drain.js'), `the scan sees app.js's imports: ${specifiers.join(', ')}`);
    for (const s of specifiers) assert.ok(s.startsWith('node:') || /^\.\/app(-[a-z0-9-]+)?\.js$/.test(s), `${file} imports "${s}"`);
    for (const s of specifiers.filter((x) => x.startsWith('./'))) assert.ok(files.includes(`node_modules/ferry/${s.slice(2)}`), `${file} imports ${s}, which is vendored`);
  }
  // The example app's tree carries it, and its server imports it by the package name.
  const example = exampleAppTree('1.0.0');
  assert.ok('node_modules/ferry/app.js' in example);
  assert.match(String(example['server.js']), /from 'ferry\/app'/);
  assert.is(JSON.parse(String(example['package.json'])).version, '1.0.0');
  assert.is(readFileSync(join(ROOT, 'examples/app/server.js'), 'utf8'), String(example['server.js']));
});

Unit.run();
