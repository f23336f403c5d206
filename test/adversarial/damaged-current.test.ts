// Issue 13 item 11 (SECURITY.md row 20): a damaged `current` — a link to `/`, a link through `..`
// out of the home, a plain folder — used to fail every command (`ferry status` included) and the
// next genuine update. Now the next open restores it from the journal, history and restore points
// to an installed release that verifies against its signed manifest, writes a history record,
// `ferry status` reports it, and the next update works. The damaged link is never followed: a
// folder outside the home that it points at stays exactly as it was.
// One signed repository (1.0.0, 1.1.0, 1.2.0) for the whole file; each device has installed 1.0.0
// then 1.1.0 (so history's last commit, 1.1.0, and the restore point, 1.0.0, differ) before 1.2.0
// is published.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { cp, lstat, mkdir, readdir, readFile, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { TreeEntry } from '../../core/trust/metadata.ts';
import type { UpdateRecord } from '../../core/spec.ts';
import type { DeviceStatus } from '../../core/update/updater.ts';
import { restoreCandidates } from '../../core/update/repair-current.ts';
import { IDLE } from '../../core/device/journal.ts';
import { describeRun, ferry, signedFiles, smallApp } from '../helpers/crash.ts';
import { assertTree, makeDevice, type TestDevice } from '../helpers/device.ts';
import { makeRepo, type TestRepo } from '../helpers/repo.ts';

let repo: TestRepo;
const devices: Record<string, TestDevice> = {};
const NAMES = ['root', 'dotdot', 'folder', 'tampered', 'none'] as const;
type Name = (typeof NAMES)[number];
const files: Record<string, TreeEntry[]> = {};

const setup = suite('damaged-current fixture');
setup('a repository with 1.0.0 and 1.1.0, five homes that installed both, then 1.2.0 published', async () => {
  repo = await makeRepo();
  await repo.release('1.0.0', smallApp('1.0.0'));
  const first = await makeDevice({ trust: await repo.trust(), sources: [repo.repo] });
  devices[NAMES[0]] = first;
  assert.is((await first.with((u) => u.apply())).status, 'committed');
  await repo.release('1.1.0', smallApp('1.1.0'));
  assert.is((await first.with((u) => u.apply())).status, 'committed');
  // The other homes are copies of the first (closed, so no lock), links copied as links.
  for (const name of NAMES.slice(1)) {
    const d = await makeDevice({ trust: await repo.trust(), sources: [repo.repo] });
    await rm(d.home, { recursive: true });
    await cp(first.home, d.home, { recursive: true, verbatimSymlinks: true });
    devices[name] = d;
  }
  await repo.release('1.2.0', smallApp('1.2.0'));
  for (const v of ['1.0.0', '1.1.0', '1.2.0']) files[v] = await signedFiles(repo.repo, v);
});
setup.run();

/** Replaces the `current` link by hand (as a bad script or a careless admin would). */
async function damage(d: TestDevice, how: { link: string } | { folder: Record<string, string> }): Promise<void> {
  await rm(d.layout.current);
  if ('link' in how) return symlink(how.link, d.layout.current);
  await mkdir(d.layout.current);
  for (const [name, text] of Object.entries(how.folder)) await writeFile(join(d.layout.current, name), text);
}

const repairRecord = (records: UpdateRecord[]): UpdateRecord | undefined => records.find((r) => r.source === 'recovery:current');

/** The device is on a complete `version`: the link's text, and the tree behind it verified by the test's own walk. */
async function assertOn(d: TestDevice, version: string): Promise<void> {
  assert.is(await readlink(d.layout.current), `releases/${version}`, `current links to releases/${version}`);
  await assertTree(d.layout.current, files[version]!, `current (${version})`);
}

/** The next genuine update installs 1.2.0 from `from`. */
async function nextUpdateWorks(d: TestDevice, from: string | null): Promise<void> {
  const result = await d.with((u) => u.apply());
  assert.is(result.status, 'committed', `the next update commits: ${JSON.stringify(result)}`);
  if (result.status === 'committed') assert.is(result.record.from, from);
  await assertOn(d, '1.2.0');
}

const item11 = suite('issue 13 item 11: a damaged current is reported and restored');

item11('issue 13 item 11: current a link to "/": `ferry status --json` (exit 0) restores it to 1.1.0, the last committed release that verifies, and says what was wrong and what was done; history has the record; the next update installs 1.2.0', async () => {
  const d = devices.root!;
  await damage(d, { link: '/' });
  const run = await ferry(['status', '--home', d.home, '--json']);
  assert.is(run.code, 0, describeRun(run));
  const s = JSON.parse(run.stdout) as DeviceStatus;
  assert.is(s.currentVersion, '1.1.0');
  assert.ok(s.currentRepair, `status reports the repair: ${run.stdout}`);
  assert.match(s.currentRepair!.damage, /links to "\/"/);
  assert.is(s.currentRepair!.restoredTo, '1.1.0');
  assert.match(s.currentRepair!.action, /^current was damaged \(current links to "\/", not releases\/<version>\); restored to 1\.1\.0$/);
  await assertOn(d, '1.1.0');
  const record = repairRecord(await d.with((u) => u.history()));
  assert.ok(record, 'a history record of the repair');
  assert.is(record!.outcome, 'committed');
  assert.is(record!.to, '1.1.0');
  assert.is(record!.message, s.currentRepair!.action);
  // A later status still says so (the agent may have been the one to repair it), until an update commits.
  assert.is((await d.with((u) => u.status())).currentRepair?.restoredTo, '1.1.0');
  await nextUpdateWorks(d, '1.1.0');
  assert.is((await d.with((u) => u.status())).currentRepair, null, 'old news once an update committed after it');
});

item11('issue 13 item 11: current a link through ".." to a folder outside the home: the next open restores 1.1.0 without touching that folder; the next update installs 1.2.0', async () => {
  const d = devices.dotdot!;
  const outside = join(dirname(d.home), 'outside');
  await mkdir(outside);
  await writeFile(join(outside, 'keep.txt'), 'not ferry\'s');
  await damage(d, { link: 'releases/../../outside' });
  const s = await d.with((u) => u.status());
  assert.is(s.currentVersion, '1.1.0');
  assert.match(s.currentRepair?.damage ?? '', /links to "releases\/\.\.\/\.\.\/outside"/);
  await assertOn(d, '1.1.0');
  await nextUpdateWorks(d, '1.1.0');
  assert.equal(await readdir(outside), ['keep.txt'], 'nothing was written through the damaged link');
  assert.is(await readFile(join(outside, 'keep.txt'), 'utf8'), 'not ferry\'s');
});

item11('issue 13 item 11: current a plain folder: the next open moves it aside (its contents kept), restores the link to 1.1.0; the next update installs 1.2.0', async () => {
  const d = devices.folder!;
  await damage(d, { folder: { 'app.js': 'a stray copy' } });
  const s = await d.with((u) => u.status());
  assert.is(s.currentVersion, '1.1.0');
  assert.match(s.currentRepair?.damage ?? '', /current is a folder/);
  await assertOn(d, '1.1.0');
  const aside = (await readdir(d.home)).filter((n) => n.startsWith('current.damaged-'));
  assert.is(aside.length, 1, `the folder is kept beside current: ${aside.join(', ')}`);
  assert.is(await readFile(join(d.home, aside[0]!, 'app.js'), 'utf8'), 'a stray copy');
  assert.match(s.currentRepair!.action, new RegExp(`kept at .*${aside[0]}$`));
  await nextUpdateWorks(d, '1.1.0');
});

item11('issue 13 item 11: the last committed release was tampered with: the repair passes it over (ERR_HASH_MISMATCH) and restores the restore point 1.0.0; the next update installs 1.2.0', async () => {
  const d = devices.tampered!;
  await writeFile(join(d.layout.release('1.1.0'), 'lib', 'engine.bin'), 'changed on the device');
  await damage(d, { link: '/' });
  const s = await d.with((u) => u.status());
  assert.is(s.currentVersion, '1.0.0');
  assert.is(s.currentRepair?.restoredTo, '1.0.0');
  assert.match(s.currentRepair!.action, /passed over 1\.1\.0: ERR_HASH_MISMATCH/);
  await assertOn(d, '1.0.0');
  await nextUpdateWorks(d, '1.0.0');
});

item11('issue 13 item 11: no installed release verifies: the damaged link is removed (never followed), status says nothing is installed and why, and the next update installs 1.2.0 afresh', async () => {
  const d = devices.none!;
  for (const v of ['1.0.0', '1.1.0']) await writeFile(join(d.layout.release(v), 'lib', 'engine.bin'), 'changed on the device');
  await damage(d, { link: '/' });
  const s = await d.with((u) => u.status());
  assert.is(s.currentVersion, null);
  assert.is(s.currentRepair?.restoredTo, null);
  assert.match(s.currentRepair!.action, /no installed release verifies .*1\.1\.0: ERR_HASH_MISMATCH.*1\.0\.0: ERR_HASH_MISMATCH.*nothing is installed until the next update/);
  assert.is(await lstat(d.layout.current).then(() => 'present', (e: NodeJS.ErrnoException) => e.code), 'ENOENT');
  const record = repairRecord(await d.with((u) => u.history()));
  assert.is(record?.outcome, 'failed');
  assert.is(record?.errorCode, 'ERR_NOT_INSTALLED');
  await nextUpdateWorks(d, null);
});

item11('issue 13 item 11: the restore order: the journal\'s running version, then history\'s commits (newest first), then restore points, then the newest installed; only installed versions', () => {
  const rec = (to: string, outcome: UpdateRecord['outcome']): UpdateRecord => ({ id: to, from: null, to, source: 'x', kind: 'full', bytesMoved: 0, startedAt: '', finishedAt: '', outcome, errorCode: null });
  const history = [rec('1.0.0', 'committed'), rec('1.1.0', 'committed'), rec('1.3.0', 'rolled-back')];
  const restorePoints = [{ id: 'a', version: '1.0.0', createdAt: '', reason: 'before-switch' as const }];
  const installed = ['1.0.0', '1.1.0', '1.3.0', '2.0.0'];
  assert.equal(restoreCandidates({ journal: IDLE, history, restorePoints, installed }), ['1.1.0', '1.0.0', '2.0.0', '1.3.0']);
  assert.equal(restoreCandidates({ journal: IDLE, history, restorePoints, installed: ['1.0.0', '2.0.0'] }), ['1.0.0', '2.0.0']);
  const confirming = { kind: 'update', phase: 'confirming', attemptId: 'x', from: '1.0.0', to: '1.3.0' } as unknown as Parameters<typeof restoreCandidates>[0]['journal'];
  assert.is(restoreCandidates({ journal: confirming, history, restorePoints, installed })[0], '1.0.0', 'an unconfirmed switch: back where it started');
  const committed = { ...confirming, phase: 'committed' } as typeof confirming;
  assert.is(restoreCandidates({ journal: committed, history, restorePoints, installed })[0], '1.3.0', 'journaled committed: the new version');
});

item11.after(async () => {
  for (const d of Object.values(devices)) await d.cleanup();
  await repo?.cleanup();
});
item11.run();
