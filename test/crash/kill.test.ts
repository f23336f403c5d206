// SECURITY.md row 19: a process killed in any state. The real CLI (`ferry update`) runs in a child
// that SIGKILLs itself at the entry or exit of every journaled phase (FERRY_TEST_KILL_AT, read by
// the test entry test/helpers/ferry-with-seams.mjs and handed to the Updater as its killPoint), and
// again at seeded random instants killed from the outside. After each kill the next start must recover: `current` is a complete signed 1.0.0 or
// 1.1.0 (hashed here, against the manifest read from the repository), the journal is idle or
// staged, no history record is left in progress except a staged one, and the next `ferry update`
// finishes the job (healthy release) or rolls it back again (unhealthy release).
//
// Scenarios run two at a time (two cores), started when a suite begins; each test awaits its own.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { join } from 'node:path';
import {
  NEW,
  OLD,
  describeRun,
  ferry,
  history,
  inspectCurrent,
  limiter,
  makeCrashFixture,
  running,
  seeded,
  startFerry,
  status,
  type CrashFixture,
  type Installed,
  type Run,
} from '../helpers/crash.ts';
import type { UpdateRecord } from '../../core/spec.ts';
import type { DeviceStatus } from '../../core/update/updater.ts';
import type { Phase } from '../../core/device/journal.ts';

const run = promisify(execFile);
const pool = limiter(2);
const t0 = performance.now();

let fixture: Promise<CrashFixture> | null = null;
const getFixture = () => (fixture ??= makeCrashFixture());
let homes = 0;

type Health = 'healthy' | 'unhealthy';

/** Everything observed in one scenario; the tests assert on it. */
interface Outcome {
  home: string;
  first: Run;
  recovered: { run: Run; status: DeviceStatus | null };
  installed: Installed;
  records: { run: Run; records: UpdateRecord[] | null };
  next: Run;
  after: Installed;
  afterRecords: UpdateRecord[] | null;
}

/** Copies a template home on 1.0.0, runs `first` on it, then the recovery and follow-up checks' commands. */
async function scenario(health: Health, first: (home: string) => Promise<Run>): Promise<Outcome> {
  const fx = await getFixture();
  const home = join(fx.tmp.path, `home-${homes++}`);
  await run('cp', ['-a', health === 'healthy' ? fx.healthyHome : fx.unhealthyHome, home]);
  const firstRun = await first(home);
  const recovered = await status(home);
  const installed = await inspectCurrent(home, fx.files);
  const records = await history(home);
  const next = await ferry(['update', '--home', home]);
  const after = await inspectCurrent(home, fx.files);
  const afterRecords = (await history(home)).records;
  return { home, first: firstRun, recovered, installed, records, next, after, afterRecords };
}

/** The checks every scenario must pass, whatever instant it was killed at. */
function assertRecovered(o: Outcome, health: Health, expect: { version?: string; phase?: Phase } = {}): void {
  const where = `(home ${o.home}; first run: ${describeRun(o.first)})`;
  assert.is(o.recovered.run.code, 0, `status after the kill exits 0: ${describeRun(o.recovered.run)} ${where}`);
  const s = o.recovered.status!;
  assert.ok(s.phase === 'idle' || s.phase === 'staged', `journal phase after recovery is idle or staged, got ${s.phase} ${where}`);
  if (expect.phase) assert.is(s.phase, expect.phase, `journal phase after recovery ${where}`);

  assert.ok(o.installed.version === OLD || o.installed.version === NEW, `current is ${OLD} or ${NEW}: ${o.installed.problems.join('; ')} ${where}`);
  assert.equal(o.installed.problems, [], `every file of current hashes as signed ${where}`);
  assert.is(s.currentVersion, o.installed.version, `status reports the version current points at ${where}`);
  if (expect.version) assert.is(o.installed.version, expect.version, `version after recovery ${where}`);

  assert.is(o.records.run.code, 0, `history exits 0: ${describeRun(o.records.run)}`);
  const open = o.records.records!.filter((r) => r.outcome === 'in-progress');
  if (s.phase === 'staged') assert.ok(open.length <= 1, `at most the staged attempt is in progress: ${JSON.stringify(open)}`);
  else assert.equal(open, [], `no history record left in progress while the journal is ${s.phase} ${where}`);

  // The next update finishes the job, or rolls the unhealthy release back again.
  const last = o.afterRecords?.at(-1);
  if (health === 'healthy') {
    assert.is(o.next.code, 0, `the next update exits 0: ${describeRun(o.next)}`);
    assert.is(o.after.version, NEW, `the next update brings the device to ${NEW}`);
    assert.equal(o.after.problems, [], 'and 1.1.0 is complete');
  } else {
    assert.is(o.next.code, 10, `the next update of an unhealthy release exits 10 (ERR_UNHEALTHY): ${describeRun(o.next)}`);
    assert.is(o.after.version, OLD, `the device stays on ${OLD}`);
    assert.equal(o.after.problems, [], 'and 1.0.0 is complete');
    assert.is(last?.outcome, 'rolled-back', `the last history record is rolled-back: ${JSON.stringify(last)}`);
  }
  assert.equal((o.afterRecords ?? []).filter((r) => r.outcome === 'in-progress'), [], 'after a finished update no record is in progress');
}

// -----------------------------------------------------------------------------------------------
// Kill points: before|after × every phase

type When = 'before' | 'after';
const PHASES: Phase[] = ['checking', 'downloading', 'verifying', 'staging', 'staged', 'switching', 'confirming', 'committed', 'rolling-back', 'idle'];
const ORDER: readonly string[] = PHASES.flatMap((p) => [`before:${p}`, `after:${p}`]);

/** Where recovery must leave the device after a kill at `point` (ARCHITECTURE.md "Device state machine": unconfirmed → back). */
function expected(health: Health, point: string): { version: string; phase: Phase } {
  const at = ORDER.indexOf(point);
  const staged = point === 'after:staged' || point === 'before:switching'; // journal says staged, tree complete
  const committed = health === 'healthy' && at >= ORDER.indexOf('after:committed');
  return { version: committed ? NEW : OLD, phase: staged ? 'staged' : 'idle' };
}

function onPath(health: Health, phase: Phase): boolean {
  return health === 'healthy' ? phase !== 'rolling-back' : phase !== 'committed';
}

interface Point {
  health: Health;
  when: When;
  phase: Phase;
}

// Healthy: every point. Unhealthy: the points from the switch on (before it, both paths are the same).
const POINTS: Point[] = [
  ...PHASES.flatMap((phase) => (['before', 'after'] as const).map((when) => ({ health: 'healthy' as const, when, phase }))),
  ...PHASES.slice(PHASES.indexOf('switching')).flatMap((phase) => (['before', 'after'] as const).map((when) => ({ health: 'unhealthy' as const, when, phase }))),
];

const points = suite('SIGKILL at the entry and exit of every phase');
const pointResults = new Map<string, Promise<Outcome>>();
const key = (p: Point) => `${p.health} ${p.when}:${p.phase}`;

points.before(async () => {
  await getFixture();
  for (const p of POINTS) {
    const outcome = pool(() => scenario(p.health, (home) => ferry(['update', '--home', home], { FERRY_TEST_KILL_AT: `${p.when}:${p.phase}` })));
    outcome.catch(() => {}); // awaited (and reported) by its test
    pointResults.set(key(p), outcome);
  }
});

for (const p of POINTS) {
  const path = onPath(p.health, p.phase);
  const exit = p.health === 'healthy' ? 0 : 10;
  const want = path ? expected(p.health, `${p.when}:${p.phase}`) : undefined;
  const name = path
    ? `${p.health} update killed ${p.when}:${p.phase} → recovers on ${want!.version} (${want!.phase}), the next update ${p.health === 'healthy' ? `reaches ${NEW}` : 'rolls back again'}`
    : `${p.health} update: ${p.when}:${p.phase} is not on its path → exits ${exit}, recovery checks still hold`;
  points(name, async () => {
    const o = await pointResults.get(key(p))!;
    if (path) assert.is(o.first.signal, 'SIGKILL', `the update died by SIGKILL at ${p.when}:${p.phase}: ${describeRun(o.first)}`);
    else assert.is(o.first.code, exit, `the update ran to its end: ${describeRun(o.first)}`);
    assertRecovered(o, p.health, want ?? {});
  });
}

points.after(() => {
  console.log(`kill points: ${POINTS.length} ran (${((performance.now() - t0) / 1000).toFixed(1)} s so far)`);
});

// -----------------------------------------------------------------------------------------------
// Random instants, killed from the outside

const RANDOM_RUNS = 10;
const random = suite('SIGKILL from the outside at seeded random instants of an update');
const randomResults: { health: Health; delay: number; outcome: Promise<Outcome & { killed: boolean }> }[] = [];
const duration: Record<Health, number> = { healthy: 0, unhealthy: 0 };

random.before(async () => {
  // The uninterrupted duration, measured two at a time like the runs it sizes.
  const [h, u] = await Promise.all((['healthy', 'unhealthy'] as const).map((health) => pool(() => scenario(health, (home) => ferry(['update', '--home', home])))));
  assertRecovered(h!, 'healthy', { version: NEW, phase: 'idle' });
  assertRecovered(u!, 'unhealthy', { version: OLD, phase: 'idle' });
  duration.healthy = h!.first.ms;
  duration.unhealthy = u!.first.ms;
  const rng = seeded(0x5eed19);
  for (let i = 0; i < RANDOM_RUNS; i++) {
    const health: Health = i % 2 === 0 ? 'healthy' : 'unhealthy';
    const delay = Math.round(rng() * duration[health]);
    let killed = false;
    const outcome = pool(async () => {
      const o = await scenario(health, async (home) => {
        const started = startFerry(['update', '--home', home]);
        const timer = setTimeout(() => {
          if (running(started.child)) killed = started.child.kill('SIGKILL');
        }, delay);
        const r = await started.done;
        clearTimeout(timer);
        return r;
      });
      return { ...o, killed };
    });
    outcome.catch(() => {});
    randomResults.push({ health, delay, outcome });
  }
});

for (let i = 0; i < RANDOM_RUNS; i++) {
  random(`random kill #${i + 1} (seeded): complete 1.0.0 or 1.1.0, consistent history, the next update finishes`, async () => {
    const r = randomResults[i]!;
    const o = await r.outcome;
    const d = duration[r.health];
    console.log(`  #${i + 1} ${r.health}: kill at ${r.delay} of ~${Math.round(d)} ms → ${o.killed && o.first.signal === 'SIGKILL' ? 'killed' : `finished first (exit ${o.first.code})`}; recovered on ${o.installed.version} (${o.recovered.status?.phase ?? '?'})`);
    if (o.first.signal !== 'SIGKILL') assert.is(o.first.code, r.health === 'healthy' ? 0 : 10, `an update that outran its kill ended normally: ${describeRun(o.first)}`);
    assertRecovered(o, r.health);
  });
}

random.after(() => {
  console.log(`random kills: ${RANDOM_RUNS} ran (${((performance.now() - t0) / 1000).toFixed(1)} s so far)`);
});

// -----------------------------------------------------------------------------------------------
// Restarts are bounded (SECURITY.md row 19): a health failure counts even when the process dies
// while rolling back, so an unhealthy release is not retried forever.

const bounded = suite('restarts are bounded');

bounded('an unhealthy release whose rollback is killed each time still reaches the attempt cap (ERR_GAVE_UP)', async () => {
  const fx = await getFixture();
  const home = join(fx.tmp.path, `home-${homes++}`);
  await run('cp', ['-a', fx.unhealthyHome, home]);
  for (let i = 1; i <= 3; i++) {
    const r = await ferry(['update', '--home', home], { FERRY_TEST_KILL_AT: 'after:rolling-back' });
    assert.is(r.signal, 'SIGKILL', `attempt ${i} died rolling back: ${describeRun(r)}`);
  }
  const records = (await history(home)).records ?? [];
  const failed = records.filter((r) => r.to === NEW && r.errorCode === 'ERR_UNHEALTHY');
  assert.is(failed.length, 3, `three ERR_UNHEALTHY records for ${NEW}: ${JSON.stringify(records.map((r) => [r.outcome, r.errorCode]))}`);
  const fourth = await ferry(['update', '--home', home, '--json']);
  const code = (/"code":\s*"([A-Z_]+)"/.exec(fourth.stderr) ?? [])[1];
  assert.is(code, 'ERR_GAVE_UP', `after 3 failed health checks ${NEW} is not tried again: ${describeRun(fourth)}`);
  assert.is((await inspectCurrent(home, fx.files)).version, OLD);
});

bounded.after(async () => {
  console.log(`kill test took ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  await (await fixture)?.cleanup();
});

points.run();
random.run();
bounded.run();
