// The publisher's side of a repository folder: creating it with its first root, rotating roots,
// and reading back its own (verified) state. A repository is plain static files (ARCHITECTURE.md "Repository layout").

import { mkdir, readdir, readFile } from 'node:fs/promises';
import { resignReleaseMetadata } from './resign.ts';
import { join } from 'node:path';
import { FerryError, fromFsError } from '../errors.ts';
import { encodeEnvelope } from '../trust/dsse.ts';
import { writeFileAtomic } from '../io/durable.ts';
import { createDirSource } from '../ports/dir-source.ts';
import type { Source } from '../ports/source.ts';
import { buildRoot, roleKeys, signRoot, verifyRootRotation, verifyTrustedRoot, type RootDoc } from '../trust/root.ts';
import type { PublicKey, SigningKey } from '../trust/keys.ts';

export async function readRepoRoot(repo: string): Promise<{ root: RootDoc; bytes: Buffer }> {
  let bytes: Buffer;
  try {
    bytes = await readFile(join(repo, 'root.json'));
  } catch (err) {
    throw fromFsError(err, `reading ${join(repo, 'root.json')} (is ${repo} a ferry repository? see \`ferry repo init\`)`);
  }
  return { root: verifyTrustedRoot(bytes, `${repo}/root.json`), bytes };
}

export function repoSource(repo: string): Source {
  return createDirSource(repo, `dir:${repo}`);
}

function checkSigners(signers: SigningKey[], root: RootDoc, role: 'root' | 'release', what: string): SigningKey[] {
  const allowed = new Set(root.roles[role].keyids);
  const usable = signers.filter((k) => allowed.has(k.keyid));
  const distinct = new Set(usable.map((k) => k.keyid));
  if (distinct.size < root.roles[role].threshold) {
    throw new FerryError('ERR_THRESHOLD', `${what}: ${distinct.size} of the given keys are ${role} keys of root ${root.version}; ${root.roles[role].threshold} needed`);
  }
  return usable;
}

/** Creates `repo` with root 1, signed by the root keys given. Refuses to overwrite a repository. */
export async function initRepository(input: {
  repo: string;
  app: string;
  rootKeys: SigningKey[];
  rootThreshold: number;
  releaseKeys: PublicKey[];
  releaseThreshold: number;
  now: Date;
}): Promise<RootDoc> {
  const existing = await readFile(join(input.repo, 'root.json')).catch(() => undefined);
  if (existing) throw new FerryError('ERR_USAGE', `${input.repo} already holds a root.json; use \`ferry repo rotate\` to change keys`);
  if (input.rootKeys.length === 0 || input.releaseKeys.length === 0) throw new FerryError('ERR_USAGE', 'a repository needs at least one root key and one release key');
  const root = buildRoot({ app: input.app, version: 1, created: input.now, rootKeys: input.rootKeys, rootThreshold: input.rootThreshold, releaseKeys: input.releaseKeys, releaseThreshold: input.releaseThreshold });
  const bytes = encodeEnvelope(signRoot(root, checkSigners(input.rootKeys, root, 'root', 'repo init')));
  verifyTrustedRoot(bytes);
  try {
    await mkdir(join(input.repo, 'root'), { recursive: true });
    await mkdir(join(input.repo, 'channels'), { recursive: true });
    await mkdir(join(input.repo, 'releases'), { recursive: true });
  } catch (err) {
    throw fromFsError(err, `creating ${input.repo}`);
  }
  await writeFileAtomic(join(input.repo, 'root', '1.json'), bytes);
  await writeFileAtomic(join(input.repo, 'root.json'), bytes);
  return root;
}

export interface RotateInput {
  repo: string;
  /** Private keys to sign with: enough old root keys AND new root keys to meet both thresholds. */
  signers: SigningKey[];
  /** New root key set (default: the old one minus `revoke`). */
  rootKeys?: PublicKey[];
  rootThreshold?: number;
  /** New release key set (default: the old one minus `revoke`). */
  releaseKeys?: PublicKey[];
  releaseThreshold?: number;
  /** Key ids removed from every role. */
  revoke?: string[];
  /**
   * Private keys of the NEW release role. Required when the release keys change and the
   * repository already has releases: its manifests and channel pointers are re-signed with them.
   */
  releaseSigners?: SigningKey[];
  /** Lifetime of the re-signed channel pointers, in seconds (default 30 days). */
  expiresIn?: number;
  now: Date;
}

/** Writes root N+1 and makes it root.json. Devices walk root/<N>.json to reach it. */
export async function rotateRoot(input: RotateInput): Promise<{ previous: RootDoc; root: RootDoc; releaseKeysChanged: boolean; resigned: number }> {
  const { root: previous } = await readRepoRoot(input.repo);
  const revoked = new Set(input.revoke ?? []);
  const keep = (keys: PublicKey[]) => keys.filter((k) => !revoked.has(k.keyid));
  const rootKeys = keep(input.rootKeys ?? roleKeys(previous, 'root'));
  const releaseKeys = keep(input.releaseKeys ?? roleKeys(previous, 'release'));
  const root = buildRoot({
    app: previous.app,
    version: previous.version + 1,
    created: input.now,
    rootKeys,
    rootThreshold: input.rootThreshold ?? Math.min(previous.roles.root.threshold, rootKeys.length),
    releaseKeys,
    releaseThreshold: input.releaseThreshold ?? Math.min(previous.roles.release.threshold, releaseKeys.length),
  });
  checkSigners(input.signers, previous, 'root', `signing root ${root.version} with root ${previous.version}'s keys`);
  checkSigners(input.signers, root, 'root', `signing root ${root.version} with its own keys`);
  const allowed = new Set([...previous.roles.root.keyids, ...root.roles.root.keyids]);
  const signers = [...new Map(input.signers.filter((k) => allowed.has(k.keyid)).map((k) => [k.keyid, k])).values()];
  const bytes = encodeEnvelope(signRoot(root, signers));
  verifyRootRotation(previous, bytes, `root ${root.version}`);
  // Checked before anything is written: a rotation that would strand the repository's metadata
  // under keys the new root no longer trusts is refused whole.
  const ids = (r: RootDoc) => [...r.roles.release.keyids].sort().join(',') + `/${r.roles.release.threshold}`;
  const releaseKeysChanged = ids(previous) !== ids(root);
  const hasReleases = (await readdir(join(input.repo, 'channels')).catch(() => [] as string[])).length > 0;
  let releaseSigners: SigningKey[] = [];
  if (releaseKeysChanged && hasReleases) {
    releaseSigners = checkSigners(input.releaseSigners ?? [], root, 'release', 're-signing the repository\'s manifests and channel pointers (--release-signing-key)');
  }
  await writeFileAtomic(join(input.repo, 'root', `${root.version}.json`), bytes);
  await writeFileAtomic(join(input.repo, 'root.json'), bytes);
  const resigned = releaseSigners.length > 0 ? await resignReleaseMetadata(input.repo, previous, releaseSigners, input.now, input.expiresIn ?? 30 * 86400) : 0;
  return { previous, root, releaseKeysChanged, resigned };
}
