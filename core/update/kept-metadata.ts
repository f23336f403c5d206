// The signed metadata a device keeps after verifying it, so that its LAN peer server can hand it on
// (README "LAN peers", SECURITY.md row 8): one device that received a USB stick updates its LAN.
// Kept are exactly the envelopes the device accepted, byte for byte:
//   trust/roots/<N>.json     every root of the chain it walked, and the root it was given at init
//   trust/channels/<c>.json  the newest pointer it accepted per channel (past the marks' checks)
//   manifests/<v>.json       each installed release's manifest (kept at install: core/update/attempt.ts)
//   manifests/<v>.files-<t>.json  the separate file list that manifest pins for this device's target
// A peer that receives them verifies them again as from any source; keeping them only spares it
// from asking an origin it cannot reach. Writes are atomic (core/io/durable.ts).

import { mkdir, readFile, rm } from 'node:fs/promises';
import * as semver from '../semver.ts';
import type { HomeLayout } from '../device/layout.ts';
import { writeFileAtomic } from '../io/durable.ts';
import { fromFsError } from '../errors.ts';
import { isChannel, type Channel, type TargetKey } from '../trust/metadata.ts';
import type { RootDoc } from '../trust/root.ts';

/** Writes `bytes` to `path` unless it already holds exactly them (an idle check writes nothing). */
async function keepFile(path: string, bytes: Uint8Array): Promise<void> {
  const old = await readFile(path).catch(() => undefined);
  if (old && Buffer.compare(old, bytes) === 0) return;
  await writeFileAtomic(path, bytes);
}

/**
 * Keeps the root chain of a check and makes its newest root the trusted one (trust/root.json).
 * `trusted` is the root the check started from (given at init, or the newest of an earlier check)
 * and `trustedBytes` the bytes of trust/root.json it was verified from, by the check itself;
 * `chain` the verified roots after it, in order (core/trust/discover.ts).
 */
export async function keepRootChain(layout: HomeLayout, trusted: RootDoc, trustedBytes: Uint8Array, chain: Uint8Array[]): Promise<void> {
  await mkdir(layout.trustRoots, { recursive: true }).catch((err) => { throw fromFsError(err, `creating ${layout.trustRoots}`); });
  await keepFile(layout.keptRoot(trusted.version), trustedBytes);
  for (const [i, bytes] of chain.entries()) await keepFile(layout.keptRoot(trusted.version + i + 1), bytes);
  const newest = chain.at(-1);
  if (newest) await writeFileAtomic(layout.trustRoot, newest);
}

/** Keeps the bytes of each channel's accepted pointer (the freshest offer of the check). */
export async function keepPointers(layout: HomeLayout, offers: { channel: Channel; bytes: Uint8Array }[]): Promise<void> {
  if (offers.length === 0) return;
  await mkdir(layout.trustChannels, { recursive: true }).catch((err) => { throw fromFsError(err, `creating ${layout.trustChannels}`); });
  for (const o of offers) await keepFile(layout.keptPointer(o.channel), o.bytes);
}

/**
 * Keeps an installing release's signed manifest and, when its target's list is a separate
 * document, that list's verified bytes: the list first, so a kept manifest always has its list
 * beside it (core/update/installed.ts localManifest reads them together).
 */
export async function keepManifest(layout: HomeLayout, version: string, target: TargetKey, manifestBytes: Uint8Array, listBytes: Uint8Array | undefined): Promise<void> {
  await mkdir(layout.manifests, { recursive: true }).catch((err) => { throw fromFsError(err, `creating ${layout.manifests}`); });
  if (listBytes) await writeFileAtomic(layout.keptFileList(version, target), listBytes);
  await writeFileAtomic(layout.manifest(version), manifestBytes);
}

/** Forgets a release's kept manifest and its kept list (the manifest first, the list after it). */
export async function forgetManifest(layout: HomeLayout, version: string, target: TargetKey): Promise<void> {
  await rm(layout.manifest(version), { force: true });
  await rm(layout.keptFileList(version, target), { force: true });
}

/**
 * The kept file a peer serves for a repository path, or null for any other path: the one map
 * from what peers ask for (root/<N>.json, channels/<c>.json, releases/<v>/manifest.json,
 * releases/<v>/files-<target>.json) to the
 * home, so nothing else in the home (config, marks, state, releases) can ever be served.
 */
export function keptMetadataFile(layout: HomeLayout, repoPath: string): string | null {
  const root = /^root\/([1-9][0-9]{0,8})\.json$/.exec(repoPath);
  if (root) return layout.keptRoot(Number(root[1]));
  const channel = /^channels\/([a-z]{1,16})\.json$/.exec(repoPath);
  if (channel) return isChannel(channel[1]!) ? layout.keptPointer(channel[1]!) : null;
  const manifest = /^releases\/([0-9A-Za-z.+-]{1,128})\/manifest\.json$/.exec(repoPath);
  // A version as ferry publishes it (semver) holds no '/' and is never '.' or '..'.
  if (manifest && semver.valid(manifest[1]!) === manifest[1]) return layout.manifest(manifest[1]!);
  const list = /^releases\/([0-9A-Za-z.+-]{1,128})\/files-([a-z0-9_]{1,32}-[a-z0-9_]{1,32})\.json$/.exec(repoPath);
  if (list && semver.valid(list[1]!) === list[1]) return layout.keptFileList(list[1]!, list[2]!);
  return null;
}
