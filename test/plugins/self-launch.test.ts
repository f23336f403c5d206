// The keeper (`ferry self launch`, plugins/self/launch.ts) and the launcher script
// (plugins/self/launcher-script.ts) with real processes: real self homes in temp folders (a real
// ferry.json, releases/<v>/ folders, `current` switched by switchCurrent, a staged attempt made by
// a real Updater.stage from a real signed repository), the keeper run as the built CLI, the
// launcher run by /bin/sh, and tiny fake agents that confirm (with the BUILT core/self functions),
// crash, hang, exit 0 or exit 75. The decisions' tables are at the top; every wait is bounded and
// every process started is stopped by its pid (or process group) at the end.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { initDevice } from '../../core/device/init.ts';
import { homeLayout } from '../../core/device/layout.ts';
import { readCurrent, switchCurrent } from '../../core/device/switch.ts';
import { createDirSource } from '../../core/ports/dir-source.ts';
import { beginSwitch, decideStart, type StartDecision } from '../../core/self/boot-decision.ts';
import { emptyBootRecord, readBootRecord, writeBootRecord, type BootRecord } from '../../core/self/boot-record.ts';
import { Updater } from '../../core/update/updater.ts';
import { createBsdiffPatcher } from '../../plugins/bsdiff/patcher.ts';
import { launcherScript, shellQuote } from '../../plugins/self/launcher-script.ts';
import { RESTART_EXIT_CODE } from '../../plugins/self/restart-exit-code.ts';
import { entryPath, exitStatus, keeperExitCode, startPlan } from '../../plugins/self/start-plan.ts';
import { assertCode } from '../helpers/assert-code.ts';
import { ROOT, ferry, json, ok } from '../helpers/cli.ts';
import { alive } from '../helpers/proc.ts';
import { makeRepo, tempDir, type TempDir, type TestRepo } from '../helpers/repo.ts';

// ---------------------------------------------------------------------------------------------
// The pure decisions

const decisions = suite('self launch: the keeper decisions');

const NOW = new Date('2026-01-01T00:00:00Z');

function trialRecord(triesLeft: number, deadlineMs = 60_000): BootRecord {
  const begun = beginSwitch(emptyBootRecord(), { version: '1.1.0', previous: '1.0.0', tries: 3, deadlineMs }, NOW);
  return { ...begun, tentative: { ...begun.tentative!, triesLeft } };
}

decisions('startPlan: the confirmed version, a trial (with its deadline and tries), a rollback', () => {
  assert.equal(startPlan(decideStart({ state: 'ok', record: emptyBootRecord() }, '1.0.0', NOW), '1.0.0'), { version: '1.0.0', trial: false });
  const trial = startPlan(decideStart({ state: 'ok', record: trialRecord(3) }, '1.0.0', NOW), '1.0.0');
  assert.equal(trial, { version: '1.1.0', trial: true, deadline: trialRecord(3).tentative!.deadline, triesLeft: 2 });
  const back = startPlan(decideStart({ state: 'ok', record: trialRecord(0) }, '1.0.0', NOW), '1.0.0');
  assert.equal(back, { version: '1.0.0', trial: false, rollback: { from: '1.1.0', to: '1.0.0', reason: 'did not confirm within 3 starts' } });
  // A confirm cut short (current already names the trial version): finished, not a trial.
  const finished = startPlan(decideStart({ state: 'ok', record: trialRecord(2) }, '1.1.0', NOW), '1.1.0');
  assert.is(finished.trial, false);
  assert.is(finished.version, '1.1.0');
  assert.match(finished.note ?? '', /had confirmed/);
  // A trial decision without its record is a bug, never a silent confirmed start.
  const bogus: StartDecision = { action: 'run', version: '1.1.0' };
  assertCode(() => startPlan(bogus, '1.0.0'), 'ERR_INTERNAL');
});

decisions('keeperExitCode: 75 to re-decide, the agent status otherwise, never 75 after a stop', () => {
  const end = { code: 0 as number | null, signal: null as NodeJS.Signals | null, trial: false, stillOnTrial: false, stoppedBy: null as NodeJS.Signals | null };
  assert.is(keeperExitCode({ ...end, code: 7 }), 7, 'a confirmed agent: its code');
  assert.is(keeperExitCode({ ...end, code: 75 }), 75, 'an agent asking for a restart');
  assert.is(keeperExitCode({ ...end, code: null, signal: 'SIGKILL' }), 137, 'a signal: 128 + n');
  assert.is(keeperExitCode({ ...end, trial: true, stillOnTrial: true, code: 0 }), 75, 'a trial that exited 0 without confirming');
  assert.is(keeperExitCode({ ...end, trial: true, stillOnTrial: true, code: 1 }), 75, 'a trial that crashed');
  assert.is(keeperExitCode({ ...end, trial: true, stillOnTrial: true, code: null, signal: 'SIGKILL' }), 75, 'a trial killed at its deadline');
  assert.is(keeperExitCode({ ...end, trial: true, stillOnTrial: false, code: 4 }), 4, 'a trial that confirmed, then exited');
  assert.is(keeperExitCode({ ...end, trial: true, stillOnTrial: true, code: 3, stoppedBy: 'SIGTERM' }), 3, 'stopped: the agent code, even on trial');
  assert.is(keeperExitCode({ ...end, code: 75, stoppedBy: 'SIGTERM' }), 143, 'stopped: 75 becomes "ended by SIGTERM"');
  assert.is(keeperExitCode({ ...end, code: null, signal: 'SIGTERM', stoppedBy: 'SIGTERM' }), 143);
  assert.is(exitStatus(null, 'SIGHUP'), 129);
});

decisions('entryPath: inside the release only', () => {
  assert.is(entryPath('/s', '1.0.0', 'dist/cli/ferry.js'), '/s/releases/1.0.0/dist/cli/ferry.js');
  assert.is(entryPath('/s', '1.0.0', './a/../agent.js'), '/s/releases/1.0.0/agent.js');
  for (const bad of ['', '.', '..', '../x.js', 'a/../../x.js', '/etc/passwd']) assertCode(() => entryPath('/s', '1.0.0', bad), 'ERR_USAGE');
});

decisions('the launcher script: single-quoted values, a header saying what it is', () => {
  assert.is(shellQuote(`it's $HOME "x"`), `'it'\\''s $HOME "x"'`);
  const script = launcherScript({ home: `/x/a b'c`, node: '/usr/bin/node', keeper: 'dist/cli/ferry.js', entry: 'agent.js' });
  assert.ok(script.startsWith('#!/bin/sh\n'));
  assert.match(script, /never changes/);
  assert.ok(script.includes(`home='/x/a b'\\''c'`));
  assert.ok(script.includes(`entry='agent.js'`));
});

decisions.run();

// ---------------------------------------------------------------------------------------------
// Fake agents and real self homes

type AgentKind = 'confirm' | 'crash' | 'hang' | 'exit0' | 'exit75';

const dist = (path: string) => pathToFileURL(join(ROOT, 'dist', path)).href;

/**
 * A tiny agent. Each start appends one JSON line to $AGENT_LOG (its version, arguments, the
 * keeper's variables, its pid). 'confirm' confirms a trial of itself the way SelfUpdate.confirm
 * does (switch `current`, then write the cleared record), logs it, then stays up until SIGTERM
 * (or exits with N when given the argument exit=N). 'hang' never confirms and also starts a
 * helper in its own process group, whose pid it logs. Staying agents answer SIGTERM by exiting
 * with $AGENT_TERM_CODE (default 0).
 */
function agentSource(kind: AgentKind): string {
  return `import { appendFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { readBootRecord, writeBootRecord } from ${JSON.stringify(dist('core/self/boot-record.js'))};
import { confirm } from ${JSON.stringify(dist('core/self/boot-decision.js'))};
import { switchCurrent } from ${JSON.stringify(dist('core/device/switch.js'))};
import { homeLayout } from ${JSON.stringify(dist('core/device/layout.js'))};
const home = process.env.FERRY_SELF_HOME;
const version = process.env.FERRY_SELF_VERSION;
const note = (event, extra = {}) => appendFileSync(process.env.AGENT_LOG, JSON.stringify({ event, kind: ${JSON.stringify(kind)}, version, pid: process.pid, ...extra }) + '\\n');
note('start', { args: process.argv.slice(2), home, mark: process.env.AGENT_MARK ?? null, file: process.argv[1] });
process.on('SIGTERM', () => { note('sigterm'); process.exit(Number(process.env.AGENT_TERM_CODE ?? 0)); });
const kind = ${JSON.stringify(kind)};
if (kind === 'crash') throw new Error('broken at start');
if (kind === 'exit0') process.exit(0);
if (kind === 'exit75') process.exit(75);
if (kind === 'confirm') {
  const read = await readBootRecord(home);
  if (read.state === 'ok' && read.record.tentative?.version === version) {
    const done = confirm(read.record, version, new Date());
    await switchCurrent(homeLayout(home), version);
    await writeBootRecord(home, done.write);
    note('confirmed');
  }
  const exit = process.argv.slice(2).find((a) => a.startsWith('exit='));
  if (exit) process.exit(Number(exit.slice(5)));
}
if (kind === 'hang') {
  const helper = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
  note('helper', { helper: helper.pid });
}
setInterval(() => {}, 1000);
`;
}

/** A stand-in keeper inside a release: the built CLI of this checkout (what S/current/<keeper> is in production). */
const KEEPER_SOURCE = `const { runCli } = await import(${JSON.stringify(dist('cli/main.js'))});\nawait runCli(process.argv.slice(2));\n`;

interface AgentLine {
  event: string;
  kind: AgentKind;
  version: string;
  pid: number;
  args?: string[];
  home?: string;
  mark?: string | null;
  file?: string;
  helper?: number;
}

interface SelfHome {
  home: string;
  log: string;
  lines(): Promise<AgentLine[]>;
  starts(): Promise<AgentLine[]>;
  record(): Promise<BootRecord>;
  current(): Promise<string | null>;
}

let repo: TestRepo;
const temps: TempDir[] = [];
/** Every process a test started, and every agent (by its logged pid): stopped at the end. */
const started = new Set<number>();

/** A ferry home (real ferry.json trusting `trusted`) at <temp>/<dirName>, and its agent log. */
async function emptySelfHome(dirName = 'self', trusted: TestRepo = repo): Promise<SelfHome> {
  const tmp = await tempDir('ferry-self-launch-');
  temps.push(tmp);
  const home = join(tmp.path, dirName);
  await initDevice({ home, trustBytes: await trusted.trust(), sources: [trusted.repo], platform: 'linux', arch: 'x64' });
  const log = join(tmp.path, 'agent.log');
  await writeFile(log, '');
  const lines = async () => {
    const text = await readFile(log, 'utf8');
    const parsed = text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as AgentLine);
    for (const l of parsed) {
      started.add(l.pid);
      if (l.helper) started.add(l.helper);
    }
    return parsed;
  };
  return {
    home,
    log,
    lines,
    starts: async () => (await lines()).filter((l) => l.event === 'start'),
    async record() {
      const read = await readBootRecord(home);
      assert.is(read.state, 'ok', 'the boot record reads');
      return (read as { record: BootRecord }).record;
    },
    current: () => readCurrent(homeLayout(home)),
  };
}

/** A self home built by hand: releases/<v>/{agent.mjs,keeper.mjs} for each version, `current` on `current`. */
async function selfHome(releases: Record<string, AgentKind>, current: string, dirName?: string): Promise<SelfHome> {
  const s = await emptySelfHome(dirName);
  for (const [version, kind] of Object.entries(releases)) {
    const dir = homeLayout(s.home).release(version);
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'agent.mjs'), agentSource(kind));
    await writeFile(join(dir, 'keeper.mjs'), KEEPER_SOURCE);
  }
  await switchCurrent(homeLayout(s.home), current);
  return s;
}

/**
 * A self home as the agent leaves it before its restart: 1.0.0 (a confirming agent) installed by
 * apply, then 1.1.0 (`trialKind`) staged by a real Updater.stage from a real signed repository
 * (the journal says `staged`), as the agent's prepare() does. The trial itself is begun by the test.
 */
async function stagedSelfHome(trialKind: AgentKind): Promise<SelfHome> {
  const own = await makeRepo();
  temps.push({ path: own.dir, cleanup: () => own.cleanup() });
  const s = await emptySelfHome('self', own);
  await own.release('1.0.0', { 'agent.mjs': agentSource('confirm'), 'keeper.mjs': KEEPER_SOURCE });
  const u = await Updater.open({ home: s.home, sources: [createDirSource(own.repo)], patcher: createBsdiffPatcher(), health: null });
  try {
    assert.is((await u.apply()).status, 'committed');
    await own.release('1.1.0', { 'agent.mjs': agentSource(trialKind), 'keeper.mjs': KEEPER_SOURCE });
    assert.is((await u.stage()).status, 'staged');
  } finally {
    await u.close();
  }
  return s;
}

/** Begins a trial of `version` from `previous`, as SelfUpdate.switch does. */
async function beginTrial(s: SelfHome, version: string, previous: string, tries: number, deadlineMs: number): Promise<BootRecord> {
  const record = beginSwitch(await s.record(), { version, previous, tries, deadlineMs }, new Date());
  await writeBootRecord(s.home, record);
  return record;
}

interface Proc {
  child: ChildProcess;
  output(): string;
  /** When (Date.now()) output matching `pattern` first arrived, or undefined. */
  seenAt(pattern: RegExp): number | undefined;
  /** Resolves with the exit status (128 + n for a signal); rejects after `ms`. */
  exit(ms?: number): Promise<number>;
}

function track(child: ChildProcess): Proc {
  started.add(child.pid!);
  let out = '';
  const chunks: { at: number; text: string }[] = [];
  const keep = (d: Buffer) => {
    out += d;
    chunks.push({ at: Date.now(), text: String(d) });
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<number>((resolve) => child.once('exit', (code, signal) => resolve(exitStatus(code, signal))));
  return {
    child,
    output: () => out,
    seenAt: (pattern) => chunks.find((c) => pattern.test(c.text))?.at,
    exit: (ms = 20_000) => within(exited, ms, () => `pid ${child.pid} to exit; output:\n${out}`),
  };
}

/** `ferry self launch --home S --entry agent.mjs -- <args>` as a child process of this test. */
function keeper(s: SelfHome, args: string[] = [], env: NodeJS.ProcessEnv = {}): Proc {
  const child = spawn(process.execPath, [join(ROOT, 'dist/cli/ferry.js'), 'self', 'launch', '--home', s.home, '--entry', 'agent.mjs', '--', ...args], {
    cwd: ROOT,
    env: { ...process.env, AGENT_LOG: s.log, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return track(child);
}

function within<T>(p: Promise<T>, ms: number, what: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => { timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what()}`)), ms); }),
  ]);
}

/** Polls `check` every 25 ms until it returns a value other than undefined; fails after `ms`. */
async function waitFor<T>(check: () => Promise<T | undefined>, ms: number, what: string): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** The first agent line matching `pred`, waited for. */
function line(s: SelfHome, pred: (l: AgentLine) => boolean, what: string, ms = 15_000): Promise<AgentLine> {
  return waitFor(async () => (await s.lines()).find(pred), ms, what);
}

/** The self home's history, read through a real Updater. */
async function history(s: SelfHome) {
  const u = await Updater.open({ home: s.home, sources: [], patcher: createBsdiffPatcher(), health: null });
  try {
    return await u.history();
  } finally {
    await u.close();
  }
}

function stopAll(): void {
  for (const pid of started) {
    for (const target of [-pid, pid]) {
      try {
        process.kill(target, 'SIGKILL');
      } catch {
        // not running (or not a group leader)
      }
    }
  }
  started.clear();
}

// ---------------------------------------------------------------------------------------------
// The keeper, for real

const launch = suite('self launch: the keeper with real agents');

launch.before(async () => {
  // The agents import the built core/self; the keeper is the built CLI.
  await stat(join(ROOT, 'dist/core/self/boot-record.js'));
  await stat(join(ROOT, 'dist/cli/main.js'));
  repo = await makeRepo();
});
launch.after.each(() => stopAll());
launch.after(async () => {
  stopAll();
  for (const t of temps.splice(0)) await t.cleanup();
  await repo.cleanup();
});

launch('a confirmed run: the current version, its arguments and environment, its exit code passed through', async () => {
  const s = await selfHome({ '1.0.0': 'confirm', '1.1.0': 'crash' }, '1.0.0');
  const k = keeper(s, ['exit=7', '--flag', 'a b'], { AGENT_MARK: 'from-the-caller' });
  assert.is(await k.exit(), 7, k.output());
  const [start] = await s.starts();
  assert.is(start!.version, '1.0.0');
  assert.equal(start!.args, ['exit=7', '--flag', 'a b']);
  assert.is(start!.home, s.home, 'FERRY_SELF_HOME is the self home');
  assert.is(start!.mark, 'from-the-caller', "the keeper's environment reaches the agent");
  assert.is(start!.file, join(s.home, 'releases', '1.0.0', 'agent.mjs'), 'run from its release folder, not through current');
  assert.equal(await s.record(), emptyBootRecord(), 'nothing written without a trial');
});

launch('no current: ERR_NOT_INSTALLED, nothing started', async () => {
  const s = await emptySelfHome();
  const k = keeper(s);
  assert.is(await k.exit(), 6, k.output());
  assert.match(k.output(), /ERR_NOT_INSTALLED/);
  assert.is((await s.starts()).length, 0);
});

launch('a confirmed agent exiting 75 (it began a self-update) makes the keeper exit 75', async () => {
  const s = await selfHome({ '1.0.0': 'exit75' }, '1.0.0');
  const k = keeper(s);
  assert.is(await k.exit(), RESTART_EXIT_CODE, k.output());
});

launch('a trial that confirms: current moves, the record clears, and it keeps running past its deadline', async () => {
  const s = await selfHome({ '1.0.0': 'confirm', '1.1.0': 'confirm' }, '1.0.0');
  const deadlineMs = 6_000;
  const begun = await beginTrial(s, '1.1.0', '1.0.0', 3, deadlineMs);
  const k = keeper(s, [], { AGENT_TERM_CODE: '0' });
  const agent = await line(s, (l) => l.event === 'confirmed', 'the trial agent to confirm');
  assert.is(agent.version, '1.1.0');
  assert.is(await s.current(), '1.1.0');
  assert.equal(await s.record(), emptyBootRecord());
  // Past the deadline (and a margin) it still runs: the keeper kills only an unconfirmed trial.
  await new Promise((r) => setTimeout(r, Math.max(0, Date.parse(begun.tentative!.deadline) - Date.now()) + 1_000));
  assert.ok(alive(agent.pid), 'the confirmed agent runs past the deadline');
  assert.ok(alive(k.child.pid!), 'and so does its keeper');
  k.child.kill('SIGTERM');
  assert.is(await k.exit(), 0, k.output());
  assert.ok((await s.lines()).some((l) => l.event === 'sigterm' && l.pid === agent.pid), 'the SIGTERM reached the agent');
});

launch('a trial that crashes: 75 at each start, the tries fall, then the rollback runs the previous version and refuses the new one, with a history record', async () => {
  const s = await stagedSelfHome('crash');
  await beginTrial(s, '1.1.0', '1.0.0', 2, 60_000);

  for (const left of [1, 0]) {
    const k = keeper(s, ['exit=0']);
    assert.is(await k.exit(), RESTART_EXIT_CODE, k.output());
    assert.is((await s.record()).tentative?.triesLeft, left, `a try spent before the start (${left} left)`);
    assert.is(await s.current(), '1.0.0', 'current stays on the confirmed version');
  }
  const k = keeper(s, ['exit=0']);
  assert.is(await k.exit(), 0, k.output());
  assert.match(k.output(), /rolled back: 1\.1\.0 did not confirm within 2 starts; back on 1\.0\.0/);
  const versions = (await s.starts()).map((l) => l.version);
  assert.equal(versions, ['1.1.0', '1.1.0', '1.0.0'], 'two tries of 1.1.0, then 1.0.0');
  const record = await s.record();
  assert.is(record.tentative, null);
  assert.equal(record.refused.map((r) => [r.version, r.reason]), [['1.1.0', 'did not confirm within 2 starts']]);
  const rolledBack = (await history(s)).find((h) => h.to === '1.1.0');
  assert.ok(rolledBack, 'history has the attempt at 1.1.0');
  assert.is(rolledBack!.outcome, 'rolled-back');
  assert.is(rolledBack!.errorCode, 'ERR_UNHEALTHY');
  assert.match(rolledBack!.message ?? '', /1\.1\.0 did not confirm within 2 starts; back on 1\.0\.0/);
  // Refused: the next start runs 1.0.0 again, not 1.1.0.
  const again = keeper(s, ['exit=0']);
  assert.is(await again.exit(), 0, again.output());
  assert.is((await s.starts()).at(-1)!.version, '1.0.0');
});

launch('a rollback while the self home is busy: the keeper waits for its lock and still writes the history record', async () => {
  const s = await stagedSelfHome('crash');
  await beginTrial(s, '1.1.0', '1.0.0', 1, 60_000);
  const first = keeper(s, ['exit=0']);
  assert.is(await first.exit(), RESTART_EXIT_CODE, first.output());
  // Another ferry process holds the home (as a `ferry status` or a stopping agent may) when the rollback comes.
  const holder = await Updater.open({ home: s.home, sources: [], patcher: createBsdiffPatcher(), health: null });
  let k: Proc;
  try {
    k = keeper(s, ['exit=0']);
    await waitFor(async () => (k.seenAt(/rolled back: 1\.1\.0/) ? true : undefined), 15_000, 'the keeper to decide the rollback');
    await new Promise((r) => setTimeout(r, 1_000));
    assert.ok(alive(k.child.pid!), 'the keeper waits while the home is busy');
    assert.is((await s.starts()).length, 1, 'and has not started 1.0.0 yet');
  } finally {
    await holder.close();
  }
  assert.is(await k.exit(), 0, k.output());
  assert.not.match(k.output(), /could not record/);
  const rolledBack = (await history(s)).find((h) => h.to === '1.1.0');
  assert.is(rolledBack?.outcome, 'rolled-back');
  assert.equal((await s.starts()).map((l) => l.version), ['1.1.0', '1.0.0']);
});

launch('a trial that exits 0 at once counts as a crash: 75, then the rollback (no staged attempt: no history record, still refused)', async () => {
  const s = await selfHome({ '1.0.0': 'confirm', '1.2.0': 'exit0' }, '1.0.0');
  await beginTrial(s, '1.2.0', '1.0.0', 1, 60_000);
  const first = keeper(s, ['exit=0']);
  assert.is(await first.exit(), RESTART_EXIT_CODE, first.output());
  const second = keeper(s, ['exit=0']);
  assert.is(await second.exit(), 0, second.output());
  assert.equal((await s.starts()).map((l) => l.version), ['1.2.0', '1.0.0']);
  assert.equal((await s.record()).refused.map((r) => r.version), ['1.2.0']);
  assert.is((await history(s)).length, 0, 'nothing staged, nothing to record');
  const status = json<{ currentVersion: string; tentative: unknown; refused: { version: string; reason: string }[] }>(ok(ferry('self', 'status', '--home', s.home, '--json'), 'ferry self status'));
  assert.is(status.currentVersion, '1.0.0');
  assert.is(status.tentative, null);
  assert.equal(status.refused.map((r) => [r.version, r.reason]), [['1.2.0', 'did not confirm within 1 start']]);
});

launch('ferry self status: the trial under way, in words and in JSON', async () => {
  const s = await selfHome({ '1.0.0': 'confirm', '1.1.0': 'confirm' }, '1.0.0');
  const begun = await beginTrial(s, '1.1.0', '1.0.0', 3, 60_000);
  const human = ok(ferry('self', 'status', '--home', s.home), 'ferry self status').stdout;
  assert.match(human, /current 1\.0\.0/);
  assert.ok(human.includes(`trial: 1.1.0 (from 1.0.0), 3 of 3 starts left, must confirm by ${begun.tentative!.deadline}`), human);
  const status = json<{ tentative: { version: string; triesLeft: number } }>(ok(ferry('self', 'status', '--home', s.home, '--json'), 'ferry self status --json'));
  assert.equal([status.tentative.version, status.tentative.triesLeft], ['1.1.0', 3]);
});

launch('a trial that hangs is killed with its process group at the deadline, then rolled back', async () => {
  const s = await selfHome({ '1.0.0': 'confirm', '1.3.0': 'hang' }, '1.0.0');
  const begun = await beginTrial(s, '1.3.0', '1.0.0', 3, 8_000);
  const deadline = Date.parse(begun.tentative!.deadline);
  const k = keeper(s);
  const helper = await line(s, (l) => l.event === 'helper', 'the hung agent to start its helper');
  const agentPid = helper.pid;
  assert.ok(alive(agentPid) && alive(helper.helper!), 'the agent and its helper run');
  assert.ok(Date.now() < deadline, 'started before its deadline');
  const code = await k.exit(deadline - Date.now() + 15_000);
  assert.is(code, RESTART_EXIT_CODE, k.output());
  const killedAt = k.seenAt(/1\.3\.0 did not confirm by its deadline/);
  assert.ok(killedAt !== undefined, `the keeper says it killed the agent at the deadline\n${k.output()}`);
  assert.ok(killedAt! >= deadline, `not killed before the deadline (${deadline - killedAt!} ms early)`);
  assert.ok(killedAt! - deadline < 15_000, `killed near the deadline (${killedAt! - deadline} ms after)`);
  await waitFor(async () => (!alive(agentPid) && !alive(helper.helper!) ? true : undefined), 5_000, 'the agent and its helper to be gone');
  assert.is((await s.lines()).filter((l) => l.event === 'sigterm').length, 0, 'killed, not asked');
  // The next start is past the deadline: back on 1.0.0, 1.3.0 refused.
  const next = keeper(s, ['exit=0']);
  assert.is(await next.exit(), 0, next.output());
  assert.is((await s.starts()).at(-1)!.version, '1.0.0');
  assert.match((await s.record()).refused[0]?.reason ?? '', /^did not confirm before /);
});

launch('SIGTERM to the keeper reaches a trial agent, and the keeper exits with its code, not 75', async () => {
  const s = await selfHome({ '1.0.0': 'confirm', '1.3.0': 'hang' }, '1.0.0');
  await beginTrial(s, '1.3.0', '1.0.0', 3, 60_000);
  const k = keeper(s, [], { AGENT_TERM_CODE: '3' });
  const agent = await line(s, (l) => l.event === 'helper', 'the trial agent to start');
  k.child.kill('SIGTERM');
  assert.is(await k.exit(), 3, k.output());
  assert.ok((await s.lines()).some((l) => l.event === 'sigterm' && l.pid === agent.pid), 'the agent got the SIGTERM');
  assert.is((await s.record()).tentative?.triesLeft, 2, 'still on trial: the next start decides');
});

launch.run();

// ---------------------------------------------------------------------------------------------
// The launcher script, run by /bin/sh

const launcher = suite('self launch: the launcher script under /bin/sh');

launcher.before(async () => {
  repo = await makeRepo();
});
launcher.after.each(() => stopAll());
launcher.after(async () => {
  stopAll();
  for (const t of temps.splice(0)) await t.cleanup();
  await repo.cleanup();
});

/** Writes the launcher with `ferry self launcher --out` (the real command) and runs it with /bin/sh. */
async function runLauncher(s: SelfHome, keeperFile: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<Proc> {
  const out = join(s.home, '..', 'launcher.sh');
  const made = spawn(process.execPath, [join(ROOT, 'dist/cli/ferry.js'), 'self', 'launcher', '--home', s.home, '--entry', 'agent.mjs', '--keeper', keeperFile, '--out', out], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const p = track(made);
  assert.is(await p.exit(), 0, p.output());
  assert.is((await stat(out)).mode & 0o777, 0o755, 'written executable');
  const sh = spawn('/bin/sh', [out, ...args], { cwd: '/', env: { ...process.env, AGENT_LOG: s.log, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  return track(sh);
}

const AWKWARD_DIR = `self home's dir`;

launcher('loops on 75: a trial that crashes twice, then the rollback runs the confirmed agent; SIGTERM is forwarded and ends the loop', async () => {
  const s = await selfHome({ '1.0.0': 'confirm', '1.1.0': 'crash' }, '1.0.0', AWKWARD_DIR);
  assert.ok(s.home.includes(" ") && s.home.includes("'"), 'the home path has a space and a quote');
  await beginTrial(s, '1.1.0', '1.0.0', 2, 60_000);
  const sh = await runLauncher(s, 'keeper.mjs', ['--some', 'arg'], { AGENT_TERM_CODE: '5' });
  const confirmed = await line(s, (l) => l.event === 'start' && l.version === '1.0.0', 'the rollback to start 1.0.0', 30_000);
  assert.equal((await s.starts()).map((l) => l.version), ['1.1.0', '1.1.0', '1.0.0']);
  assert.equal(confirmed.args, ['--some', 'arg'], "the launcher's arguments reach the agent");
  assert.is(confirmed.home, s.home);
  assert.equal((await s.record()).refused.map((r) => r.version), ['1.1.0']);
  sh.child.kill('SIGTERM');
  assert.is(await sh.exit(), 5, `the agent's code comes back through keeper and launcher\n${sh.output()}`);
  assert.ok((await s.lines()).some((l) => l.event === 'sigterm' && l.pid === confirmed.pid), 'the SIGTERM reached the agent');
  assert.is((await s.starts()).length, 3, 'nothing started after the stop');
});

launcher('a stop signal ends the loop even when the keeper answers it with 75', async () => {
  // A stand-in keeper that counts its starts and exits 75 on SIGTERM: the script alone must not loop.
  const s = await selfHome({ '1.0.0': 'confirm' }, '1.0.0', AWKWARD_DIR);
  const fake = `import { appendFileSync } from 'node:fs';
appendFileSync(process.env.AGENT_LOG, JSON.stringify({ event: 'start', kind: 'confirm', version: 'keeper', pid: process.pid, args: process.argv.slice(2) }) + '\\n');
process.on('SIGTERM', () => process.exit(75));
setInterval(() => {}, 1000);
`;
  await writeFile(join(homeLayout(s.home).release('1.0.0'), 'fake-keeper.mjs'), fake);
  const sh = await runLauncher(s, 'fake-keeper.mjs', ['x']);
  const first = await line(s, (l) => l.event === 'start', 'the stand-in keeper to start');
  assert.equal(first.args, ['self', 'launch', '--home', s.home, '--entry', 'agent.mjs', '--', 'x'], 'the keeper command line, home quoted right');
  sh.child.kill('SIGTERM');
  assert.is(await sh.exit(), RESTART_EXIT_CODE, sh.output());
  assert.ok(!alive(first.pid), 'the keeper got the SIGTERM and ended');
  assert.is((await s.starts()).length, 1, 'not started again');
});

launcher('ferry self launcher: the keeper defaults to the entry for ferry itself, to node_modules/ferry for an embedding agent', () => {
  const own = ok(ferry('self', 'launcher', '--home', 'rel/home', '--node', '/opt/node/bin/node'), 'ferry self launcher').stdout;
  assert.ok(own.includes(`home='${join(ROOT, 'rel/home')}'`), 'the home made absolute');
  assert.ok(own.includes(`node='/opt/node/bin/node'`));
  assert.ok(own.includes(`keeper='dist/cli/ferry.js'`) && own.includes(`entry='dist/cli/ferry.js'`));
  const embedded = ok(ferry('self', 'launcher', '--home', '/s', '--entry', 'agent.js'), 'ferry self launcher --entry').stdout;
  assert.ok(embedded.includes(`keeper='node_modules/ferry/dist/cli/ferry.js'`) && embedded.includes(`entry='agent.js'`));
  assert.ok(embedded.includes(`node='${process.execPath}'`), 'node defaults to the one running ferry');
  const outside = ferry('self', 'launcher', '--home', '/s', '--entry', '../agent.js');
  assert.is(outside.status, 2, outside.stderr);
  assert.match(outside.stderr, /ERR_USAGE/);
});

launcher('a keeper exiting 75 without a stop is started again', async () => {
  const s = await selfHome({ '1.0.0': 'confirm' }, '1.0.0');
  // Exits 75 on its first two starts, then 0: the script must run it three times.
  const counting = `import { appendFileSync, readFileSync } from 'node:fs';
const n = readFileSync(process.env.AGENT_LOG, 'utf8').split('\\n').filter(Boolean).length;
appendFileSync(process.env.AGENT_LOG, JSON.stringify({ event: 'start', kind: 'confirm', version: 'keeper', pid: process.pid }) + '\\n');
process.exit(n < 2 ? 75 : 9);
`;
  await writeFile(join(homeLayout(s.home).release('1.0.0'), 'counting-keeper.mjs'), counting);
  const sh = await runLauncher(s, 'counting-keeper.mjs', []);
  assert.is(await sh.exit(), 9, sh.output());
  assert.is((await s.starts()).length, 3);
});

launcher.run();
