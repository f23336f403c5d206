// Zero-downtime handover under load: wrk against examples/app/server.js run by `ferry run`, first
// in steady state, then while ferry updates the app several times in a row (each update a real
// signed release, applied by the updater with the supervisor as its health check). Same run, same
// machine: requests/s, p50/p99 latency and failed requests (socket errors + non-2xx). If PM2
// installs from npm into a temp folder, the same app is measured under `pm2 reload` (cluster mode)
// for comparison. Targets are printed as PASS/MISS, never asserted.
// Run alone: node --import tsx bench/handover.ts   (or through bench/run.ts as "handover")

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureTools, type Tool } from './lib/tools.ts';
import { formatTable } from './lib/table.ts';
import { makeRepo, tempDir, writeTree, type TreeSpec } from '../test/helpers/repo.ts';
import { exampleAppTree } from '../test/helpers/example-app.ts';
import { makeDevice } from '../test/helpers/device.ts';
import { requestSupervisor } from '../plugins/run/control.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const WRK: Tool = { command: 'wrk', debianPackage: 'wrk' };
const PHASE_SECONDS = 15;
const CONNECTIONS = 32;
const UPDATES = 4;

interface WrkResult {
  requests: number;
  rps: number;
  p50ms: number;
  p99ms: number;
  socketErrors: number;
  non2xx: number;
}

function ms(text: string): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(text.trim());
  if (!m) return NaN;
  return Number(m[1]) * ({ us: 0.001, ms: 1, s: 1000, m: 60_000 } as Record<string, number>)[m[2]!]!;
}

export function parseWrk(out: string): WrkResult {
  const errors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  return {
    requests: Number(/(\d+) requests in/.exec(out)?.[1] ?? NaN),
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? NaN),
    p50ms: ms(/^\s+50%\s+(\S+)/m.exec(out)?.[1] ?? ''),
    p99ms: ms(/^\s+99%\s+(\S+)/m.exec(out)?.[1] ?? ''),
    socketErrors: errors ? errors.slice(1).reduce((a, b) => a + Number(b), 0) : 0,
    non2xx: Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0),
  };
}

function wrk(url: string, seconds: number): Promise<WrkResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('wrk', ['-t2', `-c${CONNECTIONS}`, `-d${seconds}s`, '--timeout', '5s', '--latency', url], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { out += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), (seconds + 30) * 1000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      if (code !== 0) reject(new Error(`wrk exited ${code}: ${out}`));
      else resolve(parseWrk(out));
    });
  });
}

function sleep(msec: number): Promise<void> {
  return new Promise((r) => setTimeout(r, msec));
}

function exec(cmd: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: options.cwd ?? ROOT, env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { out += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 120_000);
    child.on('exit', (code) => { clearTimeout(timer); resolve({ code, out }); });
  });
}

function appTree(version: string): TreeSpec {
  return exampleAppTree(version);
}

async function waitHttp(port: number, path = '/', ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await fetch(`http://127.0.0.1:${port}${path}`).then((r) => r.ok, () => false)) return;
    await sleep(100);
  }
  throw new Error(`nothing answers on 127.0.0.1:${port}`);
}

interface Row {
  name: string;
  result: WrkResult;
  note: string;
}

async function benchFerry(log: (line: string) => void): Promise<Row[]> {
  const repo = await makeRepo();
  const versions = Array.from({ length: UPDATES + 1 }, (_, i) => `1.${i}.0`);
  await repo.release(versions[0]!, appTree(versions[0]!), { deltas: 0 });
  const device = await makeDevice({ trust: await repo.trust(), sources: [repo.repo] });
  await device.with((u) => u.apply());
  const runEntry = ['dist/cli/ferry.js', 'run'];
  const updateArgs = ['dist/cli/ferry.js', 'update', '--home', device.home, '--json'];
  const sup: ChildProcess = spawn(process.execPath, [...runEntry, '--home', device.home, '--listen', '127.0.0.1:0', '--health', '/healthz', '--drain-timeout', '10s', '--', process.execPath, 'server.js'], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
  let supLog = '';
  sup.stderr!.on('data', (d) => { supLog += d; });
  try {
    let port = 0;
    for (let i = 0; i < 150 && !port; i++) {
      const s = await requestSupervisor(device.home, { op: 'status' }, 1000).catch(() => null);
      if (s?.listen[0]) port = Number(/:(\d+)$/.exec(s.listen[0])![1]);
      else await sleep(100);
    }
    if (!port) throw new Error(`ferry run did not start: ${supLog}`);
    await waitHttp(port);
    const url = `http://127.0.0.1:${port}/`;
    // Publishing is done up front so the update phase measures only the handovers.
    log(`ferry: steady state, ${PHASE_SECONDS} s`);
    const steady = await wrk(url, PHASE_SECONDS);
    log(`ferry: ${UPDATES} updates during ${PHASE_SECONDS} s of load`);
    const during = wrk(url, PHASE_SECONDS);
    const started = Date.now();
    const outcomes: string[] = [];
    await sleep(500);
    for (const v of versions.slice(1)) {
      await repo.release(v, appTree(v), { deltas: 1 });
      const r = await exec(process.execPath, updateArgs);
      outcomes.push(`${v}: ${r.code === 0 ? 'committed' : `exit ${r.code}`}`);
      if (r.code !== 0) log(`  update to ${v} failed: ${r.out.trim().slice(-500)}`);
    }
    const updatesSeconds = (Date.now() - started) / 1000;
    const result = await during;
    if (updatesSeconds > PHASE_SECONDS) log(`  (the updates took ${updatesSeconds.toFixed(1)} s, longer than the load phase: the last ones ran without load)`);
    return [
      { name: 'ferry run, steady', result: steady, note: '1 app process' },
      { name: `ferry run, ${UPDATES} updates`, result, note: outcomes.join(', ') },
    ];
  } finally {
    sup.kill('SIGTERM');
    await Promise.race([new Promise((r) => sup.once('exit', r)), sleep(15_000)]);
    if (sup.exitCode === null && sup.signalCode === null) sup.kill('SIGKILL');
    await device.cleanup();
    await repo.cleanup();
  }
}

/** PM2 from npm into a temp folder, its daemon confined to a temp PM2_HOME; null when it cannot run. */
async function benchPm2(log: (line: string) => void): Promise<Row[] | string> {
  const tmp = await tempDir('ferry-bench-pm2-');
  const pm2Home = join(tmp.path, 'pm2-home');
  const env = { ...process.env, PM2_HOME: pm2Home, PM2_DISCRETE_MODE: 'true' };
  const pm2Bin = join(tmp.path, 'node_modules', '.bin', 'pm2');
  try {
    log('pm2: npm install pm2@5 into a temp folder');
    const install = spawnSync('npm', ['install', '--no-audit', '--no-fund', '--prefix', tmp.path, 'pm2@5'], { encoding: 'utf8', timeout: 5 * 60_000 });
    if (install.status !== 0 || !existsSync(pm2Bin)) return `npm install pm2 failed: ${(install.stderr || install.stdout || String(install.error)).trim().split('\n').slice(-2).join(' ')}`;
    const appDir = join(tmp.path, 'app');
    await writeTree(appDir, exampleAppTree('1.0.0'));
    const port = 20_000 + Math.floor(Math.random() * 20_000);
    const start = await exec(pm2Bin, ['start', join(appDir, 'server.js'), '--name', 'bench-app', '-i', '1', '--kill-timeout', '10000'], { cwd: appDir, env: { ...env, PORT: String(port) } });
    if (start.code !== 0) return `pm2 start failed: ${start.out.trim().slice(-300)}`;
    await waitHttp(port);
    const url = `http://127.0.0.1:${port}/`;
    log(`pm2: steady state, ${PHASE_SECONDS} s`);
    const steady = await wrk(url, PHASE_SECONDS);
    log(`pm2: ${UPDATES} reloads during ${PHASE_SECONDS} s of load`);
    const during = wrk(url, PHASE_SECONDS);
    await sleep(500);
    const step = ((PHASE_SECONDS - 2) * 1000) / UPDATES;
    for (let i = 0; i < UPDATES; i++) {
      const t = Date.now();
      const r = await exec(pm2Bin, ['reload', 'bench-app'], { env });
      if (r.code !== 0) log(`  pm2 reload failed: ${r.out.trim().slice(-300)}`);
      await sleep(Math.max(0, step - (Date.now() - t)));
    }
    const result = await during;
    return [
      { name: 'pm2 cluster, steady', result: steady, note: '-i 1 (cluster master + 1 worker)' },
      { name: `pm2 cluster, ${UPDATES} reloads`, result, note: 'pm2 reload (same code)' },
    ];
  } finally {
    if (existsSync(pm2Bin)) {
      // `pm2 kill` stops the daemon this bench started (its own PM2_HOME) and every app under it.
      await exec(pm2Bin, ['kill'], { env, timeoutMs: 30_000 });
      let daemonPid = NaN;
      try { daemonPid = Number(readFileSync(join(pm2Home, 'pm2.pid'), 'utf8').trim()); } catch { /* no pid file: the daemon is gone */ }
      if (Number.isInteger(daemonPid) && daemonPid > 0) try { process.kill(daemonPid, 'SIGKILL'); } catch { /* gone, as it should be */ }
    }
    await tmp.cleanup();
  }
}

export async function run(options: { log: (line: string) => void }): Promise<void> {
  const { log } = options;
  ensureTools([WRK], log);
  const rows = await benchFerry(log);
  const pm2 = await benchPm2(log).catch((err: unknown) => `pm2 bench failed: ${(err as Error).message}`);
  if (typeof pm2 === 'string') log(`pm2 not compared: ${pm2}`);
  else rows.push(...pm2);
  log(`wrk -t2 -c${CONNECTIONS} -d${PHASE_SECONDS}s --latency against GET / on 127.0.0.1 (2-core machine: load tool, app and updater share it)`);
  log(formatTable(
    [{ title: 'case' }, { title: 'requests', align: 'right' }, { title: 'req/s', align: 'right' }, { title: 'p50 ms', align: 'right' }, { title: 'p99 ms', align: 'right' }, { title: 'failed', align: 'right' }, { title: 'note' }],
    rows.map((r) => [r.name, r.result.requests, r.result.rps.toFixed(0), r.result.p50ms.toFixed(2), r.result.p99ms.toFixed(2), r.result.socketErrors + r.result.non2xx, r.note]),
  ));
  const [steady, during] = rows;
  const failed = during!.result.socketErrors + during!.result.non2xx + steady!.result.socketErrors + steady!.result.non2xx;
  log(`${failed === 0 ? 'PASS' : 'MISS'} 0 failed requests with ferry run (steady + during updates): ${failed}`);
  const ratio = during!.result.p99ms / steady!.result.p99ms;
  log(`${ratio <= 2 ? 'PASS' : 'MISS'} p99 during updates within 2x steady state: ${during!.result.p99ms.toFixed(2)} ms vs ${steady!.result.p99ms.toFixed(2)} ms (${ratio.toFixed(2)}x)`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  run({ log: (line) => process.stdout.write(line + '\n') }).catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    process.exitCode = 1;
  });
}
