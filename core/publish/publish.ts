// `ferry release`: turns an application folder into a signed release in a static repository.
// Order of writes keeps the repository valid at every instant (a failed release leaves it exactly
// as it was): artifacts and manifest are built in a work folder inside the repository, moved into
// releases/<version> by rename, and the channel pointer, the only thing devices follow, is
// replaced last. The target's file list goes beside the manifest as files-<target>.json, pinned
// by the manifest (core/trust/file-list.ts; issue 14 item 5), unless `inlineFileList` keeps it
// inline for devices from before separate lists.

import { mkdir, mkdtemp, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import * as semver from '../semver.ts';
import { FerryError, fromFsError } from '../errors.ts';
import { signManifest } from '../trust/manifest-envelope.ts';
import { pinsVersion, repinTarget, writeNextPointer } from './channel-pointer.ts';
import { checkRolloutPlan, lastFullyRolledOut, newSalt, rolloutField, saltOf, withRollout, type RolloutPlan } from './rollout.ts';
import { CHUNK_SIZE, digestFile, sha256 } from '../io/hash.ts';
import { fsyncDir, fsyncDirsUnder, fsyncPath, writeFileAtomic } from '../io/durable.ts';
import { packFiles, packFullArtifact } from './archive.ts';
import { archiveCoder, extractArchive } from '../io/extract.ts';
import { makeDelta } from '../delta/make-delta.ts';
import { scanTree } from './tree.ts';
import { readRepoRoot, repoSource } from './repository.ts';
import { readChannel, readManifest } from '../trust/trusted-metadata.ts';
import {
  CHANNELS,
  isChannel,
  manifestPath,
  manifestPayload,
  targetKey,
  type ArtifactRef,
  type Channel,
  type ChannelDoc,
  type DeltaRef,
  type DeltaOp,
  type TreeEntry,
  type ManifestDoc,
  type TargetRelease,
  type ContainerRef,
  fileListPath,
  parseSignedManifest,
  resolveTarget,
} from '../trust/metadata.ts';
import { fileListPayload, fileListPin, listEditFrom } from '../trust/file-list.ts';
import { imageDeltaBases } from './image-bases.ts';
import type { RootDoc } from '../trust/root.ts';
import type { SigningKey } from '../trust/keys.ts';
import type { Patcher } from '../ports/patcher.ts';
import type { Source } from '../ports/source.ts';

export interface ReleaseInput {
  repo: string;
  appDir: string;
  version: string;
  channel: Channel;
  keys: SigningKey[];
  platform: string;
  arch: string;
  notes?: string;
  mandatory?: boolean;
  securityFix?: boolean;
  /** Deltas are made from this many previous releases of the same target. */
  deltas: number;
  /** The channel pointer expires this many seconds after `now`. */
  expiresIn: number;
  now: Date;
  patcher: Patcher;
  /**
   * `ferry release --patch-from`: deltas may also hold zstd-from entries (core/delta/zstd-from.ts),
   * which only devices on Node >= 22.15 can apply (the others fall back to the full artifact). Off
   * unless the publisher knows every device can read them.
   */
  patchFrom?: boolean;
  /**
   * `ferry release --compression-level`: brotli quality (0-11) of the full artifact and the
   * deltas' entries. 11 (the default) is the smallest and the slowest (~3 s per MB of binary).
   */
  compressionLevel?: number;
  /**
   * `ferry release --full-compression gzip`: the full artifact as a `.tar.gz` (gzip -9), which
   * devices running ferry from before `.tar.br` (0.1.0) can read (they refuse `.tar.br`), at 1.3-2.2x the bytes. For a
   * fleet that still has such devices, including ferry's own release that updates them.
   */
  fullCompression?: 'brotli' | 'gzip';
  /**
   * `ferry release --rollout N`: the version starts under a phased rollout (core/publish/rollout.ts),
   * so no device sees it at 100% first; absent, every device takes it.
   */
  rollout?: RolloutPlan;
  /**
   * The tree at `appDir` is a normalised OCI image layout (core/image/import-image.ts, which
   * `ferry release --image` runs first and which scans its layers); this names its image and is
   * signed as the target's `container`. Deltas from an earlier image release patch each changed
   * layer from the old layer at the same position.
   */
  container?: ContainerRef;
  /**
   * `ferry release --inline-file-list`: the file list inside the signed manifest, as before issue
   * 14 item 5, for fleets that still have devices from before separate lists (they refuse a
   * manifest without `files` with ERR_SCHEMA and stay on their version). Default: a separate,
   * pinned list (releases/<v>/files-<target>.json), which keeps the manifest small.
   */
  inlineFileList?: boolean;
}

export interface ReleaseResult {
  manifest: ManifestDoc;
  channel: ChannelDoc;
  target: string;
  full: ArtifactRef;
  deltas: { from: string; size: number }[];
}

/** Only keys the root delegates for the release role may sign, and enough of them. */
export function releaseSigners(root: RootDoc, keys: SigningKey[]): SigningKey[] {
  const delegated = new Set(root.roles.release.keyids);
  const foreign = keys.filter((k) => !delegated.has(k.keyid));
  if (foreign.length > 0) {
    throw new FerryError('ERR_UNKNOWN_KEY', `key ${foreign[0]!.keyid.slice(0, 12)}… is not a release key of root ${root.version}`);
  }
  const distinct = new Map(keys.map((k) => [k.keyid, k]));
  if (distinct.size < root.roles.release.threshold) {
    throw new FerryError('ERR_THRESHOLD', `${distinct.size} release key(s) given, root ${root.version} requires ${root.roles.release.threshold}`);
  }
  return [...distinct.values()];
}

/** Every manifest in the repository, verified, newest first. */
export async function listManifests(source: Source, root: RootDoc): Promise<ManifestDoc[]> {
  const names = (await source.list?.('releases')) ?? [];
  const out: ManifestDoc[] = [];
  for (const v of names) {
    if (semver.valid(v) !== v) continue;
    const m = await readManifest(source, root, v, null);
    if (m) out.push(m.doc);
  }
  return out.sort((a, b) => semver.rcompare(a.version, b.version));
}

async function artifactRef(file: string, path: string): Promise<ArtifactRef> {
  const d = await digestFile(file, CHUNK_SIZE);
  return { path, size: d.size, sha256: d.sha256, chunkSize: CHUNK_SIZE, chunks: d.chunks };
}

export async function publishRelease(input: ReleaseInput): Promise<ReleaseResult> {
  const { repo, version, channel, now } = input;
  if (semver.valid(version) !== version) throw new FerryError('ERR_VERSION', `"${version}" is not a semver version (e.g. 1.2.3)`);
  if (!isChannel(channel)) throw new FerryError('ERR_USAGE', `unknown channel "${channel}"`);
  const target = targetKey(input.platform, input.arch);
  const rollout = input.rollout ? checkRolloutPlan(input.rollout) : undefined;
  const { root } = await readRepoRoot(repo);
  const signers = releaseSigners(root, input.keys);
  const source = repoSource(repo);

  const current = await readChannel(source, root, channel, null);
  const latest = current?.doc.targets[target]?.version;
  if (latest && !semver.gt(version, latest)) throw new FerryError('ERR_VERSION', `${version} is not greater than ${latest}, the latest ${target} release on ${channel}`);
  const existing = await readManifest(source, root, version, null);
  if (existing?.doc.targets[target]) throw new FerryError('ERR_ALREADY_PUBLISHED', `${version} is already published for ${target}`);

  const files = await scanTree(input.appDir);
  if (files.length === 0) throw new FerryError('ERR_USAGE', `${input.appDir} holds no files`);

  let work: string;
  try {
    work = await mkdtemp(join(repo, '.ferry-work-'));
  } catch (err) {
    throw fromFsError(err, `creating a work folder in ${repo}`);
  }
  const releaseDir = join(repo, 'releases', version);
  const moved: string[] = [];
  try {
    const out = join(work, 'out');
    await mkdir(out);
    // A brotli tar (issue 14 item 3); bases published before are .tar.gz (deltaFrom reads both).
    const gzip = input.fullCompression === 'gzip';
    const fullName = `${target}.full.tar.${gzip ? 'gz' : 'br'}`;
    if (gzip) await packFiles(input.appDir, files.map((f) => f.path), join(out, fullName), true);
    else await packFullArtifact(input.appDir, files, join(out, fullName), input.compressionLevel);
    const full = await artifactRef(join(out, fullName), `releases/${version}/${fullName}`);

    // The separate list's bytes, written now so the release folder appears whole by one rename.
    const separate = !input.inlineFileList;
    const listBytes = separate ? fileListPayload(files) : undefined;
    const listPin = listBytes ? fileListPin(fileListPath(version, target), listBytes) : undefined;
    if (listBytes) await writeFileAtomic(join(out, listPin!.path.split('/').pop()!), listBytes);

    const deltas: DeltaRef[] = [];
    const bases = (await listManifests(source, root))
      .filter((m) => m.targets[target] && semver.lt(m.version, version))
      .slice(0, Math.max(0, input.deltas));
    for (const base of bases) {
      const made = await deltaFrom(repo, base, target, files, input, work, out, separate);
      // A delta no smaller than the full artifact is never worth planning: leave it out.
      if (made.artifact.size < full.size) deltas.push(made);
      else await rm(join(out, made.artifact.path.split('/').pop()!));
    }

    const manifest: ManifestDoc = {
      type: 'ferry/manifest',
      app: root.app,
      version,
      releaseDate: now.toISOString(),
      releaseNotes: input.notes ?? existing?.doc.releaseNotes ?? '',
      mandatory: input.mandatory ?? existing?.doc.mandatory ?? false,
      securityFix: input.securityFix ?? existing?.doc.securityFix ?? false,
      targets: { ...existing?.doc.targets, [target]: { files, ...(listPin ? { fileList: listPin } : {}), full, deltas, ...(input.container ? { container: input.container } : {}) } satisfies TargetRelease },
    };
    // An image release's container field is checked as a device will (both blobs signed files of
    // the tree, well-formed digests and ref) before anything is signed.
    if (input.container) resolveTarget(parseSignedManifest(manifestPayload(manifest)).targets[target]!, listBytes);
    // Compressed JSON under its own payload type for the separate-list shape, plain for inline lists
    // (core/trust/manifest-envelope.ts).
    const manifestBytes = signManifest(manifest, signers, input.compressionLevel);

    // Move into place: a new version folder appears whole by one rename; a version that exists
    // for another target gets its new artifacts first and its manifest replaced atomically.
    if (!existing) {
      await writeFileAtomic(join(out, 'manifest.json'), manifestBytes);
      await fsyncDirsUnder(out);
      await mkdir(join(repo, 'releases'), { recursive: true });
      await rename(out, releaseDir);
      moved.push(releaseDir);
      await fsyncDir(join(repo, 'releases'));
    } else {
      for (const name of await readdir(out)) {
        await fsyncPath(join(out, name));
        await rename(join(out, name), join(releaseDir, name));
        moved.push(join(releaseDir, name));
      }
      await writeFileAtomic(join(releaseDir, 'manifest.json'), manifestBytes);
    }

    // Channel pointers go last. Every pointer naming this version (or a rollout's previous naming
    // it) is re-pinned to the new manifest bytes (a second target changes them), and the release's
    // own channel gains the target, under a rollout when one was asked for.
    const pin = { path: manifestPath(version), size: manifestBytes.length, sha256: sha256(manifestBytes) };
    let pointer: ChannelDoc | undefined;
    await mkdir(join(repo, 'channels'), { recursive: true });
    for (const ch of CHANNELS) {
      const prev = ch === channel ? current : await readChannel(source, root, ch, null);
      const targets = { ...prev?.doc.targets };
      for (const [key, t] of Object.entries(targets)) targets[key] = repinTarget(t, version, pin);
      if (ch === channel) targets[target] = withRollout({ version, manifest: pin }, rollout && rolloutField(rollout, saltOf(targets, version) ?? rollout.salt ?? newSalt(), lastFullyRolledOut(current?.doc.targets[target], now)));
      else if (!prev || !Object.values(prev.doc.targets).some((t) => pinsVersion(t, version))) continue;
      const doc = await writeNextPointer(repo, { app: root.app, channel: ch, previous: prev?.doc, targets, now, expiresIn: input.expiresIn, signers });
      if (ch === channel) pointer = doc;
    }
    moved.length = 0; // committed: nothing to undo
    return { manifest, channel: pointer!, target, full, deltas: deltas.map((d) => ({ from: d.from, size: d.artifact.size })) };
  } catch (err) {
    // Undo what reached the repository; the old manifest (if any) was never replaced unless the
    // channel write itself failed, and then the old pointer still names only old artifacts.
    for (const p of moved) await rm(p, { recursive: true, force: true });
    if (existing && moved.length > 0) await writeFileAtomic(join(releaseDir, 'manifest.json'), existing.bytes);
    throw fromFsError(err, `publishing ${version}`);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** Rebuilds `base`'s tree from its verified full artifact and diffs the new tree against it. */
async function deltaFrom(repo: string, base: ManifestDoc, target: string, files: TreeEntry[], input: ReleaseInput, work: string, out: string, separate: boolean): Promise<DeltaRef> {
  const baseTarget = base.targets[target]!;
  const baseDir = join(work, `base-${base.version}`);
  await mkdir(baseDir);
  const expected = new Map(baseTarget.files.map((f) => [f.path, f]));
  await extractArchive(join(repo, baseTarget.full.path), baseDir, expected, undefined, undefined, undefined, archiveCoder(baseTarget.full.path));
  const name = `${target}.from-${base.version}.delta`;
  const made = await makeDelta({
    oldDir: baseDir,
    oldFiles: baseTarget.files,
    newDir: input.appDir,
    newFiles: files,
    workDir: join(work, `delta-${base.version}`),
    outFile: join(out, name),
    patcher: input.patcher,
    patchFrom: input.patchFrom ?? false,
    quality: input.compressionLevel,
    ...(input.container && baseTarget.container ? { bases: await imageDeltaBases(baseDir, baseTarget.container, input.appDir, input.container) } : {}),
  });
  await rm(baseDir, { recursive: true, force: true });
  // With a separate list, the edit from the base's list lets a device on the base rebuild the new
  // list instead of downloading it (core/trust/file-list.ts rebuildFileList), and patch ops are
  // slim: the device holds the base's signed list, so each base file's hash is already known there.
  const ops = separate ? made.ops.map(slimOp) : made.ops;
  return { from: base.version, artifact: await artifactRef(made.artifact, `releases/${input.version}/${name}`), ops, layout: 'pack', ...(separate ? { listEdit: listEditFrom(baseTarget.files, files) } : {}) };
}

/**
 * A patch op without `baseSha256` (issue 14 item 5): the device checks the base file against the
 * base release's signed list (core/delta/apply-delta.ts signedBaseHash); the wire form also leaves
 * out `from` when it is the op's own path (core/trust/metadata.ts wireOp).
 */
function slimOp(op: DeltaOp): DeltaOp {
  if (op.op !== 'patch') return op;
  const { baseSha256: _base, ...slim } = op;
  return slim;
}

