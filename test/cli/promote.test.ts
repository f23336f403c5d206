// Issue 13 item 17: `ferry promote <version> --from beta --to stable` puts a tested beta on stable
// without rebuilding it: stable's pointer, re-signed with sequence + 1, pins the very manifest
// bytes beta pins (same artifacts), and a device on stable then installs it. Refusals (a version
// not on --from, one not newer than --to's, keys that cannot sign, missing artifacts) leave the
// repository as it was. One repository, built in-process; the CLI runs where it is the point.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { makeRepo, sampleApp, type TestRepo } from '../helpers/repo.ts';
import { ferry, json, ok } from '../helpers/cli.ts';
import { readPayload } from '../helpers/tamper.ts';
import { assertRefused } from '../../plugins/testing/index.ts';
import { promoteRelease, type PromoteInput } from '../../core/publish/promote.ts';
import { initDevice } from '../../core/device/init.ts';
import type { ChannelDoc } from '../../core/trust/metadata.ts';
import type { SigningKey } from '../../core/trust/keys.ts';
import { strangerKey } from '../helpers/adversarial-trust.ts';

let repo: TestRepo;
let home: string;
const pointer = (channel: string) => join(repo.repo, 'channels', `${channel}.json`);
const bytesOf = (channel: string) => readFile(pointer(channel));
const promote = (version: string, o: Partial<PromoteInput> & { keys?: SigningKey[] } = {}) =>
  promoteRelease({ repo: repo.repo, version, from: 'beta', to: 'stable', keys: [repo.releaseKey], expiresIn: 86_400, now: new Date(), ...o });

const item = suite('issue 13 item 17: ferry promote');

item.before(async () => {
  repo = await makeRepo();
  await repo.release('1.0.0', sampleApp('1.0.0'), { channel: 'stable', deltas: 0 });
  await repo.release('0.9.0', sampleApp('0.9.0'), { channel: 'beta', deltas: 0 }); // older than stable's
  // A stable device on 1.0.0, made in-process (the CLI is the point below, not here).
  home = join(repo.dir, 'home');
  await initDevice({ home, trustBytes: await repo.trust(), sources: [repo.repo], platform: 'linux', arch: 'x64' });
  ok(ferry('update', '--home', home), 'install 1.0.0 from stable');
});

item.after(async () => {
  await repo.cleanup();
});

item('issue 13 item 17: refusals leave every pointer as it was', async () => {
  const stable = await bytesOf('stable');
  const beta = await bytesOf('beta');
  await assertRefused(() => promote('1.0.0'), 'ERR_NOT_FOUND', 'a version beta does not name (it is on stable)');
  await assertRefused(() => promote('9.9.9'), 'ERR_NOT_FOUND', 'a version published nowhere');
  await assertRefused(() => promote('0.9.0'), 'ERR_VERSION', 'a beta older than stable');
  await assertRefused(() => promote('0.9.0', { from: 'beta', to: 'beta' }), 'ERR_USAGE', 'the same channel twice');
  await assertRefused(() => promote('0.9.0', { to: 'nightly', keys: [strangerKey()] }), 'ERR_UNKNOWN_KEY', 'a key the root does not delegate');
  await assertRefused(() => promote('0.9.0', { to: 'nightly', keys: [] }), 'ERR_THRESHOLD', 'no key at all');
  // The bytes devices would fetch must be there: a full artifact moved away is refused.
  const full = join(repo.repo, 'releases', '0.9.0', 'linux-x64.full.tar.br');
  await rename(full, `${full}.away`);
  try {
    await assertRefused(() => promote('0.9.0', { to: 'nightly' }), 'ERR_NOT_FOUND', 'a missing full artifact');
  } finally {
    await rename(`${full}.away`, full);
  }
  assert.ok((await bytesOf('stable')).equals(stable), 'stable unchanged');
  assert.ok((await bytesOf('beta')).equals(beta), 'beta unchanged');
  assert.is(await readFile(pointer('nightly')).catch(() => null), null, 'no nightly pointer was written');
  // Without --key the CLI refuses before reading anything.
  const noKey = ferry('promote', '0.9.0', '--repo', repo.repo, '--from', 'beta', '--to', 'nightly');
  assert.is(noKey.status, 2, noKey.stderr);
  assert.match(noKey.stderr, /^ferry: ERR_USAGE: Missing required argument: key/);
});

item('issue 13 item 17: promote 1.1.0 from beta to stable re-signs stable only, and a stable device installs it', async () => {
  await repo.release('1.1.0', sampleApp('1.1.0'), { channel: 'beta', deltas: 0 }); // no deltas: not what is tested
  const before = await readPayload<ChannelDoc>(pointer('stable'));
  const beta = await readPayload<ChannelDoc>(pointer('beta'));
  const betaBytes = await bytesOf('beta');
  const manifest = await readFile(join(repo.repo, 'releases', '1.1.0', 'manifest.json'));
  assert.is(before.targets['linux-x64']!.version, '1.0.0');

  const run = ok(ferry('promote', '1.1.0', '--repo', repo.repo, '--from', 'beta', '--to', 'stable', '--key', join(repo.keysDir, 'release.key'), '--json'), 'ferry promote');
  assert.equal(json(run), { version: '1.1.0', from: 'beta', to: 'stable', sequence: before.sequence + 1, targets: [{ target: 'linux-x64', previous: '1.0.0' }] });

  const after = await readPayload<ChannelDoc>(pointer('stable'));
  assert.is(after.sequence, before.sequence + 1);
  assert.equal(after.targets['linux-x64'], beta.targets['linux-x64'], 'stable pins the manifest beta pins');
  assert.ok((await readFile(join(repo.repo, 'releases', '1.1.0', 'manifest.json'))).equals(manifest), 'the manifest is not rewritten');
  assert.ok((await bytesOf('beta')).equals(betaBytes), 'beta is not rewritten');

  const human = ok(ferry('update', '--home', home), 'the stable device updates');
  assert.match(human.stdout, /updated 1\.0\.0 -> 1\.1\.0/);
  const status = json<{ currentVersion: string; channel: string }>(ok(ferry('status', '--home', home, '--json'), 'status'));
  assert.equal([status.channel, status.currentVersion], ['stable', '1.1.0']);

  // Again: stable already names it (exit 5, like any version refusal).
  const again = ferry('promote', '1.1.0', '--repo', repo.repo, '--from', 'beta', '--to', 'stable', '--key', join(repo.keysDir, 'release.key'));
  assert.is(again.status, 5, again.stderr);
  assert.match(again.stderr, /^ferry: ERR_ALREADY_PUBLISHED: 1\.1\.0 is already the linux-x64 release on stable/);
});

item.run();
