// Offline bundles (.ferry): a plain tar holding a subset of a repository — the root chain, one
// channel pointer, one manifest (and the separate file list it pins) and the artifacts a device needs — for a USB stick or a file
// transfer. Opening one unpacks it into a private folder (copied and hashed there, so a stick
// swapped mid-read cannot change what is verified: SECURITY.md row 12) and returns a Source over
// that copy; from there a bundle is verified by exactly the code that verifies a repository.
// A bundle is unsigned, so each entry is checked against the repository layout as it is read, and
// the first that does not belong stops the unpacking before anything is made for it; reading
// stops at the tar end marker (SECURITY.md row 16). Names from it are quoted through printable()
// (SECURITY.md row 14).

import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { FerryError, fromFsError } from '../errors.ts';
import { packFiles } from './archive.ts';
import { extractArchive, DEFAULT_LIMITS } from '../io/extract.ts';
import { printable } from '../io/printable.ts';
import { fsyncDir } from '../io/durable.ts';
import { createDirSource } from '../ports/dir-source.ts';
import type { Source } from '../ports/source.ts';
import { readRepoRoot, repoSource } from './repository.ts';
import { readChannel, readManifest } from '../trust/trusted-metadata.ts';
import { CHANNELS, channelPath, isChannel, manifestPath, targetKey, type Channel } from '../trust/metadata.ts';
import { dirname } from 'node:path';

export interface BundleInput {
  repo: string;
  version: string;
  /** Carry the delta from this installed version instead of the full artifact. */
  from?: string;
  /** Carry the full artifact as well as the delta (a device not on `from` can still install). */
  withFull?: boolean;
  channel?: Channel;
  platform: string;
  arch: string;
  out: string;
}

export interface BundleResult {
  out: string;
  size: number;
  channel: Channel;
  files: string[];
}

export async function writeBundle(input: BundleInput): Promise<BundleResult> {
  const target = targetKey(input.platform, input.arch);
  const { root } = await readRepoRoot(input.repo);
  const source = repoSource(input.repo);

  // The bundle carries a channel pointer that names this version, so a device can verify the
  // manifest by its pinned hash exactly as from the repository.
  const channels = input.channel ? [input.channel] : [...CHANNELS];
  let channel: Channel | undefined;
  for (const ch of channels) {
    if (!isChannel(ch)) throw new FerryError('ERR_USAGE', `unknown channel "${ch}"`);
    const c = await readChannel(source, root, ch, null);
    if (c?.doc.targets[target]?.version === input.version) { channel = ch; break; }
  }
  if (!channel) {
    throw new FerryError('ERR_NOT_FOUND', `no channel${input.channel ? ` "${input.channel}"` : ''} points at ${input.version} for ${target}; a bundle carries the latest release of a channel`);
  }
  const manifest = (await readManifest(source, root, input.version, null))?.doc;
  const release = manifest?.targets[target];
  if (!release) throw new FerryError('ERR_NOT_FOUND', `${input.version} has no ${target} release`);

  const artifacts: string[] = [];
  if (input.from) {
    const delta = release.deltas.find((d) => d.from === input.from);
    if (!delta) throw new FerryError('ERR_NOT_FOUND', `${input.version} has no delta from ${input.from} for ${target} (deltas from: ${release.deltas.map((d) => d.from).join(', ') || 'none'})`);
    artifacts.push(delta.artifact.path);
  }
  if (!input.from || input.withFull) artifacts.push(release.full.path);
  // The separate file list the manifest pins travels with it (a device on `from` may rebuild it
  // instead, but one that cannot reads it here: a bundle is offline).
  if (release.fileList) artifacts.unshift(release.fileList.path);

  const roots = Array.from({ length: root.version }, (_, i) => `root/${i + 1}.json`);
  const files = ['root.json', ...roots, channelPath(channel), manifestPath(input.version), ...artifacts];
  const tmp = `${input.out}.${process.pid}.tmp`;
  try {
    await mkdir(dirname(input.out), { recursive: true });
    await packFiles(input.repo, files, tmp, false);
    await rename(tmp, input.out);
    await fsyncDir(dirname(input.out));
  } catch (err) {
    await rm(tmp, { force: true });
    throw fromFsError(err, `writing bundle ${input.out}`);
  }
  return { out: input.out, size: (await stat(input.out)).size, channel, files };
}

/** Only repository-shaped paths may appear in a bundle, */
const BUNDLE_PATH = /^(root\.json|root\/\d+\.json|channels\/[a-z]+\.json|releases\/[^/]+\/[^/]+)$/;
/** and folders only on the way to one. */
const BUNDLE_DIR = /^(root|channels|releases|releases\/[^/]+)$/;

/** Refuses a bundle entry (a path already through checkRelativePath) that is not in a repository's layout. */
export function checkBundleEntry(path: string, type: string): void {
  const belongs = type === 'Directory' ? BUNDLE_DIR.test(path) : BUNDLE_PATH.test(path);
  if (!belongs) throw new FerryError('ERR_UNSAFE_ARCHIVE', `bundle entry ${printable(path)} is not a repository file`);
}

/**
 * Unpacks a bundle into `privateDir` (created; the caller removes it) and returns a Source over
 * the copy. A bundle is a plain tar, so it can never expand beyond its own size.
 */
export async function openBundle(bundle: string, privateDir: string): Promise<Source> {
  let size: number;
  try {
    size = (await stat(bundle)).size;
  } catch (err) {
    throw fromFsError(err, `reading bundle ${printable(bundle)}`);
  }
  await mkdir(privateDir, { recursive: true });
  const limits = { ...DEFAULT_LIMITS, maxEntries: 4096, maxTotalBytes: size };
  const files = await extractArchive(bundle, privateDir, null, limits, undefined, checkBundleEntry).catch((err) => {
    // A plain tar holds at least what its entries claim: claiming more means it was cut short.
    if (err instanceof FerryError && err.code === 'ERR_TOO_LARGE') throw new FerryError('ERR_UNSAFE_ARCHIVE', `bundle ${printable(bundle)} is truncated: its entries claim more than its ${size} bytes`, { cause: err });
    throw err;
  });
  // An end marker first (an all-zero file) is an empty tar: no bundle ferry writes.
  if (files.length === 0) throw new FerryError('ERR_UNSAFE_ARCHIVE', `bundle ${printable(bundle)} holds no repository file`);
  return createDirSource(privateDir, `bundle:${bundle}`);
}

/** A Source over a bundle file, unpacked into `privateDir` on first use. */
export function createBundleSource(bundle: string, privateDir: string): Source {
  let opened: Promise<Source> | undefined;
  const inner = () => (opened ??= openBundle(bundle, privateDir));
  return {
    name: `bundle:${bundle}`,
    offline: true,
    read: async (path, maxBytes) => (await inner()).read(path, maxBytes),
    fetch: async (path, dest, maxBytes, offset) => (await inner()).fetch(path, dest, maxBytes, offset),
    list: async (dir) => (await inner()).list!(dir),
  };
}
