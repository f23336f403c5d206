// DSSE envelopes (github.com/secure-systems-lab/dsse): the signature covers the exact payload
// bytes behind a pre-authentication encoding, so verification never re-serialises JSON and any
// ed25519 tool can check a signature over PAE(payloadType, payload).

import { FerryError } from '../errors.ts';
import { sign, verify } from './ed25519.ts';
import type { PublicKey, SigningKey } from './keys.ts';
import { parseStrictJson, type Json } from '../io/strict-json.ts';

export interface Envelope {
  payloadType: string;
  payload: string; // base64 of the payload bytes
  signatures: { keyid: string; sig: string }[];
}

export const PAYLOAD_TYPES = {
  root: 'application/vnd.ferry.root+json',
  channel: 'application/vnd.ferry.channel+json',
  manifest: 'application/vnd.ferry.manifest+json',
  /**
   * A manifest whose payload is brotli-compressed JSON (core/trust/manifest-envelope.ts): what the
   * publisher signs for a manifest with separate file lists. The signature covers the compressed
   * bytes, so it is checked before anything is decompressed.
   */
  manifestBrotli: 'application/vnd.ferry.manifest+json+br',
  /** A device's signed report (core/fleet/report.ts), signed by the device's own key. */
  report: 'application/vnd.ferry.report+json',
} as const;

/** PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body */
export function pae(payloadType: string, payload: Uint8Array): Uint8Array {
  const type = Buffer.from(payloadType, 'utf8');
  return Buffer.concat([Buffer.from(`DSSEv1 ${type.length} `), type, Buffer.from(` ${payload.length} `), payload]);
}

export function signEnvelope(payloadType: string, payload: Uint8Array, keys: SigningKey[]): Envelope {
  const message = pae(payloadType, payload);
  return {
    payloadType,
    payload: Buffer.from(payload).toString('base64'),
    signatures: keys.map((k) => ({ keyid: k.keyid, sig: Buffer.from(sign(message, k.secretKey)).toString('base64') })),
  };
}

export function encodeEnvelope(envelope: Envelope): Buffer {
  return Buffer.from(JSON.stringify(envelope, null, 2) + '\n');
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

function strictBase64(value: unknown, what: string): Buffer {
  // Buffer.from(…, 'base64') skips junk characters; refusing them keeps one encoding per payload.
  if (typeof value !== 'string' || value.length % 4 !== 0 || !BASE64.test(value)) {
    throw new FerryError('ERR_SCHEMA', `${what} is not canonical base64`);
  }
  const bytes = Buffer.from(value, 'base64');
  // Non-zero padding bits decode to the same bytes: only the canonical spelling is accepted.
  if (bytes.toString('base64') !== value) throw new FerryError('ERR_SCHEMA', `${what} is not canonical base64`);
  return bytes;
}

/** Parses an envelope (strict JSON, capped); checks its shape, not its signatures. */
export function parseEnvelope(bytes: Uint8Array, maxBytes: number, what: string): Envelope {
  const doc = parseStrictJson(bytes, maxBytes, what) as Record<string, Json>;
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new FerryError('ERR_SCHEMA', `${what} is not a DSSE envelope`);
  const { payloadType, payload, signatures } = doc;
  if (typeof payloadType !== 'string' || typeof payload !== 'string' || !Array.isArray(signatures)) {
    throw new FerryError('ERR_SCHEMA', `${what} is not a DSSE envelope`);
  }
  strictBase64(payload, `${what} payload`);
  const sigs = signatures.map((s, i) => {
    const o = s as Record<string, Json> | null;
    if (typeof o !== 'object' || o === null || typeof o.keyid !== 'string' || typeof o.sig !== 'string') {
      throw new FerryError('ERR_SCHEMA', `${what} signature ${i} is malformed`);
    }
    return { keyid: o.keyid, sig: o.sig };
  });
  return { payloadType, payload, signatures: sigs };
}

export interface ThresholdResult {
  payload: Buffer;
  signedBy: string[];
}

/**
 * Counts valid signatures over the envelope by keys in `trusted`, each key id once however often
 * it signs (SECURITY.md row 2), and requires `threshold` of them. Signatures by keys outside
 * `trusted` are ignored: they may belong to another role or an older root.
 */
export function verifyThreshold(envelope: Envelope, expectedType: string | readonly string[], trusted: PublicKey[], threshold: number, what: string): ThresholdResult {
  // Several accepted types (a manifest: plain or compressed JSON); any other is refused unsigned.
  const expected: readonly string[] = typeof expectedType === 'string' ? [expectedType] : expectedType;
  if (!expected.includes(envelope.payloadType)) {
    throw new FerryError('ERR_SCHEMA', `${what} has payload type ${envelope.payloadType}, expected ${expected.join(' or ')}`);
  }
  if (!Number.isSafeInteger(threshold) || threshold < 1) throw new FerryError('ERR_SCHEMA', `${what}: threshold must be at least 1`);
  const payload = strictBase64(envelope.payload, `${what} payload`);
  const message = pae(envelope.payloadType, payload);
  const byId = new Map(trusted.map((k) => [k.keyid, k]));
  const valid = new Set<string>();
  // Only the first signature naming each trusted key id is checked: an envelope under its size cap
  // can carry thousands of signatures naming one trusted key, each a slow ed25519 check (a hang).
  const tried = new Set<string>();
  let badSignature = false;
  for (const s of envelope.signatures) {
    const key = byId.get(s.keyid);
    if (!key || tried.has(s.keyid)) continue;
    tried.add(s.keyid);
    let sig: Buffer;
    try {
      sig = strictBase64(s.sig, `${what} signature`);
    } catch {
      badSignature = true;
      continue;
    }
    if (verify(message, sig, key.publicKey)) valid.add(s.keyid);
    else badSignature = true;
  }
  if (valid.size >= threshold) return { payload, signedBy: [...valid] };
  if (badSignature) throw new FerryError('ERR_SIGNATURE', `${what}: a signature does not verify`);
  if (valid.size > 0) throw new FerryError('ERR_THRESHOLD', `${what}: signed by ${valid.size} distinct trusted key(s), ${threshold} required`);
  throw new FerryError('ERR_UNKNOWN_KEY', `${what}: not signed by any key trusted for this role`);
}
