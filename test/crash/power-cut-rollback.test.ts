// SECURITY.md rows 18 and 21: power loss during a rollback. The device home lives on ext4 in a
// loop-mounted file (test/helpers/crash.ts); a real CLI command runs in a child and the filesystem
// is cut with FS_IOC_SHUTDOWN and no log flush, then remounted.
//
// Two rollbacks are cut:
//   - automatic: `ferry update` to 1.1.0, whose health check fails (FAILS_ON_NEW), so ferry switches,
//     confirms, finds it unhealthy and rolls back: switching -> confirming -> rolling-back -> idle.
//     Cut at both sides of each of those journal writes from a home with no failed attempt, at
//     four of them from one with two (the cut attempt is the last one allowed), at offsets after the switch,
//     and right after "rolled back" is printed.
//   - manual: `ferry rollback` (to the newest restore point, 1.0.0) on a device that committed
//     1.1.0: switching -> confirming -> committed -> idle, the same kinds of cut points.
// After the remount the oracle wants: a complete signed release before and after recovery,
// `ferry status` agreeing with `current`, a reported rollback kept (the device on 1.0.0), and the
// next `ferry update` behaving as the history says: it retries and rolls back (saying which attempt
// of MAX_ATTEMPTS it was), gives up once MAX_ATTEMPTS attempts are recorded, waits on a version
// rolled back by hand, or finds the device up to date.
//
// It found two bugs, fixed in core/: a cut between counting a failed attempt and journaling the
// rollback counted the attempt twice (recovery counted it again), so the device gave up after two
// attempts (now one synced LevelDB batch: DeviceStore.journalFailure); and a cut after a manual
// rollback was journaled committed, before the hold on 1.1.0 was written, let the next update
// reinstall 1.1.0 (the hold is now written before the switch).

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import { readlink, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { MAX_ATTEMPTS } from '../../core/update/updater.ts';
import {
  NEW,
  OLD,
  REPORTED_MANUAL_ROLLBACK,
  afterRemount,
  committedOnNew,
  cutDuring,
  describeRun,
  ferry,
  inPrivateMountNamespace,
  inspectAfterCut,
  inspectCurrent,
  makeCrashFixture,
  makeLoopFsWith,
  manualRollbackCutViolations,
  powerCutUnavailable,
  removePowerCutSetup,
  sleep,
  startFerry,
  STRICT_MOUNT_OPTIONS,
  type CrashFixture,
  type Cut,
  type CutTrigger,
  type LoopFs,
  type Run,
} from '../helpers/crash.ts';
import { tempDir, type TempDir } from '../helpers/repo.ts';

const run = promisify(execFile);
const t0 = performance.now();
const esc = (v: string) => v.replace(/\./g, '\\.');
const AUTO_ROLLBACK = new RegExp(`^rolled back: ${esc(NEW)} was unhealthy`, 'm');

interface Result {
  label: string;
  violations: string[];
}

let fx: CrashFixture;
let tmp: TempDir;
let disk: LoopFs | null = null;
/** unhealthyHome after two failed attempts at 1.1.0: the next is the last one allowed. */
let unhealthyTwice = '';
/** healthyHome after it committed 1.1.0: a restore point of 1.0.0 to roll back to. */
let onNew = '';
const results = { auto: [] as Result[], manual: [] as Result[] };

async function mustRun(args: string[], code: number, what: string): Promise<Run> {
  const r = await ferry(args);
  if (r.code !== code) throw new Error(`${what}: expected exit ${code}, ${describeRun(r)}`);
  return r;
}

function report(list: Result[], label: string, cut: Cut, line: string, violations: string[]): Result {
  const died = cut.run.signal ?? `exit ${cut.run.code}`;
  console.log(`  ${label}: ${died} after ${Math.round(cut.run.ms)} ms; ${line}${violations.length ? ` — VIOLATION: ${violations.join(' | ')}` : ''}`);
  const r = { label, violations };
  list.push(r);
  return r;
}

/** Attempts at 1.1.0 the history records as rolled back: what the attempt cap counts. */
const attemptsAt = (history: { to: string | null; outcome: string }[]) => history.filter((h) => h.to === NEW && h.outcome === 'rolled-back').length;

/** One cut during `ferry update` of an unhealthy 1.1.0, and the oracle. */
async function cutAutoRollback(label: string, template: string, trigger: CutTrigger): Promise<Result> {
  const cut = await cutDuring(disk!, { template, args: (home) => ['update', '--home', home], trigger });
  const reported = AUTO_ROLLBACK.test(cut.printed) || cut.exitedBefore === 10;
  return afterRemount(disk!, async () => {
    const after = await inspectAfterCut(cut.home, fx);
    const v = [...after.violations];
    if (reported && after.raw.version !== OLD) v.push(`"rolled back" was reported before the cut, but after the remount current is ${after.raw.version}`);
    // 1.1.0 never passes its health check: whatever was cut, recovery ends on 1.0.0.
    if (after.recovered.version !== OLD) v.push(`${NEW} is unhealthy, yet after recovery the device is on ${after.recovered.version}`);
    const attempts = attemptsAt(after.history);
    const next = await ferry(['update', '--home', cut.home]);
    let expect: string;
    if (attempts >= MAX_ATTEMPTS) {
      expect = 'gave up';
      if (next.code !== 10 || !/ERR_GAVE_UP/.test(next.stderr)) v.push(`history records ${attempts} failed attempts, so the next update must give up (ERR_GAVE_UP, exit 10): ${describeRun(next)}`);
    } else {
      expect = `attempt ${attempts + 1}`;
      const said = new RegExp(`\\(attempt ${attempts + 1} of ${MAX_ATTEMPTS}\\)\\); still on ${esc(OLD)}`);
      if (next.code !== 10 || !AUTO_ROLLBACK.test(next.stdout) || !said.test(next.stdout)) {
        v.push(`history records ${attempts} failed attempt(s), so the next update must retry and roll back as attempt ${attempts + 1} of ${MAX_ATTEMPTS}: ${describeRun(next)}`);
      }
    }
    const final = await inspectCurrent(cut.home, fx.files);
    if (final.version !== OLD || final.problems.length) v.push(`after the next update current is ${final.version}: ${final.problems.join('; ')}`);
    return report(results.auto, label, cut, `${reported ? 'reported rollback; ' : ''}remounted on ${after.raw.version ?? 'nothing'}, recovered on ${after.recovered.version ?? 'nothing'}, ${attempts} attempt(s) recorded, next update: ${expect}`, v);
  });
}

/** One cut during `ferry rollback` from a committed 1.1.0, and the oracle. */
async function cutManualRollback(label: string, trigger: CutTrigger): Promise<Result> {
  const cut = await cutDuring(disk!, { template: onNew, args: (home) => ['rollback', '--home', home], trigger });
  const reported = REPORTED_MANUAL_ROLLBACK.test(cut.printed) || cut.exitedBefore === 0;
  return afterRemount(disk!, async () => {
    const after = await inspectAfterCut(cut.home, fx);
    const v = [...after.violations, ...manualRollbackCutViolations(cut, after)];
    const next = await ferry(['update', '--home', cut.home]);
    let expect: string;
    if (after.recovered.version === OLD) {
      // A version rolled back by hand is not reinstalled until approved.
      expect = `waits (${NEW} held)`;
      if (next.code !== 0 || !/waits: .*rolled back by hand/.test(next.stdout)) v.push(`${NEW} was rolled back by hand, so the next update must wait for approval, not reinstall it: ${describeRun(next)}`);
    } else {
      expect = 'up to date';
      if (next.code !== 0 || !new RegExp(`^up to date \\(${esc(NEW)}\\)`, 'm').test(next.stdout)) v.push(`on ${NEW}, the next update must find it up to date: ${describeRun(next)}`);
    }
    const final = await inspectCurrent(cut.home, fx.files);
    if (final.version !== after.recovered.version || final.problems.length) v.push(`after the next update current is ${final.version}: ${final.problems.join('; ')}`);
    return report(results.manual, label, cut, `${reported ? 'reported rollback; ' : ''}remounted on ${after.raw.version ?? 'nothing'}, recovered on ${after.recovered.version ?? 'nothing'}, next update: ${expect}`, v);
  });
}

/** How long `args` on a copy of `template` takes from the moment `current` -> releases/`to` to its exit. */
async function tailAfterSwitch(template: string, args: (home: string) => string[], to: string): Promise<number> {
  const home = join(tmp.path, `measure-${Date.now()}`);
  await run('cp', ['-a', template, home]);
  try {
    const child = startFerry(args(home));
    let seen = 0;
    void child.done.then(() => { seen ||= performance.now(); });
    while (!seen) {
      if ((await readlink(join(home, 'current')).catch(() => null)) === `releases/${to}`) seen = performance.now();
      else await sleep(1);
    }
    await child.done;
    return Math.max(1, performance.now() - seen);
  } finally {
    await rm(home, { recursive: true, force: true });
  }
}

const reason = powerCutUnavailable();
if (reason) {
  console.log(`SKIP: ${reason}`);
} else if (await inPrivateMountNamespace()) {
  const auto = suite('a power cut during an automatic rollback of an unhealthy release leaves 1.0.0, and the attempt count holds');

  auto.before(async () => {
    tmp = await tempDir('ferry-power-rb-');
    fx = await makeCrashFixture();
    unhealthyTwice = join(tmp.path, 'unhealthy-twice');
    await run('cp', ['-a', fx.unhealthyHome, unhealthyTwice]);
    for (let i = 1; i <= 2; i++) await mustRun(['update', '--home', unhealthyTwice], 10, `failed attempt ${i}`);
    onNew = await committedOnNew(fx, tmp.path);
    disk = await makeLoopFsWith(tmp.path, { mountOptions: STRICT_MOUNT_OPTIONS });
  });

  let autoTail = 0;
  auto(`an uncut update of an unhealthy ${NEW} is rolled back, and the oracle accepts it`, async () => {
    autoTail = await tailAfterSwitch(fx.unhealthyHome, (home) => ['update', '--home', home], NEW);
    const r = await cutAutoRollback('uncut', fx.unhealthyHome, { kind: 'none' });
    assert.equal(r.violations, []);
  });

  const AUTO_PHASES = ['switching', 'confirming', 'rolling-back', 'idle'];
  const autoPoints = AUTO_PHASES.flatMap((p) => [`before:${p}`, `after:${p}`]);
  // From two failed attempts, where the count changes hands: before the switch (the staged release
  // is applied later as the last attempt), after the write that makes the attempt count, and on
  // both sides of the write that journals the rollback (and counts it).
  const lastAttemptPoints = ['before:switching', 'after:switching', 'before:rolling-back', 'after:rolling-back'];
  for (const [template, prior] of [['fresh', 0], ['twice', 2]] as const) {
    for (const point of prior ? lastAttemptPoints : autoPoints) {
      auto(`cut at ${point} with ${prior} failed attempts before: on ${OLD}, and the next update ${prior ? 'gives up or makes the last attempt' : 'retries'} as the history counts`, async () => {
        const r = await cutAutoRollback(`${prior} before, cut at ${point}`, template === 'fresh' ? fx.unhealthyHome : unhealthyTwice, { kind: 'phase', point });
        assert.equal(r.violations, []);
      });
    }
  }

  const AUTO_OFFSETS = 3;
  for (let i = 0; i < AUTO_OFFSETS; i++) {
    auto(`cut at ${i + 1}/${AUTO_OFFSETS} of the time between the switch to ${NEW} and the reported rollback: on ${OLD}`, async () => {
      const ms = Math.round((autoTail * i) / (AUTO_OFFSETS - 1));
      const r = await cutAutoRollback(`cut ${ms} of ~${Math.round(autoTail)} ms after the switch`, fx.unhealthyHome, { kind: 'switched', to: NEW, ms });
      assert.equal(r.violations, []);
    });
  }

  auto(`cut right after "rolled back" is printed: the device is on ${OLD}, and the attempt counts`, async () => {
    const r = await cutAutoRollback('cut after the reported rollback', fx.unhealthyHome, { kind: 'printed', pattern: AUTO_ROLLBACK });
    assert.equal(r.violations, []);
  });

  auto.run();

  const manual = suite(`a power cut during \`ferry rollback\` from ${NEW} leaves a complete release, and a reported rollback stays`);

  let manualTail = 0;
  manual(`an uncut rollback reaches ${OLD}, holds ${NEW}, and the oracle accepts it`, async () => {
    manualTail = await tailAfterSwitch(onNew, (home) => ['rollback', '--home', home], OLD);
    const r = await cutManualRollback('uncut', { kind: 'none' });
    assert.equal(r.violations, []);
  });

  const MANUAL_PHASES = ['switching', 'confirming', 'committed', 'idle'];
  for (const point of MANUAL_PHASES.flatMap((p) => [`before:${p}`, `after:${p}`])) {
    manual(`cut at ${point} of a manual rollback: ${OLD} with ${NEW} held, or still ${NEW}; never a lost hold`, async () => {
      const r = await cutManualRollback(`cut at ${point}`, { kind: 'phase', point });
      assert.equal(r.violations, []);
    });
  }

  const MANUAL_OFFSETS = 3;
  for (let i = 0; i < MANUAL_OFFSETS; i++) {
    manual(`cut at ${i + 1}/${MANUAL_OFFSETS} of the time between the switch back to ${OLD} and the reported rollback: a complete release, never a lost hold`, async () => {
      const ms = Math.round((manualTail * i) / (MANUAL_OFFSETS - 1));
      const r = await cutManualRollback(`cut ${ms} of ~${Math.round(manualTail)} ms after the switch`, { kind: 'switched', to: OLD, ms });
      assert.equal(r.violations, []);
    });
  }

  manual(`cut right after "rolled back ${NEW} -> ${OLD}" is printed: the device is on ${OLD} and ${NEW} stays held`, async () => {
    const r = await cutManualRollback('cut after the reported rollback', { kind: 'printed', pattern: REPORTED_MANUAL_ROLLBACK });
    assert.equal(r.violations, []);
  });

  manual('0 violations over every rollback cut point', () => {
    const count = (list: Result[]) => `${list.filter((r) => r.label !== 'uncut').length} cut points, ${list.filter((r) => r.violations.length).length} with violations`;
    console.log(`rollback power cuts: automatic ${count(results.auto)}; manual ${count(results.manual)} (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
    const bad = [...results.auto, ...results.manual].filter((r) => r.violations.length);
    assert.equal(bad.map((r) => `${r.label}: ${r.violations.join(' | ')}`), []);
  });

  manual.after(() => removePowerCutSetup({ disk, fx, tmp }));

  manual.run();
}
