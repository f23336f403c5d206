// SECURITY.md row 18: power loss during staging or switch. The device home lives on ext4 in a
// loop-mounted file; `ferry update` runs in a child, and at a chosen instant the filesystem is cut
// with FS_IOC_SHUTDOWN and no log flush (test/helpers/fs-shutdown.py): what the journal had not
// committed is gone, as after a power loss. Then the child is killed, the filesystem remounted,
// and the device must be on a complete signed 1.0.0 or 1.1.0 — on 1.1.0 if the child had already
// printed that it committed, with that commit in history. A SIGKILL alone cannot show a missing
// fsync (the page cache survives it); this can, and the last suite proves it by turning ferry's
// fsyncs off (test/crash/fsync-teeth.test.ts takes them away one at a time; cuts during rollbacks
// are in test/crash/power-cut-rollback.test.ts). The file runs in a private mount namespace: see
// inPrivateMountNamespace in test/helpers/crash.ts for why.
//
// Cut points: exact phases (the child SIGKILLs itself at FERRY_TEST_KILL_AT, and the cut follows
// at once, so nothing more reaches the disk), evenly spread time offsets across an uncut update,
// and the instant right after "updated … -> 1.1.0" is printed.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  NEW,
  OLD,
  REPORTED_COMMIT,
  STRICT_MOUNT_OPTIONS,
  afterRemount,
  cutDuring,
  describeRun,
  inPrivateMountNamespace,
  inspectAfterCut,
  makeCrashFixture,
  makeLoopFsWith,
  powerCutUnavailable,
  updateCutViolations,
  type CrashFixture,
  type CutTrigger,
  type Installed,
  type LoopFs,
  type Run,
} from '../helpers/crash.ts';
import { tempDir, type TempDir } from '../helpers/repo.ts';

const t0 = performance.now();

interface CutResult {
  label: string;
  first: Run;
  reportedCommit: boolean;
  /** `current` straight after the remount, before ferry touches anything. */
  raw: Installed;
  /** `current` after `ferry status` ran recovery. */
  recovered: Installed;
  violations: string[];
}

let fx: CrashFixture;
let tmp: TempDir;
let disk: LoopFs | null = null;
const all: CutResult[] = [];

/**
 * One power cut: a fresh home on 1.0.0 on the loop filesystem (made durable first), an update in
 * a child, the cut at `trigger`, kill, remount, and the checks (test/helpers/crash.ts
 * inspectAfterCut and updateCutViolations). Returns every violation found.
 */
async function cutOnce(label: string, trigger: CutTrigger, env: Record<string, string> = {}, mustEndOn?: string): Promise<CutResult> {
  const cut = await cutDuring(disk!, { template: fx.healthyHome, args: (home) => ['update', '--home', home], env, trigger });
  const reportedCommit = REPORTED_COMMIT.test(cut.printed);
  return afterRemount(disk!, async () => {
    const after = await inspectAfterCut(cut.home, fx);
    const violations = [...after.violations, ...updateCutViolations(cut, after)];
    if (mustEndOn && after.recovered.version !== mustEndOn) violations.push(`the commit was journaled before the cut, but after recovery the device is on ${after.recovered.version}`);
    const first = cut.run;
    const result = { label, first, reportedCommit, raw: after.raw, recovered: after.recovered, violations };
    const died = first.signal ?? `exit ${first.code}${first.code ? ` (${first.stderr.trim().split('\n')[0]?.slice(0, 120)})` : ''}`;
    console.log(`  ${label}: ${died} after ${Math.round(first.ms)} ms${reportedCommit ? ', reported commit' : ''}; remounted on ${after.raw.version ?? 'nothing'}, recovered on ${after.recovered.version ?? 'nothing'}${violations.length ? ` — VIOLATION: ${violations.join(' | ')}` : ''}`);
    return result;
  });
}

const reason = powerCutUnavailable();
if (reason) {
  console.log(`SKIP: ${reason}`);
} else if (await inPrivateMountNamespace()) {
  let uncutMs = 0;

  const cuts = suite('a power cut at any instant of an update leaves a complete release');

  cuts.before(async () => {
    tmp = await tempDir('ferry-power-');
    fx = await makeCrashFixture();
    disk = await makeLoopFsWith(tmp.path, { mountOptions: STRICT_MOUNT_OPTIONS });
  });

  // Measured twice, the longer kept: one run can be quick or slow by half depending on the load.
  for (let i = 1; i <= 2; i++) {
    cuts(`an uncut update on the loop filesystem reaches 1.1.0, and the remount keeps it (#${i})`, async () => {
      const r = await cutOnce(`uncut #${i}`, { kind: 'none' });
      uncutMs = Math.max(uncutMs, r.first.ms);
      assert.is(r.first.code, 0, describeRun(r.first));
      assert.ok(r.reportedCommit, 'it printed the commit');
      assert.equal(r.violations, []);
      assert.is(r.recovered.version, NEW);
    });
  }

  // Exact phases on the healthy path: the child stops itself there and the cut follows at once.
  const PHASES = ['checking', 'downloading', 'verifying', 'staging', 'staged', 'switching', 'confirming', 'committed', 'idle'];
  const points = PHASES.flatMap((p) => [`before:${p}`, `after:${p}`]);
  for (const point of points) {
    // Once `committed` is journaled (synced after the synced switch), recovery must keep 1.1.0.
    const durable = points.indexOf(point) >= points.indexOf('after:committed');
    cuts(`cut at ${point}: complete 1.0.0 or 1.1.0 after the remount${durable ? ', and 1.1.0 (the commit was journaled)' : ''}`, async () => {
      const r = await cutOnce(`cut at ${point}`, { kind: 'phase', point }, {}, durable ? NEW : undefined);
      all.push(r);
      assert.is(r.first.signal, 'SIGKILL', `the child stopped itself at ${point}: ${describeRun(r.first)}`);
      assert.equal(r.violations, []);
    });
  }

  const OFFSETS = 12;
  for (let i = 0; i < OFFSETS; i++) {
    cuts(`cut at ${i + 1}/${OFFSETS} of an uncut update's duration: complete 1.0.0 or 1.1.0, 1.1.0 if the commit was reported`, async () => {
      const ms = Math.round((uncutMs * (i + 0.5)) / OFFSETS);
      const r = await cutOnce(`cut at ${ms} of ~${Math.round(uncutMs)} ms`, { kind: 'time', ms });
      all.push(r);
      assert.equal(r.violations, []);
    });
  }

  for (let i = 0; i < 3; i++) {
    cuts(`cut right after "updated ${OLD} -> ${NEW}" is printed (#${i + 1}): the device is on ${NEW}`, async () => {
      const r = await cutOnce(`cut after the reported commit #${i + 1}`, { kind: 'printed', pattern: REPORTED_COMMIT });
      all.push(r);
      assert.ok(r.reportedCommit, `the commit was reported before the cut: ${describeRun(r.first)}`);
      assert.equal(r.violations, []);
    });
  }

  cuts('0 violations over every cut point', () => {
    const bad = all.filter((r) => r.violations.length);
    console.log(`power cuts: ${all.length} cut points, ${bad.length} with violations (${((performance.now() - t0) / 1000).toFixed(1)} s so far)`);
    assert.equal(bad.map((r) => `${r.label}: ${r.violations.join(' | ')}`), []);
  });

  cuts.run();

  // The same check with ferry's fsyncs turned off must catch something, or it proves nothing.
  const teeth = suite('the power-cut check has teeth: with FERRY_UNSAFE_SKIP_FSYNC=1 it finds a lost commit');
  const TRIES = 8;

  teeth(`a cut right after the reported commit, fsyncs off, violates within ${TRIES} tries`, async () => {
    const found: CutResult[] = [];
    let tries = 0;
    while (tries < TRIES && found.length === 0) {
      tries++;
      const r = await cutOnce(`fsyncs off, cut after the reported commit #${tries}`, { kind: 'printed', pattern: REPORTED_COMMIT }, { FERRY_UNSAFE_SKIP_FSYNC: '1' });
      if (!r.reportedCommit) continue; // the child failed before committing: not this scenario
      if (r.violations.length) found.push(r);
    }
    console.log(`teeth: ${found.length ? `violation found on try ${tries}: ${found[0]!.violations.join(' | ')}` : `no violation in ${tries} tries`}`);
    assert.ok(found.length > 0, `with every fsync off, ${tries} cuts right after a reported commit all found 1.1.0 intact: the check cannot see a missing fsync`);
  });

  teeth.after(async () => {
    const problems = disk ? await disk.destroy() : [];
    disk = null;
    await fx?.cleanup();
    await tmp?.cleanup();
    console.log(`power-cut test took ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    if (problems.length) throw new Error(`cleanup: ${problems.join('; ')}`);
  });

  teeth.run();
}
