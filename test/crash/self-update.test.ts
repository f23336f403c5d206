// ferry updates ITSELF, end to end (issue 12; ARCHITECTURE.md "Self-update"): real ferry
// trees (test/helpers/self-home.ts) published with the real `ferry release` into a real signed
// repository, a self home S installed with `ferry update`, and the agent started the production
// way, through the launcher script `ferry self launcher` wrote:
//   sh <launcher> agent --home APP --listen 127.0.0.1:PORT -- node server.js
// The agent supervises examples/app under `ferry run` while this process keeps a bounded load on
// it; every case must leave 0 failed requests, and the same `ferry run` and app process serving.
//   1.0.0 → 1.1.0   the agent switches, restarts through the launcher, the 1.1.0 code runs (its
//                   --version, its own start line) and confirms: history committed, no trial left;
//   1.2.0 crashes at start, 1.3.0 hangs, 1.4.0 exits 0 at once: each is rolled back to 1.1.0 by
//                   the keeper, on its own, within the deadline (the time to recovery is printed),
//                   history says why, `ferry self status` lists it refused, and later checks do not
//                   switch to it again;
//   cleanup --keep 1 while everything runs leaves the running releases alone, and the agent still
//                   updates afterwards, by delta (the bspatch worker starts from the running release).
// Loopback only; every wait is bounded; every process started here is stopped by its pid.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { readFile, readlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { UpdateRecord } from '../../core/spec.ts';
import type { CleanupResult } from '../../core/update/housekeeping.ts';
import { requestSupervisor, type SupervisorStatus } from '../../plugins/run/control.ts';
import { exampleAppTree } from '../helpers/example-app.ts';
import { get, Load } from '../helpers/load.ts';
import { freePort } from '../helpers/net.ts';
import { alive } from '../helpers/proc.ts';
import { makeRepo, type TestRepo } from '../helpers/repo.ts';
import { DEFAULT_TRIES } from '../../plugins/self/self-update.ts';
import { baseSelfTree, makeSelfHome, mustCli, runCli, variantLabels, type SelfHome } from '../helpers/self-home.ts';
import { keepLines, timedEvents, type TimedAgentEvent, type TimedLine } from '../helpers/agent-log.ts';
import { within } from '../helpers/within.ts';

const test = suite('self-update end to end');

/**
 * Starts a new version gets, and the time it has to confirm, as `ferry agent --self-tries` and
 * `--self-confirm-within` set them: the default tries, and a deadline shorter than the default
 * 120 s (so a hang is caught sooner) yet long enough for a confirming start on a loaded machine:
 * switch to confirm takes 2-5 s on CI with a second test file beside it (the 1.1.0 case here,
 * test/crash/self-update-kill.test.ts's table), 4x under 20 s. The hang case waits it out whole.
 */
const TRIES = DEFAULT_TRIES;
const CONFIRM_WITHIN_MS = 20_000;
/** Bounds of each case: a publish of a ferry tree (~10 s, a delta ~6 s more), then up to the deadline. */
const CASE_MS = CONFIRM_WITHIN_MS + 90_000;
const LOAD_LIMITS = { maxMs: CASE_MS + 60_000, maxRequests: 1_000_000 };

let self: SelfHome;
let appRepo: TestRepo;
let appHome: string;
let port: number;
let launched: Launched;
let supervisorBefore: SupervisorStatus;

// ---------------------------------------------------------------------------------------------
// The launcher, as a process whose every output line is kept with the time it arrived

type Line = TimedLine;
type Event = TimedAgentEvent;

class Launched {
  readonly lines: Line[] = [];
  readonly started = Date.now();
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  constructor(readonly child: ChildProcess) {
    keepLines(child, this.lines);
    this.exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  }
  /** The agent's JSON log lines (stdout lines that are JSON objects; the app's own lines are not). */
  events(since = 0): Event[] {
    return timedEvents(this.lines, since);
  }
  /** The start lines the variants' own code printed (test/helpers/self-home.ts), with their times. */
  starts(since = 0): { at: number; label: string }[] {
    return this.lines.filter((l) => l.stream === 'err' && l.at >= since).flatMap((l) => variantLabels(l.text).map((label) => ({ at: l.at, label })));
  }
  /** The last `n` lines with their times (s since the launcher started); a repeated check counted once. */
  tail(n = 60): string {
    const quiet = /"event":"(check|up-to-date)"/;
    return this.lines
      .filter((l, i) => !quiet.test(l.text) || !quiet.test(this.lines[i + 1]?.text ?? ''))
      .slice(-n)
      .map((l) => `${((l.at - this.started) / 1000).toFixed(1)} ${l.stream}: ${l.text}`)
      .join('\n');
  }
}

function startLauncher(): Launched {
  const child = spawn('sh', [
    self.launcher!, 'agent', '--home', appHome, '--log-format', 'json',
    '--self-tries', String(TRIES), '--self-confirm-within', `${CONFIRM_WITHIN_MS / 1000}s`,
    '--listen', `127.0.0.1:${port}`, '--health', '/healthz', '--drain-timeout', '5s', '--', process.execPath, 'server.js',
  ], { cwd: self.dir, stdio: ['ignore', 'pipe', 'pipe'], detached: true, env: { ...process.env, NO_COLOR: '1' } });
  return new Launched(child);
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls `probe` until it returns a value (not undefined); bounded, and over if the launcher ended. */
async function until<T>(probe: () => Promise<T | undefined> | T | undefined, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const v = await probe();
    if (v !== undefined) return v;
    if (launched.child.exitCode !== null || launched.child.signalCode !== null) break;
    await sleep(100);
  }
  throw new Error(`no ${what} within ${timeoutMs} ms; the launcher's last lines:\n${launched.tail()}`);
}

// ---------------------------------------------------------------------------------------------
// Reading the self home with the checkout's CLI

interface SelfStatus {
  currentVersion: string | null;
  tentative: { version: string; previous: string; triesLeft: number; deadline: string } | null;
  refused: { version: string; reason: string; at: string }[];
  damaged: unknown;
}

async function selfStatus(): Promise<SelfStatus> {
  return JSON.parse((await mustCli(['self', 'status', '--home', self.home, '--json'], 'self status')).stdout) as SelfStatus;
}

/**
 * A command on the self home, retried while the agent holds its lock for a moment (each round's
 * prepare() opens it); its JSON output.
 */
async function onSelfHome<T>(args: string[]): Promise<T> {
  let last = '';
  for (let i = 0; i < 40; i++) {
    const r = await runCli([...args, '--home', self.home, '--json']);
    if (r.code === 0) return JSON.parse(r.stdout) as T;
    last = r.stderr;
    if (!/ERR_BUSY/.test(last)) break;
    await sleep(250);
  }
  throw new Error(`ferry ${args.join(' ')} --home S failed: ${last}`);
}

const selfHistory = () => onSelfHome<UpdateRecord[]>(['history']);

async function currentOf(home: string): Promise<string> {
  return (await readlink(join(home, 'current'))).replace(/^releases\//, '');
}

/** Processes whose command line names `dir` (our temp folders): the safety net after the suite. */
function processesUnder(dir: string): number[] {
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${name}/cmdline`, 'utf8').includes(dir)) pids.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

// ---------------------------------------------------------------------------------------------

test.before(async () => {
  const base = await baseSelfTree();
  console.log(`  base ferry tree: ${base.how} in ${(base.ms / 1000).toFixed(1)} s`);
  self = await makeSelfHome();
  appRepo = await makeRepo({ dir: join(self.dir, 'app-publisher') });
  await appRepo.release('1.0.0', exampleAppTree('1.0.0'), { platform: process.platform, arch: process.arch });
  appHome = join(self.dir, 'app');
  await mustCli(['init', appHome, '--trust', appRepo.trustPath, '--source', appRepo.repo], 'init app home');
  await mustCli(['update', '--home', appHome], 'install app 1.0.0');
  // Check every second, so each self-update step is seen at once.
  const config = JSON.parse(await readFile(join(appHome, 'ferry.json'), 'utf8')) as { policy: Record<string, unknown> };
  config.policy.checkInterval = 1;
  await writeFile(join(appHome, 'ferry.json'), JSON.stringify(config, null, 2) + '\n');
  port = await freePort();
  launched = startLauncher();
  await until(() => launched.events().find((e) => e.event === 'app'), 30_000, "the agent's app event");
  // ferry run's socket refuses connections until the first app generation listens on it.
  await until(() => get(port, '/', false, 2_000).then((r) => (r.status === 200 ? true : undefined), () => undefined), 30_000, 'the app answering');
  supervisorBefore = await until(() => requestSupervisor(appHome, { op: 'status' }, 2_000).then((s) => (s.active?.state === 'active' ? s : undefined), () => undefined), 30_000, 'an active app generation');
});

test.after(async () => {
  if (launched && launched.child.exitCode === null && launched.child.signalCode === null) {
    launched.child.kill('SIGTERM');
    const ended = await within(launched.exited, 30_000, null);
    if (!ended) {
      try {
        process.kill(-launched.child.pid!, 'SIGKILL');
      } catch {
        // the group is gone
      }
    }
  }
  if (self) {
    // Anything still running from our folders (an agent or `ferry run` a failed case left behind).
    for (const pid of processesUnder(self.dir)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
    await self.cleanup();
  }
});

/** Runs `body` under a fresh bounded load and asserts that not one request failed. */
async function serving<T>(label: string, body: () => Promise<T>): Promise<{ value: T; load: Load }> {
  const load = new Load(port, LOAD_LIMITS).start();
  load.phase(label, ['1.0.0']);
  try {
    const value = await body();
    return { value, load };
  } finally {
    await load.stop();
    console.log(`  ${label}: ${load.requests} requests, ${load.failures.length} failed`);
    assert.is(load.failures.length, 0, `${label}: ${load.describe()}\nthe launcher's last lines:\n${launched.tail(150)}`);
    assert.not.ok(load.hitCap, `${label}: the load hit its bound before the case ended`);
    assert.ok(load.requests > 0, `${label}: requests were made`);
  }
}

/** The same `ferry run` still serves, with the same app process: the agent's restarts never reached them. */
async function sameSupervisor(label: string): Promise<void> {
  const now = await requestSupervisor(appHome, { op: 'status' }, 5_000);
  assert.is(now.pid, supervisorBefore.pid, `${label}: the same ferry run serves`);
  assert.is(now.active?.pid, supervisorBefore.active?.pid, `${label}: the same app process serves`);
  assert.is(now.restarts, 0, `${label}: the app was never restarted`);
}

test('the agent updates itself 1.0.0 → 1.1.0 through the launcher; the app serves throughout', async () => {
  assert.is(await currentOf(self.home), '1.0.0');
  assert.equal(launched.starts().map((s) => s.label), ['1.0.0'], 'the 1.0.0 code started the agent');
  const t0 = Date.now();
  const { load } = await serving('self-update 1.0.0 → 1.1.0', async () => {
    await self.publishVariant('1.1.0');
    const published = Date.now();
    await until(async () => ((await currentOf(self.home)) === '1.1.0' && (await selfStatus()).tentative === null ? true : undefined), CASE_MS, 'a confirmed 1.1.0');
    console.log(`  1.1.0 published in ${((published - t0) / 1000).toFixed(1)} s; switched, restarted and confirmed ${((Date.now() - published) / 1000).toFixed(1)} s later`);
  });
  void load;
  // The running code is 1.1.0: what the installed ferry says, and what the agent's own code printed.
  assert.is((await self.installed(['--version'])).stdout.trim(), '1.1.0');
  const starts = launched.starts().map((s) => s.label);
  assert.equal(starts, ['1.0.0', '1.1.0'], `the agent was started by the 1.0.0 code, then the 1.1.0 code: ${starts}`);
  const events = launched.events();
  assert.equal(events.filter((e) => e.event === 'self').map((e) => [e.version, e.trial]), [['1.0.0', false], ['1.1.0', true]], 'its log names the ferry it runs: 1.0.0, then 1.1.0 on trial');
  assert.equal(events.filter((e) => e.event === 'self-update').map((e) => [e.from, e.version]), [['1.0.0', '1.1.0']]);
  assert.equal(events.filter((e) => e.event === 'self-confirmed').map((e) => [e.from, e.version]), [['1.0.0', '1.1.0']]);
  const history = await selfHistory();
  const record = history.find((h) => h.to === '1.1.0');
  assert.ok(record, `the self home's history has the update to 1.1.0: ${JSON.stringify(history)}`);
  assert.is(record.from, '1.0.0');
  assert.is(record.outcome, 'committed');
  const status = await selfStatus();
  assert.is(status.tentative, null, 'no trial left in the boot record');
  assert.is(status.currentVersion, '1.1.0');
  assert.equal(status.refused, []);
  await sameSupervisor('1.0.0 → 1.1.0');
});

for (const [version, brk] of [['1.2.0', 'crash'], ['1.3.0', 'hang'], ['1.4.0', 'exit0']] as const) {
  test(`${version} ${brk === 'crash' ? 'crashes at start' : brk === 'hang' ? 'hangs at start' : 'exits 0 at once'}: back on 1.1.0 on its own, refused, not tried again`, async () => {
    const since = Date.now();
    await serving(`${version} (${brk})`, async () => {
      await self.publishVariant(version, { break: brk });
      // The first start of the broken version, then the next start of 1.1.0 after it.
      const first = await until(() => launched.starts(since).find((s) => s.label === version), CASE_MS, `a start of ${version}`);
      const back = await until(() => launched.starts(first.at).find((s) => s.label === '1.1.0'), CASE_MS, `1.1.0 started again after ${version}`);
      const status = await until(async () => { const s = await selfStatus(); return s.tentative === null ? s : undefined; }, 30_000, 'no trial in the boot record');
      const recoveryMs = back.at - first.at;
      const broken = launched.starts(since).filter((s) => s.label === version).length;
      console.log(`  ${version} (${brk}): back on 1.1.0 ${(recoveryMs / 1000).toFixed(1)} s after its first start (${broken} start${broken === 1 ? '' : 's'} of ${version}; tries ${TRIES}, deadline ${CONFIRM_WITHIN_MS / 1000} s)`);
      assert.ok(recoveryMs <= CONFIRM_WITHIN_MS + 20_000, `recovered within the deadline (+ a start): ${recoveryMs} ms`);
      assert.ok(broken >= 1 && broken <= TRIES, `${version} was started at most ${TRIES} times: ${broken}`);
      assert.is(await currentOf(self.home), '1.1.0', '`current` never left 1.1.0');
      const refused = status.refused.find((r) => r.version === version);
      assert.ok(refused, `ferry self status lists ${version} refused: ${JSON.stringify(status.refused)}`);
      // Later checks see it and leave it: a few more checks by the 1.1.0 agent, no other start of it.
      const checksBefore = launched.events(back.at).filter((e) => e.event === 'check').length;
      await until(() => (launched.events(back.at).filter((e) => e.event === 'check').length >= checksBefore + 3 ? true : undefined), 60_000, 'three more checks');
      assert.is(launched.starts(since).filter((s) => s.label === version).length, broken, `${version} was not started again`);
      const switches = launched.events(since).filter((e) => e.event === 'self-update' && e.version === version).length;
      assert.is(switches, 1, `one switch to ${version} in the agent's log, not a second`);
    });
    assert.is((await self.installed(['--version'])).stdout.trim(), '1.1.0');
    const history = await selfHistory();
    const record = history.find((h) => h.to === version);
    assert.ok(record, `the self home's history has the attempt at ${version}: ${JSON.stringify(history)}`);
    assert.is(record.from, '1.1.0');
    assert.is(record.outcome, 'rolled-back');
    assert.match(record.message ?? '', /did not confirm/, `history says why: ${record.message}`);
    assert.is(history.filter((h) => h.to === version).length, 1, `one attempt at ${version} in history`);
    await sameSupervisor(`${version} (${brk})`);
  });
}

/** `ferry restore-points cleanup --keep 1` on the self home, printed. */
async function cleanupKeep1(label: string): Promise<{ result: CleanupResult; kept: Map<string, CleanupResult['keptReleases'][number]> }> {
  const result = await onSelfHome<CleanupResult>(['restore-points', 'cleanup', '--keep', '1']);
  const describe = (k: CleanupResult['keptReleases'][number]) => `${k.version} (${k.reasons.join(', ')}${k.pins.length ? `: ${k.pins.map((p) => p.command).join(', ')}` : ''})`;
  console.log(`  cleanup --keep 1 ${label}: removed ${result.removedReleases.join(', ') || 'no release'}; kept ${result.keptReleases.map(describe).join(', ')}`);
  return { result, kept: new Map(result.keptReleases.map((k) => [k.version, k])) };
}

const hasRelease = (v: string) => existsSync(join(self.home, 'releases', v, 'dist', 'cli', 'ferry.js'));

test('restore-points cleanup --keep 1 while the agent runs leaves the running releases alone; the next update still comes by delta', async () => {
  // The agent runs from releases/1.1.0; `ferry run`, started by the 1.0.0 agent, from releases/1.0.0.
  await serving('cleanup, then 1.5.0 by delta, cleanup again', async () => {
    const first = await cleanupKeep1('on 1.1.0');
    assert.ok(first.result.removedReleases.includes('1.2.0'), 'cleanup removed what nothing needs (a refused release)');
    for (const [v, command] of [['1.1.0', 'agent'], ['1.0.0', 'run']] as const) {
      assert.ok(first.kept.get(v)?.pins.some((p) => p.command === command), `releases/${v} kept, pinned by the running ${command}: ${JSON.stringify(first.kept.get(v))}`);
      assert.ok(hasRelease(v), `releases/${v} is still there`);
    }
    // A delta from 1.1.0, the version the agent runs (the refused ones in between get one too).
    const out = await self.publishVariant('1.5.0', {}, ['--deltas', '4']);
    assert.ok(out.deltas.some((d) => d.from === '1.1.0'), 'published with a delta from 1.1.0');
    await until(async () => ((await currentOf(self.home)) === '1.5.0' && (await selfStatus()).tentative === null ? true : undefined), CASE_MS, 'a confirmed 1.5.0');
    // Now releases/1.0.0 is neither current, previous nor a restore point: only the `ferry run`
    // executing from it keeps it.
    const second = await cleanupKeep1('on 1.5.0');
    assert.equal(second.kept.get('1.0.0')?.reasons, ['pinned'], `releases/1.0.0 kept for the running ferry run alone: ${JSON.stringify(second.kept.get('1.0.0'))}`);
    assert.ok(hasRelease('1.0.0'), 'releases/1.0.0 is still there');
  });
  const history = await selfHistory();
  const record = history.find((h) => h.to === '1.5.0');
  assert.ok(record, 'history has 1.5.0');
  assert.is(record.from, '1.1.0');
  assert.is(record.outcome, 'committed');
  assert.is(record.kind, 'delta', 'staged by delta: the bspatch worker ran from the running release');
  assert.not.ok(record.fellBackToFull, 'the delta did not fail over to the full artifact');
  assert.equal(launched.starts().map((s) => s.label).at(-1), '1.5.0');
  await sameSupervisor('cleanup and 1.5.0');
});

test('a stop reaches every process: the launcher exits, ferry run and the app are gone, and so is the pin on releases/1.0.0', async () => {
  const supervisor = supervisorBefore.pid;
  const app = supervisorBefore.active!.pid;
  launched.child.kill('SIGTERM');
  const ended = await within(launched.exited, 30_000, null);
  assert.ok(ended, 'the launcher exited within 30 s of SIGTERM');
  assert.is(ended.code, 0, `the launcher exits 0 on SIGTERM: ${JSON.stringify(ended)}\n${launched.tail()}`);
  const deadline = Date.now() + 15_000;
  while ((alive(supervisor) || alive(app)) && Date.now() < deadline) await sleep(100);
  assert.not.ok(alive(supervisor), 'ferry run is gone');
  assert.not.ok(alive(app), 'the app is gone');
  // Nothing runs from releases/1.0.0 any more, so the same cleanup removes it now.
  const after = await cleanupKeep1('after the stop');
  assert.ok(after.result.removedReleases.includes('1.0.0'), 'releases/1.0.0 removed once nothing ran from it');
});

test.run();
