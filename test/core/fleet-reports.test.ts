// Issue 16 item 4: `ferry fleet` in-process: twenty real device identities with signed reports in
// a folder tree, and one each of the reports the fleet must refuse and count (forged, a key swapped
// for a known id, another app, 100 MB, malformed, not on the allow-list, replayed after a first
// run), then the exact summary: devices per version, rollout progress, failures, silent devices,
// versions over time. The CLI and the HTML page are test/cli/fleet-cli.test.ts's.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { open, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tempDir, type TempDir } from '../helpers/repo.ts';
import { forge, hexKey, newIdentity, reportOf, writeReport } from '../helpers/fleet-report-maker.ts';
import { runFleet, parseSilentSince, parseDeviceList } from '../../core/fleet/run-fleet.ts';
import { decideReport, emptyFleetState, type DeviceState } from '../../core/fleet/fleet-state.ts';
import { rolloutRows, versionsOverTime } from '../../core/fleet/fleet-summary.ts';
import { rolloutBucket } from '../../core/policy/rollout.ts';
import type { DeviceReport } from '../../core/fleet/report.ts';
import type { DeviceIdentity } from '../../core/fleet/device-identity.ts';
import type { ChannelDoc } from '../../core/trust/metadata.ts';

const NOW = new Date('2026-12-05T12:00:00.000Z');
const ago = (ms: number) => new Date(NOW.getTime() - ms).toISOString();
const HOUR = 3_600_000, DAY = 24 * HOUR;

let tmp: TempDir;
let dir: string;
const devices: DeviceIdentity[] = [];

/** Device i: 0-11 on 1.1.0 (since 2 days), 12-19 on 1.0.0; 15-19 on beta; 18-19 silent 10 days. */
function reportFor(i: number, over: Partial<DeviceReport> = {}): DeviceReport {
  const d = devices[i]!;
  const upgraded = i < 12;
  const time = i >= 18 ? ago(10 * DAY) : ago(HOUR);
  const versions = [{ version: '1.0.0', since: ago(10 * DAY + HOUR) }, ...(upgraded ? [{ version: '1.1.0', since: ago(2 * DAY) }] : [])];
  const failed = i === 12 || i === 13 ? 'ERR_UNHEALTHY' : i === 14 ? 'ERR_NO_SPACE' : null;
  return reportOf(d, {
    time,
    channel: i >= 15 ? 'beta' : 'stable',
    sequence: 3,
    currentVersion: upgraded ? '1.1.0' : '1.0.0',
    versions,
    lastAttempt: {
      from: upgraded ? '1.0.0' : null, to: failed ? '1.1.0' : upgraded ? '1.1.0' : '1.0.0', kind: 'full',
      outcome: failed === 'ERR_UNHEALTHY' ? 'rolled-back' : failed ? 'failed' : 'committed', errorCode: failed,
      bytesMoved: 1000, source: 'usb:/media/stick', startedAt: time, finishedAt: time,
    },
    ...over,
  });
}

const item = suite('issue 16 item 4: ferry fleet verifies, refuses with a count, and summarises');

item.before(async () => {
  tmp = await tempDir('ferry-fleet-');
  dir = join(tmp.path, 'reports');
  for (let i = 0; i < 20; i++) devices.push(newIdentity());
  for (let i = 0; i < 20; i++) {
    // A tree, as gathered from sticks and peers: folders per site, at two depths.
    await writeReport(join(dir, i % 2 ? 'site-a' : 'site-b/stick-1', `${devices[i]!.id}.json`), reportFor(i), devices[i]!);
  }
  // Device 0's older reports, in a folder walked after its newest: processed in sequence order, all accepted.
  await writeReport(join(dir, 'z-old', '0-seq1.json'), reportFor(0, { sequence: 1, currentVersion: '1.0.0', time: ago(3 * DAY) }), devices[0]!);
  await writeReport(join(dir, 'z-old', '0-seq2.json'), reportFor(0, { sequence: 2, currentVersion: '1.0.0', time: ago(2.5 * DAY) }), devices[0]!);
  // Forged: device 1's report claiming 9.9.9 with its genuine signature kept.
  const genuine = await readFile(join(dir, 'site-a', `${devices[1]!.id}.json`));
  await writeFile(join(dir, 'forged.json'), forge(genuine, (r) => { r.currentVersion = '9.9.9'; r.sequence = 99; }));
  // A key swapped for a known id: device 3's id, signed by a stranger naming the stranger's key.
  const stranger = newIdentity();
  await writeReport(join(dir, 'swapped.json'), { ...reportOf(stranger, { sequence: 50, currentVersion: '6.6.6' }), deviceId: devices[3]!.id }, { ...stranger, id: devices[3]!.id });
  // Another app, signed by device 2 itself.
  await writeReport(join(dir, 'other-app.json'), reportFor(2, { app: 'other-app', sequence: 7, currentVersion: '5.0.0' }), devices[2]!);
  // 100 MB, sparse: must be refused from its size alone.
  const big = await open(join(dir, 'huge.json'), 'w');
  await big.truncate(100 * 1024 * 1024);
  await big.close();
  await writeFile(join(dir, 'junk.json'), '{"type": "ferry/rep');
  await writeFile(join(dir, 'not-a-report.json'), JSON.stringify({ payloadType: 'application/vnd.ferry.report+json', payload: 'e30=', signatures: [] }));
  await writeFile(join(dir, 'notes.txt'), 'not a .json file: never read');
});

item.after(async () => {
  await tmp.cleanup();
});

let first: Awaited<ReturnType<typeof runFleet>>;

item('the first run (trust on first use): every refusal counted, the summary exact', async () => {
  const t0 = Date.now();
  first = await runFleet({ dir, app: 'sample-app', now: NOW });
  const s = first.summary;
  assert.is(s.devices, 20);
  assert.equal(s.refusals, { ERR_JSON: 1, ERR_SCHEMA: 1, ERR_SIGNATURE: 2, ERR_TOO_LARGE: 1, ERR_WRONG_TARGET: 1 });
  // 20 newest + 2 older of device 0 accepted; 6 refused.
  assert.equal(s.reports, { files: 28, accepted: 22, alreadySeen: 0, refused: 6 });
  const refused = Object.fromEntries(s.refused.map((r) => [r.file, r.code]));
  assert.equal(refused, { 'forged.json': 'ERR_SIGNATURE', 'swapped.json': 'ERR_SIGNATURE', 'other-app.json': 'ERR_WRONG_TARGET', 'huge.json': 'ERR_TOO_LARGE', 'junk.json': 'ERR_JSON', 'not-a-report.json': 'ERR_SCHEMA' });
  assert.match(s.refused.find((r) => r.file === 'huge.json')!.message, /not read/);
  assert.equal(s.versions, [{ target: 'linux-x64', version: '1.1.0', devices: 12 }, { target: 'linux-x64', version: '1.0.0', devices: 8 }]);
  assert.equal(s.failures, [{ code: 'ERR_UNHEALTHY', devices: 2, versions: ['1.1.0'], sources: ['usb:/media/stick'] }, { code: 'ERR_NO_SPACE', devices: 1, versions: ['1.1.0'], sources: ['usb:/media/stick'] }]);
  assert.equal(s.silent.devices.map((d) => d.deviceId).sort(), [devices[18]!.id, devices[19]!.id].sort());
  assert.is(s.silent.since, ago(7 * DAY));
  // Versions over time: 11 days (10 days ago … today), 20 devices every day, 1.1.0 from 2 days ago.
  assert.is(s.history.days.length, 11);
  assert.is(s.history.days.at(-1), '2026-12-05');
  assert.equal(s.history.versions, ['1.0.0', '1.1.0']);
  assert.equal(s.history.counts.map((r) => r.join('/')), [...Array(8).fill('20/0'), '8/12', '8/12', '8/12']);
  // The oversized file was never read: the whole run over 100 MB of it stays fast.
  assert.ok(Date.now() - t0 < 15_000, `took ${Date.now() - t0} ms`);
  const state = JSON.parse(await readFile(join(dir, '.ferry-fleet.json'), 'utf8')) as { devices: Record<string, DeviceState> };
  assert.is(state.devices[devices[0]!.id]!.sequence, 3, 'device 0 at its newest after 1, 2, 3 in order');
  assert.is(state.devices[devices[3]!.id]!.publicKey, hexKey(devices[3]!), 'the swapped key did not replace the first-seen one');
});

item('a re-run on the same folder counts no replays; an older report added later is a replay', async () => {
  const again = await runFleet({ dir, app: 'sample-app', now: NOW });
  assert.equal(again.summary.reports, { files: 28, accepted: 0, alreadySeen: 22, refused: 6 });
  assert.is(again.summary.refusals.ERR_DOWNGRADE, undefined);
  // Device 4 (at sequence 3, on 1.1.0) replayed at sequence 2 claiming 1.0.0: genuinely signed, but older.
  await writeReport(join(dir, 'replayed.json'), reportFor(4, { sequence: 2, currentVersion: '1.0.0' }), devices[4]!);
  const replay = await runFleet({ dir, app: 'sample-app', now: NOW });
  assert.equal(replay.summary.refusals, { ERR_DOWNGRADE: 1, ERR_JSON: 1, ERR_SCHEMA: 1, ERR_SIGNATURE: 2, ERR_TOO_LARGE: 1, ERR_WRONG_TARGET: 1 });
  assert.is(replay.summary.refused.find((r) => r.file === 'replayed.json')?.code, 'ERR_DOWNGRADE');
  assert.equal(replay.summary.versions, first.summary.versions, 'device 4 still shown at its newest (1.1.0)');
  // Once the newest is gone from the folder the state still remembers it (and still refuses the replay).
  await rm(join(dir, 'site-b/stick-1', `${devices[4]!.id}.json`));
  const gone = await runFleet({ dir, app: 'sample-app', now: NOW });
  assert.is(gone.summary.refusals.ERR_DOWNGRADE, 1);
  assert.is(gone.summary.devices, 20);
  await rm(join(dir, 'replayed.json'));
  await writeReport(join(dir, 'site-b/stick-1', `${devices[4]!.id}.json`), reportFor(4), devices[4]!);
});

item('an allow-list refuses keys not on it (ERR_UNKNOWN_KEY), and a state of its own starts fresh', async () => {
  const list = join(tmp.path, 'devices.txt');
  await writeFile(list, `# fleet keys\n${devices.slice(0, 19).map(hexKey).join('\n')}\n`);
  const run = await runFleet({ dir, app: 'sample-app', devices: list, state: join(tmp.path, 'allow-state.json'), now: NOW });
  assert.is(run.summary.devices, 19);
  assert.is(run.summary.refusals.ERR_UNKNOWN_KEY, 1);
  assert.is(run.summary.refused.find((r) => r.code === 'ERR_UNKNOWN_KEY')?.deviceId, devices[19]!.id);
  // The same list on the folder's own state, where device 19 is remembered and its file already seen.
  const known = await runFleet({ dir, app: 'sample-app', devices: list, now: NOW });
  assert.is(known.summary.devices, 19);
  assert.is(known.summary.refusals.ERR_UNKNOWN_KEY, 1);
  assert.is(known.summary.reports.alreadySeen, 21);
  assert.throws(() => parseDeviceList('zz\n', 'x'), /line 1/);
});

item('trust on first use: a known id under another key is ERR_UNKNOWN_KEY; same report is not a replay', () => {
  const d = devices[5]!, other = newIdentity();
  const report = reportFor(5);
  const known: DeviceState = { publicKey: hexKey(other), firstSeen: NOW.toISOString(), sequence: 3, payloadSha256: 'x', envelope: '', report };
  const ctx = { app: 'sample-app', allowed: null };
  const verified = { report, payloadSha256: 'a'.repeat(64) };
  assert.equal(decideReport(known, verified, ctx), { refuse: 'ERR_UNKNOWN_KEY', message: `device ${d.id}: not the key first seen for it` });
  const mine = { ...known, publicKey: hexKey(d), payloadSha256: 'a'.repeat(64) };
  assert.equal(decideReport(mine, verified, ctx), { accept: 'same' });
  assert.equal((decideReport({ ...mine, payloadSha256: 'b'.repeat(64) }, verified, ctx) as { refuse: string }).refuse, 'ERR_DOWNGRADE');
  assert.equal(decideReport(undefined, verified, ctx), { accept: 'newer' });
  assert.equal(decideReport(emptyFleetState('sample-app').devices[d.id], verified, { ...ctx, app: 'other' }).hasOwnProperty('refuse'), true);
});

item('rollout progress per channel: percent in force now, running vs eligible, in the rollout by bucket', () => {
  const reports = devices.map((_, i) => reportFor(i));
  const pin = { path: 'releases/1.1.0/manifest.json', size: 1, sha256: '0'.repeat(64) };
  const salt = 'ab'.repeat(16);
  const channel = (name: 'stable' | 'beta', rollout?: ChannelDoc['targets'][string]['rollout']): ChannelDoc => ({
    type: 'ferry/channel', app: 'sample-app', channel: name, sequence: 4, expires: ago(-DAY), targets: { 'linux-x64': { version: '1.1.0', manifest: pin, ...(rollout ? { rollout } : {}) } },
  });
  const rows = rolloutRows(reports, [
    channel('stable', { percent: 10, salt, steps: [{ at: ago(DAY), percent: 50 }, { at: ago(-DAY), percent: 100 }], previous: null }),
    channel('beta', { percent: 0, salt, steps: [], previous: null }),
  ], NOW);
  const stableIds = devices.slice(0, 15).map((d) => d.id);
  assert.equal(rows, [
    { channel: 'beta', target: 'linux-x64', version: '1.1.0', percentNow: 0, phased: true, halted: true, running: 0, eligible: 5, inRollout: 0 },
    { channel: 'stable', target: 'linux-x64', version: '1.1.0', percentNow: 50, phased: true, halted: false, running: 12, eligible: 15, inRollout: stableIds.filter((id) => rolloutBucket(id, salt) < 5000).length },
  ]);
  assert.equal(rolloutRows(reports, [channel('beta')], NOW)[0]!.inRollout, 5, 'no rollout: every eligible device');
});

item('versions over time is bounded to 30 days; --silent-since takes a duration or a date', () => {
  const h = versionsOverTime([reportOf(devices[0]!, { versions: [{ version: '0.1.0', since: ago(400 * DAY) }] })], NOW);
  assert.is(h.days.length, 30);
  assert.equal(h.counts[0], [1]);
  assert.is(parseSilentSince('2026-11-01', NOW).toISOString(), '2026-11-01T00:00:00.000Z');
  assert.is(parseSilentSince('36h', NOW).toISOString(), ago(36 * HOUR));
  assert.throws(() => parseSilentSince('last week', NOW), /neither a duration/);
});

item('a state file edited by hand: each edited entry is dropped and named, never shown; a report whose version is no semver is refused', async () => {
  const scratch = await tempDir('ferry-fleet-state-');
  try {
    const folder = join(scratch.path, 'reports');
    const a = newIdentity(), b = newIdentity();
    await writeReport(join(folder, 'a.json'), reportOf(a, { sequence: 5, currentVersion: '1.1.0' }), a);
    await writeReport(join(folder, 'b.json'), reportOf(b, { sequence: 7, currentVersion: '1.1.0' }), b);
    // A version the loose shape would pass but semver does not: refused, and the run still works.
    const c = newIdentity();
    await writeReport(join(folder, 'c.json'), reportOf(c, { currentVersion: '1.0.0-..', versions: [] }), c);
    const first = await runFleet({ dir: folder, app: 'sample-app', now: NOW });
    assert.is(first.summary.devices, 2);
    assert.equal(first.summary.refusals, { ERR_SCHEMA: 1 });
    // Edit the state: a's sequence raised (to shut its real reports out as replays), b's signed
    // envelope altered to show 6.6.6.
    const statePath = join(folder, '.ferry-fleet.json');
    const state = JSON.parse(await readFile(statePath, 'utf8'));
    state.devices[a.id].sequence = 999_999_999_999;
    state.devices[b.id].envelope = forge(Buffer.from(state.devices[b.id].envelope, 'utf8'), (r) => { r.currentVersion = '6.6.6'; }).toString('utf8');
    await writeFile(statePath, JSON.stringify(state));
    const after = await runFleet({ dir: folder, app: 'sample-app', now: NOW });
    assert.equal(after.stateDropped.map((d) => d.slice(0, 32)).sort(), [a.id, b.id].sort());
    // Both are learnt again from their real reports, at their real versions; nothing shows 6.6.6.
    assert.is(after.summary.devices, 2);
    assert.equal(after.summary.versions, [{ target: 'linux-x64', version: '1.1.0', devices: 2 }]);
    assert.is(after.summary.refusals.ERR_DOWNGRADE, undefined, "a's real report is not taken for a replay");
  } finally {
    await scratch.cleanup();
  }
});

item.run();
