// Signatures and the trust root (SECURITY.md rows 1, 2 and 13): DSSE threshold verification,
// root documents that cannot lie about their keys, and root rotation that needs both the old
// and the new root thresholds.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeEnvelope, PAYLOAD_TYPES, signEnvelope, verifyThreshold, type Envelope } from '../../core/trust/dsse.ts';
import { generateKeyPair } from '../../core/trust/ed25519.ts';
import { sha256 } from '../../core/io/hash.ts';
import { createIntegrityVerifier } from '../../core/trust/integrity.ts';
import { keyIdOf, type SigningKey } from '../../core/trust/keys.ts';
import { buildRoot, parseRootPayload, signRoot, verifyRole, verifyRootRotation, verifyTrustedRoot, walkRootChain, type RootDoc } from '../../core/trust/root.ts';
import { assertCode, assertCodeAsync } from '../helpers/assert-code.ts';

function newKey(): SigningKey {
  const { publicKey, secretKey } = generateKeyPair();
  return { keyid: keyIdOf(publicKey), publicKey, secretKey };
}

interface RootSpec {
  version: number;
  rootKeys: SigningKey[];
  rootThreshold: number;
  releaseKeys?: SigningKey[];
  releaseThreshold?: number;
  app?: string;
}

const release = [newKey(), newKey()];

function makeRoot(spec: RootSpec): RootDoc {
  return buildRoot({
    app: spec.app ?? 'demo',
    version: spec.version,
    created: new Date('2024-05-01T00:00:00.000Z'),
    rootKeys: spec.rootKeys,
    rootThreshold: spec.rootThreshold,
    releaseKeys: spec.releaseKeys ?? release,
    releaseThreshold: spec.releaseThreshold ?? 1,
  });
}

/** The bytes of root/<version>.json: the root signed by `signers`. */
function signedRootBytes(root: RootDoc, signers: SigningKey[]): Uint8Array {
  return encodeEnvelope(signRoot(root, signers));
}

function flipPayloadByte(envelope: Envelope, index: number): Envelope {
  const payload = Buffer.from(envelope.payload, 'base64');
  payload[index] = payload[index]! ^ 0x01;
  return { ...envelope, payload: payload.toString('base64') };
}

const channelPayload = Buffer.from(JSON.stringify({ type: 'ferry/channel', sequence: 3 }));

// ---------------------------------------------------------------------------------------------

const threshold = suite('counts valid signatures by distinct trusted keys');

threshold('refuses an envelope with one payload byte flipped (ERR_SIGNATURE)', () => {
  const [k1] = release as [SigningKey, SigningKey];
  const env = signEnvelope(PAYLOAD_TYPES.channel, channelPayload, [k1]);
  assert.equal(verifyThreshold(env, PAYLOAD_TYPES.channel, [k1], 1, 'channel').signedBy, [k1.keyid]);
  for (const i of [0, 10, channelPayload.length - 1]) {
    assertCode(() => verifyThreshold(flipPayloadByte(env, i), PAYLOAD_TYPES.channel, [k1], 1, 'channel'), 'ERR_SIGNATURE');
  }
});

threshold('refuses an envelope signed only by a key outside the role (ERR_UNKNOWN_KEY)', () => {
  const stranger = newKey();
  const root = makeRoot({ version: 1, rootKeys: [newKey()], rootThreshold: 1 });
  const env = signEnvelope(PAYLOAD_TYPES.channel, channelPayload, [stranger]);
  assertCode(() => verifyRole(env, PAYLOAD_TYPES.channel, root, 'release', 'channel'), 'ERR_UNKNOWN_KEY');
});

threshold('refuses a root key signing for the release role (ERR_UNKNOWN_KEY)', () => {
  const rootKey = newKey();
  const root = makeRoot({ version: 1, rootKeys: [rootKey], rootThreshold: 1 });
  const env = signEnvelope(PAYLOAD_TYPES.channel, channelPayload, [rootKey]);
  assertCode(() => verifyRole(env, PAYLOAD_TYPES.channel, root, 'release', 'channel'), 'ERR_UNKNOWN_KEY');
});

threshold('counts one key once: threshold 2 with signatures [k1, k1] is refused (ERR_THRESHOLD)', () => {
  const [k1] = release as [SigningKey, SigningKey];
  const root = makeRoot({ version: 1, rootKeys: [newKey()], rootThreshold: 1, releaseThreshold: 2 });
  const env = signEnvelope(PAYLOAD_TYPES.channel, channelPayload, [k1, k1]);
  assert.is(env.signatures.length, 2);
  const err = assertCode(() => verifyRole(env, PAYLOAD_TYPES.channel, root, 'release', 'channel'), 'ERR_THRESHOLD');
  assert.match(err.message, /1 distinct trusted key/);
});

threshold('accepts threshold 2 with signatures [k1, k2] and returns the exact payload bytes', () => {
  const [k1, k2] = release as [SigningKey, SigningKey];
  const root = makeRoot({ version: 1, rootKeys: [newKey()], rootThreshold: 1, releaseThreshold: 2 });
  const env = signEnvelope(PAYLOAD_TYPES.channel, channelPayload, [k1, k2]);
  const payload = verifyRole(env, PAYLOAD_TYPES.channel, root, 'release', 'channel');
  assert.ok(payload.equals(channelPayload));
  const result = verifyThreshold(env, PAYLOAD_TYPES.channel, [k1, k2], 2, 'channel');
  assert.equal([...result.signedBy].sort(), [k1.keyid, k2.keyid].sort());
});

threshold('ignores an extra signature by a stranger once the threshold is met', () => {
  const [k1, k2] = release as [SigningKey, SigningKey];
  const env = signEnvelope(PAYLOAD_TYPES.channel, channelPayload, [newKey(), k1, k2]);
  assert.equal(verifyThreshold(env, PAYLOAD_TYPES.channel, [k1, k2], 2, 'channel').signedBy.length, 2);
});

threshold('refuses an envelope whose payload type differs from the expected one (ERR_SCHEMA)', () => {
  const [k1] = release as [SigningKey, SigningKey];
  const root = makeRoot({ version: 1, rootKeys: [newKey()], rootThreshold: 1 });
  const env = signEnvelope(PAYLOAD_TYPES.channel, channelPayload, [k1]);
  assertCode(() => verifyRole(env, PAYLOAD_TYPES.manifest, root, 'release', 'manifest'), 'ERR_SCHEMA');
});

threshold('refuses a channel envelope relabelled as a manifest: PAE binds the type (ERR_SIGNATURE)', () => {
  const [k1] = release as [SigningKey, SigningKey];
  const env = { ...signEnvelope(PAYLOAD_TYPES.channel, channelPayload, [k1]), payloadType: PAYLOAD_TYPES.manifest };
  assertCode(() => verifyThreshold(env, PAYLOAD_TYPES.manifest, [k1], 1, 'manifest'), 'ERR_SIGNATURE');
});

threshold('refuses a signature in non-base64 form and a threshold below 1', () => {
  const [k1] = release as [SigningKey, SigningKey];
  const env = signEnvelope(PAYLOAD_TYPES.channel, channelPayload, [k1]);
  const junk = { ...env, signatures: [{ keyid: k1.keyid, sig: `${env.signatures[0]!.sig}!` }] };
  assertCode(() => verifyThreshold(junk, PAYLOAD_TYPES.channel, [k1], 1, 'channel'), 'ERR_SIGNATURE');
  assertCode(() => verifyThreshold(env, PAYLOAD_TYPES.channel, [k1], 0, 'channel'), 'ERR_SCHEMA');
});

threshold.run();

// ---------------------------------------------------------------------------------------------

const rootDoc = suite('refuses root documents that lie about their keys');

/** A root payload built by hand, so the test can break what buildRoot would never produce. */
function rawRoot(keys: Record<string, string>, rootIds: string[], rootThreshold: number): Buffer {
  const keyEntries = Object.fromEntries(Object.entries(keys).map(([id, pub]) => [id, { keytype: 'ed25519', public: pub }]));
  const releaseId = release[0]!.keyid;
  const doc = {
    type: 'ferry/root',
    app: 'demo',
    version: 1,
    created: '2024-05-01T00:00:00.000Z',
    keys: { ...keyEntries, [releaseId]: { keytype: 'ed25519', public: Buffer.from(release[0]!.publicKey).toString('hex') } },
    roles: { root: { keyids: rootIds, threshold: rootThreshold }, release: { keyids: [releaseId], threshold: 1 } },
  };
  return Buffer.from(JSON.stringify(doc));
}

const hex = (k: SigningKey) => Buffer.from(k.publicKey).toString('hex');

rootDoc('accepts a consistent hand-built root', () => {
  const k = newKey();
  const root = parseRootPayload(rawRoot({ [k.keyid]: hex(k) }, [k.keyid], 1));
  assert.equal(root.roles.root, { keyids: [k.keyid], threshold: 1 });
  assert.is(root.keys[k.keyid]?.public, hex(k));
});

rootDoc('refuses a key listed under an id that is not the sha256 of the key (ERR_SCHEMA)', () => {
  const k = newKey();
  const other = newKey();
  const err = assertCode(() => parseRootPayload(rawRoot({ [other.keyid]: hex(k) }, [other.keyid], 1)), 'ERR_SCHEMA');
  assert.match(err.message, /not the sha256/);
});

rootDoc('refuses one key listed twice under a second, made-up id (ERR_SCHEMA)', () => {
  const k = newKey();
  const fakeId = sha256('not the key');
  assertCode(() => parseRootPayload(rawRoot({ [k.keyid]: hex(k), [fakeId]: hex(k) }, [k.keyid, fakeId], 2)), 'ERR_SCHEMA');
});

rootDoc('refuses an all-zero public key even under its true id (ERR_KEY)', () => {
  const zero = new Uint8Array(32);
  const id = keyIdOf(zero);
  const err = assertCode(() => parseRootPayload(rawRoot({ [id]: '00'.repeat(32) }, [id], 1)), 'ERR_KEY');
  assert.match(err.message, /weak/);
});

rootDoc('refuses a root threshold above its key count (ERR_SCHEMA)', () => {
  const a = newKey();
  const b = newKey();
  assertCode(() => parseRootPayload(rawRoot({ [a.keyid]: hex(a), [b.keyid]: hex(b) }, [a.keyid, b.keyid], 3)), 'ERR_SCHEMA');
  assertCode(() => makeRoot({ version: 1, rootKeys: [a], rootThreshold: 2 }), 'ERR_SCHEMA');
});

rootDoc('refuses a role that lists one key id twice, or a key root.keys lacks (ERR_SCHEMA)', () => {
  const a = newKey();
  const b = newKey();
  assertCode(() => parseRootPayload(rawRoot({ [a.keyid]: hex(a) }, [a.keyid, a.keyid], 2)), 'ERR_SCHEMA');
  assertCode(() => parseRootPayload(rawRoot({ [a.keyid]: hex(a) }, [a.keyid, b.keyid], 1)), 'ERR_SCHEMA');
});

rootDoc('refuses a pinned root not signed by its own root threshold', () => {
  const [a, b] = [newKey(), newKey()];
  const root = makeRoot({ version: 1, rootKeys: [a, b], rootThreshold: 2 });
  assert.equal(verifyTrustedRoot(signedRootBytes(root, [a, b])), root);
  assertCode(() => verifyTrustedRoot(signedRootBytes(root, [a])), 'ERR_THRESHOLD');
});

rootDoc.run();

// ---------------------------------------------------------------------------------------------

const rotation = suite('rotates roots only with both the old and the new thresholds');

const old1 = newKey();
const old2 = newKey();
const new1 = newKey();
const new2 = newKey();
const root1 = makeRoot({ version: 1, rootKeys: [old1, old2], rootThreshold: 2 });
const root2 = makeRoot({ version: 2, rootKeys: [new1, new2], rootThreshold: 2 });

rotation('accepts a new root signed by the old and the new thresholds', () => {
  const next = verifyRootRotation(root1, signedRootBytes(root2, [old1, old2, new1, new2]), 'root 2');
  assert.equal(next, root2);
  assert.is(next.version, 2);
  assert.equal(createIntegrityVerifier().verifyCertChain(root1, [signedRootBytes(root2, [new2, old2, new1, old1])]), root2);
});

rotation('refuses a root signed only by its own new keys (ERR_ROOT_CHAIN)', () => {
  assertCode(() => verifyRootRotation(root1, signedRootBytes(root2, [new1, new2]), 'root 2'), 'ERR_ROOT_CHAIN');
  assertCode(() => createIntegrityVerifier().verifyCertChain(root1, [signedRootBytes(root2, [new1, new2])]), 'ERR_ROOT_CHAIN');
});

rotation('refuses a root signed only by the old keys (ERR_ROOT_CHAIN)', () => {
  assertCode(() => verifyRootRotation(root1, signedRootBytes(root2, [old1, old2]), 'root 2'), 'ERR_ROOT_CHAIN');
  assertCode(() => createIntegrityVerifier().verifyCertChain(root1, [signedRootBytes(root2, [old1, old2])]), 'ERR_ROOT_CHAIN');
});

rotation('refuses a root one signature short of either threshold (ERR_ROOT_CHAIN)', () => {
  assertCode(() => verifyRootRotation(root1, signedRootBytes(root2, [old1, new1, new2]), 'root 2'), 'ERR_ROOT_CHAIN');
  assertCode(() => verifyRootRotation(root1, signedRootBytes(root2, [old1, old2, new1]), 'root 2'), 'ERR_ROOT_CHAIN');
  assertCode(() => verifyRootRotation(root1, signedRootBytes(root2, [old1, old1, new1, new1]), 'root 2'), 'ERR_ROOT_CHAIN');
});

rotation('refuses a version skip even when every key signs (ERR_ROOT_CHAIN)', () => {
  const root3 = makeRoot({ version: 3, rootKeys: [new1, new2], rootThreshold: 2 });
  const err = assertCode(() => verifyRootRotation(root1, signedRootBytes(root3, [old1, old2, new1, new2]), 'root 2'), 'ERR_ROOT_CHAIN');
  assert.match(err.message, /version 3, expected 2/);
  assertCode(() => createIntegrityVerifier().verifyCertChain(root1, [signedRootBytes(root3, [old1, old2, new1, new2])]), 'ERR_ROOT_CHAIN');
  // The same version again is no rotation either.
  const again = makeRoot({ version: 1, rootKeys: [new1, new2], rootThreshold: 2 });
  assertCode(() => verifyRootRotation(root1, signedRootBytes(again, [old1, old2, new1, new2]), 'root 1'), 'ERR_ROOT_CHAIN');
});

rotation('refuses a next root for another application (ERR_ROOT_CHAIN)', () => {
  const other = makeRoot({ version: 2, rootKeys: [new1, new2], rootThreshold: 2, app: 'other' });
  assertCode(() => verifyRootRotation(root1, signedRootBytes(other, [old1, old2, new1, new2]), 'root 2'), 'ERR_ROOT_CHAIN');
});

rotation('refuses a rotation envelope with one payload byte flipped (ERR_ROOT_CHAIN)', () => {
  const env = flipPayloadByte(signRoot(root2, [old1, old2, new1, new2]), 20);
  assertCode(() => verifyRootRotation(root1, encodeEnvelope(env), 'root 2'), 'ERR_ROOT_CHAIN');
});

rotation.run();

// ---------------------------------------------------------------------------------------------

const chain = suite('walks a chain of rotations to the latest root');

/** root 1 → 4, each rotation to two fresh keys, each signed by both thresholds. */
function buildChain(): { trusted: RootDoc; roots: RootDoc[]; files: Map<number, Uint8Array> } {
  const keys = [[newKey(), newKey()], [newKey(), newKey()], [newKey(), newKey()], [newKey(), newKey()]] as const;
  const roots = keys.map((k, i) => makeRoot({ version: i + 1, rootKeys: [...k], rootThreshold: 2 }));
  const files = new Map<number, Uint8Array>();
  for (let v = 2; v <= 4; v++) files.set(v, signedRootBytes(roots[v - 1]!, [...keys[v - 2]!, ...keys[v - 1]!]));
  return { trusted: roots[0]!, roots, files };
}

chain('walks three rotations from root 1 to root 4, asking for 2, 3, 4 and 5', async () => {
  const { trusted, roots, files } = buildChain();
  const asked: number[] = [];
  const latest = await walkRootChain(trusted, async (n) => {
    asked.push(n);
    return files.get(n);
  });
  assert.is(latest.version, 4);
  assert.equal(latest, roots[3]);
  assert.equal(asked, [2, 3, 4, 5]);
});

chain('verifyCertChain walks the same three rotations to root 4', () => {
  const { trusted, roots, files } = buildChain();
  const latest = createIntegrityVerifier().verifyCertChain(trusted, [files.get(2)!, files.get(3)!, files.get(4)!]);
  assert.equal(latest, roots[3]);
  assert.equal(createIntegrityVerifier().verifyCertChain(trusted, []), trusted);
});

chain('stays on the trusted root when no later root exists', async () => {
  const { trusted } = buildChain();
  assert.equal(await walkRootChain(trusted, async () => undefined), trusted);
});

chain('refuses a chain whose middle link is signed only by its own keys (ERR_ROOT_CHAIN)', async () => {
  const { trusted, roots, files } = buildChain();
  const forgedKeys = [newKey(), newKey()];
  const forged3 = makeRoot({ version: 3, rootKeys: forgedKeys, rootThreshold: 2 });
  files.set(3, signedRootBytes(forged3, forgedKeys));
  await assertCodeAsync(() => walkRootChain(trusted, async (n) => files.get(n)), 'ERR_ROOT_CHAIN');
  assertCode(() => createIntegrityVerifier().verifyCertChain(trusted, [files.get(2)!, files.get(3)!, files.get(4)!]), 'ERR_ROOT_CHAIN');
  assert.is(roots.length, 4);
});

chain('refuses a chain that skips a version (ERR_ROOT_CHAIN)', () => {
  const { trusted, files } = buildChain();
  assertCode(() => createIntegrityVerifier().verifyCertChain(trusted, [files.get(2)!, files.get(4)!]), 'ERR_ROOT_CHAIN');
});

chain.run();

// ---------------------------------------------------------------------------------------------

const checksum = suite('verifies checksums of bytes and files');

checksum('accepts bytes and a file whose sha256 matches', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-checksum-'));
  try {
    const bytes = Buffer.from('artifact bytes\n');
    const path = join(dir, 'a.bin');
    await writeFile(path, bytes);
    const v = createIntegrityVerifier();
    await v.verifyChecksum(bytes, sha256(bytes));
    await v.verifyChecksum({ path }, sha256(bytes));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

checksum('refuses bytes and a file whose sha256 differs (ERR_HASH_MISMATCH)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-checksum-'));
  try {
    const bytes = Buffer.from('artifact bytes\n');
    const path = join(dir, 'a.bin');
    await writeFile(path, Buffer.from('artifact bytez\n'));
    const v = createIntegrityVerifier();
    const expected = sha256(bytes);
    await assertCodeAsync(() => v.verifyChecksum(Buffer.from('artifact bytez\n'), expected), 'ERR_HASH_MISMATCH');
    await assertCodeAsync(() => v.verifyChecksum({ path }, expected), 'ERR_HASH_MISMATCH');
    await assertCodeAsync(() => v.verifyChecksum(new Uint8Array(0), expected), 'ERR_HASH_MISMATCH');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

checksum('verifySignature returns the payload for the release role and refuses a flipped byte', () => {
  const [k1] = release as [SigningKey, SigningKey];
  const root = makeRoot({ version: 1, rootKeys: [newKey()], rootThreshold: 1 });
  const env = signEnvelope(PAYLOAD_TYPES.manifest, channelPayload, [k1]);
  const v = createIntegrityVerifier();
  assert.ok(Buffer.from(v.verifySignature(env, PAYLOAD_TYPES.manifest, root, 'release')).equals(channelPayload));
  assertCode(() => v.verifySignature(flipPayloadByte(env, 3), PAYLOAD_TYPES.manifest, root, 'release'), 'ERR_SIGNATURE');
});

checksum.run();
