// `ferry verify`: checks everything a source offers against a pinned root and reports what it
// found — the root chain, every channel pointer, every manifest and the file lists it pins, every
// artifact's size, hash and chunk hashes, and that each delta's base and copy hashes match the release it starts from. A
// repository folder and an opened bundle go through this same code.

import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import * as semver from '../semver.ts';
import { FerryError, type ErrorCode } from '../errors.ts';
import { parseEnvelope } from './dsse.ts';
import { ROOT_MAX_BYTES, parseRootPayload, verifyTrustedRoot, type RootDoc } from './root.ts';
import { CHANNELS, isLink, type ArtifactRef, type Channel, type FileRef, type ManifestDoc, type TreeEntry } from './metadata.ts';
import { rebuildFileList } from './file-list.ts';
import { readChannel, readManifest, updateRoot, verifyArtifactFile } from './trusted-metadata.ts';
import type { Source } from '../ports/source.ts';

export interface Problem {
  code: ErrorCode;
  message: string;
}

export interface ArtifactStatus {
  path: string;
  size: number;
  status: 'ok' | 'absent' | ErrorCode;
}

export interface VerifyReport {
  ok: boolean;
  source: string;
  app: string;
  trustedRootVersion: number;
  rootVersion: number;
  channels: { channel: Channel; sequence: number; expires: string; expired: boolean; targets: Record<string, string> }[];
  releases: { version: string; targets: string[]; artifacts: ArtifactStatus[] }[];
  problems: Problem[];
}

export interface VerifyOptions {
  now: Date;
  /** Folder for temporary copies of artifacts while they are hashed. */
  scratch: string;
  /** A bundle holds a subset: absent artifacts are listed, not counted as problems. */
  partial: boolean;
}

function asProblem(err: unknown): Problem {
  if (err instanceof FerryError) return { code: err.code, message: err.message };
  return { code: 'ERR_IO', message: (err as Error)?.message ?? String(err) };
}

export async function verifyRepository(source: Source, trustedRoot: Uint8Array, options: VerifyOptions): Promise<VerifyReport> {
  const trusted = verifyTrustedRoot(trustedRoot);
  const root = await updateRoot(source, trusted);
  const problems: Problem[] = [];
  const report: VerifyReport = { ok: false, source: source.name, app: root.app, trustedRootVersion: trusted.version, rootVersion: root.version, channels: [], releases: [], problems };

  await checkRootJson(source, root, problems);

  const manifests = new Map<string, ManifestDoc>();
  const wanted = new Set<string>();
  for (const channel of CHANNELS) {
    try {
      const c = await readChannel(source, root, channel, null);
      if (!c) continue;
      const expired = Date.parse(c.doc.expires) <= options.now.getTime();
      if (expired) problems.push({ code: 'ERR_EXPIRED', message: `channels/${channel}.json expired at ${c.doc.expires}` });
      const targets: Record<string, string> = {};
      for (const [key, t] of Object.entries(c.doc.targets)) {
        targets[key] = t.version;
        wanted.add(`${t.version} ${key}`);
        try {
          const m = await readManifest(source, root, t.version, t.manifest);
          if (!m) problems.push({ code: 'ERR_NOT_FOUND', message: `channels/${channel}.json names ${t.version}, whose manifest is missing` });
          else if (!m.doc.targets[key]) problems.push({ code: 'ERR_SCHEMA', message: `${t.version}'s manifest has no ${key} release that channels/${channel}.json names` });
          else manifests.set(t.version, m.doc);
        } catch (err) {
          problems.push(asProblem(err));
        }
      }
      report.channels.push({ channel, sequence: c.doc.sequence, expires: c.doc.expires, expired, targets });
    } catch (err) {
      problems.push(asProblem(err));
    }
  }

  for (const v of (await source.list?.('releases')) ?? []) {
    if (manifests.has(v)) continue;
    if (semver.valid(v) !== v) {
      problems.push({ code: 'ERR_SCHEMA', message: `releases/${v} is not named by a semver version` });
      continue;
    }
    try {
      const m = await readManifest(source, root, v, null);
      if (m) manifests.set(v, m.doc);
      else problems.push({ code: 'ERR_NOT_FOUND', message: `releases/${v} has no manifest.json` });
    } catch (err) {
      problems.push(asProblem(err));
    }
  }

  const scratch = await mkdtemp(join(options.scratch, 'ferry-verify-'));
  try {
    const versions = [...manifests.keys()].sort(semver.compare);
    for (const version of versions) {
      const manifest = manifests.get(version)!;
      const artifacts: ArtifactStatus[] = [];
      for (const [key, release] of Object.entries(manifest.targets)) {
        const refs: ArtifactRef[] = [release.full, ...release.deltas.map((d) => d.artifact)];
        for (const ref of refs) artifacts.push(await checkArtifact(source, ref, scratch, options.partial, problems));
        for (const delta of release.deltas) checkDeltaBase(version, key, delta, manifests.get(delta.from), release.files, release.fileList, problems);
        if (wanted.has(`${version} ${key}`) && !refs.some((r) => artifacts.find((a) => a.path === r.path)?.status === 'ok')) {
          problems.push({ code: 'ERR_NOT_FOUND', message: `no verified artifact can install ${version} for ${key}` });
        }
      }
      report.releases.push({ version, targets: Object.keys(manifest.targets).sort(), artifacts });
    }
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
  report.ok = problems.length === 0;
  return report;
}

/** root.json should be the newest root of the chain; an older or unchained one misleads devices. */
async function checkRootJson(source: Source, root: RootDoc, problems: Problem[]): Promise<void> {
  try {
    const bytes = await source.read('root.json', ROOT_MAX_BYTES);
    if (!bytes) {
      problems.push({ code: 'ERR_NOT_FOUND', message: 'root.json is missing' });
      return;
    }
    const doc = parseRootPayload(Buffer.from(parseEnvelope(bytes, ROOT_MAX_BYTES, 'root.json').payload, 'base64'));
    if (doc.version !== root.version) problems.push({ code: 'ERR_ROOT_CHAIN', message: `root.json is version ${doc.version}, but the chain root/<N>.json ends at ${root.version}` });
  } catch (err) {
    problems.push(asProblem(err));
  }
}

async function checkArtifact(source: Source, ref: ArtifactRef, scratch: string, partial: boolean, problems: Problem[]): Promise<ArtifactStatus> {
  const copy = join(scratch, 'artifact');
  try {
    if (!(await source.fetch(ref.path, copy, ref.size))) {
      if (!partial) problems.push({ code: 'ERR_NOT_FOUND', message: `${ref.path} is missing` });
      return { path: ref.path, size: ref.size, status: 'absent' };
    }
    await verifyArtifactFile(copy, ref);
    return { path: ref.path, size: ref.size, status: 'ok' };
  } catch (err) {
    const p = asProblem(err);
    problems.push(p);
    return { path: ref.path, size: ref.size, status: p.code };
  } finally {
    await rm(copy, { force: true });
  }
}

/**
 * Each delta op must start from exactly the bytes the base release signed (SECURITY.md row 9),
 * and so must each file a 'pack' delta leaves implied (copied from the same path of the base).
 */
function checkDeltaBase(version: string, key: string, delta: ManifestDoc['targets'][string]['deltas'][number], base: ManifestDoc | undefined, files: TreeEntry[], fileList: FileRef | undefined, problems: Problem[]): void {
  const baseFiles = base?.targets[key]?.files;
  if (!baseFiles) return; // base release not in this source (a bundle): checked on the device
  const byPath = new Map(baseFiles.map((f) => [f.path, isLink(f) ? null : f.sha256]));
  const wrong = (path: string, from: string) => problems.push({ code: 'ERR_HASH_MISMATCH', message: `${version} delta from ${delta.from} (${key}): ${path} expects ${from} with another hash than ${delta.from} signed` });
  for (const op of delta.ops) {
    if (op.op === 'whole' || op.op === 'link') continue;
    // A slim patch op (no baseSha256) needs only a regular file at `from` in the base's signed list.
    if (op.op === 'patch' && op.baseSha256 === undefined) {
      if (typeof byPath.get(op.from) !== 'string') wrong(op.path, op.from);
    } else if (byPath.get(op.from) !== (op.op === 'copy' ? op.sha256 : op.baseSha256)) wrong(op.path, op.from);
  }
  if (delta.layout !== 'pack') return;
  // A list edit that does not rebuild the signed list would cost every device on the base a list
  // download (it falls back to reading the list: core/update/resolve.ts): a publisher's bug, said here.
  if (delta.listEdit && fileList && !rebuildFileList(baseFiles, delta.listEdit, fileList)) {
    problems.push({ code: 'ERR_HASH_MISMATCH', message: `${version} delta from ${delta.from} (${key}): its list edit does not rebuild the signed file list ${fileList.path}` });
  }
  const listed = new Set(delta.ops.map((op) => op.path));
  for (const f of files) if (!isLink(f) && !listed.has(f.path) && byPath.get(f.path) !== f.sha256) wrong(f.path, f.path);
}
