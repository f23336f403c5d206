// SECURITY.md rows 10 and 11 as a device meets them: software for another platform or another
// application, and validly signed manifests whose file list does not match the artifact (one file
// more, one file less, one hash changed). A device home already on 1.0.0 meets each through the
// real `ferry update` in a child process, and each refusal is checked by test/helpers/refusal.ts:
// the stable code, its exit code, 1.0.0 still complete and exactly as signed, and a history record
// of the refused attempt; nothing of 1.1.0 is left staged.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { assertRefusedByCli } from '../helpers/refusal.ts';
import { smallApp } from '../helpers/crash.ts';
import { makeRepo, tempDir, writeTree } from '../helpers/repo.ts';
import { resignManifest } from '../helpers/tamper.ts';
import { assertNothingStaged, onFirstVersion, repinChannel, TARGET, type OnFirstVersion } from '../helpers/adversarial-trust.ts';
import { writeBundle } from '../../core/publish/bundle.ts';
import { sha256 } from '../../core/io/hash.ts';
import { initRepository } from '../../core/publish/repository.ts';
import { publishRelease } from '../../core/publish/publish.ts';
import { createBsdiffPatcher } from '../../plugins/bsdiff/patcher.ts';
import type { ErrorCode } from '../../core/errors.ts';
import { regularFiles, type ManifestDoc } from '../../core/trust/metadata.ts';

/** `ferry update` is refused with `code`; the device stays on 1.0.0 and no 1.1.0 is left behind. */
async function updateRefused(t: OnFirstVersion, code: ErrorCode, why: RegExp): Promise<void> {
  const { record } = await assertRefusedByCli({ home: t.device.home, args: ['update', '--home', t.device.home], code, version: '1.0.0', files: await t.files('1.0.0') });
  assert.match(record.message ?? '', why, 'the record says which check refused it');
  await assertNothingStaged(t.device, ['1.0.0']);
  assert.not.ok(await stat(t.device.layout.manifest('1.1.0')).then(() => true, () => false), 'no manifest copy of 1.1.0 is kept');
}

// ---------------------------------------------------------------------------------------------

const row10 = suite('row 10 wrong software: platform, arch and application name must match the device');

row10('a darwin-x64 bundle (its pointer offers only darwin-x64) given to a linux-x64 device: ferry update refuses (ERR_WRONG_TARGET), 1.0.0 intact', () => onFirstVersion({}, async (t) => {
  await t.repo.release('1.1.0', smallApp('1.1.0'), { platform: 'darwin', channel: 'security' });
  const bundle = join(t.repo.dir, 'darwin-x64.ferry');
  await writeBundle({ repo: t.repo.repo, version: '1.1.0', platform: 'darwin', arch: 'x64', channel: 'security', out: bundle });
  await t.device.setConfig({ sources: [bundle] });
  await updateRefused(t, 'ERR_WRONG_TARGET', /offer darwin-x64, not linux-x64/);
}));

row10('a genuinely signed pointer that sends linux-x64 to a darwin-only 1.1.0 manifest: ferry update refuses (ERR_WRONG_TARGET), 1.0.0 intact', () => onFirstVersion({}, async (t) => {
  await t.repo.release('1.1.0', smallApp('1.1.0'), { platform: 'darwin' });
  await repinChannel(t.repo.repo, 'stable', '1.1.0', [t.repo.releaseKey]);
  await updateRefused(t, 'ERR_WRONG_TARGET', /manifest has no linux-x64 release/);
}));

row10('a repository for app "other-app" with its own keys, given as the source: ferry update refuses (ERR_UNKNOWN_KEY), 1.0.0 intact', () => onFirstVersion({}, async (t) => {
  const other = await makeRepo({ app: 'other-app' });
  try {
    await other.release('1.1.0', smallApp('1.1.0'));
    await t.device.setConfig({ sources: [other.repo] });
    await updateRefused(t, 'ERR_UNKNOWN_KEY', /channels\/stable\.json/);
  } finally {
    await other.cleanup();
  }
}));

row10('a repository for app "other-app" signed by this publisher\'s own keys, given as the source: ferry update refuses by the app name (ERR_WRONG_TARGET), 1.0.0 intact', () => onFirstVersion({}, async (t) => {
  // One publisher, two apps, one set of keys: every signature verifies, only the name differs.
  const other = await tempDir('ferry-other-app-');
  try {
    const repo = join(other.path, 'repo');
    await initRepository({ repo, app: 'other-app', rootKeys: [t.repo.rootKey], rootThreshold: 1, releaseKeys: [t.repo.releaseKey], releaseThreshold: 1, now: new Date() });
    const appDir = join(other.path, 'app');
    await writeTree(appDir, smallApp('1.1.0'));
    await publishRelease({
      repo, appDir, version: '1.1.0', channel: 'stable', keys: [t.repo.releaseKey], platform: 'linux', arch: 'x64',
      mandatory: false, securityFix: false, deltas: 0, expiresIn: 30 * 86_400, now: new Date(), patcher: createBsdiffPatcher(),
    });
    await t.device.setConfig({ sources: [repo] });
    await updateRefused(t, 'ERR_WRONG_TARGET', /channels\/stable\.json is for app "other-app", not "sample-app"/);
  } finally {
    await other.cleanup();
  }
}));

row10.run();

// ---------------------------------------------------------------------------------------------

const row11 = suite('row 11 extra or missing content: exactly the signed file set, all or nothing');

/**
 * 1.1.0 published as a full artifact only, then its manifest's file list changed by `mutate` and
 * re-signed with the genuine release key (and re-pinned): every signature and pin verifies, so
 * only the comparison of the artifact with the signed list can catch it.
 */
async function listChanged(t: OnFirstVersion, mutate: (files: ManifestDoc['targets'][string]['files']) => void): Promise<void> {
  await t.repo.release('1.1.0', smallApp('1.1.0'), { deltas: 0 });
  await resignManifest(t.repo.repo, '1.1.0', [t.repo.releaseKey], (doc) => {
    const release = doc.targets[TARGET]!;
    assert.equal(release.deltas, [], 'full artifact only');
    mutate(release.files);
    release.files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  });
}

row11('a validly signed 1.1.0 manifest listing one file the artifact lacks: ferry update refuses (ERR_UNSAFE_ARCHIVE), nothing staged', () => onFirstVersion({}, async (t) => {
  await listChanged(t, (files) => { files.push({ path: 'lib/zz-extra.js', size: 6, sha256: sha256('extra\n'), mode: 0o644 }); });
  await updateRefused(t, 'ERR_UNSAFE_ARCHIVE', /lib\/zz-extra\.js/);
}));

row11('a validly signed 1.1.0 manifest missing one file the artifact holds: ferry update refuses (ERR_UNSAFE_ARCHIVE), nothing staged', () => onFirstVersion({}, async (t) => {
  await listChanged(t, (files) => {
    const i = files.findIndex((f) => f.path === 'lib/util.js');
    assert.ok(i >= 0);
    files.splice(i, 1);
  });
  await updateRefused(t, 'ERR_UNSAFE_ARCHIVE', /lib\/util\.js/);
}));

row11('a validly signed 1.1.0 manifest with one file\'s sha256 changed: ferry update refuses (ERR_HASH_MISMATCH), nothing staged', () => onFirstVersion({}, async (t) => {
  await listChanged(t, (files) => {
    const f = regularFiles(files).find((x) => x.path === 'server.js');
    assert.ok(f);
    f!.sha256 = sha256('not the signed server.js');
  });
  await updateRefused(t, 'ERR_HASH_MISMATCH', /server\.js/);
}));

row11.run();
