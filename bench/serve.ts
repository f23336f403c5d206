// `ferry serve` throughput next to nginx serving the same repository folder, in the same run, with
// wrk as the load tool. A repository gets two releases whose artifacts are a few MB of random
// (incompressible) bytes; `ferry serve` runs as a real child process (`node dist/cli/ferry.js serve`)
// and nginx as this bench's own child (generated config, temp prefix, stopped by its pid; never the
// system service), once with 1 worker and once with `worker_processes auto`. Each server gets the
// same three loads, wrk -t2 -c16 -d10s: (a) the full artifact, (b) channels/stable.json, (c) Range
// requests of 1 MiB chunks of the artifact (a wrk Lua script cycles the offsets). Socket errors and
// non-2xx responses are counted; the target is printed as PASS/MISS, never asserted.
// Run alone: node --import tsx bench/serve.ts   (or through bench/run.ts as "serve")

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureTools, type Tool } from './lib/tools.ts';
import { formatTable, fmt } from './lib/table.ts';
import { makeRepo, tempDir, type TreeSpec } from '../test/helpers/repo.ts';
import { channelPath } from '../core/trust/metadata.ts';
import { freePort } from '../test/helpers/net.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const WRK: Tool = { command: 'wrk', debianPackage: 'wrk' };
const NGINX: Tool = { command: 'nginx', debianPackage: 'nginx' };
const THREADS = 2;
const CONNECTIONS = 16;
const SECONDS = 10;
/** A short untimed run before each measured one, so node's JIT and the page cache are warm. */
const WARMUP_SECONDS = 2;
const PAYLOAD_BYTES = 8 * 1024 * 1024;
const MIB = 1024 * 1024;
const REPORT_TAG = 'FERRY_BENCH_WRK ';

interface WrkResult {
  requests: number;
  bytes: number;
  seconds: number;
  p50ms: number;
  p99ms: number;
  socketErrors: number;
  /** wrk's "Non-2xx or 3xx responses" (status > 399). */
  non2xx: number;
}

interface CaseDef {
  key: 'artifact' | 'meta' | 'range';
  label: string;
  script: string;
  path: string;
}

interface Row {
  server: string;
  kase: CaseDef;
  result: WrkResult;
  /** CPU the server's processes used during the measured run, in % of one core. */
  cpuPercent: number;
}

// ---- wrk Lua scripts: setup/done report exact figures as one JSON line; range sets a Range header.

const LUA_REPORT = `
local threads = {}
function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('${REPORT_TAG}{"requests":%d,"bytes":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d}\\n',
    summary.requests, summary.bytes, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
`;

function rangeLua(path: string, chunks: number): string {
  return `${LUA_REPORT}
local MIB = ${MIB}
local CHUNKS = ${chunks}
local next_chunk = 0
function init(args)
  -- threads start half the file apart, so the connections ask for different chunks
  next_chunk = math.floor((tonumber(id) or 0) * CHUNKS / ${THREADS})
end
function request()
  local s = (next_chunk % CHUNKS) * MIB
  next_chunk = next_chunk + 1
  return wrk.format("GET", "${path}", { ["Range"] = "bytes=" .. s .. "-" .. (s + MIB - 1) })
end
`;
}

function parseReport(out: string): WrkResult {
  const line = out.split('\n').find((l) => l.startsWith(REPORT_TAG));
  if (!line) throw new Error(`wrk printed no report line:\n${out.slice(-2000)}`);
  const r = JSON.parse(line.slice(REPORT_TAG.length)) as Record<string, number>;
  return {
    requests: r.requests!,
    bytes: r.bytes!,
    seconds: r.duration_us! / 1e6,
    p50ms: r.p50_us! / 1000,
    p99ms: r.p99_us! / 1000,
    socketErrors: r.connect! + r.read! + r.write! + r.timeout!,
    non2xx: r.status!,
  };
}

function wrk(url: string, script: string, seconds: number): Promise<WrkResult> {
  return new Promise((resolve, reject) => {
    const args = [`-t${THREADS}`, `-c${CONNECTIONS}`, `-d${seconds}s`, '--timeout', '5s', '-s', script, url];
    const child = spawn('wrk', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { out += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), (seconds + 30) * 1000);
    child.on('error', (err) => { clearTimeout(timer); reject(err); });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (code !== 0) reject(new Error(`wrk ${args.join(' ')} exited ${code ?? signal}: ${out.slice(-2000)}`));
      else {
        try { resolve(parseReport(out)); } catch (err) { reject(err as Error); }
      }
    });
  });
}

// ---- processes: ports, readiness, CPU accounting, stopping by pid


function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function waitHttp(url: string, child: ChildProcess, output: () => string, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) break;
    if (await fetch(url, { signal: AbortSignal.timeout(1000) }).then(async (r) => { await r.arrayBuffer(); return r.status === 200; }, () => false)) return;
    await sleep(100);
  }
  throw new Error(`nothing answered ${url} (process ${child.exitCode !== null || child.signalCode !== null ? `exited ${child.exitCode ?? child.signalCode}` : 'still running'}): ${output().slice(-2000)}`);
}

/** Stops a child by its own pid: `signal`, SIGKILL after 5 s. */
async function stopChild(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill(signal);
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => { timer = setTimeout(() => resolve('late'), 5000); });
  if ((await Promise.race([exited, late])) === 'late') {
    child.kill('SIGKILL');
    await exited;
  }
  clearTimeout(timer);
}

const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/** utime + stime of a pid in clock ticks, with its ppid; undefined when it is gone. */
function procStat(pid: number): { ticks: number; ppid: number } | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which is in parentheses and may hold spaces).
    const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return { ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) };
  } catch {
    return undefined;
  }
}

/** The pid and its direct children (nginx's workers). */
function processGroup(pid: number): number[] {
  const kids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    if (procStat(Number(name))?.ppid === pid) kids.push(Number(name));
  }
  return [pid, ...kids];
}

function cpuTicks(pids: number[]): number {
  return pids.reduce((sum, p) => sum + (procStat(p)?.ticks ?? 0), 0);
}

// ---- the servers

interface Server {
  name: string;
  url: string;
  /** The server's processes (for CPU accounting). */
  pids(): number[];
  note: string;
  stop(): Promise<void>;
}

async function startFerry(repo: string): Promise<Server> {
  const port = await freePort();
  const child = spawn(process.execPath, ['dist/cli/ferry.js', 'serve', repo, '--port', String(port), '--host', '127.0.0.1'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (d) => { output += d; });
  child.stderr!.on('data', (d) => { output += d; });
  const url = `http://127.0.0.1:${port}/`;
  const stop = () => stopChild(child, 'SIGTERM');
  try {
    await waitHttp(`${url}root.json`, child, () => output);
  } catch (err) {
    await stop();
    throw err;
  }
  return { name: 'ferry serve', url, pids: () => [child.pid!], note: '1 node process', stop };
}

async function startNginx(repo: string, dir: string, workers: '1' | 'auto'): Promise<Server> {
  const port = await freePort();
  // As root the workers would switch to "nobody", who cannot enter the 0700 temp folders.
  const user = process.getuid?.() === 0 ? 'user root;\n' : '';
  const conf = `${user}daemon off;
master_process on;
worker_processes ${workers};
pid ${dir}/nginx.pid;
error_log ${dir}/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  types { application/json json; }
  default_type application/octet-stream;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  server { listen 127.0.0.1:${port}; root ${repo}; }
}
`;
  await writeFile(join(dir, 'nginx.conf'), conf);
  const child = spawn('nginx', ['-e', join(dir, 'error.log'), '-p', dir, '-c', join(dir, 'nginx.conf')], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (d) => { output += d; });
  child.stderr!.on('data', (d) => { output += d; });
  const url = `http://127.0.0.1:${port}/`;
  const stop = () => stopChild(child, 'SIGQUIT');
  try {
    await waitHttp(`${url}root.json`, child, () => {
      let errorLog = '';
      try { errorLog = readFileSync(join(dir, 'error.log'), 'utf8'); } catch { /* not written yet */ }
      return output + errorLog;
    });
  } catch (err) {
    await stop();
    throw err;
  }
  const workerCount = processGroup(child.pid!).length - 1;
  return { name: `nginx ${workers === '1' ? '1 worker' : 'auto'}`, url, pids: () => processGroup(child.pid!), note: `master + ${workerCount} worker${workerCount === 1 ? '' : 's'}, sendfile on`, stop };
}

// ---- checks: every server must answer the same bytes before it is measured

async function checkServer(server: Server, artifactPath: string, artifactSha256: string, artifact: Buffer, meta: Buffer): Promise<void> {
  const get = async (path: string, headers: Record<string, string> = {}) => {
    const r = await fetch(server.url + path, { headers, signal: AbortSignal.timeout(30_000) });
    return { status: r.status, body: Buffer.from(await r.arrayBuffer()) };
  };
  const full = await get(artifactPath);
  const sha = createHash('sha256').update(full.body).digest('hex');
  if (full.status !== 200 || sha !== artifactSha256) throw new Error(`${server.name}: GET ${artifactPath} gave ${full.status}, sha256 ${sha}, not the signed ${artifactSha256}`);
  const m = await get(channelPath('stable'));
  if (m.status !== 200 || !m.body.equals(meta)) throw new Error(`${server.name}: GET ${channelPath('stable')} gave ${m.status} and not the file's bytes`);
  const start = MIB;
  const part = await get(artifactPath, { Range: `bytes=${start}-${start + MIB - 1}` });
  if (part.status !== 206 || !part.body.equals(artifact.subarray(start, start + MIB))) throw new Error(`${server.name}: Range GET of ${artifactPath} gave ${part.status} and ${part.body.length} bytes, not the 206 MiB chunk`);
}

async function measure(server: Server, kase: CaseDef, log: (line: string) => void): Promise<Row> {
  const url = server.url.replace(/\/$/, '') + kase.path;
  await wrk(url, kase.script, WARMUP_SECONDS);
  const pids = server.pids();
  const before = cpuTicks(pids);
  const result = await wrk(url, kase.script, SECONDS);
  const cpuPercent = ((cpuTicks(pids) - before) / CLK_TCK / result.seconds) * 100;
  log(`  ${server.name}, ${kase.label}: ${result.requests} requests, ${(result.requests / result.seconds).toFixed(0)} req/s, ${fmt.mb(result.bytes / result.seconds)} MB/s`);
  return { server: server.name, kase, result, cpuPercent };
}

/** Payload trees: 1.1.0 differs from 1.0.0 in a few patched bytes, so the delta is small. */
function tree(version: string, payload: Buffer): TreeSpec {
  return {
    'package.json': JSON.stringify({ name: 'sample-app', version }, null, 2) + '\n',
    'server.js': { content: `// bench app\nexport const VERSION = '${version}';\n`, mode: 0o755 },
    'lib/payload.bin': payload,
  };
}

export async function run(options: { log: (line: string) => void }): Promise<void> {
  const { log } = options;
  ensureTools([WRK, NGINX], log);
  const started = Date.now();
  const repo = await makeRepo();
  const tmp = await tempDir('ferry-bench-serve-');
  const servers: Server[] = [];
  try {
    log(`publishing 1.0.0 and 1.1.0 (${PAYLOAD_BYTES / MIB} MiB of random bytes each, 1.1.0 patched in 64 places)`);
    const payload = randomBytes(PAYLOAD_BYTES);
    await repo.release('1.0.0', tree('1.0.0', payload), { deltas: 0 });
    const next = Buffer.from(payload);
    for (let i = 0; i < 64; i++) next.writeUInt32LE(0xfeed0000 + i, 4096 + i * 65_537);
    const r2 = await repo.release('1.1.0', tree('1.1.0', next), { deltas: 1 });
    const artifactPath = '/' + r2.full.path.replace(/^\//, '');
    const artifact = await readFile(join(repo.repo, r2.full.path));
    const meta = await readFile(join(repo.repo, channelPath('stable')));
    if (artifact.length !== r2.full.size) throw new Error(`${r2.full.path} is ${artifact.length} bytes, metadata says ${r2.full.size}`);
    const chunks = Math.floor(artifact.length / MIB);
    log(`artifact ${r2.full.path}: ${fmt.bytes(artifact.length)} bytes (${chunks} whole 1 MiB chunks); ${channelPath('stable')}: ${fmt.bytes(meta.length)} bytes; delta from 1.0.0: ${fmt.bytes(r2.deltas[0]?.size ?? 0)} bytes`);

    const reportLua = join(tmp.path, 'report.lua');
    const rangeLuaPath = join(tmp.path, 'range.lua');
    await writeFile(reportLua, LUA_REPORT);
    await writeFile(rangeLuaPath, rangeLua(artifactPath, chunks));
    const cases: CaseDef[] = [
      { key: 'artifact', label: '(a) full artifact', script: reportLua, path: artifactPath },
      { key: 'meta', label: '(b) stable.json', script: reportLua, path: '/' + channelPath('stable') },
      { key: 'range', label: '(c) Range 1 MiB', script: rangeLuaPath, path: artifactPath },
    ];

    const rows: Row[] = [];
    const notes: string[] = [];
    const starters: Array<() => Promise<Server>> = [
      () => startFerry(repo.repo),
      async () => startNginx(repo.repo, await mkdirIn(tmp.path, 'nginx-1'), '1'),
      async () => startNginx(repo.repo, await mkdirIn(tmp.path, 'nginx-auto'), 'auto'),
    ];
    for (const start of starters) {
      const server = await start();
      servers.push(server);
      try {
        log(`${server.name} at ${server.url} (${server.note})`);
        notes.push(`${server.name}: ${server.note}`);
        await checkServer(server, artifactPath.slice(1), r2.full.sha256, artifact, meta);
        for (const kase of cases) {
          const row = await measure(server, kase, log);
          // A Range response that came back whole (200) would still count as 2xx: its size gives it away.
          if (kase.key === 'range' && row.result.requests > 0 && row.result.bytes / row.result.requests > MIB + 4096) {
            throw new Error(`${server.name}: Range requests averaged ${fmt.bytes(Math.round(row.result.bytes / row.result.requests))} bytes, not 1 MiB chunks`);
          }
          rows.push(row);
        }
      } finally {
        servers.pop();
        await server.stop();
      }
    }

    log('');
    log(`wrk -t${THREADS} -c${CONNECTIONS} -d${SECONDS}s --timeout 5s (after a ${WARMUP_SECONDS} s warm-up) on 127.0.0.1, each server alone in turn`);
    log(`NOTE: this machine has ${availableParallelism()} cores; wrk's ${THREADS} threads compete with the server for them, so the figures are a ceiling set by`);
    log('      both, not by the server alone ("srv CPU%" is the server\'s own share, in % of one core; 100% = one core busy).');
    log(formatTable(
      [
        { title: 'server' }, { title: 'case' }, { title: 'requests', align: 'right' }, { title: 'req/s', align: 'right' }, { title: 'MB/s', align: 'right' },
        { title: 'p50 ms', align: 'right' }, { title: 'p99 ms', align: 'right' }, { title: 'sock err', align: 'right' }, { title: 'non-2xx', align: 'right' }, { title: 'srv CPU%', align: 'right' },
      ],
      rows.map((r) => [
        r.server, r.kase.label, r.result.requests, (r.result.requests / r.result.seconds).toFixed(0), fmt.mb(r.result.bytes / r.result.seconds),
        r.result.p50ms.toFixed(2), r.result.p99ms.toFixed(2), r.result.socketErrors, r.result.non2xx, r.cpuPercent.toFixed(0),
      ]),
    ));
    log(`servers: ${notes.join('; ')}`);
    log('MB/s counts every byte wrk read (headers included) over the run, in 10^6 bytes.');

    const rate = (server: string, key: CaseDef['key']) => {
      const r = rows.find((x) => x.server === server && x.kase.key === key)!.result;
      return r.requests / r.seconds;
    };
    const ratios = (key: CaseDef['key']) => {
      const ferry = rate('ferry serve', key);
      const one = rate('nginx 1 worker', key);
      const auto = rate('nginx auto', key);
      return { ferry, one, auto, best: Math.max(one, auto) };
    };
    const a = ratios('artifact');
    const ratio = a.ferry / a.best;
    log(`${ratio >= 0.5 ? 'PASS' : 'MISS'} ferry serve >= 0.5x nginx throughput on artifact downloads: ${ratio.toFixed(2)}x the faster nginx (${a.ferry.toFixed(0)} vs ${a.best.toFixed(0)} req/s; vs 1 worker ${(a.ferry / a.one).toFixed(2)}x, vs auto ${(a.ferry / a.auto).toFixed(2)}x)`);
    const rg = ratios('range');
    const mt = ratios('meta');
    log(`(not targets) Range 1 MiB chunks: ${(rg.ferry / rg.best).toFixed(2)}x the faster nginx; stable.json: ${(mt.ferry / mt.best).toFixed(2)}x`);
    const failed = rows.reduce((n, r) => n + r.result.socketErrors + r.result.non2xx, 0);
    if (failed > 0) log(`socket errors + non-2xx over all runs: ${failed} (see the table)`);
    log(`serve bench wall time ${((Date.now() - started) / 1000).toFixed(0)} s`);
  } finally {
    for (const s of servers) await s.stop();
    await tmp.cleanup();
    await repo.cleanup();
  }
}

async function mkdirIn(parent: string, name: string): Promise<string> {
  const dir = join(parent, name);
  await mkdir(dir, { recursive: true });
  return dir;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  run({ log: (line) => process.stdout.write(line + '\n') }).catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    process.exitCode = 1;
  });
}
