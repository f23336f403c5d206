// A power cut at each step of ferry's update of ITSELF (issue 12; ARCHITECTURE.md "Self-update";
// SECURITY.md row 18). The self home S lives on ext4 in a loop-mounted file
// (test/helpers/crash.ts makeLoopFsWith, commit=60 and noauto_da_alloc: only ferry's fsyncs make
// anything durable); the agent runs through the launcher script (no app: the cut is about S). At the
// step, the process that reaches it stops itself (FERRY_TEST_KILL_AT with the kill-once preload in
// its SIGSTOP form, test/helpers/self-crash.ts), and the filesystem is cut at once with
// FS_IOC_SHUTDOWN and no log flush (test/helpers/fs-shutdown.py): what was not made durable is
// lost, as after a power loss. Then every process is SIGKILLed, the disk remounted, and:
//   - straight after the remount, `current` is a complete signed 1.0.0 or 1.1.0 (hashed against the
//     repository's manifest), the boot record is readable, and what the step had made durable is
//     there: the trial after 'after:self-switch', the spent try after 'after:self-decide', `current`
//     on 1.1.0 after 'after:self-confirm', no trial after 'after:self-confirmed', and 1.1.0 once its
//     confirm was reported;
//   - the launcher started again gives a working agent on 1.x (started and checked), then 1.1.0
//     confirmed; stopped, S is coherent (`ferry self status`, `ferry status` idle, one committed
//     1.0.0 -> 1.1.0 in history, nothing in progress, S/current's own `--version` 1.1.0).
// Steps: the end of the stage (test/crash/power-cut.test.ts cuts every phase of an ordinary
// update), then the durable write of each step of the switch, the restart and the confirm (the
// SIGKILL test, test/crash/self-update-kill.test.ts, takes both sides of every step; its header says
// why steps after staging start from S as a kill at 'after:staged' left it). Two loop disks, two
// cuts at a time. Runs as root only (losetup, mount), in a private mount namespace
// (test/helpers/crash.ts inPrivateMountNamespace says why), like the other power-cut tests.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { readBootRecord } from '../../core/self/boot-record.ts';
import {
  STRICT_MOUNT_OPTIONS,
  armCutter,
  inspectCurrent,
  inPrivateMountNamespace,
  makeLoopFsWith,
  powerCutUnavailable,
  type LoopFs,
} from '../helpers/crash.ts';
import { tempDir, type TempDir } from '../helpers/repo.ts';
import {
  NEW,
  OLD,
  Service,
  describeHistory,
  killOnceEnv,
  makeSelfCrashFixture,
  makeStagedTemplate,
  processesUnder,
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
import { within } from '../helpers/within.ts';

const run = promisify(execFile);
const t0 = performance.now();

const REACH_MS = 120_000;
const WORKING_MS = 60_000;
const CONFIRMED_MS = 120_000;

type From = 'fresh' | 'staged';

/** What a step made durable before the cut, checked straight after the remount. */
type Durable = 'trial' | 'try-spent' | 'current-new' | 'confirmed';

interface Step {
  name: string;
  from: From;
  point?: string;
  /** For a cut by the test: the event it follows at once. */
  after?: (e: AgentEvent) => boolean;
  durable?: Durable;
}

// Each step's last durable write, and the two instants a kill point cannot name (the agent's exit
// for the restart, and just after its confirm is reported); a cut at a 'before:' point finds the
// disk as the previous step's 'after:' left it, plus whatever was not made durable in between.
const STEPS: Step[] = [
  { name: 'after:staged', from: 'fresh', point: 'after:staged' },
  { name: 'after:self-switch', from: 'staged', point: 'after:self-switch', durable: 'trial' },
  { name: 'exit for the restart', from: 'staged', after: (e) => e.event === 'stopped' && e.reason === 'self-update', durable: 'trial' },
  { name: 'after:self-decide', from: 'staged', point: 'after:self-decide', durable: 'try-spent' },
  { name: 'before:self-confirm', from: 'staged', point: 'before:self-confirm', durable: 'try-spent' },
  { name: 'after:self-confirm', from: 'staged', point: 'after:self-confirm', durable: 'current-new' },
  { name: 'after:self-confirmed', from: 'staged', point: 'after:self-confirmed', durable: 'confirmed' },
  { name: 'after:idle', from: 'staged', point: 'after:idle', durable: 'confirmed' },
  { name: 'confirm reported', from: 'staged', after: (e) => e.event === 'self-confirmed', durable: 'confirmed' },
];

interface Outcome {
  step: Step;
  note: KillNote | null;
  /** `current` and the trial straight after the remount. */
  raw: { current: string | null; trial: string | null; triesLeft: number | null };
  working: { at: number; version: string };
  restartedAt: number;
  confirmedAt: number;
  violations: string[];
  history: string;
}

let fx: SelfCrashFixture;
let tmp: TempDir;
/** Two loop disks, so two cuts run at a time (two cores); a scenario takes a free one. */
const disks: LoopFs[] = [];
const free: LoopFs[] = [];
const waiting: ((d: LoopFs) => void)[] = [];
let stagedTemplate = '';
let scenarios = 0;

/** The violations of what `durable` promises, in S straight after the remount. */
async function durableViolations(home: string, durable: Durable | undefined, raw: Outcome['raw']): Promise<string[]> {
  const v: string[] = [];
  if (durable === 'trial' && raw.trial !== NEW && raw.current !== NEW) v.push(`the trial of ${NEW} was written durably before the cut, but after the remount: current ${raw.current}, trial ${raw.trial}`);
  if (durable === 'try-spent' && !(raw.trial === NEW && raw.triesLeft !== null && raw.triesLeft < 3) && raw.current !== NEW) v.push(`the keeper spent a try durably before the cut, but after the remount: trial ${raw.trial}, tries left ${raw.triesLeft}`);
  if ((durable === 'current-new' || durable === 'confirmed') && raw.current !== NEW) v.push(`\`current\` was switched to ${NEW} before the cut, but after the remount it is ${raw.current}`);
  if (durable === 'confirmed' && raw.trial !== null) v.push(`the confirm's cleared record was written before the cut, but after the remount a trial of ${raw.trial} is recorded`);
  void home;
  return v;
}

/** Stops the disk's users: every process of the service is SIGKILLed (the power is gone anyway). */
async function cutAndKill(service: Service, disk: LoopFs, cut: () => Promise<void>): Promise<void> {
  await cut();
  service.killAll();
  // An agent whose keeper was stopped before it printed its pid: it runs from S on the disk.
  for (const pid of processesUnder(disk.mnt)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone meanwhile
    }
  }
  for (const l of service.launchers) await within(service.exited(l), 5_000, undefined);
}

/** Runs `fn` on a free disk, waiting for one. */
async function onFreeDisk<T>(fn: (disk: LoopFs) => Promise<T>): Promise<T> {
  const disk = free.pop() ?? (await new Promise<LoopFs>((resolve) => waiting.push(resolve)));
  try {
    return await fn(disk);
  } finally {
    const next = waiting.shift();
    if (next) next(disk);
    else free.push(disk);
  }
}

/**
 * One cut at `step` on `disk`, the remount's checks, then (unless `rawOnly`) the restart and the
 * recovery's checks. `env` is added to the first run's environment.
 */
async function scenario(step: Step, disk: LoopFs, env: Record<string, string> = {}, rawOnly = false): Promise<Outcome> {
  const dir = join(tmp.path, `scn-${scenarios++}`);
  const home = join(disk.mnt, 'self');
  const notePath = join(dir, 'kill-note.json');
  const violations: string[] = [];
  const where = (service: Service) => `(step ${step.name}); the service's last lines:\n${service.tail()}`;

  // 1. Run to the step on a fresh copy of S on the loop filesystem, and cut.
  await disk.mount();
  let service: Service;
  let homes: Awaited<ReturnType<typeof scenarioHomes>>;
  try {
    homes = await scenarioHomes(fx, step.from === 'fresh' ? fx.self.home : stagedTemplate, dir, home);
    await run('sync', ['-f', home]); // the starting point is on disk, whatever ferry does next
    const cutter = await armCutter(disk.mnt);
    service = new Service(dir, homes.launcher, ['agent', '--home', homes.app, '--log-format', 'json']);
    service.start({ ...env, ...(step.point ? killOnceEnv(fx, step.point, notePath, true) : {}) });
    try {
      if (step.point) await until(() => readKillNote(notePath), REACH_MS, () => `stop at ${step.point} ${where(service)}`, 1);
      else await until(() => (service.events().some(step.after!) ? true : undefined), REACH_MS, () => `event to cut after ${where(service)}`, 1);
    } finally {
      await cutAndKill(service, disk, () => cutter.cut());
    }
  } finally {
    await disk.umount();
  }
  const note = readKillNote(notePath);

  // 2. The "reboot": remount, look at S as the cut left it, start the service again.
  await disk.mount();
  try {
    const probe = join(disk.mnt, '.remount-probe');
    await writeFile(probe, 'alive').catch((err: Error) => {
      throw new Error(`the remounted filesystem is still shut down (${err.message}): another mount namespace holds the old mount`);
    });
    await rm(probe);
    const tree = await inspectCurrent(home, fx.files);
    if (!tree.version || tree.problems.length) violations.push(`after the remount current is not a complete signed release: ${tree.problems.slice(0, 5).join('; ')}`);
    const read = await readBootRecord(home);
    if (read.state === 'damaged') violations.push(`after the remount the boot record is damaged: ${read.error.message}`);
    const t = read.state === 'ok' ? read.record.tentative : null;
    const raw = { current: tree.version, trial: t?.version ?? null, triesLeft: t?.triesLeft ?? null };
    violations.push(...(await durableViolations(home, step.durable, raw)));
    if (rawOnly) {
      console.log(`  cut at ${step.name}: remounted on ${raw.current}${raw.trial ? ` (trial ${raw.trial}, ${raw.triesLeft} left)` : ''}${violations.length ? ` — VIOLATION: ${violations.join(' | ')}` : ''}`);
      return { step, note, raw, working: { at: 0, version: '-' }, restartedAt: 0, confirmedAt: 0, violations, history: '' };
    }

    const again = new Service(dir, homes!.launcher, ['agent', '--home', homes!.app, '--log-format', 'json']);
    const restartedAt = Date.now();
    again.start();
    let working: { at: number; version: string };
    let confirmedAt: number;
    try {
      working = await until(() => workingAgent(again, restartedAt), WORKING_MS, () => `working agent after the remount ${where(again)}`);
      confirmedAt = await until(async () => {
        const s = await selfState(home);
        return s.current === NEW && s.trial === null ? Date.now() : undefined;
      }, CONFIRMED_MS, () => `confirmed ${NEW} ${where(again)}`, 100);
      await until(() => (again.events(confirmedAt).filter((e) => e.event === 'check').length >= 2 ? true : undefined), 30_000, () => `a round of the ${NEW} agent ${where(again)}`, 100);
      if (!(await again.stop())) violations.push('the launcher did not stop on SIGTERM');
    } finally {
      await again.stop(10_000);
    }
    const checked = await recoveredProblems(home, fx, NEW);
    violations.push(...checked.problems);
    const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
    console.log(`  cut at ${step.name}: ${note ? `${note.role} ${note.version} stopped there; ` : ''}remounted on ${raw.current}${raw.trial ? ` (trial ${raw.trial}, ${raw.triesLeft} left)` : ''}; a working agent on ${working.version} ${s(working.at - restartedAt)} after the restart, ${NEW} confirmed after ${s(confirmedAt - restartedAt)}${violations.length ? ` — VIOLATION: ${violations.join(' | ')}` : ''}`);
    return { step, note, raw, working, restartedAt, confirmedAt, violations, history: describeHistory(checked.report.history ?? []) };
  } finally {
    await disk.umount();
  }
}

const reason = powerCutUnavailable();
if (reason) {
  console.log(`SKIP: ${reason}`);
} else if (await inPrivateMountNamespace()) {
  const test = suite('a power cut at each step of the agent updating itself: a complete release, what was durable kept, then 1.1.0 confirmed');
  const all: Outcome[] = [];

  const outcomes = new Map<string, Promise<Outcome>>();

  test.before(async () => {
    tmp = await tempDir('ferry-self-power-');
    fx = await makeSelfCrashFixture();
    stagedTemplate = await makeStagedTemplate(fx, tmp.path);
    // Two ferry trees, the download cache and S's store: 256 MB leaves room.
    for (const name of ['disk-0', 'disk-1']) {
      await mkdir(join(tmp.path, name));
      const disk = await makeLoopFsWith(join(tmp.path, name), { sizeMb: 256, mountOptions: STRICT_MOUNT_OPTIONS });
      disks.push(disk);
      free.push(disk);
    }
    for (const step of STEPS) {
      const o = onFreeDisk((disk) => scenario(step, disk));
      o.catch(() => {}); // awaited (and reported) by its test
      outcomes.set(step.name, o);
    }
  });

  for (const step of STEPS) {
    test(`cut at ${step.name}${step.durable ? ` (durable: ${step.durable})` : ''} → complete release after the remount, then a working agent and ${NEW} confirmed`, async () => {
      const o = await outcomes.get(step.name)!;
      all.push(o);
      if (step.point) assert.ok(o.note, `the step ${step.point} was reached before the cut`);
      assert.ok(/^1\./.test(o.working.version), `a working agent on 1.x after the remount: ${o.working.version}`);
      assert.equal(o.violations, [], `history: ${o.history}`);
      assert.ok(o.raw.current === OLD || o.raw.current === NEW);
    });
  }

  // The durable checks must be able to fail: with ferry's fsyncs off, the confirm's switch of
  // `current` is still in the page cache at the cut, and the remount must find it lost. No restart
  // after these cuts: with fsyncs off anything may be torn (a trust file, say), which is the point.
  const TEETH_TRIES = 3;
  test(`teeth: with FERRY_UNSAFE_SKIP_FSYNC=1, a cut at after:self-confirm finds the switch lost within ${TEETH_TRIES} tries`, async () => {
    const step = STEPS.find((s) => s.name === 'after:self-confirm')!;
    let found: Outcome | null = null;
    let tries = 0;
    while (!found && tries < TEETH_TRIES) {
      tries++;
      const o = await onFreeDisk((disk) => scenario({ ...step, name: `${step.name} with fsyncs off #${tries}` }, disk, { FERRY_UNSAFE_SKIP_FSYNC: '1' }, true));
      if (o.violations.some((v) => v.includes(`switched to ${NEW} before the cut`))) found = o;
    }
    console.log(`  teeth: ${found ? `the lost switch was found on try ${tries}` : `no violation in ${tries} tries`}`);
    assert.ok(found, `with every fsync off, ${tries} cuts after the confirm's switch all found it on disk: the check cannot see a missing fsync`);
  });

  test.after(async () => {
    const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
    const head = ['step', 'stopped there', 'after the remount', 'working agent', `${NEW} confirmed after`, 'violations'];
    const rows = all.map((o) => [
      o.step.name,
      o.note ? `${o.note.role} ${o.note.version}` : '(cut by the test)',
      `${o.raw.current}${o.raw.trial ? `, trial ${o.raw.trial} (${o.raw.triesLeft} left)` : ''}`,
      `${o.working.version} after ${s(o.working.at - o.restartedAt)}`,
      s(o.confirmedAt - o.restartedAt),
      String(o.violations.length),
    ]);
    const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    const line = (r: string[]) => '  ' + r.map((c, i) => c.padEnd(widths[i]!)).join('  ');
    console.log(['', line(head), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line), ''].join('\n'));
    const problems: string[] = [];
    for (const disk of disks.splice(0)) problems.push(...(await disk.destroy()));
    await fx?.cleanup();
    await tmp?.cleanup();
    console.log(`self-update power-cut test: ${all.length} cuts in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    if (problems.length) throw new Error(`cleanup: ${problems.join('; ')}`);
  });

  test.run();
}
