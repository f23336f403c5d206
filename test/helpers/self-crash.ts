// The self-update crash tests' shared parts (test/crash/self-update-kill.test.ts and
// test/crash/self-update-power-cut.test.ts; issue 12, ARCHITECTURE.md "Self-update"): a self
// home on ferry 1.0.0 with 1.1.0 published (test/helpers/self-home.ts, variants with the test seams,
// so FERRY_TEST_KILL_AT works inside the installed releases), an app home for the agent, the
// production process tree started through the launcher script (sh launcher → keeper → agent), and
// the checks every step must pass once the service was restarted.
//
// A kill point must fire ONCE per scenario. FERRY_TEST_KILL_AT is inherited by every process of
// the tree (keeper, agent, the next keeper the launcher starts …), and a trial agent killed at start
// is started again by design; with the variable alone the same point would kill each start until
// the tries ran out, which is another scenario (a version that crashes every start, covered by
// test/crash/self-update.test.ts). So the launcher also gets NODE_OPTIONS=--import <preload>: a
// few lines that wrap process.kill so that the seam's self-SIGKILL (test/helpers/ferry-with-seams.mjs)
// happens only for the first process that reaches the point, which leaves a note saying who it
// was (role, version, pid). With FERRY_TEST_KILL_STOP=1 it SIGSTOPs itself there instead, frozen
// at the exact instant, for the power-cut test to cut the disk under it.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { readBootRecord } from '../../core/self/boot-record.ts';
import type { UpdateRecord } from '../../core/spec.ts';
import type { DeviceStatus } from '../../core/update/updater.ts';
import type { TreeEntry } from '../../core/trust/metadata.ts';
import { exampleAppTree } from './example-app.ts';
import { inspectCurrent, NEW, OLD, signedFiles } from './crash.ts';
import { alive } from './proc.ts';
import { makeRepo } from './repo.ts';
import { baseSelfTree, copyTree, makeSelfHome, mustCli, runCli, type CliRun, type SelfHome } from './self-home.ts';
import { keepLines, timedEvents, type TimedAgentEvent, type TimedLine } from './agent-log.ts';
import { within } from './within.ts';

// The versions of test/helpers/crash.ts, whose oracle (inspectCurrent) knows them by name.
export { NEW, OLD };

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------------------------
// The kill-once preload

const PRELOAD = `// Written by test/helpers/self-crash.ts: the seam's self-SIGKILL fires once per scenario.
import { realpathSync, writeFileSync } from 'node:fs';
const note = process.env.FERRY_TEST_KILL_ONCE;
if (note) {
  const kill = process.kill.bind(process);
  process.kill = function (pid, signal) {
    if (pid === process.pid && signal === 'SIGKILL') {
      const argv = process.argv.slice(1);
      const role = argv.includes('launch') ? 'keeper' : argv.includes('agent') ? 'agent' : 'other';
      let entry = argv[0] ?? '';
      try { entry = realpathSync(entry); } catch {}
      const version = process.env.FERRY_SELF_VERSION ?? (/releases\\/([^/]+)\\//.exec(entry) ?? [])[1] ?? null;
      try {
        writeFileSync(note, JSON.stringify({ pid, role, version, point: process.env.FERRY_TEST_KILL_AT ?? null, at: Date.now() }), { flag: 'wx' });
      } catch {
        return true; // it fired already in this scenario
      }
      if (process.env.FERRY_TEST_KILL_STOP === '1') return kill(pid, 'SIGSTOP');
    }
    return kill(pid, signal);
  };
}
`;

/** Who the kill point stopped, as the preload noted it. */
export interface KillNote {
  pid: number;
  role: 'keeper' | 'agent' | 'other';
  version: string | null;
  point: string | null;
  at: number;
}

export function readKillNote(path: string): KillNote | null {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as KillNote;
  } catch {
    return null;
  }
}

/** The environment that arms `point` once (see the header); `stop`: SIGSTOP instead of SIGKILL. */
export function killOnceEnv(fx: SelfCrashFixture, point: string, note: string, stop = false): Record<string, string> {
  return {
    FERRY_TEST_KILL_AT: point,
    FERRY_TEST_KILL_ONCE: note,
    NODE_OPTIONS: `--import=${pathToFileURL(fx.preload).href}`,
    ...(stop ? { FERRY_TEST_KILL_STOP: '1' } : {}),
  };
}

// ---------------------------------------------------------------------------------------------
// The fixture: a self home on 1.0.0 with 1.1.0 published, an app home, the signed file lists

export interface SelfCrashFixture {
  self: SelfHome;
  /** An app home on the example app 1.0.0, up to date (its checks journal nothing), checking every second. */
  appHome: string;
  preload: string;
  /** The signed file lists of OLD and NEW, read from the self repository. */
  files: Map<string, TreeEntry[]>;
  cleanup(): Promise<void>;
}

export async function makeSelfCrashFixture(): Promise<SelfCrashFixture> {
  const base = await baseSelfTree();
  const t0 = Date.now();
  // Both versions run the seams entry, so FERRY_TEST_KILL_AT reaches the keeper and the agent.
  const self = await makeSelfHome({ firstOptions: { seams: true } });
  const published = await self.publishVariant(NEW, { seams: true });
  if (!published.deltas.some((d) => d.from === OLD)) throw new Error(`${NEW} was published without a delta from ${OLD}`);
  const appRepo = await makeRepo({ dir: join(self.dir, 'app-publisher') });
  await appRepo.release('1.0.0', exampleAppTree('1.0.0'), { platform: process.platform, arch: process.arch });
  const appHome = join(self.dir, 'app-template');
  await mustCli(['init', appHome, '--trust', appRepo.trustPath, '--source', appRepo.repo], 'init app home');
  await mustCli(['update', '--home', appHome], 'install app 1.0.0');
  // A check every second: each round of the agent (app check, then its own self round) comes soon.
  const configPath = join(appHome, 'ferry.json');
  const config = JSON.parse(await readFile(configPath, 'utf8')) as { policy: Record<string, unknown> };
  config.policy.checkInterval = 1;
  await writeFile(configPath, JSON.stringify(config, null, 2) + '\n');
  const preload = join(self.dir, 'kill-once.mjs');
  await writeFile(preload, PRELOAD);
  const files = new Map([[OLD, await signedFiles(self.repo.repo, OLD)], [NEW, await signedFiles(self.repo.repo, NEW)]]);
  console.log(`  fixture: base ferry tree (${base.how}) ${(base.ms / 1000).toFixed(1)} s; self home, ${NEW} published and app home ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return { self, appHome, preload, files, cleanup: () => self.cleanup() };
}

// ---------------------------------------------------------------------------------------------
// The service: the launcher script run as systemd would, every output line kept with its time

export type Line = TimedLine;
export type AgentEvent = TimedAgentEvent;

/**
 * Every launcher started for one scenario (the first, and the restarts), their lines in one log.
 * Stopping is by pid: the launcher's group (sh and the keeper), then each agent that printed its
 * pid (agents run in groups of their own), then anything left whose command line names `dir`.
 */
export class Service {
  readonly lines: Line[] = [];
  readonly launchers: ChildProcess[] = [];
  private exits: Promise<{ code: number | null; signal: NodeJS.Signals | null }>[] = [];

  constructor(
    readonly dir: string,
    readonly launcher: string,
    readonly args: string[],
  ) {}

  /** Starts the launcher (again), with `env` added to the test's environment. */
  start(env: Record<string, string> = {}): ChildProcess {
    const child = spawn('sh', [this.launcher, ...this.args], { cwd: this.dir, stdio: ['ignore', 'pipe', 'pipe'], detached: true, env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0', ...env } });
    keepLines(child, this.lines);
    this.launchers.push(child);
    // 'exit', not 'close': a detached `ferry run` keeps the launcher's output pipes open after it ends.
    this.exits.push(new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal }))));
    return child;
  }

  get current(): ChildProcess {
    return this.launchers.at(-1)!;
  }

  running(child = this.current): boolean {
    return child.exitCode === null && child.signalCode === null;
  }

  exited(child = this.current): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    return this.exits[this.launchers.indexOf(child)]!;
  }

  /** The agent's JSON lines (stdout lines that parse; a line cut by a kill does not). */
  events(since = 0): AgentEvent[] {
    return timedEvents(this.lines, since);
  }

  /** The start lines the variants' own code printed, with the pid of each agent. */
  starts(since = 0): { at: number; label: string; pid: number }[] {
    return this.lines
      .filter((l) => l.stream === 'err' && l.at >= since)
      .flatMap((l) => [...l.text.matchAll(/^ferry-variant (\S+) agent pid=(\d+)$/gm)].map((m) => ({ at: l.at, label: m[1]!, pid: Number(m[2]) })));
  }

  /** The keeper's lines (`ferry self: …` on stderr). */
  keeperLines(since = 0): Line[] {
    return this.lines.filter((l) => l.stream === 'err' && l.at >= since && l.text.startsWith('ferry self: '));
  }

  tail(n = 40): string {
    return this.lines.slice(-n).map((l) => `${l.stream}: ${l.text}`).join('\n');
  }

  /**
   * SIGKILLs the launcher, the keeper and the agent now: each launcher's group (sh and its keeper)
   * and every agent that printed its pid. `ferry run`, in a group of its own, is left serving.
   */
  killService(): void {
    for (const l of this.launchers) if (this.running(l)) signalGroup(l.pid!, 'SIGKILL');
    for (const s of this.starts()) signalPid(s.pid, 'SIGKILL');
  }

  /** killService, and then anything else whose command line names the scenario's folder (`ferry run`). */
  killAll(): void {
    this.killService();
    for (const pid of processesUnder(this.dir)) signalPid(pid, 'SIGKILL');
  }

  /**
   * Stops the running launcher as systemd would (SIGTERM, forwarded to the keeper and the agent,
   * which stops its `ferry run`), bounded; then SIGKILLs whatever is left. Returns whether the
   * launcher had exited on the SIGTERM within `graceMs`.
   */
  async stop(graceMs = 30_000): Promise<boolean> {
    let clean = true;
    for (const l of this.launchers) {
      if (!this.running(l)) continue;
      l.kill('SIGTERM');
      const ended = await within(this.exited(l), graceMs, null);
      if (!ended) clean = false;
    }
    this.killAll();
    for (const l of this.launchers) await within(this.exited(l), 5_000, undefined);
    return clean;
  }
}

function signalPid(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // gone already
  }
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    signalPid(pid, signal);
  }
}

/** Processes whose command line names `dir` (the scenario's folders): the safety net of stop(). */
export function processesUnder(dir: string): number[] {
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${name}/cmdline`, 'utf8').includes(dir) && alive(Number(name))) pids.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

/** Polls `probe` until it returns a value (not undefined or null), every `everyMs`; throws after `timeoutMs`. */
export async function until<T>(probe: () => Promise<T | undefined | null> | T | undefined | null, timeoutMs: number, what: () => string, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== null) return v;
    if (Date.now() >= deadline) throw new Error(`no ${what()} within ${timeoutMs} ms`);
    await sleep(everyMs);
  }
}

// ---------------------------------------------------------------------------------------------
// Reading the self home

/** `current` and the boot record straight from the disk, without a lock (what the keeper reads). */
export async function selfState(home: string): Promise<{ current: string | null; trial: string | null; refused: string[]; damaged: boolean }> {
  const current = await readlink(join(home, 'current')).then((l) => l.replace(/^releases\//, ''), () => null);
  const read = await readBootRecord(home);
  if (read.state === 'damaged') return { current, trial: null, refused: [], damaged: true };
  return { current, trial: read.record.tentative?.version ?? null, refused: read.record.refused.map((r) => r.version), damaged: false };
}

export interface SelfStatusJson {
  currentVersion: string | null;
  tentative: { version: string; previous: string; triesLeft: number } | null;
  refused: { version: string; reason: string }[];
  damaged: unknown;
}

/** What the checkout's CLI says about the stopped self home: `ferry self status`, `status`, `history`, and S/current's `--version`. */
export interface SelfReport {
  selfStatus: SelfStatusJson | null;
  status: DeviceStatus | null;
  history: UpdateRecord[] | null;
  version: string | null;
  runs: CliRun[];
}

export async function selfReport(home: string): Promise<SelfReport> {
  // `status` and `history` each take S's lock, so they run one after the other; the others take none.
  const [a, b, d] = await Promise.all([
    runCli(['self', 'status', '--home', home, '--json']),
    runCli(['status', '--home', home, '--json']),
    // The installed ferry itself, run from S/current, as the launcher runs it (no test seam set).
    runCli(['--version'], { cli: join(home, 'current', 'dist', 'cli', 'ferry.js') }),
  ]);
  const c = await runCli(['history', '--home', home, '--json']);
  const parse = <T>(r: CliRun): T | null => (r.code === 0 ? (JSON.parse(r.stdout) as T) : null);
  return { selfStatus: parse<SelfStatusJson>(a), status: parse<DeviceStatus>(b), history: parse<UpdateRecord[]>(c), version: d.code === 0 ? d.stdout.trim() : null, runs: [a, b, c, d] };
}

/**
 * The checks of a self home whose service was stopped after its recovery: the CLI answers, the
 * boot record is coherent with `current` (no trial, nothing refused, not damaged), the journal is
 * idle, `current` is `want` and a complete signed tree whose own `--version` says so, and history
 * has exactly one committed OLD -> NEW (when `want` is NEW) and nothing in progress.
 */
export async function recoveredProblems(home: string, fx: SelfCrashFixture, want: string): Promise<{ problems: string[]; report: SelfReport }> {
  const problems: string[] = [];
  const report = await selfReport(home);
  for (const r of report.runs) if (r.code !== 0) problems.push(`a CLI check failed: exit ${r.code}: ${r.stderr.trim().slice(-300)}`);
  const s = report.selfStatus;
  if (s) {
    if (s.currentVersion !== want) problems.push(`ferry self status: current ${s.currentVersion}, want ${want}`);
    if (s.tentative) problems.push(`ferry self status: a trial is still recorded: ${JSON.stringify(s.tentative)}`);
    if (s.refused.length) problems.push(`ferry self status: refused ${JSON.stringify(s.refused)}`);
    if (s.damaged) problems.push(`ferry self status: the boot record is damaged: ${JSON.stringify(s.damaged)}`);
  }
  if (report.status) {
    if (report.status.phase !== 'idle') problems.push(`ferry status: the self home's journal is ${report.status.phase}, not idle`);
    if (report.status.currentVersion !== want) problems.push(`ferry status: current ${report.status.currentVersion}, want ${want}`);
  }
  if (report.version !== null && report.version !== want) problems.push(`S/current's ferry --version says ${report.version}, want ${want}`);
  const tree = await inspectCurrent(home, fx.files);
  if (tree.version !== want || tree.problems.length) problems.push(`current is ${tree.version}: ${tree.problems.slice(0, 5).join('; ')}`);
  if (report.history) {
    const open = report.history.filter((h) => h.outcome === 'in-progress');
    if (open.length) problems.push(`history has attempts in progress: ${describeHistory(open)}`);
    const committed = report.history.filter((h) => h.from === OLD && h.to === NEW && h.outcome === 'committed');
    if (want === NEW && committed.length !== 1) problems.push(`history has ${committed.length} committed ${OLD} -> ${NEW}, want exactly 1: ${describeHistory(report.history)}`);
  }
  return { problems, report };
}

export function describeHistory(records: UpdateRecord[]): string {
  return records.map((h) => `${h.from ?? '-'} -> ${h.to} ${h.outcome}${h.errorCode ? ` ${h.errorCode}` : ''}`).join(', ');
}

// ---------------------------------------------------------------------------------------------
// Scenario folders

/** A fresh copy of a self home template at `dir/self` and of the app home at `dir/app`, and the launcher for them. */
export async function scenarioHomes(fx: SelfCrashFixture, selfTemplate: string, dir: string, selfAt = join(dir, 'self')): Promise<{ self: string; app: string; launcher: string }> {
  await mkdir(dir, { recursive: true });
  const app = join(dir, 'app');
  await rm(selfAt, { recursive: true, force: true });
  await copyTree(selfTemplate, selfAt, { timestamps: true });
  await copyTree(fx.appHome, app, { timestamps: true });
  const launcher = join(dir, 'launcher.sh');
  if (!existsSync(launcher)) await mustCli(['self', 'launcher', '--home', selfAt, '--out', launcher], 'self launcher');
  return { self: selfAt, app, launcher };
}

/**
 * S as a kill at 'after:staged' left it (no app): 1.1.0 downloaded, verified and staged, the journal
 * `staged`, no trial. Made once under `dir` by the real service; the steps after staging start
 * from copies of it (test/crash/self-update-kill.test.ts says why).
 */
export async function makeStagedTemplate(fx: SelfCrashFixture, dir: string): Promise<string> {
  const work = join(dir, 'make-staged');
  const homes = await scenarioHomes(fx, fx.self.home, work);
  const service = new Service(work, homes.launcher, ['agent', '--home', homes.app, '--log-format', 'json']);
  const notePath = join(work, 'kill-note.json');
  try {
    service.start(killOnceEnv(fx, 'after:staged', notePath));
    await until(() => readKillNote(notePath), 120_000, () => `kill at after:staged; the service's last lines:\n${service.tail()}`);
    await until(() => (service.running() ? undefined : true), 30_000, () => `the launcher to exit after the kill; the service's last lines:\n${service.tail()}`);
  } finally {
    await service.stop(10_000);
  }
  const state = await selfState(homes.self);
  if (state.current !== OLD || state.trial !== null || !existsSync(join(homes.self, 'releases', NEW))) throw new Error(`the staged template is not ${OLD} with ${NEW} staged and no trial: ${JSON.stringify(state)}`);
  const template = join(dir, 'template-staged');
  await copyTree(homes.self, template, { timestamps: true });
  return template;
}

/** The first 'check' an agent logged after `since`, and the version its 'self' line gave: a working agent. */
export function workingAgent(service: Service, since: number): { at: number; version: string } | undefined {
  let version: string | null = null;
  for (const e of service.events(since)) {
    if (e.event === 'self') version = String(e.version);
    if (e.event === 'check' && version) return { at: e.at, version };
  }
  return undefined;
}
