// ed25519: keys and signatures made by tweetnacl, signatures checked by node:crypto (see verify),
// with the checks both leave to their caller (SECURITY.md row 13): a signature whose scalar S is
// not reduced below the group order L is a second valid encoding of the same signature
// (malleable), a small-order public key such as all zeros lets forged signatures verify for many
// messages, and a key whose y is not reduced below p is a second encoding of another key.

import nacl from 'tweetnacl';
import { createPublicKey, verify as cryptoVerify } from 'node:crypto';

const L = (1n << 252n) + 27742317777372353535851937790883648493n;

/** Small-order points (and their non-canonical encodings), with the sign bit cleared. */
const SMALL_ORDER = new Set([
  '0000000000000000000000000000000000000000000000000000000000000000',
  '0100000000000000000000000000000000000000000000000000000000000000',
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05',
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
]);

export function isWeakPublicKey(publicKey: Uint8Array): boolean {
  if (publicKey.length !== nacl.sign.publicKeyLength) return true;
  const cleared = Uint8Array.from(publicKey);
  cleared[31] = cleared[31]! & 0x7f;
  return SMALL_ORDER.has(Buffer.from(cleared).toString('hex'));
}

function scalarIsCanonical(signature: Uint8Array): boolean {
  let s = 0n;
  for (let i = 63; i >= 32; i--) s = (s << 8n) | BigInt(signature[i]!);
  return s < L;
}

export function generateKeyPair(): { publicKey: Uint8Array; secretKey: Uint8Array } {
  return nacl.sign.keyPair();
}

export function sign(message: Uint8Array, secretKey: Uint8Array): Uint8Array {
  return nacl.sign.detached(message, secretKey);
}

/** True only for a canonical signature by a strong key; never throws on malformed input. */
export function verify(message: Uint8Array, signature: Uint8Array, publicKey: Uint8Array): boolean {
  if (signature.length !== nacl.sign.signatureLength) return false;
  if (isWeakPublicKey(publicKey)) return false;
  if (!scalarIsCanonical(signature)) return false;
  if (!pointIsCanonical(publicKey)) return false;
  // Verification goes through OpenSSL (node:crypto), about 100x faster than tweetnacl's pure-JS
  // arithmetic (`ferry fleet` checks thousands of reports; every check for updates checks several
  // documents). With S reduced, A canonical and not of small order (checked above), both do the
  // same cofactorless check, [S]B = R + [H(R,A,M)]A compared as R's encoding, so they accept the
  // same signatures: test/core/ed25519-differential.test.ts compares them on valid, mutated and
  // edge-case inputs. A Node without ed25519 in its OpenSSL (createPublicKey throws) or a key
  // OpenSSL will not decode falls back to tweetnacl, which then decides.
  try {
    return cryptoVerify(null, message, createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, publicKey]), format: 'der', type: 'spki' }), signature);
  } catch {
    return nacl.sign.detached.verify(message, signature, publicKey);
  }
}

/** DER prefix of an ed25519 SubjectPublicKeyInfo (RFC 8410): the raw key follows it. */
export const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const P = (1n << 255n) - 19n;

/** The key's y coordinate (sign bit cleared) is below p: one encoding per point. */
function pointIsCanonical(publicKey: Uint8Array): boolean {
  let y = 0n;
  for (let i = 31; i >= 0; i--) y = (y << 8n) | BigInt(i === 31 ? publicKey[i]! & 0x7f : publicKey[i]!);
  return y < P;
}

export const PUBLIC_KEY_LENGTH = nacl.sign.publicKeyLength;
export const SECRET_KEY_LENGTH = nacl.sign.secretKeyLength;
