// Key files in a real temp directory: the secret is written 0600 and never overwritten, every
// format names the same key id, and a signature over DSSE's PAE bytes verifies with openssl, so
// any ed25519 tool can check what ferry signs.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pae, PAYLOAD_TYPES, signEnvelope } from '../../core/trust/dsse.ts';
import { verify } from '../../core/trust/ed25519.ts';
import { sha256 } from '../../core/io/hash.ts';
import { generateKeyFiles, keyIdOf, loadPublicKey, loadSigningKey, publicKeyToPem } from '../../core/trust/keys.ts';
import { assertCodeAsync } from '../helpers/assert-code.ts';

interface Ctx {
  dir: string;
}

function withTempDir(name: string) {
  const s = suite<Ctx>(name, { dir: '' });
  s.before.each(async (ctx) => {
    ctx.dir = await mkdtemp(join(tmpdir(), 'ferry-keys-'));
  });
  s.after.each(async (ctx) => {
    await rm(ctx.dir, { recursive: true, force: true });
  });
  return s;
}

const generate = withTempDir('writes key files');

generate('writes .key with mode 0600, and .pub and .pem beside it', async ({ dir }) => {
  const out = join(dir, 'release');
  const made = await generateKeyFiles(out);
  assert.equal(made.files, [`${out}.key`, `${out}.pub`, `${out}.pem`]);
  assert.is((await stat(`${out}.key`)).mode & 0o777, 0o600);
  assert.is(made.keyid, sha256(made.publicKey));
  assert.is(made.keyid, keyIdOf(made.publicKey));
  assert.match(made.keyid, /^[0-9a-f]{64}$/);
  const pub = JSON.parse(await readFile(`${out}.pub`, 'utf8')) as Record<string, unknown>;
  assert.equal(pub, { keytype: 'ed25519', keyid: made.keyid, public: Buffer.from(made.publicKey).toString('hex') });
  assert.is(await readFile(`${out}.pem`, 'utf8'), publicKeyToPem(made.publicKey));
});

generate('refuses to overwrite an existing .key and leaves it unchanged', async ({ dir }) => {
  const out = join(dir, 'root');
  const first = await generateKeyFiles(out);
  const before = await readFile(`${out}.key`);
  const err = await assertCodeAsync(() => generateKeyFiles(out), 'ERR_USAGE');
  assert.match(err.message, /already exists/);
  assert.ok((await readFile(`${out}.key`)).equals(before));
  assert.is((await loadSigningKey(`${out}.key`)).keyid, first.keyid);
  assert.is((await loadPublicKey(`${out}.pub`)).keyid, first.keyid, '.pub still matches the kept .key');
});

generate('gives two generated keys different ids', async ({ dir }) => {
  const a = await generateKeyFiles(join(dir, 'a'));
  const b = await generateKeyFiles(join(dir, 'b'));
  assert.is.not(a.keyid, b.keyid);
});

generate.run();

const load = withTempDir('loads keys from every file format');

load('agrees on the key id from .key, .pub and .pem', async ({ dir }) => {
  const out = join(dir, 'release');
  const made = await generateKeyFiles(out);
  const signing = await loadSigningKey(`${out}.key`);
  const fromPub = await loadPublicKey(`${out}.pub`);
  const fromPem = await loadPublicKey(`${out}.pem`);
  const fromKey = await loadPublicKey(`${out}.key`);
  for (const k of [signing, fromPub, fromPem, fromKey]) {
    assert.is(k.keyid, made.keyid);
    assert.equal(Array.from(k.publicKey), Array.from(made.publicKey));
  }
  assert.is(signing.secretKey.length, 64);
});

load('loads a signing key whose signatures verify under the loaded public key', async ({ dir }) => {
  const out = join(dir, 'release');
  await generateKeyFiles(out);
  const signing = await loadSigningKey(`${out}.key`);
  const pub = await loadPublicKey(`${out}.pem`);
  const env = signEnvelope(PAYLOAD_TYPES.channel, Buffer.from('{"a":1}'), [signing]);
  const sig = Buffer.from(env.signatures[0]!.sig, 'base64');
  assert.is(verify(pae(PAYLOAD_TYPES.channel, Buffer.from('{"a":1}')), sig, pub.publicKey), true);
});

load('refuses garbage, truncated and wrong-type key files with ERR_KEY', async ({ dir }) => {
  const made = await generateKeyFiles(join(dir, 'good'));
  const pubHex = Buffer.from(made.publicKey).toString('hex');
  const cases: Record<string, string> = {
    'garbage.pub': 'this is not a key\n',
    'empty.pub': '',
    'array.pub': '[]',
    'rsa.pub': JSON.stringify({ keytype: 'rsa', keyid: made.keyid, public: pubHex }),
    'short.pub': JSON.stringify({ keytype: 'ed25519', keyid: made.keyid, public: pubHex.slice(2) }),
    'upper.pub': JSON.stringify({ keytype: 'ed25519', keyid: made.keyid, public: pubHex.toUpperCase() }),
    'dup.pub': `{"keytype":"ed25519","public":"${pubHex}","public":"${pubHex}"}`,
    'bad.pem': '-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n',
    // The same 32 bytes under the X25519 OID (1.3.101.110): right length, wrong algorithm.
    'x25519.pem': `-----BEGIN PUBLIC KEY-----\n${Buffer.concat([Buffer.from('302a300506032b656e032100', 'hex'), made.publicKey]).toString('base64')}\n-----END PUBLIC KEY-----\n`,
    'garbage.key': 'secret=1234\n',
    'short.key': JSON.stringify({ keytype: 'ed25519', secret: '00'.repeat(32) }),
  };
  for (const [name, text] of Object.entries(cases)) {
    const path = join(dir, name);
    await writeFile(path, text);
    if (name.endsWith('.key')) await assertCodeAsync(() => loadSigningKey(path), 'ERR_KEY');
    await assertCodeAsync(() => loadPublicKey(path), 'ERR_KEY');
  }
});

load('refuses a .pub file as a signing key, and a missing file, with ERR_KEY', async ({ dir }) => {
  const out = join(dir, 'release');
  await generateKeyFiles(out);
  await assertCodeAsync(() => loadSigningKey(`${out}.pub`), 'ERR_KEY');
  await assertCodeAsync(() => loadSigningKey(join(dir, 'missing.key')), 'ERR_KEY');
  await assertCodeAsync(() => loadPublicKey(join(dir, 'missing.pub')), 'ERR_KEY');
});

load.run();

const opensslVersion = spawnSync('openssl', ['version'], { encoding: 'utf8' });
const opensslMissing = opensslVersion.error
  ? `openssl not found (${opensslVersion.error.message})`
  : opensslVersion.status !== 0
    ? `"openssl version" exited ${opensslVersion.status}`
    : undefined;

if (opensslMissing) {
  console.log(`SKIP: openssl interoperability (keys.test.ts): ${opensslMissing}`);
} else {
  const openssl = withTempDir('signs DSSE PAE bytes that openssl verifies');

  const verifyWithOpenssl = (dir: string, pem: string, data: string, sig: string) =>
    spawnSync('openssl', ['pkeyutl', '-verify', '-pubin', '-inkey', pem, '-rawin', '-in', data, '-sigfile', sig], { cwd: dir, encoding: 'utf8' });

  openssl('openssl accepts the signature over PAE and refuses it after one byte flips', async ({ dir }) => {
    const out = join(dir, 'release');
    await generateKeyFiles(out);
    const key = await loadSigningKey(`${out}.key`);
    const payload = Buffer.from(JSON.stringify({ type: 'ferry/channel', sequence: 7 }));
    const env = signEnvelope(PAYLOAD_TYPES.channel, payload, [key]);
    assert.is(env.signatures.length, 1);
    assert.is(env.signatures[0]!.keyid, key.keyid);
    const message = pae(PAYLOAD_TYPES.channel, payload);
    assert.is(Buffer.from(message).toString('latin1'), `DSSEv1 ${PAYLOAD_TYPES.channel.length} ${PAYLOAD_TYPES.channel} ${payload.length} ${payload.toString()}`);
    const sig = Buffer.from(env.signatures[0]!.sig, 'base64');
    assert.is(sig.length, 64);
    await writeFile(join(dir, 'pae.bin'), message);
    await writeFile(join(dir, 'sig.bin'), sig);

    const good = verifyWithOpenssl(dir, `${out}.pem`, 'pae.bin', 'sig.bin');
    assert.is(good.status, 0, `openssl refused a good signature: ${good.stdout}${good.stderr}`);
    assert.match(good.stdout, /Signature Verified Successfully/);

    const flippedMessage = Buffer.from(message);
    flippedMessage[flippedMessage.length - 3] = flippedMessage[flippedMessage.length - 3]! ^ 0x01;
    await writeFile(join(dir, 'pae-flipped.bin'), flippedMessage);
    const badMessage = verifyWithOpenssl(dir, `${out}.pem`, 'pae-flipped.bin', 'sig.bin');
    assert.is.not(badMessage.status, 0, 'openssl accepted a flipped payload byte');
    assert.is.not(badMessage.status, null);

    const flippedSig = Buffer.from(sig);
    flippedSig[10] = flippedSig[10]! ^ 0x01;
    await writeFile(join(dir, 'sig-flipped.bin'), flippedSig);
    const badSig = verifyWithOpenssl(dir, `${out}.pem`, 'pae.bin', 'sig-flipped.bin');
    assert.is.not(badSig.status, 0, 'openssl accepted a flipped signature byte');
    assert.is.not(badSig.status, null);
  });

  openssl.run();
}
