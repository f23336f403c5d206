// SECURITY.md row 18, "the same test must fail when an fsync is removed", one fsync at a time.
// Every fsync ferry issues has a site name (FSYNC_SITES in core/io/durable.ts), and the test seam
// skipFsyncAt turns off exactly the named ones: the test entry (test/helpers/ferry-with-seams.mjs)
// sets it from FERRY_UNSAFE_SKIP_FSYNC=<site>, which the `ferry` executable never reads. For each site whose loss a power cut
// can show, this file takes it away alone, cuts the power right after ferry reported success, and
// requires the power-cut oracle (test/helpers/crash.ts) to find a violation; a control run with
// nothing taken away must find none.
//
// Not every fsync can be shown missing this way, and the table says which and why. ext4 (with a
// journal) commits all metadata in one ordered transaction: the next fsync of anything, e.g. the
// synced LevelDB write that journals the next phase, makes every earlier rename and directory
// entry durable too. So removing one directory fsync alone (switch.dir after the `current` rename,
// stage.releases-dir, ...) leaves nothing a cut can find: on ext4 ferry's journal write covers it.
// They still matter on filesystems without that global order (btrfs's per-file log, for one). ext4
// without a journal is no substitute: there a rename is not atomic across a cut even with every
// fsync in place. File contents are different: with delayed allocation a file whose fsync was
// skipped comes back empty, so every file-data fsync is caught; `noauto_da_alloc` is needed for
// the files replaced by rename (marks.json), which ext4 would otherwise flush on its own.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { rename } from 'node:fs/promises';
import { join } from 'node:path';
import { FSYNC_SITES, parseFsyncSkip, skipFsyncAt, skipsFsync, type FsyncSite } from '../../core/io/durable.ts';
import {
  NEW,
  OLD,
  REPORTED_COMMIT,
  REPORTED_MANUAL_ROLLBACK,
  ROOT,
  STRICT_MOUNT_OPTIONS,
  afterRemount,
  committedOnNew,
  cutDuring,
  describeRun,
  ferry,
  inPrivateMountNamespace,
  inspectAfterCut,
  makeCrashFixture,
  makeLoopFsWith,
  manualRollbackCutViolations,
  powerCutUnavailable,
  removePowerCutSetup,
  updateCutViolations,
  type CrashFixture,
  type LoopFs,
} from '../helpers/crash.ts';
import { tempDir, type TempDir } from '../helpers/repo.ts';

const t0 = performance.now();

/**
 * Every site, classified. `shownBy`: the update whose cut shows the site missing ('delta' is the
 * fixture's update, 'full' the same with the delta hidden so the full artifact is extracted), or
 * null with the reason no cut can show it. A Record, so a new site does not compile until it is
 * classified here.
 */
const TEETH: Record<FsyncSite, { shownBy: 'delta' | 'full' | null; why: string }> = {
  'store.sync': { shownBy: 'delta', why: 'the LevelDB log comes back without the session\'s writes: history loses the reported commit' },
  'delta.file': { shownBy: 'delta', why: 'the files a delta writes (core/delta/apply-delta.ts) come back empty: current is not the signed 1.1.0' },
  'unnamed': { shownBy: null, why: 'publisher-side fsyncs (publish.ts, bundle.ts) and the self-update boot record folder: none is on this update\'s path' },
  'extract.file': { shownBy: 'full', why: 'the files a full artifact extracts come back empty: current is not the signed 1.1.0' },
  'atomic-write': { shownBy: 'delta', why: 'manifests/1.1.0.json comes back empty: nothing can be rolled back to or planned from it' },
  'marks.write': { shownBy: 'delta', why: 'trust/marks.json comes back empty (with noauto_da_alloc): every later command fails ERR_JSON' },
  'switch.dir': { shownBy: null, why: 'the next synced store write commits the ext4 journal, `current` rename included; before that write, recovery goes back anyway' },
  'stage.tree': { shownBy: null, why: 'directory entries of the built tree: committed by the next fsync (the store write journaling `staged`)' },
  'stage.releases-dir': { shownBy: null, why: 'the rename into releases/: committed by the store write journaling `staged`' },
  'extract.dirs': { shownBy: null, why: 'directory entries of the extracted tree: committed by the file fsyncs and store writes after them' },
  'fetch.cache-dir': { shownBy: null, why: 'the rename into cache/: committed by the next store write; a lost cache entry is fetched again' },
};

const TRIES = 3;

let fx: CrashFixture;
let tmp: TempDir;
let disk: LoopFs | null = null;
/** healthyHome after it committed 1.1.0, for the rollback cut. */
let onNew = '';
const outcome = new Map<string, string>();

/** One `ferry update` cut right after it printed the commit; returns the violations found. */
async function cutAfterCommit(label: string, env: Record<string, string>): Promise<{ reported: boolean; violations: string[] }> {
  const cut = await cutDuring(disk!, { template: fx.healthyHome, args: (home) => ['update', '--home', home], env, trigger: { kind: 'printed', pattern: REPORTED_COMMIT } });
  const reported = REPORTED_COMMIT.test(cut.printed);
  return afterRemount(disk!, async () => {
    const after = await inspectAfterCut(cut.home, fx);
    const v = [...after.violations, ...updateCutViolations(cut, after)];
    // The next update must find the device up to date (or, on 1.0.0, install 1.1.0), not fail.
    const next = await ferry(['update', '--home', cut.home]);
    const ok = after.recovered.version === NEW ? /^up to date \(1\.1\.0\)/m.test(next.stdout) : REPORTED_COMMIT.test(next.stdout);
    if (next.code !== 0 || !ok) v.push(`the next update on ${after.recovered.version} failed: ${describeRun(next)}`);
    console.log(`  ${label}: ${cut.run.signal ?? `exit ${cut.run.code}`}${reported ? ', reported commit' : ''}; remounted on ${after.raw.version ?? 'nothing'}${v.length ? ` — VIOLATION: ${v.join(' | ').slice(0, 400)}` : ', no violation'}`);
    return { reported, violations: v };
  });
}

/** One `ferry rollback` from a committed 1.1.0, cut right after it printed the rollback. */
async function cutAfterRollback(label: string, env: Record<string, string>): Promise<{ reported: boolean; violations: string[] }> {
  const cut = await cutDuring(disk!, { template: onNew, args: (home) => ['rollback', '--home', home], env, trigger: { kind: 'printed', pattern: REPORTED_MANUAL_ROLLBACK } });
  const reported = REPORTED_MANUAL_ROLLBACK.test(cut.printed);
  return afterRemount(disk!, async () => {
    const after = await inspectAfterCut(cut.home, fx);
    const v = [...after.violations, ...manualRollbackCutViolations(cut, after)];
    console.log(`  ${label}: ${cut.run.signal ?? `exit ${cut.run.code}`}${reported ? ', reported rollback' : ''}; remounted on ${after.raw.version ?? 'nothing'}${v.length ? ` — VIOLATION: ${v.join(' | ').slice(0, 400)}` : ', no violation'}`);
    return { reported, violations: v };
  });
}

/** The sites skipsFsync reports after the test seam is set from a FERRY_UNSAFE_SKIP_FSYNC value. */
function skippedWith(value: string): FsyncSite[] {
  skipFsyncAt(parseFsyncSkip(value));
  try {
    return FSYNC_SITES.filter((s) => skipsFsync(s));
  } finally {
    skipFsyncAt([]);
  }
}

/** Runs the `ferry` executable users run (never the test entry) with `env` added. */
function runExecutable(args: string[], env: Record<string, string>): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['dist/cli/ferry.js', ...args], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'], timeout: 60_000 });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

const reason = powerCutUnavailable();
if (reason) console.log(`SKIP: ${reason} (the power cuts; the site names are still checked)`);
// The power cuts need a private mount namespace (see inPrivateMountNamespace): this file runs again in
// one, and only that run defines the suites.
const here = reason !== null || (await inPrivateMountNamespace());
if (here) {
  const names = suite('FERRY_UNSAFE_SKIP_FSYNC turns off exactly the named fsync sites, and a typo is an error');

  names('unset skips nothing, "1" skips every site, a list skips exactly its sites', () => {
    assert.equal(skippedWith(''), []);
    assert.equal(skippedWith('1'), [...FSYNC_SITES]);
    assert.equal(skippedWith('switch.dir,store.sync'), ['switch.dir', 'store.sync']);
    assert.equal(skippedWith(''), [], 'setting the seam again replaces the earlier list');
  });

  names('a site name that does not exist stops ferry instead of silently skipping nothing', async () => {
    const r = await ferry(['status', '--home', '/nonexistent-home'], { FERRY_UNSAFE_SKIP_FSYNC: 'switch.dri' });
    assert.is.not(r.code, 0, describeRun(r));
    assert.match(r.stderr, /FERRY_UNSAFE_SKIP_FSYNC names "switch\.dri", which is not an fsync site/);
  });

  names('the ferry executable never reads FERRY_UNSAFE_SKIP_FSYNC: only the test entry turns it into the seam', async () => {
    // The same typo that stops the test entry is not even looked at by dist/cli/ferry.js: it fails
    // only because the home does not exist.
    const r = await runExecutable(['status', '--home', '/nonexistent-home'], { FERRY_UNSAFE_SKIP_FSYNC: 'switch.dri' });
    assert.is.not(r.code, 0, r.stderr);
    assert.not.match(r.stderr, /FERRY_UNSAFE_SKIP_FSYNC|fsync/);
    assert.match(r.stderr, /nonexistent-home/);
  });

  names.run();
}

if (here && !reason) {
  const teeth = suite('the power-cut oracle sees each single missing fsync that a cut can show');

  teeth.before(async () => {
    tmp = await tempDir('ferry-teeth-');
    fx = await makeCrashFixture();
    onNew = await committedOnNew(fx, tmp.path);
    disk = await makeLoopFsWith(tmp.path, { mountOptions: STRICT_MOUNT_OPTIONS });
  });

  teeth('control: with every fsync in place, a cut right after the reported commit finds no violation', async () => {
    const r = await cutAfterCommit('control, no fsync skipped', {});
    assert.ok(r.reported, 'the commit was reported before the cut');
    assert.equal(r.violations, []);
  });

  for (const site of FSYNC_SITES) {
    const { shownBy, why } = TEETH[site];
    if (!shownBy) continue;
    teeth(`with only the ${site} fsync skipped, a cut right after the reported commit${shownBy === 'full' ? ' of a full-artifact update' : ''} violates within ${TRIES} tries (${why})`, async () => {
      const delta = join(fx.repo.repo, 'releases', NEW, `linux-x64.from-${OLD}.delta`);
      // No delta to fetch: the update falls back to the full artifact and extracts it.
      if (shownBy === 'full') await rename(delta, `${delta}.hidden`);
      try {
        let found: string[] = [];
        let tries = 0;
        while (tries < TRIES && found.length === 0) {
          tries++;
          const r = await cutAfterCommit(`${site} skipped, try ${tries}`, { FERRY_UNSAFE_SKIP_FSYNC: site });
          if (r.reported) found = r.violations;
        }
        outcome.set(site, found.length ? `needed: a cut found "${found[0]!.slice(0, 160)}" (try ${tries})` : `NOT detected in ${tries} tries`);
        assert.ok(found.length > 0, `with ${site} skipped, ${tries} cuts after the reported commit found nothing: the oracle cannot see this fsync missing`);
      } finally {
        if (shownBy === 'full') await rename(`${delta}.hidden`, delta);
      }
    });
  }

  teeth('control: with every fsync in place, a cut right after a reported manual rollback finds no violation', async () => {
    const r = await cutAfterRollback('rollback control, no fsync skipped', {});
    assert.ok(r.reported, 'the rollback was reported before the cut');
    assert.equal(r.violations, []);
  });

  teeth(`with only the store.sync fsync skipped, a cut right after "rolled back ${NEW} -> ${OLD}" violates within ${TRIES} tries (the rollback and its hold are lost)`, async () => {
    let found: string[] = [];
    let tries = 0;
    while (tries < TRIES && found.length === 0) {
      tries++;
      const r = await cutAfterRollback(`store.sync skipped in a rollback, try ${tries}`, { FERRY_UNSAFE_SKIP_FSYNC: 'store.sync' });
      if (r.reported) found = r.violations;
    }
    assert.ok(found.length > 0, `with store.sync skipped, ${tries} cuts after the reported rollback found nothing`);
  });

  teeth('every fsync site is either shown needed by a cut or listed with the reason no cut can show it', () => {
    for (const site of FSYNC_SITES) console.log(`  ${site}: ${outcome.get(site) ?? `not cut: ${TEETH[site].why}`}`);
    const shown = FSYNC_SITES.filter((s) => TEETH[s].shownBy);
    console.log(`fsync teeth: ${shown.length} of ${FSYNC_SITES.length} sites shown needed one at a time (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
    assert.equal(shown.filter((s) => !outcome.get(s)?.startsWith('needed')), []);
  });

  teeth.after(() => removePowerCutSetup({ disk, fx, tmp }));

  teeth.run();
}
