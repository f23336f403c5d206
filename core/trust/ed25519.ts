// ed25519: keys made by tweetnacl, signatures made and checked by node:crypto (see sign, verify),
// with the checks both leave to their caller (SECURITY.md row 13): a signature whose scalar S is
// not reduced below the group order L is a second valid encoding of the same signature
// (malleable), a small-order public key such as all zeros lets forged signatures verify for many
// messages, and a key whose y is not reduced below p is a second encoding of another key.

import type naclType from 'tweetnacl';
import { createPrivateKey, createPublicKey, sign as cryptoSign, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { createRequire } from 'node:module';

/** Sizes fixed by RFC 8032 (tweetnacl's sign.publicKeyLength, secretKeyLength, signatureLength). */
const PUBLIC_KEY_BYTES = 32;
const SECRET_KEY_BYTES = 64;
const SIGNATURE_BYTES = 64;

/**
 * tweetnacl, loaded on first use (synchronously: it is CommonJS). Only key generation and the
 * fallbacks below need it, and parsing its 60 KB costs every `ferry` start-up that never does.
 */
let naclLoaded: typeof naclType | undefined;
function nacl(): typeof naclType {
  return (naclLoaded ??= createRequire(import.meta.url)('tweetnacl') as typeof naclType);
}

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
  if (publicKey.length !== PUBLIC_KEY_BYTES) return true;
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
  return nacl().sign.keyPair();
}

/**
 * Ed25519 signatures are deterministic (RFC 8032), so node:crypto's are byte for byte tweetnacl's
 * (test/core/ed25519-differential.test.ts), made in microseconds instead of milliseconds: every
 * device report is signed. tweetnacl signs where OpenSSL cannot.
 */
export function sign(message: Uint8Array, secretKey: Uint8Array): Uint8Array {
  if (secretKey.length !== SECRET_KEY_BYTES) return nacl().sign.detached(message, secretKey);
  try {
    const d = Buffer.from(secretKey.subarray(0, 32)).toString('base64url');
    const x = Buffer.from(secretKey.subarray(32)).toString('base64url');
    return new Uint8Array(cryptoSign(null, message, createPrivateKey({ key: { kty: 'OKP', crv: 'Ed25519', d, x }, format: 'jwk' })));
  } catch {
    return nacl().sign.detached(message, secretKey);
  }
}

/** True only for a canonical signature by a strong key; never throws on malformed input. */
export function verify(message: Uint8Array, signature: Uint8Array, publicKey: Uint8Array): boolean {
  if (signature.length !== SIGNATURE_BYTES) return false;
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
    return cryptoVerify(null, message, keyObjectOf(publicKey), signature);
  } catch {
    return nacl().sign.detached.verify(message, signature, publicKey);
  }
}

/** Recently used keys as node:crypto objects: a device checks the same few keys again and again. */
const keyObjects = new Map<string, KeyObject>();
const KEY_OBJECTS_KEPT = 256;

/** The raw key as a node:crypto KeyObject (from JWK: several times cheaper to decode than SPKI DER). */
function keyObjectOf(publicKey: Uint8Array): KeyObject {
  const x = Buffer.from(publicKey).toString('base64url');
  let key = keyObjects.get(x);
  if (!key) {
    key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x }, format: 'jwk' });
    if (keyObjects.size >= KEY_OBJECTS_KEPT) keyObjects.delete(keyObjects.keys().next().value!);
    keyObjects.set(x, key);
  }
  return key;
}
const P = (1n << 255n) - 19n;

/** The key's y coordinate (sign bit cleared) is below p: one encoding per point. */
function pointIsCanonical(publicKey: Uint8Array): boolean {
  let y = 0n;
  for (let i = 31; i >= 0; i--) y = (y << 8n) | BigInt(i === 31 ? publicKey[i]! & 0x7f : publicKey[i]!);
  return y < P;
}

export const PUBLIC_KEY_LENGTH = PUBLIC_KEY_BYTES;
export const SECRET_KEY_LENGTH = SECRET_KEY_BYTES;
