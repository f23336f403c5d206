// `ferry promote`: moves a version that a channel (typically beta) already serves onto another
// channel (typically stable) without rebuilding it. Devices follow channel pointers, and a
// manifest names no channel, so promotion is one new pointer for the target channel: it pins the
// very manifest bytes the source channel pins (same artifacts, same deltas, same signatures), its
// sequence grows by one and it gets a fresh expiry. Nothing else in the repository changes.
//
// Refused: a version the source channel does not name right now (it is what was tested there),
// a version not newer than what the target channel already names for that target (promotion
// never rolls a channel back; `ferry release` has no downgrade either), release keys that do
// not meet the root's threshold, and a pinned manifest or full artifact missing or altered.

import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import * as semver from '../semver.ts';
import { FerryError } from '../errors.ts';
import { writeNextPointer } from './channel-pointer.ts';
import { readChannel, readManifest } from '../trust/trusted-metadata.ts';
import { isChannel, type Channel, type ChannelDoc, type TargetKey } from '../trust/metadata.ts';
import type { SigningKey } from '../trust/keys.ts';
import { readRepoRoot, repoSource } from './repository.ts';
import { releaseSigners } from './publish.ts';

export interface PromoteInput {
  repo: string;
  version: string;
  from: Channel;
  to: Channel;
  keys: SigningKey[];
  /** The new pointer of `to` expires this many seconds after `now`. */
  expiresIn: number;
  now: Date;
}

export interface PromoteResult {
  /** The new pointer of `to`. */
  channel: ChannelDoc;
  /** The targets promoted (every target `from` names at `version`), and what `to` named before. */
  targets: { target: TargetKey; previous: string | null }[];
}

export async function promoteRelease(input: PromoteInput): Promise<PromoteResult> {
  const { repo, version, from, to, now } = input;
  if (semver.valid(version) !== version) throw new FerryError('ERR_VERSION', `"${version}" is not a semver version (e.g. 1.2.3)`);
  for (const c of [from, to]) if (!isChannel(c)) throw new FerryError('ERR_USAGE', `unknown channel "${c}"`);
  if (from === to) throw new FerryError('ERR_USAGE', `--from and --to are both ${from}`);
  const { root } = await readRepoRoot(repo);
  const signers = releaseSigners(root, input.keys);
  const source = repoSource(repo);

  // What was tested: the targets the source channel's verified pointer names at this version.
  const fromPointer = await readChannel(source, root, from, null);
  const promoted = Object.entries(fromPointer?.doc.targets ?? {}).filter(([, t]) => t.version === version);
  if (promoted.length === 0) {
    const names = [...new Set(Object.values(fromPointer?.doc.targets ?? {}).map((t) => t.version))];
    throw new FerryError('ERR_NOT_FOUND', `${version} is not on ${from} (${from} names ${names.length ? names.join(', ') : 'nothing'}); only a version a channel serves now can be promoted from it`);
  }

  const toPointer = await readChannel(source, root, to, null);
  const targets: ChannelDoc['targets'] = { ...toPointer?.doc.targets };
  const report: PromoteResult['targets'] = [];
  for (const [key, t] of promoted) {
    const previous = toPointer?.doc.targets[key]?.version ?? null;
    if (previous === version) throw new FerryError('ERR_ALREADY_PUBLISHED', `${version} is already the ${key} release on ${to}`);
    if (previous && !semver.gt(version, previous)) throw new FerryError('ERR_VERSION', `${version} is not greater than ${previous}, the latest ${key} release on ${to}`);
    // The bytes devices will fetch must be there as pinned: the manifest (hash and signature) and its full artifact.
    const manifest = await readManifest(source, root, version, t.manifest);
    const release = manifest?.doc.targets[key];
    if (!release) throw new FerryError('ERR_NOT_FOUND', `${t.manifest.path} is missing or has no ${key} release`);
    const size = await stat(join(repo, release.full.path)).then((s) => s.size, () => null);
    if (size !== release.full.size) throw new FerryError('ERR_NOT_FOUND', `${release.full.path} is ${size === null ? 'missing' : `${size} bytes, the manifest says ${release.full.size}`}`);
    targets[key] = { version, manifest: t.manifest };
    report.push({ target: key, previous });
  }

  const doc = await writeNextPointer(repo, { app: root.app, channel: to, previous: toPointer?.doc, targets, now, expiresIn: input.expiresIn, signers });
  return { channel: doc, targets: report };
}
