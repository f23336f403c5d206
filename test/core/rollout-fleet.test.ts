// Issue 16 items 1 and 2, end to end in-process: twenty real device homes (each with its own key
// pair made by initDevice, real LevelDB, real installs) reading one real signed repository whose
// stable pointer carries a phased rollout. At every step exactly the devices whose bucket
// (rolloutBucket of the device id and the pointer's salt) is under the percentage in force take
// the version; a halted rollout stops new installs while devices that have it keep it; a device
// outside a rollout installs the version before it; a security release ignores its rollout; a
// device whose clock was set back stays in a step its time floor already reached.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { makeRepo, sampleApp, tempDir, writeTree, type TestRepo } from '../helpers/repo.ts';
import { makeDevice, type TestDevice } from '../helpers/device.ts';
import { publishRelease } from '../../core/publish/publish.ts';
import { rolloutRelease, type RolloutPlan } from '../../core/publish/rollout.ts';
import { createBsdiffPatcher } from '../../plugins/bsdiff/patcher.ts';
import { repoSource } from '../../core/publish/repository.ts';
import { readChannel } from '../../core/trust/trusted-metadata.ts';
import { verifyTrustedRoot } from '../../core/trust/root.ts';
import { rolloutBucket } from '../../core/policy/rollout.ts';
import { DEVICE_ID, loadDeviceIdentity } from '../../core/fleet/device-identity.ts';
import { sha256 } from '../../core/io/hash.ts';
import { initDevice } from '../../core/device/init.ts';
import { homeLayout } from '../../core/device/layout.ts';
import { assertRefused } from '../../plugins/testing/index.ts';
import type { ChannelTarget } from '../../core/trust/metadata.ts';

const N = 20;
/** Devices worked on at once: an apply mostly waits on fsync, so more than the two cores. */
const WORKERS = 6;
const DAY = 86_400_000;
/** Where a step of the first rollout is dated: a day ahead of the real clock. */
const STEP_AT = new Date(Date.now() + DAY);
const afterStep = () => new Date(Date.now() + 2 * DAY);

let repo: TestRepo;
let devices: TestDevice[] = [];
let ids: string[] = [];
const extra: TestDevice[] = [];

const release = async (version: string, rollout?: RolloutPlan, securityFix = false) => {
  const app = join(repo.dir, `app-${version}`);
  await writeTree(app, sampleApp(version));
  return publishRelease({ repo: repo.repo, appDir: app, version, channel: 'stable', keys: [repo.releaseKey], platform: 'linux', arch: 'x64', securityFix, deltas: 1, expiresIn: 30 * 86_400, now: new Date(), patcher: createBsdiffPatcher(), compressionLevel: 1, ...(rollout ? { rollout } : {}) });
};
const rollout = (version: string, plan: RolloutPlan) => rolloutRelease({ repo: repo.repo, version, channel: 'stable', plan, keys: [repo.releaseKey], expiresIn: 30 * 86_400, now: new Date() });
const stablePointer = async (): Promise<ChannelTarget> => {
  const root = verifyTrustedRoot(await repo.trust(), 'root.json');
  return (await readChannel(repoSource(repo.repo), root, 'stable', null))!.doc.targets['linux-x64']!;
};

/** Runs `fn` on each device, four at a time (two cores; most of an apply is waiting on the disk). */
async function eachDevice<T>(list: TestDevice[], fn: (d: TestDevice, i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(list.length);
  let next = 0;
  const worker = async () => {
    while (next < list.length) {
      const i = next++;
      out[i] = await fn(list[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: WORKERS }, worker));
  return out;
}

const applyAll = (clock?: () => Date) => eachDevice(devices, (d) => d.with((u) => u.apply(), clock ? { clock } : {}));
const versions = () => eachDevice(devices, (d) => d.current());
/** What each device should run: `rolled` when its bucket for `salt` is under `percent`, else `other`. */
const expected = (salt: string, percent: number, rolled: string, other: (i: number) => string) =>
  ids.map((id, i) => (rolloutBucket(id, salt) < percent * 100 ? rolled : other(i)));
const countUnder = (salt: string, percent: number) => ids.filter((id) => rolloutBucket(id, salt) < percent * 100).length;

/**
 * A salt for which the test means something with these twenty (random) ids: `ok` says whether its
 * counts do (e.g. at least one device in at 10% and at least one more at 50%). The publisher picks
 * salts at random; RolloutPlan.salt lets the test pick one whose steps all move some devices.
 */
function saltWhere(ok: (salt: string) => boolean): string {
  for (let k = 0; k < 10_000; k++) {
    const salt = sha256(`salt-${k}`).slice(0, 32);
    if (ok(salt)) return salt;
  }
  throw new Error('no salt found');
}

const fleet = suite('issue 16 items 1 and 2: a phased rollout over twenty device homes');

fleet.before(async () => {
  repo = await makeRepo();
  await release('1.0.0');
  const trust = await repo.trust();
  devices = await eachDevice(Array.from({ length: N }) as TestDevice[], () => makeDevice({ trust, sources: [repo.repo] }));
  ids = await eachDevice(devices, async (d) => (await loadDeviceIdentity(d.layout))!.id);
});

fleet.after(async () => {
  for (const d of new Set([...devices, ...extra])) await d.cleanup();
  await repo?.cleanup();
});

fleet('issue 16 item 1: every home has its own device id, in ferry status, from a 0600 key made by init', async () => {
  assert.equal(await versions(), ids.map(() => null), 'nothing installed yet');
  const statuses = await eachDevice(devices, (d) => d.with((u) => u.status()));
  assert.equal(statuses.map((s) => s.deviceId), ids, 'status shows the id of the home\'s key');
  for (const id of ids) assert.ok(DEVICE_ID.test(id), id);
  assert.is(new Set(ids).size, N, 'twenty homes, twenty ids');
  const key = devices[0]!.layout.deviceKey;
  assert.is((await stat(key)).mode & 0o777, 0o600, 'the secret is 0600');
});

fleet('issue 16 item 1: a home from before device keys gets one on first open, kept after; init never overwrites one', async () => {
  const trust = await repo.trust();
  const old = await makeDevice({ trust, sources: [repo.repo] });
  extra.push(old);
  await rm(old.layout.deviceDir, { recursive: true, force: true });
  const first = await old.with((u) => u.status());
  assert.ok(DEVICE_ID.test(first.deviceId ?? ''));
  assert.is((await loadDeviceIdentity(old.layout))!.id, first.deviceId, 'made and kept on disk');
  assert.is((await stat(old.layout.deviceKey)).mode & 0o777, 0o600);
  assert.is((await old.with((u) => u.status())).deviceId, first.deviceId, 'the same id on the next open');
  // init over a home whose ferry.json is gone but whose key is there: refused, nothing written.
  const tmp = await tempDir('ferry-reinit-');
  try {
    const home = join(tmp.path, 'home');
    await initDevice({ home, trustBytes: trust, sources: [repo.repo], platform: 'linux', arch: 'x64' });
    const id = (await loadDeviceIdentity(homeLayout(home)))!.id;
    await rm(homeLayout(home).config);
    await assertRefused(() => initDevice({ home, trustBytes: trust, sources: [repo.repo], platform: 'linux', arch: 'x64' }), 'ERR_USAGE', 'init over an existing device key');
    assert.is((await loadDeviceIdentity(homeLayout(home)))!.id, id, 'the key is untouched');
    assert.is(await stat(homeLayout(home).config).catch(() => null), null, 'no ferry.json written');
  } finally {
    await tmp.cleanup();
  }
});

fleet('issue 16 item 2: 10% -> 50% -> a dated step to 100%: exactly the devices under the percentage take 1.1.0, the others the version before it', async () => {
  // 10%, started by the release itself: no device sees 1.1.0 at 100% first.
  const salt = saltWhere((s) => countUnder(s, 10) >= 1 && countUnder(s, 50) > countUnder(s, 10) && countUnder(s, 50) < N);
  await release('1.1.0', { percent: 10, salt });
  assert.equal((await stablePointer()).rollout?.previous?.version, '1.0.0', 'previous: the version the channel named before');
  // Held back is no refusal: a note in the log, the version before offered, nothing in history.
  const out = ids.findIndex((id) => rolloutBucket(id, salt) >= 1000);
  const lines: string[] = [];
  const info = await devices[out]!.with((u) => u.checkUpdate(), { log: (m) => lines.push(m) });
  assert.is(info.latestVersion, '1.0.0', 'a fresh device outside the rollout is offered the version before it');
  assert.ok(lines.some((l) => l.includes('1.1.0 is rolling out and not to this device yet')), lines.join('\n'));
  const results = await applyAll();
  assert.ok(results.every((r) => r.status === 'committed'), 'every fresh device installs something');
  assert.equal(await versions(), expected(salt, 10, '1.1.0', () => '1.0.0'), 'exactly the buckets under 10% run 1.1.0, the others 1.0.0');
  const history = await devices[out]!.with((u) => u.history());
  assert.ok(history.every((h) => !h.errorCode), 'no refusal recorded for "not in the rollout"');

  // 50% now, 100% from a date: the salt is kept, so every device that was in stays in.
  await rollout('1.1.0', { percent: 50, steps: [{ at: STEP_AT.toISOString(), percent: 100 }] });
  assert.is((await stablePointer()).rollout?.salt, salt, 'the salt is kept on a re-sign');
  await applyAll();
  assert.equal(await versions(), expected(salt, 50, '1.1.0', () => '1.0.0'), 'exactly the buckets under 50%');

  // A device outside 50% checks once after the step (its time floor passes the step), then its
  // clock is set back: it stays in the step its floor reached (SECURITY.md row 5).
  const late = ids.findIndex((id) => rolloutBucket(id, salt) >= 5000);
  assert.is((await devices[late]!.with((u) => u.checkUpdate(), { clock: afterStep })).latestVersion, '1.1.0', 'after the step: in');
  assert.is((await devices[late]!.with((u) => u.apply())).status, 'committed', 'clock set back before the step: still in');
  assert.is(await devices[late]!.current(), '1.1.0');
});

fleet('issue 16 item 2: approval still applies; a halted rollout stops new installs, devices on it keep it; a fresh device outside installs previous; security ignores it', async () => {
  // Ended: 100% with no steps drops the field (the pointer is what it was before rollouts).
  await rollout('1.1.0', { percent: 100 });
  assert.not.ok('rollout' in (await stablePointer()), '--percent 100 drops the rollout');

  const salt = saltWhere((s) => countUnder(s, 50) >= 2 && countUnder(s, 50) < N);
  await release('1.2.0', { percent: 50, salt });
  assert.equal((await stablePointer()).rollout?.previous?.version, '1.1.0', 'previous: the last fully rolled-out version');
  const inside = ids.map((id, i) => (rolloutBucket(id, salt) < 5000 ? i : -1)).filter((i) => i >= 0);
  // Approval runs after the rollout decision: a device in the rollout that needs approval waits.
  const careful = devices[inside[0]!]!;
  await careful.setConfig({ policy: { ...(await careful.config()).policy, requireApproval: true } });
  const before = await versions();
  await applyAll();
  // Devices still on 1.0.0 (outside the first rollout until its step) and outside this one move
  // up to 1.1.0, the version before 1.2.0.
  const rolled = expected(salt, 50, '1.2.0', () => '1.1.0');
  assert.equal(await versions(), rolled.map((v, i) => (i === inside[0] ? before[i] : v)), 'the buckets under 50%, less the one waiting for approval');
  await careful.with((u) => u.approve('1.2.0'));
  assert.is((await careful.with((u) => u.apply())).status, 'committed');
  assert.equal(await versions(), rolled);

  // Halt. A device on 1.2.0 that allows downgrades keeps it too: a rollout never takes a device down.
  const follower = devices[inside[1]!]!;
  await follower.setConfig({ policy: { ...(await follower.config()).policy, allowDowngrade: true } });
  await rollout('1.2.0', { percent: 0 });
  const halted = await eachDevice(devices, (d) => d.with(async (u) => ({ result: await u.apply(), status: await u.status() })));
  assert.ok(halted.every((h) => h.result.status === 'up-to-date'), `nobody moves: ${halted.map((h) => h.result.status).join(', ')}`);
  assert.ok(halted.every((h) => h.status.lastError === null), 'no ERR_DOWNGRADE, no error at all');
  assert.equal(await versions(), rolled, 'devices on 1.2.0 keep it, the others stay on 1.1.0');

  // A new device (outside: 0% takes no one) installs the version before the rollout.
  const fresh = await makeDevice({ trust: await repo.trust(), sources: [repo.repo] });
  extra.push(fresh);
  assert.is((await fresh.with((u) => u.apply())).status, 'committed');
  assert.is(await fresh.current(), '1.1.0', 'a fresh device outside the rollout installs previous');

  // A security release ignores its rollout, even one at 0%.
  await release('1.2.1', { percent: 0 }, true);
  devices.push(fresh);
  ids.push((await loadDeviceIdentity(fresh.layout))!.id);
  await applyAll();
  assert.equal(await versions(), devices.map(() => '1.2.1'), 'every device takes the security release');
});

fleet.run();
