// Tampering with a published repository (SECURITY.md rows 1-3, 5, 6, 9, 13): every change an
// attacker can make to bytes at rest is caught by verifyRepository (a problem with a stable code)
// or by the trusted-metadata readers a device uses, and signing with the wrong keys is refused.

import { impliedFile, putOp, wireDelta } from '../helpers/hostile-delta.ts';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { copyFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createDirSource } from '../../core/ports/dir-source.ts';
import { encodeEnvelope, PAYLOAD_TYPES, signEnvelope } from '../../core/trust/dsse.ts';
import { generateKeyPair } from '../../core/trust/ed25519.ts';
import { keyIdOf, type SigningKey } from '../../core/trust/keys.ts';
import { initRepository, readRepoRoot, repoSource, rotateRoot } from '../../core/publish/repository.ts';
import { publishRelease } from '../../core/publish/publish.ts';
import { buildRoot, signRoot } from '../../core/trust/root.ts';
import { readChannel, readManifest } from '../../core/trust/trusted-metadata.ts';
import { verifyRepository, type VerifyReport } from '../../core/trust/verify-repo.ts';
import type { ErrorCode } from '../../core/errors.ts';
import type { ManifestDoc } from '../../core/trust/metadata.ts';
import { createBsdiffPatcher } from '../../plugins/bsdiff/patcher.ts';
import { makeRepo, sampleApp, tempDir, writeTree, type TestRepo } from '../helpers/repo.ts';
import { assertCodeAsync } from '../helpers/assert-code.ts';
import { extendBy, flipByte, readPayload, resignChannel, resignManifest, truncateBy } from '../helpers/tamper.ts';

function newKey(): SigningKey {
  const { publicKey, secretKey } = generateKeyPair();
  return { keyid: keyIdOf(publicKey), publicKey, secretKey };
}

async function verify(t: TestRepo, now = new Date(), trust?: Uint8Array): Promise<VerifyReport> {
  const scratch = await tempDir('ferry-scratch-');
  try {
    return await verifyRepository(createDirSource(t.repo), trust ?? (await t.trust()), { now, scratch: scratch.path, partial: false });
  } finally {
    await scratch.cleanup();
  }
}

function codes(report: VerifyReport): ErrorCode[] {
  return report.problems.map((p) => p.code);
}

/** A repository holding 1.0.0 and 1.1.0 (with a delta) on stable, verified clean first. */
async function twoReleases(body: (t: TestRepo) => Promise<void>): Promise<void> {
  const t = await makeRepo();
  try {
    await t.release('1.0.0', sampleApp('1.0.0'));
    await t.release('1.1.0', sampleApp('1.1.0'));
    const clean = await verify(t);
    assert.equal(clean.problems, [], 'the untouched repository verifies');
    await body(t);
  } finally {
    await t.cleanup();
  }
}

async function manifestOf(t: TestRepo, version: string): Promise<ManifestDoc> {
  return readPayload<ManifestDoc>(join(t.repo, 'releases', version, 'manifest.json'));
}

// ---------------------------------------------------------------------------------------------

const artifacts = suite('detects altered artifacts by their signed size and hashes');

artifacts('one flipped byte in a full artifact (ERR_HASH_MISMATCH)', () => twoReleases(async (t) => {
  const full = (await manifestOf(t, '1.1.0')).targets['linux-x64']!.full;
  await flipByte(join(t.repo, full.path));
  const report = await verify(t);
  assert.is(report.ok, false);
  assert.equal(codes(report), ['ERR_HASH_MISMATCH']);
  assert.match(report.problems[0]!.message, /linux-x64\.full\.tar\.br/);
  const status = report.releases.find((r) => r.version === '1.1.0')!.artifacts.find((a) => a.path === full.path);
  assert.is(status?.status, 'ERR_HASH_MISMATCH');
}));

artifacts('one flipped byte in a delta artifact (ERR_HASH_MISMATCH)', () => twoReleases(async (t) => {
  const delta = wireDelta(await manifestOf(t, '1.1.0'), '1.0.0')!.delta.artifact;
  await flipByte(join(t.repo, delta.path), Math.min(700, delta.size - 1));
  const report = await verify(t);
  assert.equal(codes(report), ['ERR_HASH_MISMATCH']);
  assert.match(report.problems[0]!.message, /from-1\.0\.0\.delta\b/);
}));

artifacts('an artifact truncated by one byte (ERR_SIZE)', () => twoReleases(async (t) => {
  const full = (await manifestOf(t, '1.0.0')).targets['linux-x64']!.full;
  await truncateBy(join(t.repo, full.path), 1);
  const report = await verify(t);
  assert.is(report.ok, false);
  assert.equal(codes(report), ['ERR_SIZE']);
}));

artifacts('an artifact extended by one byte is cut off at its signed length (ERR_TOO_LARGE)', () => twoReleases(async (t) => {
  // The copy is capped at the signed size while it streams (SECURITY.md row 6), so the extra byte
  // is refused as "over its cap" before any hashing: ERR_TOO_LARGE, not ERR_SIZE.
  const full = (await manifestOf(t, '1.0.0')).targets['linux-x64']!.full;
  await extendBy(join(t.repo, full.path), 1);
  const report = await verify(t);
  assert.is(report.ok, false);
  assert.equal(codes(report), ['ERR_TOO_LARGE']);
}));

artifacts('mix-and-match: 1.0.0 artifact copied over 1.1.0 artifact path (ERR_SIZE)', () => twoReleases(async (t) => {
  const v1 = (await manifestOf(t, '1.0.0')).targets['linux-x64']!.full;
  const v2 = (await manifestOf(t, '1.1.0')).targets['linux-x64']!.full;
  // 1.1.0 adds a file, so its artifact is larger: the stale one is short of the signed length.
  assert.ok(v1.size < v2.size, `v1 ${v1.size} < v2 ${v2.size}`);
  await copyFile(join(t.repo, v1.path), join(t.repo, v2.path));
  const report = await verify(t);
  assert.is(report.ok, false);
  assert.equal(codes(report), ['ERR_SIZE']);
}));

artifacts('mix-and-match of equal length: same-size artifact with other bytes (ERR_HASH_MISMATCH)', () => twoReleases(async (t) => {
  // Pad the old artifact to exactly the new one's signed length: size matches, the hash cannot.
  const v1 = (await manifestOf(t, '1.0.0')).targets['linux-x64']!.full;
  const v2 = (await manifestOf(t, '1.1.0')).targets['linux-x64']!.full;
  const old = await readFile(join(t.repo, v1.path));
  await writeFile(join(t.repo, v2.path), Buffer.concat([old, Buffer.alloc(v2.size - old.length)]));
  const report = await verify(t);
  assert.equal(codes(report), ['ERR_HASH_MISMATCH']);
}));

artifacts.run();

// ---------------------------------------------------------------------------------------------

const metadata = suite('detects altered or mis-signed metadata');


metadata('one payload byte flipped in the pinned manifest: pin mismatch and bad signature', () => twoReleases(async (t) => {
  // The channel pins 1.1.0's manifest by size and sha256, so reading it through the channel fails
  // on the pin (ERR_HASH_MISMATCH) before the signature is looked at; verify then also reads
  // releases/1.1.0 unpinned (it lists every release folder) and the signature fails (ERR_SIGNATURE).
  const file = join(t.repo, 'releases', '1.1.0', 'manifest.json');
  const env = JSON.parse(await readFile(file, 'utf8')) as { payload: string };
  const payload = Buffer.from(env.payload, 'base64');
  const at = payload.indexOf('"releaseNotes"') + 2;
  payload[at] = payload[at]! ^ 0x01;
  await writeFile(file, JSON.stringify({ ...env, payload: payload.toString('base64') }, null, 2) + '\n');
  const report = await verify(t);
  assert.is(report.ok, false);
  assert.equal(codes(report), ['ERR_HASH_MISMATCH', 'ERR_SIGNATURE']);

  const { root } = await readRepoRoot(t.repo);
  const source = repoSource(t.repo);
  const channel = await readChannel(source, root, 'stable', new Date());
  await assertCodeAsync(() => readManifest(source, root, '1.1.0', channel!.doc.targets['linux-x64']!.manifest), 'ERR_HASH_MISMATCH');
  await assertCodeAsync(() => readManifest(source, root, '1.1.0', null), 'ERR_SIGNATURE');
}));

metadata('one payload byte flipped in an unpinned (older) manifest (ERR_SIGNATURE)', () => twoReleases(async (t) => {
  const file = join(t.repo, 'releases', '1.0.0', 'manifest.json');
  const env = JSON.parse(await readFile(file, 'utf8')) as { payload: string };
  const payload = Buffer.from(env.payload, 'base64');
  const at = payload.indexOf('"mandatory"') + 2;
  payload[at] = payload[at]! ^ 0x01;
  await writeFile(file, JSON.stringify({ ...env, payload: payload.toString('base64') }, null, 2) + '\n');
  const report = await verify(t);
  assert.equal(codes(report), ['ERR_SIGNATURE']);
}));

metadata('signature bytes flipped on the channel pointer (ERR_SIGNATURE)', () => twoReleases(async (t) => {
  const file = join(t.repo, 'channels', 'stable.json');
  const env = JSON.parse(await readFile(file, 'utf8')) as { signatures: { keyid: string; sig: string }[] };
  const sig = Buffer.from(env.signatures[0]!.sig, 'base64');
  sig[10] = sig[10]! ^ 0x01;
  env.signatures[0]!.sig = sig.toString('base64');
  await writeFile(file, JSON.stringify(env, null, 2) + '\n');
  const report = await verify(t);
  assert.is(report.ok, false);
  assert.equal(codes(report), ['ERR_SIGNATURE']);
  const { root } = await readRepoRoot(t.repo);
  await assertCodeAsync(() => readChannel(repoSource(t.repo), root, 'stable', null), 'ERR_SIGNATURE');
}));

metadata('signature bytes flipped on an unpinned manifest (ERR_SIGNATURE)', () => twoReleases(async (t) => {
  const file = join(t.repo, 'releases', '1.0.0', 'manifest.json');
  const env = JSON.parse(await readFile(file, 'utf8')) as { signatures: { keyid: string; sig: string }[] };
  const sig = Buffer.from(env.signatures[0]!.sig, 'base64');
  sig[40] = sig[40]! ^ 0x80;
  env.signatures[0]!.sig = sig.toString('base64');
  await writeFile(file, JSON.stringify(env, null, 2) + '\n');
  assert.equal(codes(await verify(t)), ['ERR_SIGNATURE']);
}));

metadata('a channel pointer signed by a key root does not delegate (ERR_UNKNOWN_KEY)', () => twoReleases(async (t) => {
  await resignChannel(t.repo, 'stable', [newKey()]);
  const report = await verify(t);
  assert.is(report.ok, false);
  assert.equal(codes(report), ['ERR_UNKNOWN_KEY']);
  const { root } = await readRepoRoot(t.repo);
  await assertCodeAsync(() => readChannel(repoSource(t.repo), root, 'stable', null), 'ERR_UNKNOWN_KEY');
  // The root key is trusted, but not for the release role.
  await resignChannel(t.repo, 'stable', [t.rootKey]);
  assert.equal(codes(await verify(t)), ['ERR_UNKNOWN_KEY']);
}));

metadata('an expired channel pointer (ERR_EXPIRED)', async () => {
  const t = await makeRepo();
  try {
    const now = new Date();
    await t.release('1.0.0', sampleApp('1.0.0'), { now, expiresIn: 1 });
    assert.is((await verify(t, now)).ok, true, 'fresh pointer verifies at release time');
    const later = new Date(now.getTime() + 3600_000);
    const report = await verify(t, later);
    assert.is(report.ok, false);
    assert.equal(codes(report), ['ERR_EXPIRED']);
    assert.is(report.channels[0]?.expired, true);
    const { root } = await readRepoRoot(t.repo);
    await assertCodeAsync(() => readChannel(repoSource(t.repo), root, 'stable', later), 'ERR_EXPIRED');
  } finally {
    await t.cleanup();
  }
});

metadata('a delta whose base hash does not match the base release (ERR_HASH_MISMATCH)', () => twoReleases(async (t) => {
  // A validly signed manifest (a compromised or buggy publisher) whose patch names a base
  // engine.bin that is not the one 1.0.0 signed: verify compares against 1.0.0's file list.
  await resignManifest(t.repo, '1.1.0', [t.releaseKey], (doc) => {
    const op = wireDelta(doc, '1.0.0')!.delta.ops.find((o) => o.path === 'lib/engine.bin')!;
    assert.is(op.op, 'patch');
    if (op.op === 'patch') op.baseSha256 = 'ab'.repeat(32);
  });
  const report = await verify(t);
  assert.is(report.ok, false);
  assert.equal(codes(report), ['ERR_HASH_MISMATCH']);
  assert.match(report.problems[0]!.message, /lib\/engine\.bin/);
}));

metadata('a copy op from a base file that 1.0.0 never had (ERR_HASH_MISMATCH)', () => twoReleases(async (t) => {
  await resignManifest(t.repo, '1.1.0', [t.releaseKey], (doc) => {
    // A pack delta lists no copy of an unchanged file: the signer adds one (issue 14).
    const d = wireDelta(doc, '1.0.0')!.delta;
    const file = impliedFile(doc.targets['linux-x64']!.files, d)!;
    putOp(doc.targets['linux-x64']!.files, d, { op: 'copy', path: file.path, from: 'not/in/1.0.0', sha256: file.sha256 });
  });
  assert.equal(codes(await verify(t)), ['ERR_HASH_MISMATCH']);
}));

metadata.run();

// ---------------------------------------------------------------------------------------------

const rollback = suite('replayed older channel pointers: verify still accepts them (the device refuses them: device-threats row 3)');

rollback('an older validly signed pointer still verifies, with a lower sequence', async () => {
  // verifyRepository checks one repository snapshot, not history: the high-water mark that refuses
  // this (SECURITY.md row 3) belongs on the device. This test pins what verify reports today.
  const t = await makeRepo();
  try {
    await t.release('1.0.0', sampleApp('1.0.0'));
    const older = await readFile(join(t.repo, 'channels', 'stable.json'));
    await t.release('1.1.0', sampleApp('1.1.0'));
    const { root } = await readRepoRoot(t.repo);
    const newer = await readChannel(repoSource(t.repo), root, 'stable', new Date());
    await writeFile(join(t.repo, 'channels', 'stable.json'), older);
    const replayed = await readChannel(repoSource(t.repo), root, 'stable', new Date());
    assert.is(newer?.doc.sequence, 2);
    assert.is(replayed?.doc.sequence, 1);
    assert.ok(replayed!.doc.sequence < newer!.doc.sequence);
    assert.is(replayed?.doc.targets['linux-x64']?.version, '1.0.0');
    const report = await verify(t);
    assert.is(report.ok, true);
    assert.is(report.channels[0]?.sequence, 1);
  } finally {
    await t.cleanup();
  }
});

rollback.run();

// ---------------------------------------------------------------------------------------------

const keys = suite('refuses signing below threshold and rotations that do not chain');

keys('release threshold 2 signed with one key, or one key twice, is refused at publish (ERR_THRESHOLD)', async () => {
  const tmp = await tempDir();
  try {
    const rootKey = newKey();
    const [k1, k2] = [newKey(), newKey()];
    const repo = join(tmp.path, 'repo');
    await initRepository({ repo, app: 'sample-app', rootKeys: [rootKey], rootThreshold: 1, releaseKeys: [k1, k2], releaseThreshold: 2, now: new Date() });
    const appDir = join(tmp.path, 'app');
    await writeTree(appDir, sampleApp('1.0.0'));
    const release = (keys: SigningKey[]) => publishRelease({
      repo, appDir, version: '1.0.0', channel: 'stable', keys, platform: 'linux', arch: 'x64',
      deltas: 0, expiresIn: 86400, now: new Date(), patcher: createBsdiffPatcher(),
    });
    await assertCodeAsync(() => release([k1]), 'ERR_THRESHOLD');
    await assertCodeAsync(() => release([k1, k1]), 'ERR_THRESHOLD');
    const ok = await release([k1, k2]);
    assert.is(ok.channel.sequence, 1);
  } finally {
    await tmp.cleanup();
  }
});

keys('a channel signed by one of two required keys is refused by verify (ERR_THRESHOLD)', async () => {
  const tmp = await tempDir();
  try {
    const rootKey = newKey();
    const [k1, k2] = [newKey(), newKey()];
    const repo = join(tmp.path, 'repo');
    await initRepository({ repo, app: 'sample-app', rootKeys: [rootKey], rootThreshold: 1, releaseKeys: [k1, k2], releaseThreshold: 2, now: new Date() });
    const appDir = join(tmp.path, 'app');
    await writeTree(appDir, sampleApp('1.0.0'));
    await publishRelease({ repo, appDir, version: '1.0.0', channel: 'stable', keys: [k1, k2], platform: 'linux', arch: 'x64', deltas: 0, expiresIn: 86400, now: new Date(), patcher: createBsdiffPatcher() });
    await resignChannel(repo, 'stable', [k1, k1]);
    const scratch = await tempDir('ferry-scratch-');
    try {
      const report = await verifyRepository(createDirSource(repo), await readFile(join(repo, 'root.json')), { now: new Date(), scratch: scratch.path, partial: false });
      assert.equal(codes(report), ['ERR_THRESHOLD']);
    } finally {
      await scratch.cleanup();
    }
  } finally {
    await tmp.cleanup();
  }
});

keys('root/2.json signed only by its new keys: verify throws (ERR_ROOT_CHAIN)', () => twoReleases(async (t) => {
  const trusted = await t.trust();
  const { root: root1 } = await readRepoRoot(t.repo);
  const [n1, n2] = [newKey(), newKey()];
  const root2 = buildRoot({ app: root1.app, version: 2, created: new Date(), rootKeys: [n1, n2], rootThreshold: 1, releaseKeys: [t.releaseKey], releaseThreshold: 1 });
  const forged = encodeEnvelope(signRoot(root2, [n1, n2]));
  await writeFile(join(t.repo, 'root', '2.json'), forged);
  await writeFile(join(t.repo, 'root.json'), forged);
  await assertCodeAsync(() => verify(t, new Date(), trusted), 'ERR_ROOT_CHAIN');
}));

keys('a genuine rotation (old and new keys sign) verifies from the old root', () => twoReleases(async (t) => {
  const trusted = await t.trust();
  const added = newKey();
  await rotateRoot({ repo: t.repo, signers: [t.rootKey, added], rootKeys: [t.rootKey, added], now: new Date() });
  const report = await verify(t, new Date(), trusted);
  assert.equal(report.problems, []);
  assert.is(report.trustedRootVersion, 1);
  assert.is(report.rootVersion, 2);
}));

keys('a channel envelope whose payload type is a manifest\'s is refused (ERR_SCHEMA)', () => twoReleases(async (t) => {
  const doc = await readPayload<object>(join(t.repo, 'channels', 'stable.json'));
  const env = signEnvelope(PAYLOAD_TYPES.manifest, Buffer.from(JSON.stringify(doc)), [t.releaseKey]);
  await writeFile(join(t.repo, 'channels', 'stable.json'), encodeEnvelope(env));
  assert.equal(codes(await verify(t)), ['ERR_SCHEMA']);
}));

keys.run();
