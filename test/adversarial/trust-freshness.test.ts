// SECURITY.md rows 3, 4 and 5 as a device meets them: replayed and forked channel pointers, a
// signed move below the security floor, a damaged trust/marks.json, a fast-forwarded sequence,
// expired pointers on online and offline sources, a clock behind the device's time floor, and an
// app that keeps serving while its metadata is expired. The attacks reach a device home already
// on a complete version through the real CLI in a child process, and each refusal is checked by
// test/helpers/refusal.ts: the stable code, its exit code, the version still complete and exactly
// as signed, and a history record of the refused attempt.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { cp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { assertRefusedByCli } from '../helpers/refusal.ts';
import { smallApp } from '../helpers/crash.ts';
import { resignChannel } from '../helpers/tamper.ts';
import { assertCodeAsync } from '../helpers/assert-code.ts';
import {
  assertNothingStaged,
  channelBytes,
  cliUpdateTo,
  daysAgo,
  exampleApp,
  ferryOk,
  httpGet,
  onFirstVersion,
  repinChannel,
  runApp,
  serveRepo,
  type OnFirstVersion,
} from '../helpers/adversarial-trust.ts';
import { generateKeyFiles, loadSigningKey } from '../../core/trust/keys.ts';
import { rotateRoot } from '../../core/publish/repository.ts';
import { channelPath } from '../../core/trust/metadata.ts';
import type { ErrorCode } from '../../core/errors.ts';

const DAY_S = 86_400;

/** `ferry <command> --home H` is refused with `code`, the device still on `version`, complete. */
async function refused(t: OnFirstVersion, code: ErrorCode, version: string, why: RegExp, command: 'update' | 'check' = 'update'): Promise<void> {
  const { record } = await assertRefusedByCli({ home: t.device.home, args: [command, '--home', t.device.home], code, version, files: await t.files(version) });
  assert.match(record.message ?? '', why, 'the record says which check refused it');
}

// ---------------------------------------------------------------------------------------------

const row3 = suite('row 3 rollback: persisted high-water marks (sequence, security floor) that a database wipe does not reset');

row3('the sequence-1 pointer replayed after 1.1.0 (sequence 2): ferry update refuses (ERR_DOWNGRADE), 1.1.0 intact; the same after rm -rf <home>/state', () => onFirstVersion({}, async (t) => {
  const pointer1 = await channelBytes(t.repo.repo);
  await t.repo.release('1.1.0', smallApp('1.1.0'));
  await cliUpdateTo(t.device.home, '1.1.0');
  await writeFile(join(t.repo.repo, channelPath('stable')), pointer1);
  await refused(t, 'ERR_DOWNGRADE', '1.1.0', /sequence 1, lower than 2/);
  await rm(t.device.layout.state, { recursive: true, force: true });
  await refused(t, 'ERR_DOWNGRADE', '1.1.0', /sequence 1, lower than 2/);
  await assertNothingStaged(t.device, ['1.0.0', '1.1.0']);
}));

row3('sequence 2 re-signed with other bytes (a stolen key extends its expiry): ferry update refuses (ERR_DOWNGRADE), 1.1.0 intact', () => onFirstVersion({}, async (t) => {
  await t.repo.release('1.1.0', smallApp('1.1.0'));
  await cliUpdateTo(t.device.home, '1.1.0');
  const forked = await resignChannel(t.repo.repo, 'stable', [t.repo.releaseKey], (doc) => { doc.expires = new Date(Date.parse(doc.expires) + 365 * DAY_S * 1000).toISOString(); });
  assert.is(forked.sequence, 2);
  await refused(t, 'ERR_DOWNGRADE', '1.1.0', /sequence 2 differs from the one already seen/);
}));

row3('security floor: after security release 1.1.0, a newer signed pointer moving stable back to 1.0.0 is refused even with allowDowngrade (ERR_DOWNGRADE); the same after rm -rf <home>/state', () => onFirstVersion({ policy: { allowDowngrade: true } }, async (t) => {
  await t.repo.release('1.1.0', smallApp('1.1.0'), { securityFix: true });
  await cliUpdateTo(t.device.home, '1.1.0');
  const moved = await repinChannel(t.repo.repo, 'stable', '1.0.0', [t.repo.releaseKey]);
  assert.is(moved.sequence, 3, 'a newer, genuinely signed pointer');
  await refused(t, 'ERR_DOWNGRADE', '1.1.0', /below the anti-rollback floor 1\.1\.0/);
  await rm(t.device.layout.state, { recursive: true, force: true });
  await refused(t, 'ERR_DOWNGRADE', '1.1.0', /below the anti-rollback floor 1\.1\.0/);
  await assertNothingStaged(t.device, ['1.0.0', '1.1.0']);
}));

row3('control for the floor: the same signed move back after an ordinary 1.1.0 is followed (allowDowngrade), so the floor is what refuses above', () => onFirstVersion({ policy: { allowDowngrade: true } }, async (t) => {
  await t.repo.release('1.1.0', smallApp('1.1.0'));
  await cliUpdateTo(t.device.home, '1.1.0');
  await repinChannel(t.repo.repo, 'stable', '1.0.0', [t.repo.releaseKey]);
  await cliUpdateTo(t.device.home, '1.0.0');
}));

/** What a disk or a careless hand can leave in trust/marks.json, and the code each must give. */
const DAMAGED_MARKS: { what: string; damage: (good: Buffer) => Buffer; code: ErrorCode; why: RegExp }[] = [
  { what: 'overwritten with garbage bytes', damage: (good) => Buffer.from(good.map((_, i) => (i * 131 + 7) & 0xff)), code: 'ERR_JSON', why: /marks\.json/ },
  { what: 'truncated to half its length', damage: (good) => good.subarray(0, Math.floor(good.length / 2)), code: 'ERR_JSON', why: /marks\.json/ },
  { what: 'emptied (0 bytes)', damage: () => Buffer.alloc(0), code: 'ERR_JSON', why: /marks\.json/ },
  { what: 'valid JSON whose timeFloor is not a date', damage: (good) => Buffer.from(JSON.stringify({ ...JSON.parse(good.toString()), timeFloor: 'yesterday' })), code: 'ERR_SCHEMA', why: /marks\.json is damaged/ },
  {
    what: 'valid JSON whose stable mark lost its sequence',
    damage: (good) => {
      const doc = JSON.parse(good.toString()) as { channels: { stable: { sequence?: number } } };
      delete doc.channels.stable.sequence;
      return Buffer.from(JSON.stringify(doc));
    },
    code: 'ERR_SCHEMA',
    why: /marks\.json is damaged/,
  },
];

for (const c of DAMAGED_MARKS) {
  row3(`trust/marks.json ${c.what}: ferry update refuses (${c.code}) instead of reading it as "no marks", and leaves the file as it was`, () => onFirstVersion({}, async (t) => {
    await t.repo.release('1.1.0', smallApp('1.1.0'));
    const damaged = c.damage(await readFile(t.device.layout.marks));
    await writeFile(t.device.layout.marks, damaged);
    await refused(t, c.code, '1.0.0', c.why);
    assert.ok((await readFile(t.device.layout.marks)).equals(damaged), 'the damaged file is not replaced by fresh marks');
    await assertNothingStaged(t.device, ['1.0.0']);
  }));
}

row3.run();

// ---------------------------------------------------------------------------------------------

const row4 = suite('row 4 fast-forward: rotating the release key resets the mark a compromised key pushed up');

row4('a compromised key signs sequence 2^40; the genuine 1.1.0 is then refused (ERR_DOWNGRADE); after the release key is rotated, ferry update installs it', () => onFirstVersion({}, async (t) => {
  const pointer = join(t.repo.repo, channelPath('stable'));
  const genuine = await readFile(pointer);
  await resignChannel(t.repo.repo, 'stable', [t.repo.releaseKey], (doc) => { doc.sequence = 2 ** 40; });
  assert.is(JSON.parse((await ferryOk(['update', '--home', t.device.home])).stdout).status, 'up-to-date', 'the device takes the far-ahead pointer as its mark');
  await writeFile(pointer, genuine);
  const r2 = await t.repo.release('1.1.0', smallApp('1.1.0'));
  assert.is(r2.channel.sequence, 2);
  await refused(t, 'ERR_DOWNGRADE', '1.0.0', /lower than 1099511627776/);
  // The publisher rotates the release key (root 2); its pointers are re-signed with the new key.
  await generateKeyFiles(join(t.repo.keysDir, 'release2'));
  const release2 = await loadSigningKey(join(t.repo.keysDir, 'release2.key'));
  await rotateRoot({ repo: t.repo.repo, signers: [t.repo.rootKey], releaseKeys: [release2], releaseSigners: [release2], revoke: [t.repo.releaseKey.keyid], now: new Date() });
  await cliUpdateTo(t.device.home, '1.1.0');
}));

row4.run();

// ---------------------------------------------------------------------------------------------

const row5 = suite('row 5 indefinite freeze / bad clock: expiry against max(clock, time floor), grace only offline, the app never stopped');

row5('a pointer expired two days ago: over http (ferry serve, no grace) ferry update refuses (ERR_EXPIRED); the same bytes from a folder (within offlineGraceDays) install', () => onFirstVersion({ publishedAt: daysAgo(4) }, async (t) => {
  await t.repo.release('1.1.0', smallApp('1.1.0'), { now: daysAgo(3), expiresIn: DAY_S });
  const served = await serveRepo(t.repo.repo);
  try {
    await t.device.setConfig({ sources: [served.url] });
    await refused(t, 'ERR_EXPIRED', '1.0.0', /channels\/stable\.json from http:\/\/127\.0\.0\.1:\d+.* expired at/);
    await assertNothingStaged(t.device, ['1.0.0']);
  } finally {
    await served.stop();
  }
  await t.device.setConfig({ sources: [t.repo.repo] });
  await cliUpdateTo(t.device.home, '1.1.0');
}));

row5('an old pointer that expired 18 days ago, replayed over 1.1.0\'s: over http refused (ERR_EXPIRED); from a folder, within the grace, refused by its sequence (ERR_DOWNGRADE)', () => onFirstVersion({ publishedAt: daysAgo(20), expiresIn: 2 * DAY_S, installClock: () => daysAgo(19.5) }, async (t) => {
  const pointer1 = await channelBytes(t.repo.repo);
  await t.repo.release('1.1.0', smallApp('1.1.0'));
  await cliUpdateTo(t.device.home, '1.1.0');
  const mirror = join(t.repo.dir, 'mirror');
  await cp(t.repo.repo, mirror, { recursive: true });
  await writeFile(join(mirror, channelPath('stable')), pointer1);
  const served = await serveRepo(mirror);
  try {
    await t.device.setConfig({ sources: [served.url] });
    await refused(t, 'ERR_EXPIRED', '1.1.0', /expired at/);
  } finally {
    await served.stop();
  }
  await t.device.setConfig({ sources: [mirror] });
  await refused(t, 'ERR_DOWNGRADE', '1.1.0', /sequence 1, lower than 2/);
  await assertNothingStaged(t.device, ['1.0.0', '1.1.0']);
}));

row5('a clock a year behind the device\'s time floor does not make a pointer fresh: one valid by that clock but expired by the floor is refused (ERR_EXPIRED)', () => onFirstVersion({}, async (t) => {
  // One check with the clock a year ahead raises the persisted floor (and is itself refused: the
  // 1.0.0 pointer expires in 30 days). From then on the real clock is "set back a year".
  const aYearAhead = () => new Date(Date.now() + 365 * DAY_S * 1000);
  await t.device.with((u) => assertCodeAsync(() => u.checkUpdate(), 'ERR_EXPIRED'), { clock: aYearAhead });
  // Valid for 30 days by the real clock; with the folder's 180 days of grace still before the floor.
  await t.repo.release('1.1.0', smallApp('1.1.0'));
  await refused(t, 'ERR_EXPIRED', '1.0.0', /expired at/);
  await assertNothingStaged(t.device, ['1.0.0']);
}));

row5('expiry never stops the running app: under ferry run, with its metadata expired, check and update are refused (ERR_EXPIRED) and 1.0.0 keeps answering from the same process', () => onFirstVersion({ tree: exampleApp, publishedAt: daysAgo(3), expiresIn: DAY_S, installClock: () => daysAgo(2.5) }, async (t) => {
  // No grace: the folder's pointer (expired two days ago) counts as expired for this device.
  await t.device.setConfig({ offlineGraceDays: 0 });
  const app = await runApp(t.device.home);
  try {
    assert.equal(await httpGet(app.port, '/'), { status: 200, body: '1.0.0' });
    const pid = (await app.status())?.active?.pid;
    assert.ok(pid, 'the supervisor reports the running generation');
    await refused(t, 'ERR_EXPIRED', '1.0.0', /expired at/, 'check');
    await refused(t, 'ERR_EXPIRED', '1.0.0', /expired at/, 'update');
    for (let i = 0; i < 5; i++) assert.equal(await httpGet(app.port, '/'), { status: 200, body: '1.0.0' }, `request ${i + 1} after the refusals`);
    assert.equal(await httpGet(app.port, '/healthz').then((r) => r.status), 200);
    assert.is((await app.status())?.active?.pid, pid, 'the same app process still serves');
    assert.is(app.child.exitCode, null, 'ferry run is still running');
  } finally {
    await app.stop();
  }
}));

row5.run();
