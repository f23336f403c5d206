// Issue 16 items 1 and 2 through the `ferry` command: `ferry init` and `ferry status` print the
// device id; `ferry release --rollout N` starts a version under a rollout; `ferry check` says why a
// device outside it stays; `ferry rollout` re-signs the pointer (steps, 100% ending it, a version
// the channel does not name refused). One repository and one device made in-process; the CLI is
// spawned only where it is the point.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeRepo, sampleApp, writeTree, type TestRepo } from '../helpers/repo.ts';
import { ferry, json, ok } from '../helpers/cli.ts';
import { readPayload } from '../helpers/tamper.ts';
import { Updater } from '../../core/update/updater.ts';
import { createDirSource } from '../../core/ports/dir-source.ts';
import { createBsdiffPatcher } from '../../plugins/bsdiff/patcher.ts';
import { loadDeviceIdentity } from '../../core/fleet/device-identity.ts';
import { homeLayout } from '../../core/device/layout.ts';
import { rolloutBucket } from '../../core/policy/rollout.ts';
import { EXIT_CODE } from '../../cli/exit-codes.ts';
import { createBundleSource, writeBundle } from '../../core/publish/bundle.ts';
import { initDevice } from '../../core/device/init.ts';
import { assertRefused } from '../../plugins/testing/index.ts';

let repo: TestRepo;
let home: string;
const key = () => join(repo.keysDir, 'release.key');
const pointerFile = () => join(repo.repo, 'channels', 'stable.json');
const stable = () => readPayload<any>(pointerFile());
const withUpdater = async <T>(fn: (u: Updater) => Promise<T>): Promise<T> => {
  const u = await Updater.open({ home, sources: [createDirSource(repo.repo)], patcher: createBsdiffPatcher(), health: null });
  try {
    return await fn(u);
  } finally {
    await u.close();
  }
};

const cli = suite('issue 16 items 1 and 2: ferry init/status show the device id; ferry release --rollout and ferry rollout');

cli.before(async () => {
  repo = await makeRepo();
  await repo.release('1.0.0', sampleApp('1.0.0'), { deltas: 0 });
});

cli.after(async () => {
  await repo?.cleanup();
});

cli('issue 16 item 1: ferry init prints the new device id, ferry status shows it (and --json has it)', async () => {
  home = join(repo.dir, 'home');
  const init = ok(ferry('init', home, '--trust', repo.trustPath, '--source', repo.repo, '--platform', 'linux', '--arch', 'x64'), 'ferry init');
  const id = (await loadDeviceIdentity(homeLayout(home)))?.id;
  assert.ok(id, 'init made the key pair');
  assert.match(init.stdout, new RegExp(`^  device id: ${id}$`, 'm'));
  const status = json<{ deviceId: string }>(ok(ferry('status', '--home', home, '--json'), 'ferry status --json'));
  assert.is(status.deviceId, id);
  assert.is((await withUpdater((u) => u.apply())).status, 'committed', 'the device installs 1.0.0');
});

cli('issue 16 item 2: ferry release --rollout 0, ferry check says why it stays, ferry rollout widens and ends it', async () => {
  const app = join(repo.dir, 'app-1.1.0');
  await writeTree(app, sampleApp('1.1.0'));
  const released = json<any>(ok(ferry('release', app, '--repo', repo.repo, '--version', '1.1.0', '--key', key(), '--platform', 'linux', '--arch', 'x64', '--deltas', '0', '--rollout', '0', '--json'), 'ferry release --rollout 0'));
  assert.is(released.rollout.percent, 0);
  assert.is(released.rollout.previous.version, '1.0.0');
  const wire = (await stable()).targets['linux-x64'];
  assert.equal([wire.version, wire.rollout.basisPoints, wire.rollout.previous.version], ['1.1.0', 0, '1.0.0'], 'the signed pointer holds the rollout in basis points');
  const salt: string = wire.rollout.salt;
  assert.match(salt, /^[0-9a-f]{32}$/);

  // The rollout is under the pointer's signature: a mirror that edits it (0% -> 100%, to push the
  // version early) is refused like any altered pointer, and the device stays as it was.
  const halted = await readFile(pointerFile());
  const env = JSON.parse(halted.toString());
  const doc = JSON.parse(Buffer.from(env.payload, 'base64').toString());
  doc.targets['linux-x64'].rollout.basisPoints = 10_000;
  await writeFile(pointerFile(), JSON.stringify({ ...env, payload: Buffer.from(JSON.stringify(doc)).toString('base64') }));
  await assertRefused(() => withUpdater((u) => u.checkUpdate()), 'ERR_SIGNATURE', 'a pointer whose rollout was edited');
  await writeFile(pointerFile(), halted);

  const check = ok(ferry('check', '--home', home), 'ferry check');
  assert.match(check.stdout, /^up to date \(1\.0\.0\)$/m);
  assert.match(check.stderr, /stable 1\.1\.0 is rolling out and not to this device yet \(bucket \d+ is not under 0%\)/);

  // A bundle carries the rolled version's manifest only: a fresh device outside the rollout that
  // reads it cannot install the version before, and stays (no ERR_NOT_FOUND).
  const bundle = join(repo.dir, 'rolling.ferry');
  await writeBundle({ repo: repo.repo, version: '1.1.0', platform: 'linux', arch: 'x64', out: bundle });
  const bundleHome = join(repo.dir, 'bundle-home');
  await initDevice({ home: bundleHome, trustBytes: await repo.trust(), sources: [bundle], platform: 'linux', arch: 'x64' });
  const fromBundle = await Updater.open({ home: bundleHome, sources: [createBundleSource(bundle, join(bundleHome, 'staging', 'bundle'))], patcher: createBsdiffPatcher(), health: null });
  try {
    assert.equal(await fromBundle.checkUpdate().then((i) => [i.updateAvailable, i.currentVersion]), [false, null]);
  } finally {
    await fromBundle.close();
  }

  // Steps are sorted and kept; the salt stays; the percentage in force is what the device judges.
  const id = (await loadDeviceIdentity(homeLayout(home)))!.id;
  const widened = ok(ferry('rollout', '1.1.0', '--repo', repo.repo, '--key', key(), '--percent', '12.5', '--step', '2099-01-02T00:00:00Z=100', '--step', '2099-01-01T00:00:00Z=50'), 'ferry rollout --percent 12.5');
  assert.match(widened.stdout, /^1\.1\.0 on stable: 12\.5% of devices, sequence \d+$/m);
  assert.match(widened.stdout, /linux-x64: 12\.5%, 50% from 2099-01-01T00:00:00\.000Z, 100% from 2099-01-02T00:00:00\.000Z; devices outside it go no further than 1\.0\.0/);
  const after = (await stable()).targets['linux-x64'].rollout;
  assert.equal([after.basisPoints, after.salt, after.steps.map((s: any) => s.basisPoints)], [1250, salt, [5000, 10_000]]);
  const info = await withUpdater((u) => u.checkUpdate());
  assert.is(info.updateAvailable, rolloutBucket(id, salt) < 1250, 'this device is in exactly when its bucket is under 12.5%');

  const ended = json<any>(ok(ferry('rollout', '1.1.0', '--repo', repo.repo, '--key', key(), '--percent', '100', '--json'), 'ferry rollout --percent 100'));
  assert.equal(ended.targets, [{ target: 'linux-x64', rollout: null }]);
  assert.not.ok('rollout' in (await stable()).targets['linux-x64'], 'the field is dropped');
  assert.is((await withUpdater((u) => u.checkUpdate())).latestVersion, '1.1.0', 'every device takes it now');

  // A replay of the halted pointer (an older sequence) to freeze the fleet is refused (SECURITY.md row 3).
  await writeFile(pointerFile(), halted);
  await assertRefused(() => withUpdater((u) => u.checkUpdate()), 'ERR_DOWNGRADE', 'the halted pointer replayed');

  const missing = ferry('rollout', '9.9.9', '--repo', repo.repo, '--key', key(), '--percent', '10');
  assert.is(missing.status, EXIT_CODE.ERR_NOT_FOUND, missing.stderr);
  assert.match(missing.stderr, /^ferry: ERR_NOT_FOUND: stable does not name 9\.9\.9 \(it names 1\.1\.0\)/);
});

cli.run();
