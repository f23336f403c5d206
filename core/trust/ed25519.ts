// ed25519 through tweetnacl, with the two checks tweetnacl leaves to its caller (SECURITY.md
// row 13): a signature whose scalar S is not reduced below the group order L is a second valid
// encoding of the same signature (malleable), and a small-order public key such as all zeros
// lets forged signatures verify for many messages.

import nacl from 'tweetnacl';

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
  return nacl.sign.detached.verify(message, signature, publicKey);
}

export const PUBLIC_KEY_LENGTH = nacl.sign.publicKeyLength;
export const SECRET_KEY_LENGTH = nacl.sign.secretKeyLength;
