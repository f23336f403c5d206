// core/trust/ed25519.ts signs and verifies through node:crypto (OpenSSL) instead of tweetnacl: the
// signatures must be the same bytes, and the two must accept exactly the same signatures.
// Compared here on valid signatures, one-bit mutations of the signature, the message and the key,
// and edge cases (S not reduced, small-order and non-canonical keys, R not on the curve). The
// reference is tweetnacl behind the same pre-checks ferry always made (S < L, no small-order key).

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import nacl from 'tweetnacl';
import { generateKeyPair, isWeakPublicKey, sign, verify } from '../../core/trust/ed25519.ts';

const test = suite('ed25519 node:crypto vs tweetnacl');
const L = (1n << 252n) + 27742317777372353535851937790883648493n;

function sReduced(sig: Uint8Array): boolean {
  let s = 0n;
  for (let i = 63; i >= 32; i--) s = (s << 8n) | BigInt(sig[i]!);
  return s < L;
}

/** What ferry decided before: tweetnacl behind the S and small-order checks. */
function reference(message: Uint8Array, sig: Uint8Array, key: Uint8Array): boolean {
  if (sig.length !== 64 || isWeakPublicKey(key) || !sReduced(sig)) return false;
  return nacl.sign.detached.verify(message, sig, key);
}

function flip(bytes: Uint8Array, bit: number): Uint8Array {
  const out = Uint8Array.from(bytes);
  out[bit >> 3]! ^= 1 << (bit & 7);
  return out;
}

test('valid signatures and one-bit mutations get the same verdict from both', () => {
  let accepted = 0, compared = 0;
  for (let i = 0; i < 40; i++) {
    const { publicKey, secretKey } = generateKeyPair();
    const message = randomBytes(1 + (i * 37) % 300);
    const sig = sign(message, secretKey);
    assert.equal(Buffer.from(sig), Buffer.from(nacl.sign.detached(message, secretKey)), `case ${i}: node:crypto's signature is tweetnacl's`);
    const cases: [Uint8Array, Uint8Array, Uint8Array][] = [
      [message, sig, publicKey],
      [message, flip(sig, (i * 7) % 256), publicKey], // R
      [message, flip(sig, 256 + (i * 11) % 248), publicKey], // S (low bits: stays reduced)
      [flip(message, (i * 13) % (message.length * 8)), sig, publicKey],
      [message, sig, flip(publicKey, (i * 17) % 255)],
    ];
    for (const [m, s, k] of cases) {
      const ours = verify(m, s, k), ref = reference(m, s, k);
      assert.is(ours, ref, `case ${i}: node:crypto says ${ours}, tweetnacl ${ref}`);
      compared++;
      if (ours) accepted++;
    }
  }
  // Every unmutated signature verifies, and (with overwhelming probability) no mutation does.
  assert.is(accepted, 40);
  assert.is(compared, 200);
});

test('edge cases: S + L, small-order keys, a non-canonical key, garbage R, wrong lengths', () => {
  const { publicKey, secretKey } = generateKeyPair();
  const message = Buffer.from('edge');
  const sig = sign(message, secretKey);
  // S + L: the same signature's second encoding (malleability), refused.
  let s = 0n;
  for (let i = 63; i >= 32; i--) s = (s << 8n) | BigInt(sig[i]!);
  s += L;
  const malleable = Uint8Array.from(sig);
  for (let i = 32; i < 64; i++) { malleable[i] = Number(s & 0xffn); s >>= 8n; }
  if (s === 0n) assert.is(verify(message, malleable, publicKey), false, 'S + L refused');
  // The all-zero key and the identity accept forged signatures under plain tweetnacl.
  assert.is(verify(message, new Uint8Array(64), new Uint8Array(32)), false);
  const identity = new Uint8Array(32); identity[0] = 1;
  assert.is(verify(message, sig, identity), false);
  // y = p + 3 (a second spelling of y = 3, not of small order): refused before any curve arithmetic.
  const nonCanonical = Buffer.from('f0ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f', 'hex');
  assert.is(isWeakPublicKey(nonCanonical), false);
  assert.is(verify(message, sig, nonCanonical), false);
  // R bytes that are no point: both say no.
  const garbageR = Uint8Array.from(sig); garbageR.fill(0xff, 0, 31);
  assert.is(verify(message, garbageR, publicKey), reference(message, garbageR, publicKey));
  assert.is(verify(message, sig.subarray(0, 63), publicKey), false);
  assert.is(verify(message, sig, publicKey.subarray(0, 31)), false);
});

test.run();
