// SECURITY.md rows 19, 20 and 21 with the app running under `ferry run`: real child processes
// (`node dist/cli/ferry.js run` supervising examples/app/server.js, `ferry update` from another
// process), real sockets on 127.0.0.1, a bounded load that counts every failed request, and the
// process table read from /proc. Each case checks, where it applies: the stable error code, the
// exit code, the device on a complete version (every file hashed against the signed manifest read
// from the repository), and the history record.
//
// Not tested here because ferry cannot do it today (see the report / SECURITY.md gaps): a release
// that answers its health path but hangs on real requests passes the readiness probe, and one that
// crashes after it became ready is committed and then restarted in a loop. A starting generation
// also takes a share of the shared accept queue before it is ready, so only a release that hangs
// without accepting (as the one below) is rolled back with no failed request.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { EXIT_CODE } from '../../cli/exit-codes.ts';
import type { ApplyResult, UpdateRecord } from '../../core/spec.ts';
import { requestSupervisor } from '../../plugins/run/control.ts';
import { describeRun, ferry, history, signedFiles, sleep, startFerry, status, type Run } from '../helpers/crash.ts';
import { assertCompleteVersion } from '../helpers/refusal.ts';
import { makeRepo, tempDir, type TempDir, type TestRepo } from '../helpers/repo.ts';
import {
  LOAD_LIMITS,
  appTree,
  groupMembers,
  killLeftovers,
  portOf,
  processesOf,
  startRun,
  stopChild,
  waitAnswering,
  waitForStatus,
  waitGone,
  type RunningSupervisor,
  type Variant,
} from '../helpers/adversarial-app.ts';
import { get, Load } from '../helpers/load.ts';
import { alive } from '../helpers/proc.ts';

const OLD = '1.0.0';

/** A device home on 1.0.0 (installed through the CLI) and the repository it updates from. */
interface Fixture {
  tmp: TempDir;
  repo: TestRepo;
  home: string;
  pidDir: string;
  sups: RunningSupervisor[];
  publish(version: string, variant: Variant): Promise<void>;
  files(version: string): ReturnType<typeof signedFiles>;
  run(): RunningSupervisor;
  cleanup(): Promise<void>;
}

async function mustRun(args: string[]): Promise<Run> {
  const r = await ferry(args);
  assert.is(r.code, 0, `ferry ${args.join(' ')}: ${describeRun(r)}`);
  return r;
}

async function makeFixture(): Promise<Fixture> {
  const tmp = await tempDir('ferry-supervised-');
  const repo = await makeRepo({ dir: join(tmp.path, 'publisher') });
  const home = join(tmp.path, 'home');
  const pidDir = join(tmp.path, 'pids');
  await mkdir(pidDir);
  const fx: Fixture = {
    tmp, repo, home, pidDir, sups: [],
    publish: async (version, variant) => { await repo.release(version, appTree(version, variant), { deltas: 1 }); },
    files: (version) => signedFiles(repo.repo, version),
    run() {
      const sup = startRun(home, { env: { ADVERSARIAL_PID_DIR: pidDir } });
      fx.sups.push(sup);
      return sup;
    },
    async cleanup() {
      for (const sup of fx.sups) await stopChild(sup.child, sup.exit);
      killLeftovers(home);
      await tmp.cleanup();
    },
  };
  await fx.publish(OLD, 'good');
  await mustRun(['init', home, '--trust', repo.trustPath, '--source', repo.repo, '--platform', 'linux', '--arch', 'x64']);
  await mustRun(['update', '--home', home]);
  return fx;
}

/** Starts `ferry run` and waits until `version` is active and answers on the shared socket. */
async function serving(fx: Fixture, version: string): Promise<{ sup: RunningSupervisor; port: number }> {
  const sup = fx.run();
  const s = await waitForStatus(fx.home, sup, (st) => st.active?.version === version, `ferry run starts ${version}`);
  const port = portOf(s);
  assert.is(await waitAnswering(port, `${version} under ferry run`), version);
  return { sup, port };
}

function parseApply(r: Run): ApplyResult | null {
  try {
    return JSON.parse(r.stdout) as ApplyResult;
  } catch {
    return null;
  }
}

/** The four assertions for a rollback, through what the CLI printed, its exit code, the disk and `ferry history`. */
async function assertRolledBack(fx: Fixture, update: Run, version: string, reason: RegExp): Promise<UpdateRecord> {
  const what = `ferry update to ${version}: ${describeRun(update)}`;
  const result = parseApply(update);
  assert.ok(result, `${what}: printed an ApplyResult`);
  assert.is(result!.status, 'rolled-back', what);
  const printed = (result as Extract<ApplyResult, { status: 'rolled-back' }>).record;
  // 1 and 2: the stable code and its exit code.
  assert.is(printed.errorCode, 'ERR_UNHEALTHY', `${what}: error code`);
  assert.is(update.code, EXIT_CODE.ERR_UNHEALTHY, `${what}: exit code`);
  assert.is(update.code, 10);
  // 3: back on a complete old version.
  await assertCompleteVersion(fx.home, OLD, await fx.files(OLD));
  // 4: the record, read back through `ferry history`.
  const records = (await history(fx.home)).records ?? [];
  const record = records.find((r) => r.id === printed.id);
  assert.ok(record, `history has the attempt ${printed.id}: ${JSON.stringify(records)}`);
  assert.is(record!.outcome, 'rolled-back');
  assert.is(record!.errorCode, 'ERR_UNHEALTHY');
  assert.is(record!.to, version);
  assert.is(record!.from, OLD);
  assert.ok(record!.finishedAt, 'the record is closed');
  assert.match(record!.message ?? '', reason, `the record says why: ${record!.message}`);
  return record!;
}

/** The pids the hang-on-start release wrote: the app and its SIGTERM-ignoring helper. */
async function hungPids(fx: Fixture, version: string): Promise<{ app: number; helper: number }[]> {
  const names = (await readdir(fx.pidDir)).filter((n) => n.startsWith(`${version}-`));
  return Promise.all(names.map(async (n) => JSON.parse(await readFile(join(fx.pidDir, n), 'utf8')) as { app: number; helper: number }));
}

// ---------------------------------------------------------------------------------------------
// Row 20: the database and the filesystem disagree

const row20 = suite('row 20: a damaged store on a device supervised by ferry run');
let fx20: Fixture | null = null;

row20.after.each(async () => {
  await fx20?.cleanup();
  fx20 = null;
});

async function damagedStoreCase(damage: (stateDir: string) => Promise<void>, expectRebuiltReport: boolean): Promise<void> {
  fx20 = await makeFixture();
  const fx = fx20;
  const { sup } = await serving(fx, OLD);
  const stateDir = join(fx.home, 'state');
  await damage(stateDir);
  await stopChild(sup.child, sup.exit);
  assert.is(await sup.exit, 0, `ferry run drained and exited 0: ${sup.output().slice(-2000)}`);
  // The store is not read by `ferry run`: the app starts from `current` whatever state/ holds.
  const restarted = await serving(fx, OLD);

  const st = await status(fx.home);
  assert.is(st.run.code, 0, `ferry status on the damaged store: ${describeRun(st.run)}`);
  assert.is(st.status!.currentVersion, OLD, 'status reports the version current points at');
  assert.is(st.status!.phase, 'idle');
  if (expectRebuiltReport) {
    const aside = st.status!.databaseRebuiltFrom;
    assert.ok(aside, 'the rebuild is reported (databaseRebuiltFrom)');
    assert.ok(aside!.startsWith(`${stateDir}.damaged-`), `the damaged store was moved aside next to state/: ${aside}`);
    assert.ok((await stat(aside!)).isDirectory(), 'the damaged store is kept for inspection');
  }
  await assertCompleteVersion(fx.home, OLD, await fx.files(OLD));

  // A following update hands over under load with no failed request.
  await fx.publish('1.1.0', 'good');
  const load = new Load(restarted.port, LOAD_LIMITS).start();
  let update: Run;
  try {
    await waitGone(() => (load.requests < 50 ? [load.requests] : []), 10_000); // warmed up
    update = await ferry(['update', '--home', fx.home, '--json']);
    await sleep(300);
  } finally {
    await load.stop();
  }
  assert.is(update.code, 0, `the update after the rebuild: ${describeRun(update)}`);
  assert.is(parseApply(update)?.status, 'committed');
  assert.equal(load.failures, [], load.describe());
  assert.not.ok(load.hitCap, `the load was still running at the end (${load.requests} requests)`);
  assert.ok(load.versions.has('1.1.0'), `1.1.0 served during the load: ${[...load.versions].join(', ')}`);
  const s = await requestSupervisor(fx.home, { op: 'status' }, 2000);
  assert.is(s.active?.version, '1.1.0', 'the supervisor serves 1.1.0');
  await assertCompleteVersion(fx.home, '1.1.0', await fx.files('1.1.0'));
  const records = (await history(fx.home)).records ?? [];
  const record = records.find((r) => r.to === '1.1.0');
  assert.is(record?.outcome, 'committed', `the rebuilt store records the update: ${JSON.stringify(records)}`);
  assert.is(record?.from, OLD);
  process.stdout.write(`  row 20: ${load.requests} requests during the update, 0 failed\n`);
}

row20('every file in state/ overwritten with garbage, ferry run restarted: the app starts and answers, status reports current and the rebuild, the next update hands over with 0 failed requests', async () => {
  await damagedStoreCase(async (stateDir) => {
    const names = await readdir(stateDir);
    assert.ok(names.length > 0, 'the store has files to damage');
    for (const name of names) {
      const path = join(stateDir, name);
      const size = (await stat(path)).size;
      await writeFile(path, randomBytes(Math.max(64, size)));
    }
  }, true);
});

row20('the store deleted, ferry run restarted: the app starts and answers, status reports current, the next update hands over with 0 failed requests', async () => {
  await damagedStoreCase(async (stateDir) => {
    await rm(stateDir, { recursive: true, force: true });
  }, false);
});

// ---------------------------------------------------------------------------------------------
// Row 21: the new release is unhealthy, while `ferry run` serves a load

const row21 = suite('row 21: unhealthy releases handed over under load by ferry run');
let fx21: Fixture | null = null;
let sup21: RunningSupervisor;
let port21 = 0;

row21.before(async () => {
  fx21 = await makeFixture();
  ({ sup: sup21, port: port21 } = await serving(fx21, OLD));
});

row21.after(async () => {
  await fx21?.cleanup();
});

/** Publishes `version`, runs `ferry update` from another process under load; returns the run and the load. */
async function updateUnderLoad(fx: Fixture, version: string, variant: Variant, o: { failuresAllowed?: boolean } = {}): Promise<{ update: Run; load: Load; candidates: Set<number> }> {
  await fx.publish(version, variant);
  const before = await requestSupervisor(fx.home, { op: 'status' }, 2000);
  const candidates = new Set<number>();
  let watching = true;
  // Which pids the supervisor started for the new version (an independent check follows via /proc).
  const watch = (async () => {
    while (watching) {
      const s = await requestSupervisor(fx.home, { op: 'status' }, 1000).catch(() => null);
      for (const g of [s?.candidate, s?.active, ...(s?.draining ?? [])]) if (g && g.version === version) candidates.add(g.pid);
      await new Promise((r) => setTimeout(r, 25));
    }
  })();
  const load = new Load(port21, LOAD_LIMITS).start();
  let update: Run;
  try {
    await waitGone(() => (load.requests < 50 ? [load.requests] : []), 10_000); // warmed up
    update = await ferry(['update', '--home', fx.home, '--json']);
    // Keep the load on a little after the answer: the old generation must still be serving.
    await sleep(500);
  } finally {
    await load.stop();
    watching = false;
    await watch;
  }
  if (!o.failuresAllowed) assert.equal(load.failures, [], `update to ${version} (${variant}): ${load.describe()}\nsupervisor output:\n${sup21.output().slice(-3000)}`);
  assert.not.ok(load.hitCap, `the load was still running at the end (${load.requests} requests)`);
  assert.ok(load.requests > 100, `a real load: ${load.requests} requests`);
  assert.ok(before.active, 'an active generation before the update');
  return { update, load, candidates };
}

row21('a release that hangs on start (listens, then deadlocks, ignores SIGTERM, has a helper process): not ready in time, rolled back with ERR_UNHEALTHY/exit 10, 0 failed requests, its whole process group is gone', async () => {
  const fx = fx21!;
  const version = '1.1.0';
  const before = await requestSupervisor(fx.home, { op: 'status' }, 2000);
  const { update, load, candidates } = await updateUnderLoad(fx, version, 'hang-on-start');
  await assertRolledBack(fx, update, version, /not ready within \d+ ms/);
  assert.equal([...load.versions], [OLD], 'only the old version answered');
  const s = await requestSupervisor(fx.home, { op: 'status' }, 2000);
  assert.is(s.active?.version, OLD, 'the old version keeps serving');
  assert.is(s.active?.pid, before.active?.pid, 'the same old process: it never stopped');
  assert.is(s.candidate, null);
  const pids = await hungPids(fx, version);
  assert.is(pids.length, 1, `the hung release started once and recorded its pids: ${JSON.stringify(pids)}`);
  const { app, helper } = pids[0]!;
  assert.ok(candidates.has(app), `the supervisor's candidate was the hung app ${app}: ${[...candidates].join(', ')}`);
  // SIGTERM cannot end it (its thread is blocked): the drain timeout's SIGKILL must, group and all.
  const left = await waitGone(() => [app, helper].filter(alive), 20_000);
  assert.equal(left, [], `the hung app (${app}) and its helper (${helper}) are gone; output:\n${sup21.output().slice(-2000)}`);
  assert.equal(groupMembers(app), [], `nothing is left in the hung app's process group ${app}`);
  assert.match(sup21.output(), new RegExp(`${version} \\(pid ${app}\\) still running after \\d+ ms of draining: SIGKILL`), 'it took the drain timeout\'s SIGKILL');
  const own = processesOf(fx.home).filter((p) => p.pgid !== s.active!.pid);
  assert.equal(own, [], 'every process left for this home belongs to the serving generation');
  assert.is(await waitAnswering(port21, 'after the rollback'), OLD);
});

row21('a release that is ready, then exits 1 during its trial (ferry run --trial, default 3 s): rolled back with ERR_UNHEALTHY/exit 10; the old process never stopped and answers everything after', async () => {
  const fx = fx21!;
  const version = '1.2.0';
  const before = await requestSupervisor(fx.home, { op: 'status' }, 2000);
  // Requests the crashing process had accepted die with it; those are counted, not asserted away.
  const { update, load } = await updateUnderLoad(fx, version, 'crash-after-ready', { failuresAllowed: true });
  await assertRolledBack(fx, update, version, /was ready, then exited 1 during its \d+ ms trial/);
  console.log(`  crash during the trial: ${load.describe().split('\n')[0]}`);
  const s = await requestSupervisor(fx.home, { op: 'status' }, 2000);
  assert.is(s.active?.version, OLD, 'the old version keeps serving');
  assert.is(s.active?.pid, before.active?.pid, 'the same old process: it was never drained');
  assert.is(s.candidate, null);
  // After the rollback, a fresh bounded load sees only the old version and no failure.
  const after = new Load(port21, LOAD_LIMITS).start();
  try {
    await waitGone(() => (after.requests < 300 ? [after.requests] : []), 20_000);
  } finally {
    await after.stop();
  }
  assert.equal(after.failures, [], `after the rollback: ${after.describe()}`);
  assert.equal([...after.versions], [OLD], 'only the old version answers after the rollback');
});

// ---------------------------------------------------------------------------------------------
// Row 19: `ferry run` itself SIGKILLed in the middle of a handover

const row19 = suite('row 19: ferry run SIGKILLed in the middle of a handover');
let fx19: Fixture | null = null;

row19.after(async () => {
  await fx19?.cleanup();
});

row19('SIGKILL of ferry run after the new generation started, before the commit: no orphan of either generation, the update rolls back, a restarted ferry run serves exactly the version current and status name', async () => {
  fx19 = await makeFixture();
  const fx = fx19;
  const first = await serving(fx, OLD);
  const version = '1.1.0';
  await fx.publish(version, 'slow-ready');
  const old = (await requestSupervisor(fx.home, { op: 'status' }, 2000)).active!;
  const update = startFerry(['update', '--home', fx.home, '--json']);
  let killedAt: string;
  try {
    const s = await waitForStatus(fx.home, first.sup, (st) => st.candidate?.version === version, `the handover to ${version} starts`, 30_000);
    const candidate = s.candidate!;
    assert.is(candidate.state, 'starting', 'the new generation is started, not yet ready');
    killedAt = `candidate ${candidate.pid} (${candidate.state}), active ${s.active?.pid}`;
    first.sup.child.kill('SIGKILL');
    await first.sup.exit;

    const run = await update.done;
    await assertRolledBack(fx, run, version, /supervisor/);

    // Both generations hear of the supervisor's death (PR_SET_PDEATHSIG, or EOF on FERRY_NOTIFY_FD) and exit.
    const left = await waitGone(() => [old.pid, candidate.pid].filter(alive), 20_000);
    assert.equal(left, [], `no app process of either generation outlives its supervisor (${killedAt})`);
    const orphans = await waitGone(() => processesOf(fx.home), 10_000);
    assert.equal(orphans, [], 'no process is left for this home');
  } finally {
    if (update.child.exitCode === null && update.child.signalCode === null) update.child.kill('SIGKILL');
    await update.done.catch(() => {});
  }

  const again = await serving(fx, OLD);
  const st = await status(fx.home);
  assert.is(st.run.code, 0, describeRun(st.run));
  assert.is(st.status!.currentVersion, OLD, 'status agrees with current');
  assert.is(st.status!.phase, 'idle');
  await assertCompleteVersion(fx.home, OLD, await fx.files(OLD));
  const s = await requestSupervisor(fx.home, { op: 'status' }, 2000);
  assert.is(s.active?.version, OLD);
  assert.is(s.candidate, null);
  assert.equal(s.draining, []);
  const procs = processesOf(fx.home);
  assert.ok(procs.length > 0 && procs.every((p) => p.pgid === s.active!.pid), `exactly one generation runs: ${JSON.stringify(procs)}`);
  const answers = new Set<string>();
  for (let i = 0; i < 20; i++) answers.add((await get(again.port, '/', false)).body.trim());
  assert.equal([...answers], [OLD], 'exactly one version serves');
});

row20.run();
row21.run();
row19.run();
