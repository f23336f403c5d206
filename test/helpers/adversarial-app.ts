// Real processes for the supervised adversarial tests (SECURITY.md rows 19-21 under `ferry run`):
// releases of examples/app/server.js that misbehave in one chosen way, a `ferry run` child, the
// bounds of the HTTP load kept on it (the load itself: test/helpers/load.ts), and an independent
// view of which processes still run for a device home (read from /proc, not from the supervisor).

import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import * as assert from 'uvu/assert';
import { requestSupervisor, type SupervisorStatus } from '../../plugins/run/control.ts';
import { ROOT, running, sleep } from './crash.ts';
import { EXAMPLE_APP_SERVER, exampleAppTree } from './example-app.ts';
import { get, type LoadLimits } from './load.ts';
import type { TreeSpec } from './repo.ts';
import { within } from './within.ts';

/**
 * How a release misbehaves:
 *  - good: the example app as shipped.
 *  - hang-on-start: listens on every passed socket, then blocks its only thread for good
 *    (a deadlock): it never accepts, never answers the health probe, and cannot run its SIGTERM
 *    handler, so only SIGKILL ends it. It first starts a helper process in its process group that
 *    ignores SIGTERM, writing both pids to $ADVERSARIAL_PID_DIR/<version>-<pid>.
 *  - slow-ready: the example app whose /healthz answers 503 for its first SLOW_READY_MS.
 *  - crash-after-ready: the example app, ready at once, that exits 1 CRASH_AFTER_MS after it
 *    started (a release that passes its health check, then falls over).
 */
export type Variant = 'good' | 'hang-on-start' | 'slow-ready' | 'crash-after-ready';

export const CRASH_AFTER_MS = 1500;

export const SLOW_READY_MS = 4000;

const RECORD_PIDS = `
import { spawn as spawnHelper } from 'node:child_process';
import { writeFileSync } from 'node:fs';
const helper = spawnHelper('/bin/sh', ['-c', 'trap "" TERM; exec sleep 600'], { stdio: 'ignore' });
if (process.env.ADVERSARIAL_PID_DIR) writeFileSync(process.env.ADVERSARIAL_PID_DIR + '/' + version + '-' + process.pid, JSON.stringify({ app: process.pid, helper: helper.pid }));
`;

function edit(source: string, find: string, replace: string): string {
  const out = source.replace(find, replace);
  assert.is.not(out, source, `examples/app/server.js has the line "${find}" the adversarial release changes`);
  return out;
}

export function appTree(version: string, variant: Variant): TreeSpec {
  let server = EXAMPLE_APP_SERVER;
  switch (variant) {
    case 'good':
      break;
    case 'hang-on-start':
      // Appended after the SIGTERM handlers are registered: a SIGTERM is caught but never handled.
      server += `${RECORD_PIDS}\nAtomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);\n`;
      break;
    case 'slow-ready':
      server = edit(server, 'const HEALTHZ_STATUS = 200;', `const STARTED = Date.now();\nconst HEALTHZ_STATUS_READY = 200;`);
      server = edit(server, "if (url.pathname === '/healthz') return send(res, HEALTHZ_STATUS, HEALTHZ_STATUS === 200 ? 'ok\\n' : 'unhealthy\\n');",
        `if (url.pathname === '/healthz') return Date.now() - STARTED < ${SLOW_READY_MS} ? send(res, 503, 'starting\\n') : send(res, HEALTHZ_STATUS_READY, 'ok\\n');`);
      break;
    case 'crash-after-ready':
      server += `\nsetTimeout(() => process.exit(1), ${CRASH_AFTER_MS});\n`;
      break;
    default: {
      const never: never = variant;
      throw new Error(`unknown variant ${String(never)}`);
    }
  }
  return exampleAppTree(version, { server });
}

// ---------------------------------------------------------------------------------------------
// HTTP

/** Waits (bounded) until GET / on `port` answers 200; returns the body. */
export async function waitAnswering(port: number, what: string, ms = 20_000): Promise<string> {
  const deadline = Date.now() + ms;
  let last = '';
  while (Date.now() < deadline) {
    try {
      const r = await get(port, '/', false, 2000);
      if (r.status === 200) return r.body.trim();
      last = `HTTP ${r.status}`;
    } catch (err) {
      last = (err as Error).message;
    }
    await sleep(100);
  }
  assert.unreachable(`${what}: nothing answered on 127.0.0.1:${port} within ${ms} ms (last: ${last})`);
  throw new Error('unreachable');
}

/** How long and how many requests a load of the supervised tests may run at most. */
export const LOAD_LIMITS: LoadLimits = { maxMs: 90_000, maxRequests: 40_000 };

// ---------------------------------------------------------------------------------------------
// `ferry run`

export interface RunningSupervisor {
  child: ChildProcess;
  exit: Promise<number | null>;
  output(): string;
}

export interface RunOptions {
  readyTimeout?: string;
  drainTimeout?: string;
  env?: Record<string, string>;
}

/** `node dist/cli/ferry.js run` on a free port of 127.0.0.1, readiness by GET /healthz on the private socket. */
export function startRun(home: string, o: RunOptions = {}): RunningSupervisor {
  const child = spawn(process.execPath, [
    'dist/cli/ferry.js', 'run', '--home', home, '--listen', '127.0.0.1:0', '--health', '/healthz',
    '--ready-timeout', o.readyTimeout ?? '10s', '--drain-timeout', o.drainTimeout ?? '5s', '--', process.execPath, 'server.js',
  ], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1', ...o.env } });
  let out = '';
  child.stdout!.on('data', (d) => { out += d; });
  child.stderr!.on('data', (d) => { out += d; });
  // 'exit', not 'close': an app that outlives its supervisor would hold the output pipes open.
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, exit, output: () => out };
}

/** Asks the supervisor's control socket until `pred` holds (bounded); fails the test otherwise. */
export async function waitForStatus(home: string, sup: RunningSupervisor, pred: (s: SupervisorStatus) => boolean, what: string, ms = 20_000): Promise<SupervisorStatus> {
  const deadline = Date.now() + ms;
  let last: SupervisorStatus | null = null;
  while (Date.now() < deadline) {
    last = await requestSupervisor(home, { op: 'status' }, 1000).catch(() => null);
    if (last && pred(last)) return last;
    if (!running(sup.child)) break;
    await sleep(50);
  }
  assert.unreachable(`${what}; last status ${JSON.stringify(last)}; supervisor output:\n${sup.output().slice(-3000)}`);
  throw new Error('unreachable');
}

export function portOf(s: SupervisorStatus): number {
  return Number(/:(\d+)$/.exec(s.listen[0]!)![1]);
}

/** SIGTERM, then SIGKILL if it has not exited within `ms`: always by the child's own pid. */
export async function stopChild(child: ChildProcess, exit: Promise<unknown>, ms = 20_000): Promise<void> {
  if (!running(child)) return;
  child.kill('SIGTERM');
  await within(exit, ms, undefined);
  if (running(child)) {
    child.kill('SIGKILL');
    await exit;
  }
}

// ---------------------------------------------------------------------------------------------
// Processes, straight from /proc

interface ProcInfo {
  pid: number;
  pgid: number;
  cmd: string;
}

function procInfo(pid: number): ProcInfo | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const close = stat.lastIndexOf(')');
    const fields = stat.slice(close + 2).split(' ');
    if (fields[0] === 'Z') return null;
    const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
    return { pid, pgid: Number(fields[2]), cmd };
  } catch {
    return null;
  }
}

/** Live processes whose environment says they were started for `home` (FERRY_HOME=<home>). */
export function processesOf(home: string): ProcInfo[] {
  const wanted = `FERRY_HOME=${home}`;
  const out: ProcInfo[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    let env: string;
    try {
      env = readFileSync(`/proc/${name}/environ`, 'utf8');
    } catch {
      continue;
    }
    if (!env.split('\0').includes(wanted)) continue;
    const info = procInfo(Number(name));
    if (info) out.push(info);
  }
  return out;
}

/** Live members of process group `pgid`. */
export function groupMembers(pgid: number): ProcInfo[] {
  const out: ProcInfo[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const info = procInfo(Number(name));
    if (info && info.pgid === pgid) out.push(info);
  }
  return out;
}

/** Waits (bounded) until `check` returns an empty list; returns what was left. */
export async function waitGone<T>(check: () => T[], ms: number): Promise<T[]> {
  const deadline = Date.now() + ms;
  let left = check();
  while (left.length > 0 && Date.now() < deadline) {
    await sleep(100);
    left = check();
  }
  return left;
}

/** Last-resort cleanup: SIGKILL every process still running for `home`, each by its own pid. */
export function killLeftovers(home: string): void {
  for (const p of processesOf(home)) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
}
