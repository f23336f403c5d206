// SIGKILL at every step of ferry's update of ITSELF (issue 12; ARCHITECTURE.md "Self-update";
// SECURITY.md row 19: a process killed in any state). The production process tree runs for real:
//   sh <launcher> agent --home APP --listen 127.0.0.1:PORT -- node server.js
//    └─ keeper (S/current: confirmed code) └─ agent (S/releases/<v>) └─ ferry run (detached) └─ app
// with the self home S on 1.0.0 and 1.1.0 published. One process dies by SIGKILL at one step,
// through FERRY_TEST_KILL_AT and the kill-once preload (test/helpers/self-crash.ts says why once):
//   the 1.0.0 agent staging 1.1.0 in S (before/after each journaled phase of Updater.stage, but
//   two pairs with nothing between them),
//   the 1.0.0 agent writing the trial into the boot record (before/after 'self-switch'),
//   launcher, keeper and agent at once (an outside SIGKILL) as the agent exits for the restart,
//   the keeper spending a try (before/after 'self-decide'),
//   the 1.1.0 agent confirming: `current` moves (before/after 'self-confirm'), the cleared record
//   (before/after 'self-confirmed'), S's history closed (before/after 'idle'),
//   and launcher, keeper and agent at once right after the 1.1.0 agent reported its confirm
//   (`ferry run`, in a process group of its own, is not killed: it outlives agents by design).
// Then the service is started again as systemd would (when the launcher ended; a killed trial
// agent makes the keeper ask for a restart itself), and every step must give, within bounds:
//   a working agent on 1.x soon after (it started and checked), then 1.1.0 confirmed, stopped, and
//   coherent: `ferry self status` (current 1.1.0, no trial, nothing refused), `ferry status` idle,
//   S/current a complete signed 1.1.0 whose own `--version` says 1.1.0, exactly one committed
//   1.0.0 -> 1.1.0 in S's history and nothing in progress; a commit reported before the kill is
//   never undone (no 1.0.0 agent after it); the right process died (keeper or agent, which version);
//   and the app never noticed: the same `ferry run` served from start to end, 0 failed requests.
// Steps after staging start from a copy of S as a kill at 'after:staged' left it (made once, in
// before()): the agent then re-verifies the staged tree instead of staging it again, and every
// step still runs the whole hand-over (switch, exit 75, keeper, trial, confirm) in one launcher.
// Two scenarios run at a time (two cores). A table of step → outcome is printed at the end.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { requestSupervisor, type SupervisorStatus } from '../../plugins/run/control.ts';
import { limiter } from '../helpers/crash.ts';
import { get } from '../helpers/load.ts';
import { freePort } from '../helpers/net.ts';
import { alive } from '../helpers/proc.ts';
import { tempDir, type TempDir } from '../helpers/repo.ts';
import {
  NEW,
  OLD,
  Service,
  describeHistory,
  killOnceEnv,
  makeSelfCrashFixture,
  makeStagedTemplate,
  readKillNote,
  recoveredProblems,
  scenarioHomes,
  selfState,
  sleep,
  until,
  workingAgent,
  type AgentEvent,
  type KillNote,
  type SelfCrashFixture,
} from '../helpers/self-crash.ts';

const t0 = performance.now();
const pool = limiter(2);

/** Bounds: the kill must come within KILL_MS of the start, a working agent within WORKING_MS of it, 1.1.0 confirmed within CONFIRMED_MS. */
const KILL_MS = 120_000;
const WORKING_MS = 60_000;
const CONFIRMED_MS = 120_000;

type From = 'fresh' | 'staged';

interface Step {
  /** The row's name: FERRY_TEST_KILL_AT, or an outside kill. */
  name: string;
  from: From;
  /** FERRY_TEST_KILL_AT, for a step killed at its own kill point. */
  point?: string;
  /** For an outside SIGKILL of launcher, keeper and agent: the event after which it comes. */
  after?: (e: AgentEvent) => boolean;
  /** Who the kill point stops. */
  kills?: { role: 'agent' | 'keeper'; version: string };
}

/**
 * Staging ferry in its self home is Updater.stage, the same journaled phases an app's update goes
 * through; a kill at each of those is recovered by the same code and proved for every phase by
 * test/crash/kill.test.ts. Here one of them stands for the rest (the release staged, where the
 * self-update's own steps begin), to keep CI's time for the steps that only self-update has.
 */
const STAGE_POINTS = ['after:staged'];
const both = (phase: string) => [`before:${phase}`, `after:${phase}`];

const STEPS: Step[] = [
  ...STAGE_POINTS.map((point): Step => ({ name: point, from: 'fresh', point, kills: { role: 'agent', version: OLD } })),
  ...both('self-switch').map((point): Step => ({ name: point, from: 'staged', point, kills: { role: 'agent', version: OLD } })),
  { name: 'exit for the restart (outside SIGKILL)', from: 'staged', after: (e) => e.event === 'stopped' && e.reason === 'self-update' },
  ...both('self-decide').map((point): Step => ({ name: point, from: 'staged', point, kills: { role: 'keeper', version: OLD } })),
  ...[...both('self-confirm'), ...both('self-confirmed'), ...both('idle')].map((point): Step => ({ name: point, from: 'staged', point, kills: { role: 'agent', version: NEW } })),
  { name: 'confirm reported (outside SIGKILL)', from: 'staged', after: (e) => e.event === 'self-confirmed' },
];


/** What one scenario came to; the tests assert on it and the table prints it. */
interface Outcome {
  step: Step;
  dir: string;
  note: KillNote | null;
  killedAt: number;
  /** What the launcher did after the kill: exited (and was started again), or restarted the keeper itself. */
  launcher: string;
  /** The 1.1.0 confirm was reported ('self-confirmed') before the kill. */
  reportedBefore: boolean;
  /** Versions of the agents started after the kill, in order. */
  startsAfter: string[];
  working: { at: number; version: string };
  confirmedAt: number;
  stoppedCleanly: boolean;
  problems: string[];
  history: string;
  requests: number;
  failures: string[];
  supervisor: { first: number | null; last: number | null };
}

let fx: SelfCrashFixture;
let tmp: TempDir;
let stagedTemplate = '';
let scenarios = 0;

/** GET / every 100 ms with a fresh connection; failures count once the app first answered. */
class Probe {
  requests = 0;
  failures: string[] = [];
  served = false;
  private stopped = false;
  private done: Promise<void>;
  constructor(port: number, maxMs: number) {
    const deadline = Date.now() + maxMs;
    this.done = (async () => {
      while (!this.stopped && Date.now() < deadline) {
        try {
          const r = await get(port, '/', false, 5_000);
          if (r.status === 200) this.served = true;
          if (this.served) {
            this.requests++;
            if (r.status !== 200) this.failures.push(`HTTP ${r.status} at ${new Date().toISOString()}`);
          }
        } catch (err) {
          if (this.served) {
            this.requests++;
            this.failures.push(`${(err as NodeJS.ErrnoException).code ?? (err as Error).message} at ${new Date().toISOString()}`);
          }
        }
        await sleep(100);
      }
    })();
  }
  async stop(): Promise<void> {
    this.stopped = true;
    await this.done;
  }
}

async function supervisorPid(app: string): Promise<SupervisorStatus | null> {
  return requestSupervisor(app, { op: 'status' }, 2_000).catch(() => null);
}

/** One scenario: a fresh copy of the homes, the service started with the step armed, the kill, the restart, recovery, the stop and the checks. */
async function scenario(step: Step): Promise<Outcome> {
  const dir = join(tmp.path, `scn-${scenarios++}`);
  const homes = await scenarioHomes(fx, step.from === 'fresh' ? fx.self.home : stagedTemplate, dir);
  const port = await freePort();
  const service = new Service(dir, homes.launcher, ['agent', '--home', homes.app, '--log-format', 'json', '--listen', `127.0.0.1:${port}`, '--drain-timeout', '5s', '--', process.execPath, 'server.js']);
  const notePath = join(dir, 'kill-note.json');
  const probe = new Probe(port, KILL_MS + WORKING_MS + CONFIRMED_MS);
  const appPids = new Set<number>();
  const where = () => `(step ${step.name}, ${dir}); the service's last lines:\n${service.tail()}`;
  let supervisorFirst: number | null = null;
  try {
    service.start(step.point ? killOnceEnv(fx, step.point, notePath) : {});
    // 1. The kill.
    let killedAt: number;
    if (step.point) {
      killedAt = await until(() => readKillNote(notePath)?.at, KILL_MS, () => `kill at ${step.point} ${where()}`);
    } else {
      killedAt = await until(() => service.events().find(step.after!)?.at, KILL_MS, () => `event to kill after ${where()}`, 10);
      service.killService();
    }
    const note = readKillNote(notePath);
    const reportedBefore = service.events().some((e) => e.event === 'self-confirmed' && e.at <= killedAt);
    // The app was (normally) up before the kill: its supervisor, to compare with the end.
    supervisorFirst = probe.served ? (await supervisorPid(homes.app))?.pid ?? null : null;

    // 2. The launcher exits (systemd would start it again), or its keeper asked for a restart (75).
    const launcher = await until(() => {
      if (!service.running()) return 'exited';
      return service.keeperLines(killedAt).some((l) => / exiting with 75$/.test(l.text)) ? 'restarted the keeper itself' : undefined;
    }, 30_000, () => `launcher exit or keeper restart after the kill ${where()}`);
    let launcherText = launcher;
    let restartedAt = killedAt;
    if (launcher === 'exited') {
      const ended = await service.exited();
      launcherText = `exited ${ended.code ?? ended.signal}, started again`;
      restartedAt = Date.now();
      service.start();
    }

    // 3. A working agent, then 1.1.0 confirmed with a whole round of its agent behind it.
    const working = await until(() => workingAgent(service, restartedAt), WORKING_MS, () => `working agent after the restart ${where()}`);
    const confirmedAt = await until(async () => {
      const s = await selfState(homes.self);
      return s.current === NEW && s.trial === null ? Date.now() : undefined;
    }, CONFIRMED_MS, () => `confirmed ${NEW} ${where()}`, 100);
    await until(() => (service.events(Math.max(confirmedAt, restartedAt)).filter((e) => e.event === 'check').length >= 2 ? true : undefined), 30_000, () => `a round of the ${NEW} agent ${where()}`, 100);
    const last = await supervisorPid(homes.app);
    if (last?.active?.pid) appPids.add(last.active.pid);
    if (supervisorFirst === null && probe.served) supervisorFirst = last?.pid ?? null;

    // 4. Stop it as systemd would, then look at S.
    await probe.stop();
    const stoppedCleanly = await service.stop();
    const startsAfter = service.starts(killedAt + 1).map((s) => s.label);
    const checked = await recoveredProblems(homes.self, fx, NEW);
    return {
      step, dir, note, killedAt, launcher: launcherText, reportedBefore, startsAfter, working, confirmedAt, stoppedCleanly,
      problems: checked.problems, history: describeHistory(checked.report.history ?? []),
      requests: probe.requests, failures: probe.failures, supervisor: { first: supervisorFirst, last: last?.pid ?? null },
    };
  } finally {
    await probe.stop();
    await service.stop(10_000);
    for (const pid of appPids) if (alive(pid)) process.kill(pid, 'SIGKILL');
  }
}

const outcomes = new Map<string, Promise<Outcome>>();
const test = suite('SIGKILL at every step of the agent updating itself: after a restart, a working agent, then 1.1.0 confirmed');

test.before(async () => {
  tmp = await tempDir('ferry-self-kill-');
  fx = await makeSelfCrashFixture();
  const t = Date.now();
  stagedTemplate = await makeStagedTemplate(fx, tmp.path);
  console.log(`  staged template (a kill at after:staged) ${((Date.now() - t) / 1000).toFixed(1)} s`);
  for (const step of STEPS) {
    const o = pool(() => scenario(step));
    o.catch(() => {}); // awaited (and reported) by its test
    outcomes.set(step.name, o);
  }
});

const done: Outcome[] = [];

for (const step of STEPS) {
  const who = step.kills ? `the ${step.kills.role} (${step.kills.version})` : 'launcher, keeper and agent';
  test(`killed at ${step.name} (${who}) → a working agent, then ${NEW} confirmed and coherent; the app never noticed`, async () => {
    const o = await outcomes.get(step.name)!;
    done.push(o);
    const where = `(${o.dir})`;
    if (step.kills) {
      assert.ok(o.note, `the kill point ${step.point} was reached ${where}`);
      assert.is(o.note!.role, step.kills.role, `${step.point} killed the ${step.kills.role} ${where}`);
      assert.is(o.note!.version, step.kills.version, `${step.point} killed ${step.kills.role} ${step.kills.version} ${where}`);
    }
    assert.ok(/^1\./.test(o.working.version), `a working agent on 1.x after the restart: ${o.working.version}`);
    assert.equal(o.problems, [], `the self home after recovery ${where}`);
    if (o.reportedBefore) assert.not.ok(o.startsAfter.includes(OLD), `${NEW} was reported confirmed before the kill, yet ${OLD} ran after it: ${o.startsAfter}`);
    assert.ok(o.startsAfter.length > 0 && o.startsAfter.at(-1) === NEW, `the last agent started runs ${NEW}: ${o.startsAfter}`);
    assert.ok(o.stoppedCleanly, `the launcher stopped on SIGTERM ${where}`);
    assert.ok(o.requests > 0, `the app was probed ${where}`);
    assert.equal(o.failures, [], `0 failed requests to the app across the kill ${where}`);
    assert.ok(o.supervisor.first !== null && o.supervisor.first === o.supervisor.last, `the same ferry run served throughout: ${o.supervisor.first} then ${o.supervisor.last}`);
  });
}

test.after(async () => {
  const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
  const rows = [...done].sort((a, b) => STEPS.indexOf(a.step) - STEPS.indexOf(b.step)).map((o) => [
    o.step.name,
    o.note ? `${o.note.role} ${o.note.version}` : 'launcher, keeper, agent',
    o.launcher,
    o.startsAfter.join(' → ') || '-',
    `${o.working.version} after ${s(o.working.at - o.killedAt)}`,
    s(o.confirmedAt - o.killedAt),
    `${o.requests} / ${o.failures.length}`,
  ]);
  const head = ['step', 'killed', 'launcher', 'agents started after the kill', 'working agent', `${NEW} confirmed after`, 'app requests / failed'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => '  ' + r.map((c, i) => c.padEnd(widths[i]!)).join('  ');
  console.log(['', line(head), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line), ''].join('\n'));
  console.log(`self-update kill test: ${done.length} steps in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  await fx?.cleanup();
  await tmp?.cleanup();
});

test.run();
