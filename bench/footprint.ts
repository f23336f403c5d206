// ferry's footprint on a device: how long the `ferry` command takes to start and how much memory
// it and the agent hold, each next to plain Node measured in the same run on the same machine.
//   start     `ferry --version` and `ferry status --home H` (a home with 1.0.0 installed) vs
//             `node -e 0`: median wall time and median peak RSS (GNU time) of RUNS runs, interleaved
//   idle      `ferry agent --home H` after IDLE_SECONDS vs `node -e 'setInterval(()=>{},1000)'`
//             after the same wait: resident memory (VmRSS) of the process
//   supervise `ferry agent --home H --listen … -- node server.js`, IDLE_SECONDS after the app first
//             answers: VmRSS of the whole process tree (agent + its `ferry run` + the app), and per
//             process
// Targets (reported as PASS/MISS, never asserted): CLI start <= 2x `node -e 0`; the idle agent,
// supervisor included (the app, which is the user's, excluded), <= 1.5x an idle node process.
// Run alone: node --import tsx bench/footprint.ts   (or through bench/run.ts as "footprint")

import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { measureCommand, runChecked, type Measured } from './lib/measure.ts';
import { ensureTools, GNU_TIME } from './lib/tools.ts';
import { formatTable, fmt } from './lib/table.ts';
import { tempDir, writeTree } from '../test/helpers/repo.ts';
import { exampleAppTree } from '../test/helpers/example-app.ts';
import { freePort } from '../test/helpers/net.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const FERRY = join(ROOT, 'dist/cli/ferry.js');
/** Start-up runs per command; the median is reported (this machine's load moves single runs). */
const RUNS = 11;
const IDLE_SECONDS = 10;
const CHILD_TIMEOUT_MS = 60_000;
const READY_TIMEOUT_MS = 60_000;
const START_TARGET = 2;
const IDLE_TARGET = 1.5;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

interface StartRow {
  label: string;
  seconds: number;
  maxRssKiB: number;
}

/** Runs every command RUNS times, round-robin so a burst of load hits them alike; medians. */
async function measureStarts(commands: { label: string; argv: string[] }[], scratch: string): Promise<StartRow[]> {
  const runs = new Map<string, Measured[]>(commands.map((c) => [c.label, []]));
  for (let i = 0; i < RUNS; i++) {
    for (const c of commands) runs.get(c.label)!.push(await measureCommand(c.argv[0]!, c.argv.slice(1), scratch, CHILD_TIMEOUT_MS));
  }
  return commands.map((c) => {
    const m = runs.get(c.label)!;
    return { label: c.label, seconds: median(m.map((x) => x.seconds)), maxRssKiB: median(m.map((x) => x.maxRssKiB)) };
  });
}

/** Parent pid of each process, from /proc/<pid>/stat (the name may hold spaces and parentheses). */
function parents(): Map<number, number> {
  const out = new Map<number, number>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      out.set(Number(name), ppid);
    } catch {
      // the process ended while we looked
    }
  }
  return out;
}

interface ProcRss {
  pid: number;
  command: string;
  rssKiB: number;
}

/** `pid` and every process below it, with their resident memory now. */
function treeRss(pid: number): ProcRss[] {
  const ppid = parents();
  const tree = [pid];
  for (let i = 0; i < tree.length; i++) for (const [child, parent] of ppid) if (parent === tree[i]) tree.push(child);
  return tree.flatMap((p) => {
    try {
      const rss = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${p}/status`, 'utf8'));
      const command = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ');
      return rss ? [{ pid: p, command, rssKiB: Number(rss[1]) }] : [];
    } catch {
      return [];
    }
  });
}

/** True once `url` answers 200 (the supervised app is up), polled for at most READY_TIMEOUT_MS. */
async function answers(url: string): Promise<boolean> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    const status = await fetch(url, { signal: AbortSignal.timeout(2000) }).then((r) => r.status, () => 0);
    if (status === 200) return true;
    await sleep(250);
  }
  return false;
}

/**
 * Starts `argv`, waits until `readyUrl` answers (when given) and then IDLE_SECONDS, reads its
 * process tree's RSS, then stops it (SIGTERM, then SIGKILL) by its pid.
 */
async function idleRss(argv: string[], cwd: string, log: (line: string) => void, readyUrl?: string): Promise<ProcRss[]> {
  const child: ChildProcess = spawn(argv[0]!, argv.slice(1), { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => { output = (output + d).slice(-4000); });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => { output = (output + d).slice(-4000); });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    if (readyUrl && !(await Promise.race([answers(readyUrl), exited.then(() => false)]))) throw new Error(`${readyUrl} never answered 200 under ${argv.join(' ')}:\n${output}`);
    await Promise.race([sleep(IDLE_SECONDS * 1000), exited]);
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${argv.join(' ')} exited early (${child.exitCode ?? child.signalCode}):\n${output}`);
    return treeRss(child.pid!);
  } finally {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const stopped = await Promise.race([exited.then(() => true), sleep(15_000).then(() => false)]);
      if (!stopped) {
        log(`${argv.join(' ')} ignored SIGTERM for 15 s: SIGKILL`);
        child.kill('SIGKILL');
        await exited;
      }
    }
  }
}

const sum = (ps: ProcRss[]) => ps.reduce((a, p) => a + p.rssKiB, 0);
const mib = (kib: number) => `${fmt.mib(kib)} MiB`;
const verdict = (ok: boolean) => (ok ? 'PASS' : 'MISS');

export async function run({ log }: { log: (line: string) => void }): Promise<void> {
  ensureTools([GNU_TIME], log);
  const tmp = await tempDir('ferry-bench-footprint-');
  try {
    const p = (...parts: string[]) => join(tmp.path, ...parts);
    const ferry = (...args: string[]) => runChecked(process.execPath, [FERRY, ...args], CHILD_TIMEOUT_MS);
    // A repository with the example app as 1.0.0 and a device home H that installed it.
    await ferry('keygen', '--out', p('keys/root'));
    await ferry('keygen', '--out', p('keys/release'));
    await ferry('repo', 'init', p('repo'), '--app', 'footprint', '--root-key', p('keys/root.key'), '--release-key', p('keys/release.pub'));
    await writeTree(p('app'), exampleAppTree('1.0.0'));
    await ferry('release', p('app'), '--repo', p('repo'), '--version', '1.0.0', '--key', p('keys/release.key'));
    const home = p('home');
    await ferry('init', home, '--trust', p('repo/root.json'), '--source', p('repo'));
    await ferry('update', '--home', home);

    log(`start: median of ${RUNS} runs each, interleaved`);
    const starts = await measureStarts([
      { label: 'node -e 0', argv: [process.execPath, '-e', '0'] },
      { label: 'ferry --version', argv: [process.execPath, FERRY, '--version'] },
      { label: 'ferry status --home H', argv: [process.execPath, FERRY, 'status', '--home', home] },
    ], p('time.out'));
    const [node, version, status] = starts as [StartRow, StartRow, StartRow];
    log(formatTable(
      [{ title: 'command' }, { title: 'wall s', align: 'right' }, { title: '/ node', align: 'right' }, { title: 'peak RSS MiB', align: 'right' }, { title: '/ node', align: 'right' }],
      starts.map((s) => [s.label, fmt.seconds(s.seconds), fmt.ratio(s.seconds / node.seconds), fmt.mib(s.maxRssKiB), fmt.ratio(s.maxRssKiB / node.maxRssKiB)]),
    ));

    log(`idle: resident memory after ${IDLE_SECONDS} s`);
    const idleNode = await idleRss([process.execPath, '-e', 'setInterval(() => {}, 1000)'], tmp.path, log);
    const agent = await idleRss([process.execPath, FERRY, 'agent', '--home', home], tmp.path, log);
    const port = await freePort();
    const supervised = await idleRss([process.execPath, FERRY, 'agent', '--home', home, '--listen', `127.0.0.1:${port}`, '--', 'node', 'server.js'], tmp.path, log, `http://127.0.0.1:${port}/`);
    const nodeKiB = sum(idleNode);
    const role = (proc: ProcRss) => (proc.command.includes(' agent ') ? 'ferry agent' : proc.command.includes(' run ') ? 'ferry run' : proc.command.includes('server.js') ? 'app (node server.js)' : proc.command);
    const ferryPart = supervised.filter((x) => role(x).startsWith('ferry '));
    const rows: (string | number)[][] = [
      ["node -e 'setInterval(…)'", mib(nodeKiB), fmt.ratio(1)],
      ['ferry agent --home H', mib(sum(agent)), fmt.ratio(sum(agent) / nodeKiB)],
      ...supervised.map((x) => [`  … -- node server.js: ${role(x)}`, mib(x.rssKiB), fmt.ratio(x.rssKiB / nodeKiB)]),
      ['ferry agent -- app: agent + ferry run', mib(sum(ferryPart)), fmt.ratio(sum(ferryPart) / nodeKiB)],
      ['ferry agent -- app: whole tree', mib(sum(supervised)), fmt.ratio(sum(supervised) / nodeKiB)],
    ];
    log(formatTable([{ title: 'process' }, { title: 'RSS', align: 'right' }, { title: '/ idle node', align: 'right' }], rows));

    const startRatio = version.seconds / node.seconds;
    const statusRatio = status.seconds / node.seconds;
    const agentRatio = sum(agent) / nodeKiB;
    const supervisorRatio = sum(ferryPart) / nodeKiB;
    log(`${verdict(startRatio <= START_TARGET)}  CLI start <= ${START_TARGET}x node -e 0: ferry --version ${fmt.ratio(startRatio)}`);
    log(`${verdict(statusRatio <= START_TARGET)}  CLI start <= ${START_TARGET}x node -e 0: ferry status --home H ${fmt.ratio(statusRatio)} (opens the device: LevelDB, the lock)`);
    log(`${verdict(agentRatio <= IDLE_TARGET)}  idle agent <= ${IDLE_TARGET}x an idle node process: ${fmt.ratio(agentRatio)}`);
    log(`${verdict(supervisorRatio <= IDLE_TARGET)}  idle agent, supervisor included (agent + ferry run, app excluded) <= ${IDLE_TARGET}x an idle node process: ${fmt.ratio(supervisorRatio)}`);
  } finally {
    await tmp.cleanup();
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  run({ log: (line) => process.stdout.write(line + '\n') }).catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    process.exitCode = 1;
  });
}
