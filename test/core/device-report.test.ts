// issue 16 item 3: the report a device writes about itself. buildReport as tables (what a report
// says, that it carries no secret, its size, its ever-growing sequence), ferry.json's `reports`
// field, and the Updater's hook: a real device home (real LevelDB, a real signed repository)
// writes a signed <home>/device/report.json after each attempt's outcome, never failing the update.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeRepo, sampleApp, tempDir, type TempDir, type TestRepo } from '../helpers/repo.ts';
import { cleanupAll, fakeClock, fakeHealth, makeDevice, type TestDevice } from '../helpers/device.ts';
import { assertCode } from '../helpers/assert-code.ts';
import { buildReport, reportSource, type ReportInput } from '../../core/fleet/device-report.ts';
import { parseReport, REPORT_MAX_VERSIONS, signReport, type DeviceReport } from '../../core/fleet/report.ts';
import { createDeviceIdentity, loadDeviceIdentity, type DeviceIdentity } from '../../core/fleet/device-identity.ts';
import { homeLayout } from '../../core/device/layout.ts';
import { DEFAULT_REPORTS, parseDeviceConfig } from '../../core/device/config.ts';
import type { UpdateRecord } from '../../core/spec.ts';

let tmp: TempDir;
let identity: DeviceIdentity;
const NOW = new Date('2026-12-05T12:00:00.000Z');
const SECONDS = Math.floor(NOW.getTime() / 1000);
const CONFIG = { app: 'demo', platform: 'linux', arch: 'x64', policy: { channel: 'stable' } };

function record(n: number, fields: Partial<UpdateRecord> = {}): UpdateRecord {
  const at = new Date(NOW.getTime() - (100 - n) * 3600_000).toISOString();
  return { id: `r${n}`, from: `1.${n - 1}.0`, to: `1.${n}.0`, source: '/srv/repo', kind: 'delta', bytesMoved: 4096 * n, startedAt: at, finishedAt: at, outcome: 'committed', errorCode: null, ...fields };
}

function input(over: Partial<ReportInput> = {}): ReportInput {
  return { identity, config: CONFIG, currentVersion: '1.0.0', history: [], freeDiskBytes: 123_456_789, now: NOW, previousSequence: 0, ...over };
}

// ---------------------------------------------------------------------------------------------

const build = suite('issue 16 item 3: buildReport');
build.before(async () => {
  tmp = await tempDir('ferry-report-');
  identity = await createDeviceIdentity(homeLayout(join(tmp.path, 'home')));
});

build('a device with no history: who it is, what it runs, no attempt, no versions', () => {
  const r = buildReport(input());
  assert.equal(r, {
    type: 'ferry/report', deviceId: identity.id, publicKey: Buffer.from(identity.key.publicKey).toString('hex'),
    app: 'demo', target: 'linux-x64', channel: 'stable', sequence: SECONDS, time: NOW.toISOString(),
    currentVersion: '1.0.0', lastAttempt: null, freeDiskBytes: 123_456_789, versions: [],
  });
});

const sequenceCases: [string, number, Date, number][] = [
  ['first report: the clock in whole seconds', 0, NOW, SECONDS],
  ['two reports in one second: previous + 1', SECONDS, NOW, SECONDS + 1],
  ['a device clock set back: still previous + 1', SECONDS + 5000, new Date(NOW.getTime() - 86_400_000), SECONDS + 5001],
  ['report.json lost (previous 0) a second later: the clock is past the lost report', 0, new Date(NOW.getTime() + 1000), SECONDS + 1],
];
for (const [name, previousSequence, now, expected] of sequenceCases) {
  build(`sequence: ${name}`, () => assert.is(buildReport(input({ previousSequence, now })).sequence, expected));
}

const sourceCases: [string, string | null, string | null][] = [
  ['a folder', '/srv/repo', '/srv/repo'],
  ['a stick', 'usb:/media/stick', 'usb:/media/stick'],
  ['a static LAN list', 'lan:10.0.0.2:8080,10.0.0.3:8080', 'lan:10.0.0.2:8080,10.0.0.3:8080'],
  ['an origin with user:password and a token query', 'https://fleet:s3cret@origin.example/app/?token=abc123#frag', 'https://origin.example/app/'],
  ['an origin with only a user', 'http://admin@10.0.0.1:8080/repo', 'http://10.0.0.1:8080/repo'],
  ['issue 16 review item 4: a password holding an @', 'https://user:s3cr@tpw@host/repo', 'https://host/repo'],
  ['issue 16 review item 4: a password holding an @, a port the URL parser refuses', 'https://user:s3cr@tpw@host:99999/repo?x=1', 'https://host:99999/repo'],
  ['issue 16 review item 4: a list of origins with credentials', 'https://a:p@w@h1/x,https://b:q@h2/y?t=1', 'https://h1/x,https://h2/y'],
  ['no source', null, null],
];
for (const [name, source, expected] of sourceCases) {
  build(`source: ${name}`, () => assert.is(reportSource(source), expected));
}
build('source: a name longer than 256 characters is cut to 256', () => {
  assert.is(reportSource(`/srv/${'x'.repeat(600)}`)!.length, 256);
});

build('no secret reaches the signed bytes: the last attempt from an origin with credentials', () => {
  const last = record(5, { source: 'https://fleet:s3cret@origin.example/app?token=abc123' });
  const bytes = signReport(buildReport(input({ history: [last] })), identity);
  const text = Buffer.from(JSON.parse(bytes.toString()).payload, 'base64').toString();
  assert.not.ok(text.includes('s3cret') || text.includes('abc123') || text.includes('fleet:'), text);
  assert.is(parseReport(bytes).report.lastAttempt!.source, 'https://origin.example/app');
});

build('lastAttempt is the newest record; versions are committed installs, oldest first, at most REPORT_MAX_VERSIONS', () => {
  const history = [
    ...Array.from({ length: 12 }, (_, i) => record(i + 1)),
    record(13, { outcome: 'rolled-back', errorCode: 'ERR_UNHEALTHY' }),
    record(14, { to: null, kind: null, outcome: 'refused', errorCode: 'ERR_SIGNATURE', bytesMoved: 0, message: 'forged' }),
  ];
  const r = buildReport(input({ history }));
  assert.equal(r.lastAttempt, { from: '1.13.0', to: null, kind: null, outcome: 'refused', errorCode: 'ERR_SIGNATURE', bytesMoved: 0, source: '/srv/repo', startedAt: history[13]!.startedAt, finishedAt: history[13]!.finishedAt });
  assert.is(r.versions.length, REPORT_MAX_VERSIONS);
  assert.equal(r.versions.map((v) => v.version), Array.from({ length: REPORT_MAX_VERSIONS }, (_, i) => `1.${12 - REPORT_MAX_VERSIONS + i + 1}.0`));
  assert.equal(r.versions.at(-1), { version: '1.12.0', since: history[11]!.finishedAt });
});

build('a realistic report (8 versions, an origin source, a failed attempt) signs to under 2 KB and verifies', () => {
  const history = [
    ...Array.from({ length: 10 }, (_, i) => record(i + 1, { source: 'https://updates.example.com/fleet/app-one' })),
    record(11, { outcome: 'failed', errorCode: 'ERR_NO_SPACE', source: 'https://updates.example.com/fleet/app-one', kind: 'chain' }),
  ];
  const bytes = signReport(buildReport(input({ history, currentVersion: '1.10.0' })), identity);
  assert.ok(bytes.byteLength < 2048, `${bytes.byteLength} bytes`);
  const { report } = parseReport(bytes);
  assert.is(report.versions.length, REPORT_MAX_VERSIONS);
  assert.is(report.lastAttempt!.errorCode, 'ERR_NO_SPACE');
});

build('ferry.json reports: absent means the default; strict like the other fields', () => {
  const base = { app: 'demo', platform: 'linux', arch: 'x64', sources: ['/srv/repo'] };
  assert.equal(parseDeviceConfig(base).reports, DEFAULT_REPORTS);
  assert.equal(parseDeviceConfig({ ...base, reports: { url: 'http://10.0.0.1:8080/reports' } }).reports, { url: 'http://10.0.0.1:8080/reports', stick: true });
  assert.equal(parseDeviceConfig({ ...base, reports: { url: null, stick: false } }).reports, { url: null, stick: false });
  assertCode(() => parseDeviceConfig({ ...base, reports: { url: 'ftp://x/' } }), 'ERR_USAGE');
  assertCode(() => parseDeviceConfig({ ...base, reports: { url: 'http://x/reports?token=1' } }), 'ERR_USAGE');
  assertCode(() => parseDeviceConfig({ ...base, reports: { stick: 'yes' } }), 'ERR_USAGE');
  assertCode(() => parseDeviceConfig({ ...base, reports: { urls: 'http://x/' } }), 'ERR_USAGE');
  assertCode(() => parseDeviceConfig({ ...base, reports: 'http://x/' }), 'ERR_USAGE');
});

build.run();

// ---------------------------------------------------------------------------------------------

const hook = suite('issue 16 item 3: a signed report after every attempt (committed, rolled back, refused)');

let repo: TestRepo;
let device: TestDevice;
hook.before(async () => {
  repo = await makeRepo();
  device = await makeDevice({ trust: await repo.trust(), sources: [repo.repo], clock: fakeClock(NOW, 1000) });
});
hook.after(async () => {
  await cleanupAll(device, repo, tmp);
});

async function written(): Promise<{ report: DeviceReport; bytes: Buffer }> {
  const bytes = await readFile(device.layout.deviceReport);
  return { report: parseReport(bytes).report, bytes };
}

hook('committed, rolled back, refused: each leaves a newer signed report saying so; up to date writes none', async () => {
  assert.is(await stat(device.layout.deviceReport).then(() => true, () => false), false, 'no report before any attempt');
  await repo.release('1.0.0', sampleApp('1.0.0'));
  assert.is((await device.with((u) => u.apply())).status, 'committed');
  const first = await written();
  const key = await loadDeviceIdentity(device.layout);
  assert.is(first.report.deviceId, key!.id, 'signed by the home\'s own device key');
  assert.is(first.report.currentVersion, '1.0.0');
  assert.equal([first.report.lastAttempt?.outcome, first.report.lastAttempt?.to], ['committed', '1.0.0']);
  assert.equal(first.report.versions.map((v) => v.version), ['1.0.0']);
  assert.is((await stat(device.layout.deviceReport)).mode & 0o777, 0o644);

  // Nothing to do: no attempt, no report.
  assert.is((await device.with((u) => u.apply())).status, 'up-to-date');
  assert.ok((await written()).bytes.equals(first.bytes), 'an up-to-date check writes no report');

  await repo.release('1.1.0', sampleApp('1.1.0'));
  assert.is((await device.with((u) => u.apply(), { health: fakeHealth(false) })).status, 'rolled-back');
  const second = await written();
  assert.ok(second.report.sequence > first.report.sequence, `${second.report.sequence} > ${first.report.sequence}`);
  assert.equal([second.report.lastAttempt?.outcome, second.report.lastAttempt?.errorCode, second.report.currentVersion], ['rolled-back', 'ERR_UNHEALTHY', '1.0.0']);

  // 1.2.0's artifacts damaged on the source: the download is refused.
  await repo.release('1.2.0', sampleApp('1.2.0'));
  const originals = new Map<string, Buffer>();
  for (const name of ['linux-x64.full.tar.br', 'linux-x64.from-1.0.0.delta', 'linux-x64.from-1.1.0.delta']) {
    const path = join(repo.repo, 'releases', '1.2.0', name);
    const bytes = await readFile(path).catch(() => null);
    if (!bytes) continue;
    originals.set(path, Buffer.from(bytes));
    bytes[bytes.length >> 1]! ^= 0xff;
    await writeFile(path, bytes);
  }
  const refused = await device.with((u) => u.apply()).then(() => null, (err: { code?: string }) => err.code);
  for (const [path, bytes] of originals) await writeFile(path, bytes); // the mirror is repaired
  assert.ok(refused, 'the damaged release is refused');
  const third = await written();
  assert.ok(third.report.sequence > second.report.sequence);
  assert.equal([third.report.lastAttempt?.outcome, third.report.lastAttempt?.errorCode, third.report.lastAttempt?.to], ['refused', refused, '1.2.0']);
  assert.equal(third.report.versions.map((v) => v.version), ['1.0.0']);
});

hook('a report that cannot be written never fails or changes the update: the outcome stands, the failure is logged', async () => {
  await rm(device.layout.deviceReport, { force: true });
  await mkdir(join(device.layout.deviceReport, 'in-the-way'), { recursive: true }); // report.json is a folder now
  const logged: string[] = [];
  const result = await device.with((u) => u.apply(), { log: (m) => logged.push(m) });
  assert.is(result.status, 'committed');
  assert.is(await device.current(), '1.2.0');
  assert.ok(logged.some((m) => m.startsWith('device report not written')), logged.join('\n'));
  await rm(device.layout.deviceReport, { recursive: true });
  // The next attempt writes one again, newer than every earlier one.
  await repo.release('1.3.0', sampleApp('1.3.0'));
  assert.is((await device.with((u) => u.apply())).status, 'committed');
  assert.equal((await written()).report.versions.map((v) => v.version), ['1.0.0', '1.2.0', '1.3.0']);
});

hook.run();
