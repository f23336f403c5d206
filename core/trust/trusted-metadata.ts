// Reading signed metadata from an untrusted Source, in the order TUF's client workflow uses:
// root chain first (so the newest keys are known), then the channel pointer (signed by the release
// role, unexpired), then the manifest it pins by hash, then artifacts by their signed size and
// hashes. Used alike by `ferry verify`, by bundles and by the device.
// Bytes that are no signed document at all (a captive portal's or a proxy's HTML page served with
// 200) are refused as what they are, ERR_JSON / ERR_SCHEMA naming the file and the source, before
// any signature is judged: they say nothing about the root chain or the keys.

import { FerryError } from '../errors.ts';
import { PAYLOAD_TYPES, parseEnvelope, type Envelope } from './dsse.ts';
import { printable } from '../io/printable.ts';
import { digestFile, expectHash, sha256 } from '../io/hash.ts';
import {
  CHANNEL_MAX_BYTES,
  MANIFEST_MAX_BYTES,
  channelPath,
  manifestPath,
  parseChannelPayload,
  manifestInfo,
  parseSignedManifest,
  resolveTarget,
  type ArtifactRef,
  type Channel,
  type ChannelDoc,
  type FileRef,
  type ManifestDoc,
  type SignedManifest,
  type TargetKey,
  type TargetRelease,
} from './metadata.ts';
import { ROOT_MAX_BYTES, verifyRole, walkRootChain, type RootDoc } from './root.ts';
import { verifyManifestEnvelope } from './manifest-envelope.ts';
import type { Source } from '../ports/source.ts';

/** True when `bytes` start, after white space, with "<": markup (HTML, XML), never JSON. */
function looksLikeMarkup(bytes: Uint8Array): boolean {
  for (const b of bytes) {
    if (b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d || b === 0xef || b === 0xbb || b === 0xbf) continue; // white space, a UTF-8 BOM
    return b === 0x3c;
  }
  return false;
}

/**
 * The DSSE envelope in `bytes` read from `path` of `source`; when they are not one, the parse
 * error's code (ERR_JSON, ERR_SCHEMA) with a message that says which file from which source is
 * not a `kind` document, and whether it looks like a web page.
 */
export function envelopeFrom(bytes: Uint8Array, maxBytes: number, path: string, source: Source, kind: string): Envelope {
  try {
    return parseEnvelope(bytes, maxBytes, path);
  } catch (err) {
    if (!(err instanceof FerryError) || (err.code !== 'ERR_JSON' && err.code !== 'ERR_SCHEMA')) throw err;
    const hint = looksLikeMarkup(bytes) ? ' (an HTML page: a captive portal or a login page?)' : '';
    throw new FerryError(err.code, `${path} from ${printable(source.name)} is not a ${kind} document${hint}: ${err.message}`, { cause: err });
  }
}

/** Walks the source's root/<N>.json from `trusted` to the newest root it offers. */
export async function updateRoot(source: Source, trusted: RootDoc): Promise<RootDoc> {
  return (await updateRootWithBytes(source, trusted)).root;
}

/**
 * As updateRoot, also returning the verified bytes of the newest root (null if none was newer)
 * and of every root walked after `trusted`, in order (`chain`: what a device keeps for its LAN peers).
 */
export async function updateRootWithBytes(source: Source, trusted: RootDoc): Promise<{ root: RootDoc; bytes: Uint8Array | null; chain: Uint8Array[] }> {
  const seen = new Map<number, Uint8Array>();
  const root = await walkRootChain(trusted, async (n) => {
    const path = `root/${n}.json`;
    const bytes = await source.read(path, ROOT_MAX_BYTES);
    if (!bytes) return undefined;
    // Not a document at all is the source's failure, not a broken chain (walkRootChain would call
    // any failure ERR_ROOT_CHAIN).
    envelopeFrom(bytes, ROOT_MAX_BYTES, path, source, 'root');
    seen.set(n, bytes);
    return bytes;
  });
  const chain = Array.from({ length: root.version - trusted.version }, (_, i) => seen.get(trusted.version + i + 1)!);
  return { root, bytes: seen.get(root.version) ?? null, chain };
}

export interface VerifiedChannel {
  doc: ChannelDoc;
  bytes: Uint8Array;
}

/**
 * Reads and verifies channels/<channel>.json. Returns undefined when the source has none.
 * `now` judges expiry; pass null to skip it (reports that list expiry separately).
 */
export async function readChannel(source: Source, root: RootDoc, channel: Channel, now: Date | null): Promise<VerifiedChannel | undefined> {
  const path = channelPath(channel);
  const bytes = await source.read(path, CHANNEL_MAX_BYTES);
  if (!bytes) return undefined;
  const payload = verifyRole(envelopeFrom(bytes, CHANNEL_MAX_BYTES, path, source, 'channel pointer'), PAYLOAD_TYPES.channel, root, 'release', path);
  const doc = parseChannelPayload(payload);
  if (doc.app !== root.app) throw new FerryError('ERR_WRONG_TARGET', `${path} is for app "${doc.app}", not "${root.app}"`);
  if (doc.channel !== channel) throw new FerryError('ERR_SCHEMA', `${path} names channel "${doc.channel}"`);
  if (now && Date.parse(doc.expires) <= now.getTime()) throw new FerryError('ERR_EXPIRED', `${path} expired at ${doc.expires}`);
  return { doc, bytes };
}

export interface VerifiedManifest {
  doc: ManifestDoc;
  bytes: Uint8Array;
  /** The separate file lists read for it, by target (each matched its pin). */
  lists: Map<TargetKey, Uint8Array>;
}

/** A verified manifest whose separate file lists are not read yet. */
export interface VerifiedSignedManifest {
  signed: SignedManifest;
  bytes: Uint8Array;
}

/**
 * Reads and verifies a release manifest and the file lists it pins. With `pin` (from a channel
 * pointer) the manifest's bytes must have the pinned size and hash first, so a mirror cannot mix a
 * manifest from elsewhere in. `only`: resolve that target alone (the others are left out of
 * `doc`, and their lists are not read); else every target.
 */
export async function readManifest(source: Source, root: RootDoc, version: string, pin: FileRef | null, only?: TargetKey): Promise<VerifiedManifest | undefined> {
  const m = await readSignedManifest(source, root, version, pin);
  if (!m) return undefined;
  const targets: Record<TargetKey, TargetRelease> = {};
  const lists = new Map<TargetKey, Uint8Array>();
  for (const [key, t] of Object.entries(m.signed.targets)) {
    if (only !== undefined && key !== only) continue;
    const bytes = t.kind === 'list' ? await readFileList(source, t.fileList) : undefined;
    targets[key] = resolveTarget(t, bytes);
    if (bytes) lists.set(key, bytes);
  }
  return { doc: { ...manifestInfo(m.signed), targets }, bytes: m.bytes, lists };
}

/** Reads and verifies a manifest as readManifest does, leaving its separate file lists unread. */
export async function readSignedManifest(source: Source, root: RootDoc, version: string, pin: FileRef | null): Promise<VerifiedSignedManifest | undefined> {
  const bytes = await source.read(manifestPath(version), pin ? pin.size : MANIFEST_MAX_BYTES);
  return bytes ? verifyManifest(bytes, root, version, pin) : undefined;
}

/**
 * A separate file list from `source`, read up to its pinned size (the pin bounds the read; a
 * longer answer is cut there and then fails the size check). Not there: ERR_NOT_FOUND.
 */
export async function readFileList(source: Source, pin: FileRef): Promise<Uint8Array> {
  const bytes = await source.read(pin.path, pin.size).catch((err) => {
    // Longer than pinned is the pin's size check failing, whichever source noticed it first.
    if (err instanceof FerryError && err.code === 'ERR_TOO_LARGE') throw new FerryError('ERR_SIZE', `${pin.path} from ${printable(source.name)} is over the ${pin.size} bytes the manifest pins`, { cause: err });
    throw err;
  });
  if (!bytes) throw new FerryError('ERR_NOT_FOUND', `${source.name} has no ${pin.path} (the file list the manifest pins)`);
  return bytes;
}

/** Verifies manifest bytes as readManifest does, wherever they came from (a device's own copy). */
export function verifyManifest(bytes: Uint8Array, root: RootDoc, version: string, pin: FileRef | null): VerifiedSignedManifest {
  const path = manifestPath(version);
  if (pin) {
    if (bytes.length !== pin.size) throw new FerryError('ERR_SIZE', `${path} is ${bytes.length} bytes, the channel pins ${pin.size}`);
    expectHash(sha256(bytes), pin.sha256, path);
  }
  // The signature over the payload as sent first, then (a compressed one) decoded under its cap.
  const signed = parseSignedManifest(verifyManifestEnvelope(parseEnvelope(bytes, MANIFEST_MAX_BYTES, path), root, path));
  if (signed.app !== root.app) throw new FerryError('ERR_WRONG_TARGET', `${path} is for app "${signed.app}", not "${root.app}"`);
  if (signed.version !== version) throw new FerryError('ERR_SCHEMA', `${path} describes version ${signed.version}`);
  return { signed, bytes };
}

/** Checks a local copy of an artifact against its signed size, sha256 and chunk hashes. */
export async function verifyArtifactFile(file: string, ref: ArtifactRef): Promise<void> {
  const got = await digestFile(file, ref.chunkSize);
  if (got.size !== ref.size) throw new FerryError('ERR_SIZE', `${ref.path} is ${got.size} bytes, signed ${ref.size}`);
  expectHash(got.sha256, ref.sha256, ref.path);
  // Equal whole-file hashes imply equal chunk hashes only if the manifest's chunk list is honest.
  if (got.chunks.length !== ref.chunks.length || got.chunks.some((c, i) => c !== ref.chunks[i])) {
    throw new FerryError('ERR_HASH_MISMATCH', `${ref.path}: chunk hashes differ from the signed list`);
  }
}
