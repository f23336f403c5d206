// The trust root: which keys exist and which of them may sign for each role, with a threshold.
// Root keys sign root.json itself and delegate release keys (the release role), which sign
// channel pointers and manifests. A new root N+1 must be signed by a threshold of root N's root
// keys AND of its own (rotation), so neither a stolen old key nor a forged new root suffices.

import { FerryError } from '../errors.ts';
import { isWeakPublicKey } from './ed25519.ts';
import { PAYLOAD_TYPES, parseEnvelope, signEnvelope, verifyThreshold, type Envelope } from './dsse.ts';
import { keyIdOf, type PublicKey, type SigningKey } from './keys.ts';
import { arr, HEX64, int, NAME, obj, str, time } from '../io/schema.ts';
import { parseStrictJson } from '../io/strict-json.ts';

export const ROOT_MAX_BYTES = 512 * 1024;

export type RoleName = 'root' | 'release';

export interface RoleSpec {
  keyids: string[];
  threshold: number;
}

export interface RootDoc {
  type: 'ferry/root';
  app: string;
  version: number;
  created: string;
  keys: Record<string, { keytype: 'ed25519'; public: string }>;
  roles: Record<RoleName, RoleSpec>;
}

export function roleKeys(root: RootDoc, role: RoleName): PublicKey[] {
  return root.roles[role].keyids.map((keyid) => ({ keyid, publicKey: new Uint8Array(Buffer.from(root.keys[keyid]!.public, 'hex')) }));
}

export function buildRoot(input: { app: string; version: number; created: Date; rootKeys: PublicKey[]; rootThreshold: number; releaseKeys: PublicKey[]; releaseThreshold: number }): RootDoc {
  const keys: RootDoc['keys'] = {};
  for (const k of [...input.rootKeys, ...input.releaseKeys]) keys[k.keyid] = { keytype: 'ed25519', public: Buffer.from(k.publicKey).toString('hex') };
  const ids = (list: PublicKey[]) => [...new Set(list.map((k) => k.keyid))].sort();
  const doc: RootDoc = {
    type: 'ferry/root',
    app: input.app,
    version: input.version,
    created: input.created.toISOString(),
    keys,
    roles: {
      root: { keyids: ids(input.rootKeys), threshold: input.rootThreshold },
      release: { keyids: ids(input.releaseKeys), threshold: input.releaseThreshold },
    },
  };
  return parseRootPayload(Buffer.from(JSON.stringify(doc)));
}

export function signRoot(root: RootDoc, signers: SigningKey[]): Envelope {
  return signEnvelope(PAYLOAD_TYPES.root, Buffer.from(JSON.stringify(root)), signers);
}

/** Checks a root payload's shape and its internal consistency (ids match keys, thresholds reachable). */
export function parseRootPayload(payload: Uint8Array): RootDoc {
  const doc = obj(parseStrictJson(payload, ROOT_MAX_BYTES, 'root'), 'root');
  if (doc.type !== 'ferry/root') throw new FerryError('ERR_SCHEMA', 'root: type must be "ferry/root"');
  const keysIn = obj(doc.keys, 'root.keys');
  const keys: RootDoc['keys'] = {};
  for (const [keyid, k] of Object.entries(keysIn)) {
    const key = obj(k, `root.keys.${keyid}`);
    if (key.keytype !== 'ed25519') throw new FerryError('ERR_SCHEMA', `root.keys.${keyid}: keytype must be ed25519`);
    const pub = str(key.public, `root.keys.${keyid}.public`, HEX64);
    const raw = Buffer.from(pub, 'hex');
    // Key ids are derived, never asserted: a root cannot give one key two ids to count it twice.
    if (keyIdOf(raw) !== keyid) throw new FerryError('ERR_SCHEMA', `root.keys: key id ${keyid.slice(0, 12)}… is not the sha256 of its key`);
    if (isWeakPublicKey(raw)) throw new FerryError('ERR_KEY', `root.keys: ${keyid.slice(0, 12)}… is a weak (small-order) public key`);
    keys[keyid] = { keytype: 'ed25519', public: pub };
  }
  const rolesIn = obj(doc.roles, 'root.roles');
  const role = (name: RoleName): RoleSpec => {
    const r = obj(rolesIn[name], `root.roles.${name}`);
    const keyids = arr(r.keyids, `root.roles.${name}.keyids`).map((id, i) => str(id, `root.roles.${name}.keyids[${i}]`, HEX64));
    if (new Set(keyids).size !== keyids.length) throw new FerryError('ERR_SCHEMA', `root.roles.${name}.keyids lists a key twice`);
    for (const id of keyids) if (!keys[id]) throw new FerryError('ERR_SCHEMA', `root.roles.${name} names key ${id.slice(0, 12)}… that root.keys lacks`);
    const threshold = int(r.threshold, `root.roles.${name}.threshold`, 1);
    if (threshold > keyids.length) throw new FerryError('ERR_SCHEMA', `root.roles.${name}: threshold ${threshold} exceeds its ${keyids.length} key(s)`);
    return { keyids, threshold };
  };
  return {
    type: 'ferry/root',
    app: str(doc.app, 'root.app', NAME),
    version: int(doc.version, 'root.version', 1),
    created: time(doc.created, 'root.created'),
    keys,
    roles: { root: role('root'), release: role('release') },
  };
}

/** Verifies an envelope against a role of `root` and returns the verified payload bytes. */
export function verifyRole(envelope: Envelope, expectedType: string | readonly string[], root: RootDoc, role: RoleName, what: string): Buffer {
  return verifyThreshold(envelope, expectedType, roleKeys(root, role), root.roles[role].threshold, what).payload;
}

/** A pinned root is trusted as given, but must still be signed by its own root threshold. */
export function verifyTrustedRoot(bytes: Uint8Array, what = 'trusted root'): RootDoc {
  const envelope = parseEnvelope(bytes, ROOT_MAX_BYTES, what);
  const root = parseRootPayload(Buffer.from(envelope.payload, 'base64'));
  verifyRole(envelope, PAYLOAD_TYPES.root, root, 'root', what);
  return root;
}

/** Verifies root N+1 against root N: signed by both thresholds, next version, same app. */
export function verifyRootRotation(previous: RootDoc, bytes: Uint8Array, what: string): RootDoc {
  try {
    const envelope = parseEnvelope(bytes, ROOT_MAX_BYTES, what);
    verifyRole(envelope, PAYLOAD_TYPES.root, previous, 'root', `${what} (by root ${previous.version})`);
    const next = parseRootPayload(Buffer.from(envelope.payload, 'base64'));
    verifyRole(envelope, PAYLOAD_TYPES.root, next, 'root', `${what} (by itself)`);
    if (next.version !== previous.version + 1) throw new FerryError('ERR_ROOT_CHAIN', `${what} has version ${next.version}, expected ${previous.version + 1}`);
    if (next.app !== previous.app) throw new FerryError('ERR_ROOT_CHAIN', `${what} is for app "${next.app}", not "${previous.app}"`);
    return next;
  } catch (err) {
    if (err instanceof FerryError && err.code === 'ERR_ROOT_CHAIN') throw err;
    throw new FerryError('ERR_ROOT_CHAIN', `${what} does not chain to root ${previous.version}: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * Walks from a trusted root through every later root the source offers (root/<N>.json), each
 * checked against the one before. `readRoot(n)` returns undefined when version n does not exist.
 */
export async function walkRootChain(trusted: RootDoc, readRoot: (version: number) => Promise<Uint8Array | undefined>): Promise<RootDoc> {
  let current = trusted;
  // A bound on rotations per walk keeps a hostile source from feeding roots forever.
  for (let i = 0; i < 1024; i++) {
    const bytes = await readRoot(current.version + 1);
    if (!bytes) return current;
    current = verifyRootRotation(current, bytes, `root ${current.version + 1}`);
  }
  throw new FerryError('ERR_TOO_LARGE', 'more than 1024 root rotations offered');
}
