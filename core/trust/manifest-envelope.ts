// A release manifest's DSSE envelope, both ways (issue 14 item 5, "small manifest"): which payload
// type the publisher signs, and the one function every reader turns a manifest envelope into its
// JSON payload with (the device's verifyManifest, its kept copies, the publisher, resign, tests).
// A manifest in the separate-file-list shape is signed as brotli-compressed JSON
// (PAYLOAD_TYPES.manifestBrotli): base64 inside the envelope hides the repeats of the JSON (the
// same hashes in ops, list edit and pins) from the HTTP layer's compression, and compressing before
// base64 keeps them. An inline-list manifest (`ferry release --inline-file-list`, for devices from
// before separate lists) keeps the plain type and exactly the bytes it always had.
// The signature covers the compressed bytes as sent (PAE over type and payload), so it is checked
// before any byte is decompressed, and the output is capped at MANIFEST_MAX_BYTES
// (SECURITY.md row 9, row 13).

import { brotliCompressSync, brotliDecompressSync } from 'node:zlib';
import { FerryError } from '../errors.ts';
import { brotliBestOptions, brotliDecoder } from '../io/brotli.ts';
import { encodeEnvelope, parseEnvelope, PAYLOAD_TYPES, signEnvelope, type Envelope } from './dsse.ts';
import type { SigningKey } from './keys.ts';
import { MANIFEST_MAX_BYTES, manifestPayload, type ManifestDoc } from './metadata.ts';
import { verifyRole, type RootDoc } from './root.ts';

/** The payload types a release manifest may have: plain JSON, or brotli-compressed JSON. */
export const MANIFEST_PAYLOAD_TYPES: readonly string[] = [PAYLOAD_TYPES.manifest, PAYLOAD_TYPES.manifestBrotli];

/** True when `doc` has a separate file list: the shape devices from before it refuse anyway, so it may be compressed. */
export function isSeparateListShape(doc: ManifestDoc): boolean {
  return Object.values(doc.targets).some((t) => t.fileList !== undefined);
}

/** brotli of a manifest's JSON at `quality` (the publisher's compression level). */
export function compressManifestPayload(json: Uint8Array, quality?: number): Buffer {
  return brotliCompressSync(json, brotliBestOptions(json.length, quality));
}

/**
 * The JSON payload of a manifest envelope of `payloadType` whose `raw` (base64-decoded) payload
 * was verified, or is the device's own kept copy: plain as is, compressed decoded with its output
 * capped at MANIFEST_MAX_BYTES (past it ERR_TOO_LARGE; not a brotli stream ERR_SCHEMA). Any other
 * type is ERR_SCHEMA.
 */
export function manifestJson(payloadType: string, raw: Buffer, what: string): Buffer {
  if (payloadType === PAYLOAD_TYPES.manifest) return raw;
  if (payloadType !== PAYLOAD_TYPES.manifestBrotli) throw new FerryError('ERR_SCHEMA', `${what} has payload type ${payloadType}, not a manifest`);
  try {
    return brotliDecompressSync(raw, { ...brotliDecoder(), maxOutputLength: MANIFEST_MAX_BYTES });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') throw new FerryError('ERR_TOO_LARGE', `${what}: the compressed payload decodes to more than ${MANIFEST_MAX_BYTES} bytes`, { cause: err });
    throw new FerryError('ERR_SCHEMA', `${what}: the compressed payload is not a brotli stream (${(err as Error).message})`, { cause: err });
  }
}

/** The JSON payload of a manifest envelope signed by the root's release role (either manifest type). */
export function verifyManifestEnvelope(envelope: Envelope, root: RootDoc, what: string): Buffer {
  const raw = verifyRole(envelope, MANIFEST_PAYLOAD_TYPES, root, 'release', what);
  return manifestJson(envelope.payloadType, raw, what);
}

/** The JSON payload of manifest envelope bytes this device verified when it kept them (no signature check). */
export function keptManifestJson(bytes: Uint8Array, what: string): Buffer {
  const envelope = parseEnvelope(bytes, MANIFEST_MAX_BYTES, what);
  return manifestJson(envelope.payloadType, Buffer.from(envelope.payload, 'base64'), what);
}

/**
 * The envelope bytes of `doc` signed by `signers`: compressed at `quality` when it has a separate
 * file list, plain (today's exact bytes) when every list is inline.
 */
export function signManifest(doc: ManifestDoc, signers: SigningKey[], quality?: number): Buffer {
  const json = manifestPayload(doc);
  return isSeparateListShape(doc)
    ? encodeEnvelope(signEnvelope(PAYLOAD_TYPES.manifestBrotli, compressManifestPayload(json, quality), signers))
    : encodeEnvelope(signEnvelope(PAYLOAD_TYPES.manifest, json, signers));
}

/** Re-signs verified manifest envelope bytes with `signers`: the same payload type and payload bytes. */
export function resignManifestEnvelope(bytes: Uint8Array, signers: SigningKey[], what: string): Buffer {
  const envelope = parseEnvelope(bytes, MANIFEST_MAX_BYTES, what);
  return encodeEnvelope(signEnvelope(envelope.payloadType, Buffer.from(envelope.payload, 'base64'), signers));
}
