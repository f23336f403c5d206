// issue 16 item 1: the device key pair. `ferry init` makes it (0600, never overwritten); a home
// from before device keys gets one on its first open, and keeps that id; a damaged key file never
// stops updates: it is moved aside and a new key (a new id) is made.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readFile, rm, stat, writeFile } from 'node:fs/promises';
import { makeRepo, sampleApp } from '../helpers/repo.ts';
import { makeDevice, type TestDevice } from '../helpers/device.ts';
import { DEVICE_ID, deviceIdOf, loadDeviceIdentity } from '../../core/fleet/device-identity.ts';
import { decideRollout } from '../../core/policy/rollout.ts';
import type { TestRepo } from '../helpers/repo.ts';

const test = suite('device identity');
let repo: TestRepo;
let device: TestDevice;

test.before(async () => {
  repo = await makeRepo();
  await repo.release('1.0.0', sampleApp('1.0.0'));
});
test.after(async () => { await repo.cleanup(); });
test.before.each(async () => { device = await makeDevice({ trust: await repo.trust(), sources: [repo.repo] }); });
test.after.each(async () => { await device.cleanup(); });

test('issue 16 item 1: init makes a private key whose hash starts with the id; status shows the id', async () => {
  const id = await loadDeviceIdentity(device.layout);
  assert.ok(id, 'init made a key');
  assert.match(id!.id, DEVICE_ID);
  assert.is(id!.id, deviceIdOf(id!.key.publicKey));
  assert.is((await stat(device.layout.deviceKey)).mode & 0o777, 0o600);
  const status = await device.with((u) => u.status());
  assert.is(status.deviceId, id!.id);
});

test('issue 16 item 1: a home from before device keys gets one on first open, and keeps it', async () => {
  await rm(device.layout.deviceDir, { recursive: true });
  const first = await device.with((u) => u.status());
  assert.match(first.deviceId ?? '', DEVICE_ID);
  const second = await device.with((u) => u.status());
  assert.is(second.deviceId, first.deviceId);
});

test('issue 16 item 1: a damaged key is kept aside and a new one made; the device still updates', async () => {
  const before = (await loadDeviceIdentity(device.layout))!.id;
  const damaged = '{"keytype":"ed25519","keyid":"x","secret":"not hex"}\n';
  await writeFile(device.layout.deviceKey, damaged);
  const result = await device.with((u) => u.apply());
  assert.is(result.status, 'committed');
  assert.is(await device.current(), '1.0.0');
  const after = (await loadDeviceIdentity(device.layout))!.id;
  assert.match(after, DEVICE_ID);
  assert.is.not(after, before);
  assert.is(await readFile(`${device.layout.deviceKey}.damaged`, 'utf8'), damaged);
});

test('issue 16 item 1: a key that cannot be made (device/ is a file) never stops updates; no id, outside rollouts', async () => {
  await rm(device.layout.deviceDir, { recursive: true });
  await writeFile(device.layout.deviceDir, 'not a folder');
  const logged: string[] = [];
  const result = await device.with((u) => u.apply(), { log: (m) => logged.push(m) });
  assert.is(result.status, 'committed');
  assert.is(await device.current(), '1.0.0');
  assert.ok(logged.some((m) => m.startsWith('no device key')), logged.join('\n'));
  assert.is((await device.with((u) => u.status())).deviceId, null);
  const rollout = { percent: 100, salt: '0'.repeat(32), steps: [], previous: null };
  assert.is(decideRollout({ deviceId: null, rollout, now: new Date(), security: false }).take, false, 'no id: no bucket, even at 100%');
  assert.is(decideRollout({ deviceId: null, rollout, now: new Date(), security: true }).take, true, 'a security release still reaches it');
  assert.is(decideRollout({ deviceId: null, rollout: undefined, now: new Date(), security: false }).take, true, 'no rollout: it takes the version');
});

test.run();
