// issue 14 item 5 (small manifest): a manifest with separate file lists is signed as
// brotli-compressed JSON under its own payload type, and its pack deltas' patch ops are slim (no
// base hash: the device takes it from the base release's signed list). The signature is checked
// over the compressed bytes before any of them is decoded; the decode is capped; undecodable
// bytes are refused; a base file altered on the device is still caught; kept manifests still read;
// `--inline-file-list` keeps today's plain type and op shape. One small signed repository, copied
// per tampering test; real devices, real files.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { cp, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { brotliCompressSync, constants } from 'node:zlib';
import { createDirSource } from '../../core/ports/dir-source.ts';
import type { Source } from '../../core/ports/source.ts';
import { Updater } from '../../core/update/updater.ts';
import { createBsdiffPatcher } from '../../plugins/bsdiff/patcher.ts';
import { encodeEnvelope, PAYLOAD_TYPES, signEnvelope } from '../../core/trust/dsse.ts';
import { generateKeyPair } from '../../core/trust/ed25519.ts';
import type { SigningKey } from '../../core/trust/keys.ts';
import { MANIFEST_MAX_BYTES, manifestPath, type DeltaOp, type TreeEntry } from '../../core/trust/metadata.ts';
import { verifyManifest } from '../../core/trust/trusted-metadata.ts';
import { verifyTrustedRoot } from '../../core/trust/root.ts';
import { verifyRepository } from '../../core/trust/verify-repo.ts';
import { localManifest } from '../../core/update/installed.ts';
import { baseHashes, signedBaseHash } from '../../core/delta/apply-delta.ts';
import { assertCode } from '../helpers/assert-code.ts';
import { repinChannel } from '../helpers/adversarial-trust.ts';
import { makeDevice, assertTree, type TestDevice } from '../helpers/device.ts';
import { makeRepo, sampleApp, tempDir, type TempDir, type TestRepo } from '../helpers/repo.ts';
import { payloadTypeOf, resignManifest, wirePayload } from '../helpers/tamper.ts';

const T = 'linux-x64';
const OLD = '1.0.0';
const NEW = '1.1.0';

type WireOp = Partial<Extract<DeltaOp, { op: 'patch' }>> & { op: string; path: string };
interface WireManifest {
  targets: Record<string, { files?: TreeEntry[]; deltaPacks?: { from: string; ops: WireOp[] }[] }>;
}

let tmp: TempDir;
let repo: TestRepo;
let newFiles: TreeEntry[];
const devices: TestDevice[] = [];

/** A device home trusting `repo`, updated through `source`; apply() and where it ended. */
async function applyVia(device: TestDevice, source: Source, log: string[] = []) {
  const u = await Updater.open({ home: device.home, sources: [source], patcher: createBsdiffPatcher(), health: null, log: (m) => log.push(m) });
  try {
    const result = await u.apply();
    return { result, current: await u.currentVersion() };
  } finally {
    await u.close();
  }
}

/** A device on 1.0.0, installed from a copy of the repository as it was before 1.1.0. */
async function deviceOnOld(): Promise<TestDevice> {
  const d = await makeDevice({ trust: await repo.trust(), sources: [repo.repo] });
  devices.push(d);
  const r = await applyVia(d, createDirSource(join(tmp.path, 'repo-1.0.0')));
  assert.is(r.current, OLD, JSON.stringify(r.result));
  return d;
}

/** A copy of the repository to tamper with. */
async function mirror(name: string): Promise<string> {
  const dir = join(tmp.path, `mirror-${name}`);
  await cp(repo.repo, dir, { recursive: true });
  return dir;
}

/** Writes 1.1.0's manifest in `dir` as an envelope of the compressed type over exactly `payload`, and re-pins the channel. */
async function writeCompressed(dir: string, payload: Buffer, sign: Parameters<typeof signEnvelope>[2]): Promise<void> {
  await writeFile(join(dir, manifestPath(NEW)), encodeEnvelope(signEnvelope(PAYLOAD_TYPES.manifestBrotli, payload, sign)));
  await repinChannel(dir, 'stable', NEW, [repo.releaseKey]);
}

/** A brotli stream a few hundred bytes long that decodes to `size` spaces (valid JSON white space, but too much of it). */
function bomb(size: number): Buffer {
  return brotliCompressSync(Buffer.alloc(size, 0x20), { params: { [constants.BROTLI_PARAM_QUALITY]: 1 } });
}

/** The patch ops of 1.1.0's pack delta from 1.0.0 in `dir`, as on the wire. */
async function patchOps(dir: string): Promise<WireOp[]> {
  const doc = await wirePayload<WireManifest>(join(dir, manifestPath(NEW)));
  return doc.targets[T]!.deltaPacks!.find((d) => d.from === OLD)!.ops.filter((op) => op.op === 'patch');
}

const compact = suite('issue 14 item 5: the signed manifest is compressed JSON with slim pack ops');

compact.before(async () => {
  tmp = await tempDir('ferry-compact-manifest-');
  repo = await makeRepo({ dir: tmp.path });
  await repo.release(OLD, sampleApp(OLD));
  await cp(repo.repo, join(tmp.path, 'repo-1.0.0'), { recursive: true });
  newFiles = (await repo.release(NEW, sampleApp(NEW))).manifest.targets[T]!.files;
});

compact.after(async () => {
  for (const d of devices) await d.cleanup();
  await tmp?.cleanup();
});

compact('issue 14 item 5: a release signs compressed JSON with slim patch ops; a device installs 1.0.0, then 1.1.0 by delta; its kept manifests still read (status, rollback)', async () => {
  assert.is(await payloadTypeOf(join(repo.repo, manifestPath(NEW))), PAYLOAD_TYPES.manifestBrotli);
  assert.is(await payloadTypeOf(join(repo.repo, manifestPath(OLD))), PAYLOAD_TYPES.manifestBrotli);
  const ops = await patchOps(repo.repo);
  assert.ok(ops.length > 0, 'the delta holds a patch op, or this proves nothing');
  for (const op of ops) {
    assert.is(op.baseSha256, undefined, `${op.path}: no base hash on the wire`);
    assert.is(op.from, undefined, `${op.path}: no from when it is the path`);
  }
  const d = await deviceOnOld();
  const r = await applyVia(d, createDirSource(repo.repo));
  assert.is(r.current, NEW, JSON.stringify(r.result));
  assert.ok(r.result.status === 'committed', JSON.stringify(r.result));
  if (r.result.status === 'committed') {
    assert.is(r.result.record.kind, 'delta');
    assert.is(r.result.record.fellBackToFull, undefined);
  }
  await assertTree(join(d.home, 'current'), newFiles);
  // The kept copies are the compressed envelopes as published, and read back whole.
  assert.ok((await readFile(d.layout.manifest(NEW))).equals(await readFile(join(repo.repo, manifestPath(NEW)))));
  const kept = await localManifest(d.layout, NEW);
  assert.equal(kept.targets[T]!.files, newFiles);
  assert.ok(kept.targets[T]!.deltas[0]!.ops.some((op) => op.op === 'patch' && op.baseSha256 === undefined && op.from === op.path), 'a slim op parses with from = path');
  const u = await Updater.open({ home: d.home, sources: [createDirSource(repo.repo)], patcher: createBsdiffPatcher(), health: null, log: () => {} });
  try {
    assert.is((await u.status()).currentVersion, NEW);
    const back = await u.rollback();
    assert.is(back.to, OLD, JSON.stringify(back));
    assert.is(await u.currentVersion(), OLD);
  } finally {
    await u.close();
  }
  assert.equal((await localManifest(d.layout, OLD)).version, OLD);
});

compact('issue 14 item 5: --inline-file-list keeps the plain payload type and whole patch ops (base hash and from)', async () => {
  const inline = await makeRepo({ dir: join(tmp.path, 'inline') });
  await inline.release(OLD, sampleApp(OLD), { inlineFileList: true });
  await inline.release(NEW, sampleApp(NEW), { inlineFileList: true });
  const file = join(inline.repo, manifestPath(NEW));
  assert.is(await payloadTypeOf(file), PAYLOAD_TYPES.manifest);
  const env = JSON.parse(await readFile(file, 'utf8')) as { payload: string };
  const doc = JSON.parse(Buffer.from(env.payload, 'base64').toString('utf8')) as WireManifest;
  assert.ok(doc.targets[T]!.files, 'the list is inline');
  const ops = await patchOps(inline.repo);
  assert.ok(ops.length > 0);
  for (const op of ops) {
    assert.match(op.baseSha256 ?? '', /^[0-9a-f]{64}$/, `${op.path} carries its base hash`);
    assert.is(op.from, op.path);
  }
  // The same trees with separate lists (this file's repository): compressed, and the ops slim.
  assert.is(await payloadTypeOf(join(repo.repo, manifestPath(NEW))), PAYLOAD_TYPES.manifestBrotli);
  assert.equal((await patchOps(repo.repo)).map((op) => [op.path, op.baseSha256, op.from]), ops.map((op) => [op.path, undefined, undefined]));
});

compact('issue 14 item 5: a signed compressed payload that decodes past the manifest cap is ERR_TOO_LARGE; the device stays', async () => {
  const dir = await mirror('too-large');
  await writeCompressed(dir, bomb(MANIFEST_MAX_BYTES + 1), [repo.releaseKey]);
  const d = await deviceOnOld();
  await applyVia(d, createDirSource(dir)).then(() => assert.unreachable('installed a manifest past the cap'), (err) => assert.is(err.code, 'ERR_TOO_LARGE', err.message));
  assert.is(await d.current(), OLD, 'the device stays on its version');
});

compact('issue 14 item 5: signed garbage under the compressed type is refused (ERR_SCHEMA); the device stays', async () => {
  const dir = await mirror('garbage');
  await writeCompressed(dir, Buffer.from('this is not a brotli stream at all, only signed garbage'), [repo.releaseKey]);
  const d = await deviceOnOld();
  // Refused for what it is (its type is accepted, its bytes do not decode), not for its type.
  const undecodable = (err: { code: string; message: string }) => {
    assert.is(err.code, 'ERR_SCHEMA', err.message);
    assert.match(err.message, /not a brotli stream/);
  };
  await applyVia(d, createDirSource(dir)).then(() => assert.unreachable('installed from garbage'), undecodable);
  assert.is(await d.current(), OLD);
  // A stream cut short is as undecodable.
  const good = Buffer.from((JSON.parse(await readFile(join(repo.repo, manifestPath(NEW)), 'utf8')) as { payload: string }).payload, 'base64');
  await writeCompressed(dir, good.subarray(0, good.length - 8), [repo.releaseKey]);
  await applyVia(d, createDirSource(dir)).then(() => assert.unreachable('installed from a cut stream'), undecodable);
  assert.is(await d.current(), OLD);
});

compact('issue 14 item 5: a forged signature over a compressed bomb is ERR_SIGNATURE: the signature is checked before any byte is decoded', async () => {
  const root = verifyTrustedRoot(await repo.trust());
  // Signed by another key under the release key's id: the signature does not verify. Were the
  // payload decoded first, this would be ERR_TOO_LARGE (the same bomb, signed, is: see above).
  const forger: SigningKey = { ...generateKeyPair(), keyid: repo.releaseKey.keyid };
  const payload = bomb(2 * MANIFEST_MAX_BYTES);
  const forged = encodeEnvelope(signEnvelope(PAYLOAD_TYPES.manifestBrotli, payload, [forger]));
  assertCode(() => verifyManifest(forged, root, NEW, null), 'ERR_SIGNATURE');
  // The same bytes validly signed are decoded, and hit the cap: the code above is the order's proof.
  assertCode(() => verifyManifest(encodeEnvelope(signEnvelope(PAYLOAD_TYPES.manifestBrotli, payload, [repo.releaseKey])), root, NEW, null), 'ERR_TOO_LARGE');
  // And through a device: it stays.
  const dir = await mirror('forged');
  await writeFile(join(dir, manifestPath(NEW)), forged);
  await repinChannel(dir, 'stable', NEW, [repo.releaseKey]);
  const d = await deviceOnOld();
  await applyVia(d, createDirSource(dir)).then(() => assert.unreachable('installed a forged manifest'), (err) => assert.is(err.code, 'ERR_SIGNATURE', err.message));
  assert.is(await d.current(), OLD);
  // The release role signs manifests of the two manifest types only: a channel-typed envelope is refused unread.
  const channelTyped = encodeEnvelope(signEnvelope(PAYLOAD_TYPES.channel, bomb(1024), [repo.releaseKey]));
  assertCode(() => verifyManifest(channelTyped, root, NEW, null), 'ERR_SCHEMA');
});

compact('issue 14 item 5: slim ops: a base file altered on the device is caught (ERR_HASH_MISMATCH), the device falls back to the full artifact and ends on the signed tree', async () => {
  const ops = await patchOps(repo.repo);
  assert.ok(ops.length > 0 && ops.every((op) => op.baseSha256 === undefined), 'slim patch ops, or this proves nothing');
  const d = await deviceOnOld();
  const from = ops[0]!.from ?? ops[0]!.path;
  const baseFile = join(d.layout.release(OLD), from);
  const bytes = await readFile(baseFile);
  bytes[10] = bytes[10]! ^ 0x01;
  await writeFile(baseFile, bytes);
  const log: string[] = [];
  const r = await applyVia(d, createDirSource(repo.repo), log);
  assert.is(r.current, NEW, JSON.stringify(r.result));
  if (r.result.status !== 'committed') assert.unreachable(JSON.stringify(r.result));
  else assert.is(r.result.record.fellBackToFull, true);
  assert.ok(log.some((m) => m.includes('ERR_HASH_MISMATCH') && m.includes(`base file ${baseFile}`)), `the base is what was refused, before the patch ran:\n${log.join('\n')}`);
  await assertTree(join(d.home, 'current'), newFiles);
});

compact('issue 14 item 5: a slim op whose from is not a regular file of the base list: `ferry verify` says so, the device falls back to the full artifact', async () => {
  const dir = await mirror('bad-from');
  await resignManifest(dir, NEW, [repo.releaseKey], (doc) => {
    const op = (doc as unknown as WireManifest).targets[T]!.deltaPacks![0]!.ops.find((o) => o.op === 'patch')!;
    op.from = 'lib/feature-1.js'; // new in 1.1.0: not in the base
  }, { wire: true });
  assert.is(await payloadTypeOf(join(dir, manifestPath(NEW))), PAYLOAD_TYPES.manifestBrotli, 're-signed under the type it had');
  const report = await verifyRepository(createDirSource(dir), await repo.trust(), { now: new Date(), scratch: tmp.path, partial: false });
  assert.ok(report.problems.some((p) => p.code === 'ERR_HASH_MISMATCH' && p.message.includes('lib/feature-1.js')), JSON.stringify(report.problems));
  const d = await deviceOnOld();
  const r = await applyVia(d, createDirSource(dir));
  assert.is(r.current, NEW, JSON.stringify(r.result));
  if (r.result.status !== 'committed') assert.unreachable(JSON.stringify(r.result));
  else assert.is(r.result.record.fellBackToFull, true);
  await assertTree(join(d.home, 'current'), newFiles);
  // The decision itself: a from missing from the base list, or a link there, is ERR_HASH_MISMATCH.
  const hashes = baseHashes([{ path: 'a', size: 1, sha256: 'f'.repeat(64), mode: 0o644 }, { path: 'l', type: 'symlink', target: 'a' }]);
  const op = (from: string): Extract<DeltaOp, { op: 'patch' }> => ({ op: 'patch', path: 'a', from, sha256: '0'.repeat(64), entry: { offset: 0, size: 0 } });
  assert.is(signedBaseHash(op('a'), hashes), 'f'.repeat(64));
  assertCode(() => signedBaseHash(op('l'), hashes), 'ERR_HASH_MISMATCH');
  assertCode(() => signedBaseHash(op('gone'), hashes), 'ERR_HASH_MISMATCH');
  assertCode(() => signedBaseHash(op('a'), undefined), 'ERR_HASH_MISMATCH');
});

compact.run();
