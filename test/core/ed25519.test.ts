// ed25519 with the checks tweetnacl leaves to its caller (SECURITY.md row 13): each test that
// refuses something also shows tweetnacl alone accepting it, so the check is shown to matter.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import nacl from 'tweetnacl';
import { generateKeyPair, isWeakPublicKey, PUBLIC_KEY_LENGTH, SECRET_KEY_LENGTH, sign, verify } from '../../core/trust/ed25519.ts';

const L = (1n << 252n) + 27742317777372353535851937790883648493n;
const message = new TextEncoder().encode('DSSEv1 4 test 5 hello');

function scalarOf(signature: Uint8Array): bigint {
  let s = 0n;
  for (let i = 63; i >= 32; i--) s = (s << 8n) | BigInt(signature[i]!);
  return s;
}

/** The same signature with S replaced by S + L, written back little-endian into bytes 32..63. */
function addOrderToScalar(signature: Uint8Array): Uint8Array {
  const out = Uint8Array.from(signature);
  let s = scalarOf(signature) + L;
  for (let i = 32; i < 64; i++) {
    out[i] = Number(s & 0xffn);
    s >>= 8n;
  }
  assert.is(s, 0n, 'S + L must still fit in 32 bytes');
  return out;
}

const roundTrip = suite('signs and verifies');

roundTrip('verifies its own signature over the exact message', () => {
  const { publicKey, secretKey } = generateKeyPair();
  assert.is(publicKey.length, PUBLIC_KEY_LENGTH);
  assert.is(secretKey.length, SECRET_KEY_LENGTH);
  const sig = sign(message, secretKey);
  assert.is(sig.length, 64);
  assert.is(verify(message, sig, publicKey), true);
});

roundTrip('refuses the signature over a message with one bit flipped', () => {
  const { publicKey, secretKey } = generateKeyPair();
  const sig = sign(message, secretKey);
  const changed = Uint8Array.from(message);
  changed[0] = changed[0]! ^ 0x01;
  assert.is(verify(changed, sig, publicKey), false);
});

roundTrip('refuses a signature with one bit of R flipped', () => {
  const { publicKey, secretKey } = generateKeyPair();
  const sig = Uint8Array.from(sign(message, secretKey));
  sig[5] = sig[5]! ^ 0x10;
  assert.is(verify(message, sig, publicKey), false);
});

roundTrip('refuses a signature checked against another key', () => {
  const a = generateKeyPair();
  const b = generateKeyPair();
  assert.is(verify(message, sign(message, a.secretKey), b.publicKey), false);
});

roundTrip.run();

const canonical = suite('refuses non-canonical signatures (S + L)');

canonical('refuses S + L, which tweetnacl alone accepts as a second valid signature', () => {
  const { publicKey, secretKey } = generateKeyPair();
  const sig = sign(message, secretKey);
  assert.ok(scalarOf(sig) < L, 'a fresh signature has a reduced scalar');
  const malleated = addOrderToScalar(sig);
  assert.not.equal(Array.from(malleated), Array.from(sig));
  assert.equal(Array.from(malleated.subarray(0, 32)), Array.from(sig.subarray(0, 32)), 'R is untouched');
  assert.is(scalarOf(malleated), scalarOf(sig) + L);

  assert.is(nacl.sign.detached.verify(message, malleated, publicKey), true, 'tweetnacl accepts S + L');
  assert.is(verify(message, malleated, publicKey), false, 'ferry refuses S + L');
  assert.is(verify(message, sig, publicKey), true, 'the original still verifies');
});

canonical('refuses S + L for many keys and messages, never accepting one', () => {
  for (let i = 0; i < 20; i++) {
    const { publicKey, secretKey } = generateKeyPair();
    const m = new TextEncoder().encode(`message ${i}`);
    const malleated = addOrderToScalar(sign(m, secretKey));
    assert.is(nacl.sign.detached.verify(m, malleated, publicKey), true);
    assert.is(verify(m, malleated, publicKey), false);
  }
});

canonical('refuses a scalar with the top bits set (S >= 2^253)', () => {
  const { publicKey, secretKey } = generateKeyPair();
  const sig = Uint8Array.from(sign(message, secretKey));
  sig[63] = sig[63]! | 0xe0;
  assert.is(verify(message, sig, publicKey), false);
});

canonical.run();

const weak = suite('refuses small-order public keys');

/** Finds a message for which tweetnacl accepts the forged signature (R = identity, S = 0). */
function forgeForWeakKey(publicKey: Uint8Array): { message: Uint8Array; signature: Uint8Array } | undefined {
  const signature = new Uint8Array(64);
  signature[0] = 1; // R = the identity point (y = 1), S = 0
  for (let i = 0; i < 256; i++) {
    const m = new TextEncoder().encode(`forged release ${i}`);
    if (nacl.sign.detached.verify(m, signature, publicKey)) return { message: m, signature };
  }
  return undefined;
}

weak('refuses the all-zero public key, under which tweetnacl accepts a forged signature', () => {
  const zero = new Uint8Array(32);
  assert.is(isWeakPublicKey(zero), true);
  const forged = forgeForWeakKey(zero);
  assert.ok(forged, 'tweetnacl accepts R = identity, S = 0 for some message under the all-zero key');
  assert.is(verify(forged!.message, forged!.signature, zero), false);
});

weak('refuses the identity key (y = 1), under which the forgery verifies for every message', () => {
  const identity = new Uint8Array(32);
  identity[0] = 1;
  const forged = forgeForWeakKey(identity);
  assert.ok(forged);
  assert.is(verify(forged!.message, forged!.signature, identity), false);
});

weak('treats every small-order encoding as weak, with or without the sign bit', () => {
  const hexes = [
    '0000000000000000000000000000000000000000000000000000000000000000',
    '0100000000000000000000000000000000000000000000000000000000000000',
    '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05',
    'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a',
    'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
    'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
    'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  ];
  for (const hex of hexes) {
    const key = new Uint8Array(Buffer.from(hex, 'hex'));
    assert.is(isWeakPublicKey(key), true, hex);
    const signed = Uint8Array.from(key);
    signed[31] = signed[31]! | 0x80;
    assert.is(isWeakPublicKey(signed), true, `${hex} with the sign bit set`);
  }
});

weak('does not treat a generated key as weak', () => {
  for (let i = 0; i < 10; i++) assert.is(isWeakPublicKey(generateKeyPair().publicKey), false);
});

weak.run();

const lengths = suite('refuses wrong lengths without throwing');

lengths('refuses a signature of 63 or 65 bytes', () => {
  const { publicKey, secretKey } = generateKeyPair();
  const sig = sign(message, secretKey);
  assert.is(verify(message, sig.subarray(0, 63), publicKey), false);
  assert.is(verify(message, Uint8Array.from([...sig, 0]), publicKey), false);
  assert.is(verify(message, new Uint8Array(0), publicKey), false);
});

lengths('refuses a public key of 31 or 33 bytes, where tweetnacl throws', () => {
  const { publicKey, secretKey } = generateKeyPair();
  const sig = sign(message, secretKey);
  const short = publicKey.subarray(0, 31);
  const long = Uint8Array.from([...publicKey, 0]);
  assert.throws(() => nacl.sign.detached.verify(message, sig, short), /bad public key size/);
  assert.is(verify(message, sig, short), false);
  assert.is(verify(message, sig, long), false);
  assert.is(isWeakPublicKey(short), true);
});

lengths.run();
