// Hostile bsdiff patches and a publisher who signs them (SECURITY.md row 17). Builds BSDIFF40
// headers that lie, rebuilds a published delta artifact with one entry replaced (either layout:
// a 'pack' delta is re-concatenated and its ops' ranges moved, an old 'tar' delta repacked), and
// re-signs the manifest with the repository's own release key (re-pinned in a new channel
// pointer, sequence + 1), so the device meets a patch that is validly signed and still malicious.
// Also a Patcher that counts what reaches the native code, and a descriptor count for leak checks.

import { readdirSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { create, extract } from 'tar';
import { CHUNK_SIZE, digestFile, sha256 } from '../../core/io/hash.ts';
import { createBsdiffPatcher } from '../../plugins/bsdiff/patcher.ts';
import { isLink, type ArtifactRef, type DeltaOp, type FileEntry, type FileRef, type ManifestDoc, type PackRange, type TreeEntry } from '../../core/trust/metadata.ts';
import type { Patcher } from '../../core/ports/patcher.ts';
import { tempDir, type TestRepo } from './repo.ts';
import { readPayload, resignManifest } from './tamper.ts';

/** bsdiff's offset encoding: 63-bit magnitude little-endian, sign in the top bit. */
function offt(value: number): Buffer {
  const out = Buffer.alloc(8);
  const mag = Math.abs(value);
  out.writeUInt32LE(mag % 2 ** 32, 0);
  out.writeUInt32LE((Math.floor(mag / 2 ** 32) | (value < 0 ? 0x80000000 : 0)) >>> 0, 4);
  return out;
}

/** A 32-byte BSDIFF40 header with the given block lengths and promised output size. */
export function bsdiffHeader(h: { ctrlLen: number; dataLen: number; newSize: number }): Buffer {
  return Buffer.concat([Buffer.from('BSDIFF40', 'latin1'), offt(h.ctrlLen), offt(h.dataLen), offt(h.newSize)]);
}

/**
 * A patch whose header is self-consistent (block lengths fit in the file) and promises `newSize`
 * bytes, followed by garbage where the bzip2 blocks should be: it passes any header check that
 * only looks at sizes and fails inside bspatch (the path where bsdiff-node leaks descriptors).
 */
export function garbagePatch(newSize: number, bodyBytes = 96): Buffer {
  const body = Buffer.alloc(bodyBytes, 0x5a);
  const third = Math.floor(bodyBytes / 3);
  return Buffer.concat([bsdiffHeader({ ctrlLen: third, dataLen: third, newSize }), body]);
}

export interface CountingPatcher extends Patcher {
  /** Every patch() call that reached the real patcher: [oldFile, newFile, patchFile]. */
  patchCalls: [string, string, string][];
}

/** The real bsdiff patcher, recording each patch() call before passing it on. */
export function countingPatcher(inner: Patcher = createBsdiffPatcher()): CountingPatcher {
  const patchCalls: [string, string, string][] = [];
  return {
    patchCalls,
    headerSize: inner.headerSize,
    outputSize: (header, size) => inner.outputSize(header, size),
    diff: (a, b, windows) => inner.diff(a, b, windows),
    patch(oldFile, newFile, patchFile) {
      patchCalls.push([oldFile, newFile, patchFile]);
      return inner.patch(oldFile, newFile, patchFile);
    },
  };
}

/** Open descriptors of this process. */
export function openFdCount(): number {
  return readdirSync('/proc/self/fd').length;
}

/** Writes an uncompressed, deterministic tar of `entries` (name → bytes) to `outFile`. */
export async function packEntries(entries: Map<string, Buffer>, outFile: string): Promise<void> {
  const tmp = await tempDir('ferry-hostile-pack-');
  try {
    for (const [name, bytes] of entries) await writeFile(join(tmp.path, name), bytes);
    await create({ cwd: tmp.path, file: outFile, portable: true, mtime: new Date(0), noDirRecurse: true }, [...entries.keys()].sort());
  } finally {
    await tmp.cleanup();
  }
}


/** A delta as the manifest's wire JSON holds it (a 'pack' delta under `deltaPacks`, a 'tar' one under `deltas`). */
export interface WireDelta {
  from: string;
  artifact: ArtifactRef;
  ops: DeltaOp[];
}

/** `version`'s delta from `from` in a wire manifest, and which layout it has (pack first). */
export function wireDelta(doc: ManifestDoc, from: string, target = 'linux-x64'): { delta: WireDelta; layout: 'pack' | 'tar' } | undefined {
  const t = doc.targets[target] as unknown as { deltas: WireDelta[]; deltaPacks?: WireDelta[] } | undefined;
  const pack = t?.deltaPacks?.find((d) => d.from === from);
  if (pack) return { delta: pack, layout: 'pack' };
  const tar = t?.deltas.find((d) => d.from === from);
  return tar ? { delta: tar, layout: 'tar' } : undefined;
}

/** The bytes of each op's entry (by op path) of a delta whose artifact is `artifactFile`. */
export async function deltaEntries(artifactFile: string, delta: WireDelta): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  const withEntry = delta.ops.filter((o): o is Extract<DeltaOp, { entry: unknown }> => o.op === 'patch' || o.op === 'whole');
  if (withEntry.every((o) => (o.entry as FileRef).path === undefined)) {
    const bytes = await readFile(artifactFile);
    for (const o of withEntry) {
      const r = o.entry as PackRange;
      out.set(o.path, bytes.subarray(r.offset, r.offset + r.size));
    }
    return out;
  }
  const tmp = await tempDir('ferry-hostile-unpack-');
  try {
    await extract({ file: artifactFile, cwd: tmp.path });
    for (const o of withEntry) out.set(o.path, await readFile(join(tmp.path, (o.entry as FileRef).path)));
  } finally {
    await tmp.cleanup();
  }
  return out;
}

/**
 * Rewrites the delta artifact `artifactFile` with the entries of the ops named in `replace` (op
 * path → bytes) replaced, in the delta's own layout; returns the new ops and the artifact's new
 * signed reference. For a signer's hands only (a test's compromised publisher).
 */
export async function rebuildDelta(artifactFile: string, delta: WireDelta, layout: 'pack' | 'tar', replace: Map<string, Buffer>): Promise<{ ops: DeltaOp[]; artifact: ArtifactRef }> {
  const entries = await deltaEntries(artifactFile, delta);
  for (const [path, bytes] of replace) entries.set(path, bytes);
  await rm(artifactFile, { force: true });
  let ops: DeltaOp[];
  if (layout === 'pack') {
    const parts: Buffer[] = [];
    let offset = 0;
    ops = delta.ops.map((o) => {
      if (o.op !== 'patch' && o.op !== 'whole') return o;
      const bytes = entries.get(o.path)!;
      parts.push(bytes);
      const entry = { offset, size: bytes.length };
      offset += bytes.length;
      return { ...o, entry };
    });
    await writeFile(artifactFile, Buffer.concat(parts));
  } else {
    const byName = new Map<string, Buffer>();
    ops = delta.ops.map((o) => {
      if (o.op !== 'patch' && o.op !== 'whole') return o;
      const bytes = entries.get(o.path)!;
      const name = (o.entry as FileRef).path;
      byName.set(name, bytes);
      return { ...o, entry: { path: name, size: bytes.length, sha256: sha256(bytes) } };
    });
    await packEntries(byName, artifactFile);
  }
  const d = await digestFile(artifactFile, CHUNK_SIZE);
  return { ops, artifact: { path: delta.artifact.path, size: d.size, sha256: d.sha256, chunkSize: CHUNK_SIZE, chunks: d.chunks } };
}

export interface DeltaChange {
  /** The file (a `patch` op) whose delta entry is changed. */
  path: string;
  /** New bytes for that op's entry (the delta artifact is rebuilt around them). */
  entry?: Buffer;
  /** A different signed base hash for that op. */
  baseSha256?: string;
}

/**
 * Changes one patch op of `version`'s delta from `from` (target `target`), rebuilds the delta
 * artifact in place, and re-signs everything with the release key: the result is a release whose
 * signed delta carries exactly the hostile patch the test wants. Returns the new manifest and op.
 */
export async function resignDelta(repo: TestRepo, version: string, from: string, change: DeltaChange, target = 'linux-x64'): Promise<{ manifest: ManifestDoc; op: Extract<DeltaOp, { op: 'patch' }>; artifact: ArtifactRef }> {
  const mPath = join(repo.repo, 'releases', version, 'manifest.json');
  const found = wireDelta(await readPayload<ManifestDoc>(mPath), from, target);
  if (!found) throw new Error(`test setup: ${version} has no delta from ${from} for ${target}`);
  const { delta, layout } = found;
  const op = delta.ops.find((o): o is Extract<DeltaOp, { op: 'patch' }> => o.op === 'patch' && o.path === change.path);
  if (!op) throw new Error(`test setup: ${version}'s delta from ${from} does not patch ${change.path}`);

  let ops = delta.ops;
  let artifact: ArtifactRef = delta.artifact;
  if (change.entry) ({ ops, artifact } = await rebuildDelta(join(repo.repo, delta.artifact.path), delta, layout, new Map([[change.path, change.entry]])));
  const newOp = { ...(ops.find((o) => o.path === change.path) as Extract<DeltaOp, { op: 'patch' }>), ...(change.baseSha256 ? { baseSha256: change.baseSha256 } : {}) };
  const manifest = await resignManifest(repo.repo, version, [repo.releaseKey], (m) => {
    const dd = wireDelta(m, from, target)!.delta;
    dd.artifact = artifact;
    dd.ops = ops.map((o) => (o.path === change.path ? newOp : o));
  });
  return { manifest, op: newOp, artifact };
}

/**
 * Puts `op` into a wire delta's op list (replacing the op for its path, if any), keeping the
 * signed file list's order that a pack delta requires. A test's compromised publisher uses it to
 * list an op for a file the genuine pack delta left implied.
 */
export function putOp(files: TreeEntry[], delta: WireDelta, op: DeltaOp): void {
  const order = new Map(files.map((f, i) => [f.path, i]));
  delta.ops = [...delta.ops.filter((o) => o.path !== op.path), op].sort((a, b) => (order.get(a.path) ?? 0) - (order.get(b.path) ?? 0));
}

/** The first regular file of `files` that `delta` leaves implied (no op), if any. */
export function impliedFile(files: TreeEntry[], delta: WireDelta): FileEntry | undefined {
  const listed = new Set(delta.ops.map((o) => o.path));
  return files.find((f): f is FileEntry => !isLink(f) && !listed.has(f.path));
}
