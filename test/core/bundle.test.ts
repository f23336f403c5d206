// Offline bundles (SECURITY.md rows 9, 11, 12): a .ferry bundle carries a verifiable subset of a
// repository; opened into a private folder it is verified by the same code as a repository, and
// it may hold repository files only.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync } from 'node:fs';
import { cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { openBundle, writeBundle } from '../../core/publish/bundle.ts';
import { packFiles } from '../../core/publish/archive.ts';
import { verifyRepository, type VerifyReport } from '../../core/trust/verify-repo.ts';
import { parseManifestPayload, type ManifestDoc } from '../../core/trust/metadata.ts';
import { makeRepo, sampleApp, tempDir, type TestRepo } from '../helpers/repo.ts';
import { assertCodeAsync } from '../helpers/assert-code.ts';
import { readPayload } from '../helpers/tamper.ts';

/** A repository with 1.0.0 and 1.1.0 (delta from 1.0.0) on stable; removed afterwards. */
async function withReleases(body: (t: TestRepo) => Promise<void>): Promise<void> {
  const t = await makeRepo();
  try {
    await t.release('1.0.0', sampleApp('1.0.0'));
    await t.release('1.1.0', sampleApp('1.1.0'));
    await body(t);
  } finally {
    await t.cleanup();
  }
}

/** Opens `bundle` into a private folder and verifies it as a partial source. */
async function verifyBundle(t: TestRepo, bundle: string): Promise<VerifyReport> {
  const priv = await tempDir('ferry-bundle-open-');
  try {
    const source = await openBundle(bundle, join(priv.path, 'open'));
    return await verifyRepository(source, await t.trust(), { now: new Date(), scratch: priv.path, partial: true });
  } finally {
    await priv.cleanup();
  }
}

async function manifestOf(t: TestRepo, version: string): Promise<ManifestDoc> {
  // Parsed, so deltas of both wire layouts (`deltas`, `deltaPacks`) come back as one list.
  return parseManifestPayload(Buffer.from(JSON.stringify(await readPayload<ManifestDoc>(join(t.repo, 'releases', version, 'manifest.json')))));
}

// ---------------------------------------------------------------------------------------------

const roundTrip = suite('writes bundles that verify against the pinned root');

roundTrip('a full-artifact bundle of the latest release verifies', () => withReleases(async (t) => {
  const out = join(t.dir, '1.1.0.ferry');
  const result = await writeBundle({ repo: t.repo, version: '1.1.0', platform: 'linux', arch: 'x64', out });
  const m = await manifestOf(t, '1.1.0');
  assert.is(result.channel, 'stable');
  // The separate file list the manifest pins travels with it (issue 14 item 5).
  assert.equal(result.files, ['root.json', 'root/1.json', 'channels/stable.json', 'releases/1.1.0/manifest.json', 'releases/1.1.0/files-linux-x64.json', m.targets['linux-x64']!.full.path]);
  const report = await verifyBundle(t, out);
  assert.equal(report.problems, []);
  assert.is(report.ok, true);
  assert.equal(report.releases.map((r) => r.version), ['1.1.0']);
  const statuses = report.releases[0]!.artifacts.map((a) => [a.path, a.status]);
  assert.equal(statuses, [[m.targets['linux-x64']!.full.path, 'ok'], [m.targets['linux-x64']!.deltas[0]!.artifact.path, 'absent']]);
}));

roundTrip('a --from delta bundle carries only the delta and verifies', () => withReleases(async (t) => {
  const out = join(t.dir, 'delta.ferry');
  const m = await manifestOf(t, '1.1.0');
  const delta = m.targets['linux-x64']!.deltas[0]!.artifact;
  const result = await writeBundle({ repo: t.repo, version: '1.1.0', from: '1.0.0', platform: 'linux', arch: 'x64', out });
  assert.ok(result.files.includes(delta.path));
  assert.not.ok(result.files.includes(m.targets['linux-x64']!.full.path));
  const report = await verifyBundle(t, out);
  assert.equal(report.problems, []);
  assert.is(report.ok, true);
  const statuses = Object.fromEntries(report.releases[0]!.artifacts.map((a) => [a.path, a.status]));
  assert.equal(statuses, { [m.targets['linux-x64']!.full.path]: 'absent', [delta.path]: 'ok' });

  // With --full the full artifact rides along too.
  const both = join(t.dir, 'both.ferry');
  await writeBundle({ repo: t.repo, version: '1.1.0', from: '1.0.0', withFull: true, platform: 'linux', arch: 'x64', out: both });
  const full = await verifyBundle(t, both);
  assert.is(full.ok, true);
  assert.ok(full.releases[0]!.artifacts.every((a) => a.status === 'ok'));
}));

roundTrip.run();

// ---------------------------------------------------------------------------------------------

const refuses = suite('refuses bundles that are not what they claim');

refuses('a bundle with an extra non-repository entry is refused on open (ERR_UNSAFE_ARCHIVE)', () => withReleases(async (t) => {
  const out = join(t.dir, 'good.ferry');
  const result = await writeBundle({ repo: t.repo, version: '1.1.0', platform: 'linux', arch: 'x64', out });
  const copy = join(t.dir, 'repo-copy');
  await cp(t.repo, copy, { recursive: true });
  for (const extra of ['install.sh', 'releases/1.1.0/hooks/post-install', 'channels/stable.json.bak/x']) {
    const evil = join(t.dir, `evil-${extra.replace(/\W/g, '_')}.ferry`);
    await mkdir(dirname(join(copy, extra)), { recursive: true });
    await cp(join(copy, 'root.json'), join(copy, extra));
    await packFiles(copy, [...result.files, extra], evil, false);
    const priv = await tempDir('ferry-bundle-open-');
    try {
      const err = await assertCodeAsync(() => openBundle(evil, join(priv.path, 'open')), 'ERR_UNSAFE_ARCHIVE');
      assert.match(err.message, new RegExp(extra.replace(/[./]/g, '\\$&')));
    } finally {
      await priv.cleanup();
    }
  }
}));

refuses('a bundle for a version no channel names (ERR_NOT_FOUND)', () => withReleases(async (t) => {
  const out = join(t.dir, 'old.ferry');
  const err = await assertCodeAsync(() => writeBundle({ repo: t.repo, version: '1.0.0', platform: 'linux', arch: 'x64', out }), 'ERR_NOT_FOUND');
  assert.match(err.message, /no channel points at 1\.0\.0/);
  assert.not.ok(existsSync(out), 'no bundle file written');
  await assertCodeAsync(() => writeBundle({ repo: t.repo, version: '1.1.0', channel: 'beta', platform: 'linux', arch: 'x64', out }), 'ERR_NOT_FOUND');
  await assertCodeAsync(() => writeBundle({ repo: t.repo, version: '1.1.0', platform: 'linux', arch: 'arm64', out }), 'ERR_NOT_FOUND');
  await assertCodeAsync(() => writeBundle({ repo: t.repo, version: '1.1.0', from: '0.9.0', platform: 'linux', arch: 'x64', out }), 'ERR_NOT_FOUND');
}));

refuses('a bundle whose artifact bytes were altered verifies with ERR_HASH_MISMATCH', () => withReleases(async (t) => {
  const out = join(t.dir, 'tampered.ferry');
  await writeBundle({ repo: t.repo, version: '1.1.0', platform: 'linux', arch: 'x64', out });
  const m = await manifestOf(t, '1.1.0');
  const artifact = await readFile(join(t.repo, m.targets['linux-x64']!.full.path));
  const bundle = await readFile(out);
  // A bundle is a plain tar: the artifact's bytes sit in it verbatim, with no checksum over them.
  const at = bundle.indexOf(artifact);
  assert.ok(at > 0, 'artifact found inside the bundle');
  const mid = at + Math.floor(artifact.length / 2);
  bundle[mid] = bundle[mid]! ^ 0x01;
  await writeFile(out, bundle);
  const report = await verifyBundle(t, out);
  assert.is(report.ok, false);
  // The altered artifact is the only one the bundle carries for the release its channel names,
  // so verify also reports that nothing can install 1.1.0 (ERR_NOT_FOUND) after the hash mismatch.
  assert.equal(report.problems.map((p) => p.code), ['ERR_HASH_MISMATCH', 'ERR_NOT_FOUND']);
  assert.match(report.problems[1]!.message, /no verified artifact can install 1\.1\.0/);
  assert.is(report.releases[0]!.artifacts.find((a) => a.path === m.targets['linux-x64']!.full.path)?.status, 'ERR_HASH_MISMATCH');
}));

refuses.run();
