// SECURITY.md rows 1, 2 and 13 as a device meets them: a device home already on 1.0.0 is given
// metadata an attacker made — signed by keys the root never delegated, one byte changed, too few
// distinct signatures, a forged next root, a malleated signature, JSON that two parsers read
// differently, a document over the size cap — and the real `ferry update` in a child process
// must refuse it with the four assertions of test/helpers/refusal.ts: the stable code, its exit
// code, 1.0.0 still complete and exactly as signed, and a history record of the refused attempt.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { assertRefusedByCli } from '../helpers/refusal.ts';
import { smallApp } from '../helpers/crash.ts';
import { resignChannel, resignManifest } from '../helpers/tamper.ts';
import {
  assertNothingStaged,
  flipPayloadByte,
  malleateSignatures,
  manifestDoc,
  onFirstVersion,
  repinChannel,
  strangerKey,
  writeManifestPayload,
  type OnFirstVersion,
} from '../helpers/adversarial-trust.ts';
import { encodeEnvelope } from '../../core/trust/dsse.ts';
import { buildRoot, signRoot } from '../../core/trust/root.ts';
import { readRepoRoot, rotateRoot } from '../../core/publish/repository.ts';
import { channelPath, manifestPath, MANIFEST_MAX_BYTES } from '../../core/trust/metadata.ts';
import type { ErrorCode } from '../../core/errors.ts';
import type { PublicKey, SigningKey } from '../../core/trust/keys.ts';

/** `ferry update` on the device is refused with `code`; the device stays on 1.0.0, nothing staged. */
async function updateRefused(t: OnFirstVersion, code: ErrorCode, why?: RegExp): Promise<void> {
  const { record } = await assertRefusedByCli({ home: t.device.home, args: ['update', '--home', t.device.home], code, version: '1.0.0', files: await t.files('1.0.0') });
  if (why) assert.match(record.message ?? '', why, 'the record says which check refused it');
  await assertNothingStaged(t.device, ['1.0.0']);
}

// ---------------------------------------------------------------------------------------------

const row1 = suite('row 1 arbitrary installation: only what chains to the pinned root by threshold signatures is installed');

row1('a 1.1.0 manifest re-signed by a key the root does not delegate, re-pinned by a genuinely signed pointer: ferry update refuses (ERR_UNKNOWN_KEY), 1.0.0 intact', () => onFirstVersion({}, async (t) => {
  await t.repo.release('1.1.0', smallApp('1.1.0'));
  const stranger = strangerKey();
  // The stranger's manifest, pinned by a pointer the genuine release key then signs: only the
  // manifest's own signature can stop it.
  await resignManifest(t.repo.repo, '1.1.0', [stranger], (doc) => { doc.releaseNotes = 'not from the publisher'; });
  await resignChannel(t.repo.repo, 'stable', [t.repo.releaseKey]);
  await updateRefused(t, 'ERR_UNKNOWN_KEY', /releases\/1\.1\.0\/manifest\.json/);
}));

row1('one payload byte of the 1.1.0 manifest flipped, pointer unchanged: ferry update refuses at the pin (ERR_HASH_MISMATCH), 1.0.0 intact', () => onFirstVersion({}, async (t) => {
  await t.repo.release('1.1.0', smallApp('1.1.0'));
  await flipPayloadByte(join(t.repo.repo, manifestPath('1.1.0')));
  await updateRefused(t, 'ERR_HASH_MISMATCH', /releases\/1\.1\.0\/manifest\.json/);
}));

row1('one payload byte of the 1.1.0 manifest flipped and re-pinned by a genuine pointer: ferry update refuses at the signature (ERR_SIGNATURE), 1.0.0 intact', () => onFirstVersion({}, async (t) => {
  await t.repo.release('1.1.0', smallApp('1.1.0'));
  await flipPayloadByte(join(t.repo.repo, manifestPath('1.1.0')));
  await repinChannel(t.repo.repo, 'stable', '1.1.0', [t.repo.releaseKey]);
  await updateRefused(t, 'ERR_SIGNATURE', /releases\/1\.1\.0\/manifest\.json: a signature does not verify/);
}));

row1('a channel pointer naming 1.1.0 signed by a key the root does not delegate: ferry update refuses (ERR_UNKNOWN_KEY), 1.0.0 intact', () => onFirstVersion({}, async (t) => {
  await t.repo.release('1.1.0', smallApp('1.1.0'));
  await resignChannel(t.repo.repo, 'stable', [strangerKey()], (doc) => { doc.sequence += 1; });
  await updateRefused(t, 'ERR_UNKNOWN_KEY', /channels\/stable\.json/);
}));

row1.run();

// ---------------------------------------------------------------------------------------------

const row2 = suite('row 2 key compromise below threshold: distinct keys counted once; a new root needs the old and the new thresholds');

/**
 * An attacker's root N+1 (new root keys, their own release key `evil`) written as root/<N+1>.json
 * and root.json, signed by `signers`; then 1.1.0 (already published) is re-signed by `evil`, so
 * the forged root is the only thing between the device and the attacker's release.
 */
async function forgeNextRoot(t: OnFirstVersion, o: { rootKeys: PublicKey[]; rootThreshold: number; signers: SigningKey[] }): Promise<void> {
  const { root: previous } = await readRepoRoot(t.repo.repo);
  const evil = strangerKey();
  const next = buildRoot({ app: previous.app, version: previous.version + 1, created: new Date(), rootKeys: o.rootKeys, rootThreshold: o.rootThreshold, releaseKeys: [evil], releaseThreshold: 1 });
  const bytes = encodeEnvelope(signRoot(next, o.signers));
  await writeFile(join(t.repo.repo, 'root', `${next.version}.json`), bytes);
  await writeFile(join(t.repo.repo, 'root.json'), bytes);
  await resignManifest(t.repo.repo, '1.1.0', [evil], (doc) => { doc.releaseNotes = 'signed under a forged root'; });
}

/** The forged root is refused (ERR_ROOT_CHAIN) and the pinned trust/root.json keeps its exact bytes. */
async function forgedRootRefused(t: OnFirstVersion, why: RegExp): Promise<void> {
  const pinned = await readFile(t.device.layout.trustRoot);
  await updateRefused(t, 'ERR_ROOT_CHAIN', why);
  assert.ok((await readFile(t.device.layout.trustRoot)).equals(pinned), 'trust/root.json is unchanged, byte for byte');
}

row2('a source holding root/2.json signed only by its own new keys: ferry update refuses (ERR_ROOT_CHAIN), the pinned root unchanged', () => onFirstVersion({}, async (t) => {
  await t.repo.release('1.1.0', smallApp('1.1.0'));
  const [n1, n2] = [strangerKey(), strangerKey()];
  await forgeNextRoot(t, { rootKeys: [n1, n2], rootThreshold: 1, signers: [n1, n2] });
  await forgedRootRefused(t, /\(by root 1\)/);
}));

row2('a source holding root/2.json signed only by the old root key (its own keys never signed): ferry update refuses (ERR_ROOT_CHAIN), the pinned root unchanged', () => onFirstVersion({}, async (t) => {
  await t.repo.release('1.1.0', smallApp('1.1.0'));
  const n1 = strangerKey();
  await forgeNextRoot(t, { rootKeys: [n1], rootThreshold: 1, signers: [t.repo.rootKey] });
  await forgedRootRefused(t, /\(by itself\)/);
}));

row2('a source holding root/2.json one signature short of its own threshold (old key + 1 of 2 new): ferry update refuses (ERR_ROOT_CHAIN), the pinned root unchanged', () => onFirstVersion({}, async (t) => {
  await t.repo.release('1.1.0', smallApp('1.1.0'));
  const [n1, n2] = [strangerKey(), strangerKey()];
  await forgeNextRoot(t, { rootKeys: [n1, n2], rootThreshold: 2, signers: [t.repo.rootKey, n1] });
  await forgedRootRefused(t, /\(by itself\)/);
}));

/** A device pinned to a root whose root and release roles both need 2 of 2 keys. */
function twoOfTwo(): { keys: { root2: SigningKey; release2: SigningKey }; prepare: (repo: OnFirstVersion['repo']) => Promise<SigningKey[]> } {
  const keys = { root2: strangerKey(), release2: strangerKey() };
  return {
    keys,
    async prepare(repo) {
      await rotateRoot({
        repo: repo.repo, signers: [repo.rootKey, keys.root2],
        rootKeys: [repo.rootKey, keys.root2], rootThreshold: 2,
        releaseKeys: [repo.releaseKey, keys.release2], releaseThreshold: 2, releaseSigners: [repo.releaseKey, keys.release2],
        now: new Date(),
      });
      return [repo.releaseKey, keys.release2];
    },
  };
}

row2('root threshold 2: a next root signed by one old root key and both its own keys (one short of the old threshold): ferry update refuses (ERR_ROOT_CHAIN)', async () => {
  const setup = twoOfTwo();
  await onFirstVersion({ prepare: setup.prepare }, async (t) => {
    await t.repo.release('1.1.0', smallApp('1.1.0'), { keys: [t.repo.releaseKey, setup.keys.release2] });
    const n1 = strangerKey();
    await forgeNextRoot(t, { rootKeys: [n1], rootThreshold: 1, signers: [t.repo.rootKey, n1] });
    await forgedRootRefused(t, /\(by root 2\)/);
  });
});

row2('release threshold 2: the 1.1.0 pointer signed [k1, k1] (one key twice) is refused by ferry update (ERR_THRESHOLD), 1.0.0 intact', async () => {
  const setup = twoOfTwo();
  await onFirstVersion({ prepare: setup.prepare }, async (t) => {
    await t.repo.release('1.1.0', smallApp('1.1.0'), { keys: [t.repo.releaseKey, setup.keys.release2] });
    await resignChannel(t.repo.repo, 'stable', [t.repo.releaseKey, t.repo.releaseKey]);
    await updateRefused(t, 'ERR_THRESHOLD', /signed by 1 distinct trusted key\(s\), 2 required/);
  });
});

row2.run();

// ---------------------------------------------------------------------------------------------

const row13 = suite('row 13 signature and JSON tricks: raw bytes verified, canonical signatures, strict JSON, caps');

/** 1.1.0's manifest replaced by an envelope over `payload`, validly signed and validly pinned. */
async function signedManifestText(t: OnFirstVersion, payload: string | Buffer): Promise<void> {
  await writeManifestPayload(t.repo.repo, '1.1.0', payload, [t.repo.releaseKey]);
  await repinChannel(t.repo.repo, 'stable', '1.1.0', [t.repo.releaseKey]);
}

row13('the 1.1.0 pointer with each signature\'s S replaced by S + L (non-canonical, tweetnacl alone accepts it): ferry update refuses (ERR_SIGNATURE)', () => onFirstVersion({}, async (t) => {
  await t.repo.release('1.1.0', smallApp('1.1.0'));
  await malleateSignatures(join(t.repo.repo, channelPath('stable')));
  await updateRefused(t, 'ERR_SIGNATURE', /channels\/stable\.json: a signature does not verify/);
}));

row13('a validly signed and pinned 1.1.0 manifest with a duplicate "version" key: ferry update refuses (ERR_JSON)', () => onFirstVersion({}, async (t) => {
  await t.repo.release('1.1.0', smallApp('1.1.0'));
  const text = JSON.stringify(await manifestDoc(t.repo.repo, '1.1.0'));
  // JSON.parse would keep the last "version" (1.1.0); another parser may keep the first.
  await signedManifestText(t, `{"version":"9.9.9",${text.slice(1)}`);
  await updateRefused(t, 'ERR_JSON', /duplicate key "version"/);
}));

row13('a validly signed and pinned 1.1.0 manifest with a file size of 2^53 + 1: ferry update refuses (ERR_JSON)', () => onFirstVersion({}, async (t) => {
  await t.repo.release('1.1.0', smallApp('1.1.0'));
  const text = JSON.stringify(await manifestDoc(t.repo.repo, '1.1.0'));
  const unsafe = text.replace(/"size":\d+/, '"size":9007199254740993');
  assert.is.not(unsafe, text);
  await signedManifestText(t, unsafe);
  await updateRefused(t, 'ERR_JSON', /9007199254740993 is not a safe integer/);
}));

row13('a validly signed and pinned 1.1.0 manifest over the 16 MiB cap: ferry update refuses (ERR_TOO_LARGE)', () => onFirstVersion({}, async (t) => {
  await t.repo.release('1.1.0', smallApp('1.1.0'));
  const doc = await manifestDoc(t.repo.repo, '1.1.0');
  // Base64 makes the envelope 4/3 of the payload: this payload is under the cap, its envelope over.
  doc.releaseNotes = 'x'.repeat(Math.ceil(MANIFEST_MAX_BYTES * 0.8));
  await signedManifestText(t, JSON.stringify(doc));
  assert.ok((await readFile(join(t.repo.repo, manifestPath('1.1.0')))).length > MANIFEST_MAX_BYTES, 'the envelope is over the cap');
  await updateRefused(t, 'ERR_TOO_LARGE', /over the \d+-byte cap/);
}));

row13.run();
