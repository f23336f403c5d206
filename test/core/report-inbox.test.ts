// issue 16 item 3: the report inbox (core/fleet/report-inbox.ts) keeps the newest verified report per
// device, atomically, and refuses everything else with a stable code, leaving the inbox unchanged.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtemp, readdir, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { execFileSync } from 'node:child_process';
import { symlink } from 'node:fs/promises';
import { closeSync, constants as fsConstants, openSync } from 'node:fs';
import { join } from 'node:path';
import { acceptReport, compareWithKept, readInbox } from '../../core/fleet/report-inbox.ts';
import { parseReport, REPORT_MAX_BYTES, signReport, type DeviceReport } from '../../core/fleet/report.ts';
import { createDeviceIdentity, type DeviceIdentity } from '../../core/fleet/device-identity.ts';
import { homeLayout } from '../../core/device/layout.ts';
import { encodeEnvelope, PAYLOAD_TYPES, signEnvelope } from '../../core/trust/dsse.ts';
import { assertCodeAsync } from '../helpers/assert-code.ts';

const test = suite('issue 16 item 3: report inbox');

let root = '';
let alice: DeviceIdentity;
let bob: DeviceIdentity;

function report(identity: DeviceIdentity, sequence: number, extra: Partial<DeviceReport> = {}): DeviceReport {
  return {
    type: 'ferry/report',
    deviceId: identity.id,
    publicKey: Buffer.from(identity.key.publicKey).toString('hex'),
    app: 'demo',
    target: 'linux-x64',
    channel: 'stable',
    sequence,
    time: '2026-12-05T20:00:00.000Z',
    currentVersion: '1.0.0',
    lastAttempt: null,
    freeDiskBytes: 1000,
    versions: [],
    ...extra,
  };
}
const signed = (identity: DeviceIdentity, sequence: number, extra: Partial<DeviceReport> = {}) => signReport(report(identity, sequence, extra), identity);

async function snapshot(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const name of await readdir(dir).catch(() => [] as string[])) out[name] = (await readFile(join(dir, name))).toString('base64');
  return out;
}

test.before(async () => {
  root = await mkdtemp(join(tmpdir(), 'ferry-inbox-'));
  alice = await createDeviceIdentity(homeLayout(join(root, 'alice')));
  bob = await createDeviceIdentity(homeLayout(join(root, 'bob')));
});
test.after(async () => { await rm(root, { recursive: true, force: true }); });

test('keeps the newest report per device as <deviceId>.json; the same report again is stored:false', async () => {
  const dir = join(root, 'inbox1');
  const first = signed(alice, 5);
  assert.equal(await acceptReport(dir, first, { app: 'demo' }), { deviceId: alice.id, sequence: 5, stored: true });
  assert.equal(await acceptReport(dir, first, { app: 'demo' }), { deviceId: alice.id, sequence: 5, stored: false });
  const newer = signed(alice, 9, { currentVersion: '1.1.0' });
  assert.equal(await acceptReport(dir, newer), { deviceId: alice.id, sequence: 9, stored: true });
  await acceptReport(dir, signed(bob, 1));
  assert.equal((await readdir(dir)).sort(), [`${alice.id}.json`, `${bob.id}.json`].sort());
  assert.ok((await readFile(join(dir, `${alice.id}.json`))).equals(newer));
  const inbox = await readInbox(dir);
  assert.equal(inbox.map((r) => r.deviceId), [alice.id, bob.id].sort());
  assert.ok(inbox.find((r) => r.deviceId === alice.id)!.bytes.equals(newer));
  assert.equal(await readInbox(join(root, 'no-such-dir')), []);
});

test('refuses older, same-sequence-other-bytes, other app, forged, malformed and oversized reports, inbox unchanged', async () => {
  const dir = join(root, 'inbox2');
  await acceptReport(dir, signed(alice, 10));
  const before = await snapshot(dir);
  await assertCodeAsync(() => acceptReport(dir, signed(alice, 9)), 'ERR_DOWNGRADE');
  await assertCodeAsync(() => acceptReport(dir, signed(alice, 10, { currentVersion: '2.0.0' })), 'ERR_DOWNGRADE');
  await assertCodeAsync(() => acceptReport(dir, signed(alice, 11, { app: 'other' }), { app: 'demo' }), 'ERR_WRONG_TARGET');
  // Bob's key signing a report that names Alice's id and key: the signature does not verify.
  const forged = encodeEnvelope(signEnvelope(PAYLOAD_TYPES.report, Buffer.from(JSON.stringify(report(alice, 99))), [bob.key]));
  await assertCodeAsync(() => acceptReport(dir, forged), 'ERR_SIGNATURE');
  // The same, with the signature claiming Alice's key id.
  const claimed = JSON.parse(forged.toString());
  claimed.signatures[0].keyid = signEnvelope(PAYLOAD_TYPES.report, Buffer.from('x'), [alice.key]).signatures[0]!.keyid;
  await assertCodeAsync(() => acceptReport(dir, Buffer.from(JSON.stringify(claimed))), 'ERR_SIGNATURE');
  // Alice's id with Bob's public key (signed by Bob): the id is not the key's.
  const swapped = encodeEnvelope(signEnvelope(PAYLOAD_TYPES.report, Buffer.from(JSON.stringify(report(alice, 99, { publicKey: Buffer.from(bob.key.publicKey).toString('hex') }))), [bob.key]));
  await assertCodeAsync(() => acceptReport(dir, swapped), 'ERR_SIGNATURE');
  await assertCodeAsync(() => acceptReport(dir, Buffer.from('{not json')), 'ERR_JSON');
  await assertCodeAsync(() => acceptReport(dir, Buffer.alloc(REPORT_MAX_BYTES + 1, 0x20)), 'ERR_TOO_LARGE');
  assert.equal(await snapshot(dir), before);
});

test('a kept file that no longer verifies is replaced; an oversized planted file is read bounded', async () => {
  const dir = join(root, 'inbox3');
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, `${alice.id}.json`), 'garbage');
  await writeFile(join(dir, `${bob.id}.json`), Buffer.alloc(3 * REPORT_MAX_BYTES, 0x20));
  await writeFile(join(dir, 'notes.txt'), 'not a report');
  const ok = signed(alice, 1);
  assert.is((await acceptReport(dir, ok)).stored, true);
  const inbox = await readInbox(dir);
  assert.equal(inbox.map((r) => r.deviceId), [alice.id, bob.id].sort());
  const big = inbox.find((r) => r.deviceId === bob.id)!;
  assert.is(big.bytes.length, REPORT_MAX_BYTES + 1);
  assert.throws(() => parseReport(big.bytes), (e: { code?: string }) => e.code === 'ERR_TOO_LARGE');
});

test('concurrent reports of one device end with the newest kept', async () => {
  const dir = join(root, 'inbox4');
  const all = Array.from({ length: 6 }, (_, i) => signed(alice, i + 1));
  const results = await Promise.allSettled(all.slice().reverse().map((b) => acceptReport(dir, b)));
  assert.ok(results.some((r) => r.status === 'fulfilled'));
  assert.ok((await readFile(join(dir, `${alice.id}.json`))).equals(all[5]!));
  assert.equal((await readdir(dir)).filter((n) => n.startsWith('.')), []);
});

/**
 * `p`, or a rejection after `ms`: a FIFO that blocks the open fails the test instead of hanging it.
 * On the timeout the FIFO is opened for writing once and closed, so a reader blocked in open()
 * (the old code) gets EOF and the process can still exit.
 */
function within<T>(p: Promise<T>, ms: number, what: string, fifo: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([p, new Promise<T>((_, reject) => {
    timer = setTimeout(() => {
      try { closeSync(openSync(fifo, fsConstants.O_WRONLY | fsConstants.O_NONBLOCK)); } catch { /* no reader waiting */ }
      reject(new Error(`${what}: no answer within ${ms} ms`));
    }, ms);
  })]).finally(() => clearTimeout(timer));
}

test('issue 16 review item 1: a FIFO or symlink named as a device file is not opened for reading; acceptReport and readInbox return promptly', async () => {
  const dir = join(root, 'inbox-fifo');
  await mkdir(dir, { recursive: true });
  const fifo = join(dir, `${alice.id}.json`);
  execFileSync('mkfifo', [fifo]);
  // A symlink to a report elsewhere: not followed (a stick's link to the device's own disk).
  const outside = join(root, 'outside-fifo');
  await mkdir(outside, { recursive: true });
  const outsideFile = join(outside, 'bob.json');
  const bobOld = signed(bob, 1);
  await writeFile(outsideFile, bobOld);
  await symlink(outsideFile, join(dir, `${bob.id}.json`));
  assert.equal(await within(readInbox(dir), 1500, 'readInbox', fifo), []);
  assert.is((await within(acceptReport(dir, signed(alice, 3)), 1500, 'acceptReport', fifo)).stored, true);
  assert.is((await within(acceptReport(dir, signed(bob, 2)), 1500, 'acceptReport', fifo)).stored, true);
  // The write replaced the link (temp + rename), it did not write through it.
  assert.ok((await readFile(outsideFile)).equals(bobOld));
  assert.equal((await within(readInbox(dir), 1500, 'readInbox', fifo)).map((r) => r.deviceId), [alice.id, bob.id].sort());
});

test('issue 16 review item 6: a file named after one device holding another device\'s report protects nothing', async () => {
  const dir = join(root, 'inbox-swapped');
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, `${alice.id}.json`), signed(bob, 9e12));
  assert.equal(await readInbox(dir), []);
  const real = signed(alice, 5);
  assert.equal(await acceptReport(dir, real), { deviceId: alice.id, sequence: 5, stored: true });
  assert.ok((await readFile(join(dir, `${alice.id}.json`))).equals(real));
  assert.equal((await readInbox(dir)).map((r) => r.deviceId), [alice.id]);
});

test('compareWithKept table', () => {
  const v = (sequence: number, sha: string) => ({ report: report(alice, sequence), payloadSha256: sha });
  assert.is(compareWithKept(v(1, 'a'), null), 'store');
  assert.is(compareWithKept(v(2, 'a'), v(1, 'b')), 'store');
  assert.is(compareWithKept(v(1, 'a'), v(2, 'b')), 'older');
  assert.is(compareWithKept(v(2, 'a'), v(2, 'a')), 'same');
  assert.is(compareWithKept(v(2, 'a'), v(2, 'b')), 'conflict');
});

test.run();
