// Hostile bsdiff patches and a publisher who signs them (SECURITY.md row 17). Builds BSDIFF40
// headers that lie, repacks a published delta artifact with one entry replaced, and re-signs the
// manifest with the repository's own release key (re-pinned in a new channel pointer, sequence + 1),
// so the device meets a patch that is validly signed and still malicious. Also a Patcher that
// counts what reaches the native code, and a descriptor count for leak checks.

import { readdirSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { create, extract } from 'tar';
import { CHUNK_SIZE, digestFile, sha256 } from '../../core/io/hash.ts';
import { createBsdiffPatcher } from '../../plugins/bsdiff/patcher.ts';
import type { ArtifactRef, DeltaOp, ManifestDoc } from '../../core/trust/metadata.ts';
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
    diff: (a, b) => inner.diff(a, b),
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


export interface DeltaChange {
  /** The file (a `patch` op) whose delta entry is changed. */
  path: string;
  /** New bytes for that op's entry (the delta artifact is repacked around them). */
  entry?: Buffer;
  /** A different signed base hash for that op. */
  baseSha256?: string;
}

/**
 * Changes one patch op of `version`'s delta from `from` (target `target`), repacks the delta
 * artifact in place, and re-signs everything with the release key: the result is a release whose
 * signed delta carries exactly the hostile patch the test wants. Returns the new manifest and op.
 */
export async function resignDelta(repo: TestRepo, version: string, from: string, change: DeltaChange, target = 'linux-x64'): Promise<{ manifest: ManifestDoc; op: Extract<DeltaOp, { op: 'patch' }>; artifact: ArtifactRef }> {
  const mPath = join(repo.repo, 'releases', version, 'manifest.json');
  const before = await readPayload<ManifestDoc>(mPath);
  const delta = before.targets[target]?.deltas.find((d) => d.from === from);
  if (!delta) throw new Error(`test setup: ${version} has no delta from ${from} for ${target}`);
  const op = delta.ops.find((o): o is Extract<DeltaOp, { op: 'patch' }> => o.op === 'patch' && o.path === change.path);
  if (!op) throw new Error(`test setup: ${version}'s delta from ${from} does not patch ${change.path}`);

  const artifactFile = join(repo.repo, delta.artifact.path);
  const newOp: Extract<DeltaOp, { op: 'patch' }> = { ...op, entry: { ...op.entry }, ...(change.baseSha256 ? { baseSha256: change.baseSha256 } : {}) };
  let artifact: ArtifactRef = delta.artifact;
  if (change.entry) {
    const tmp = await tempDir('ferry-hostile-unpack-');
    try {
      await mkdir(join(tmp.path, 'x'));
      await extract({ file: artifactFile, cwd: join(tmp.path, 'x') });
      const entries = new Map<string, Buffer>();
      for (const name of readdirSync(join(tmp.path, 'x'))) entries.set(name, await readFile(join(tmp.path, 'x', name)));
      entries.set(op.entry.path, change.entry);
      await rm(artifactFile, { force: true });
      await packEntries(entries, artifactFile);
    } finally {
      await tmp.cleanup();
    }
    newOp.entry = { path: op.entry.path, size: change.entry.length, sha256: sha256(change.entry) };
    const d = await digestFile(artifactFile, CHUNK_SIZE);
    artifact = { path: delta.artifact.path, size: d.size, sha256: d.sha256, chunkSize: CHUNK_SIZE, chunks: d.chunks };
  }
  const manifest = await resignManifest(repo.repo, version, [repo.releaseKey], (m) => {
    const dd = m.targets[target]!.deltas.find((x) => x.from === from)!;
    dd.artifact = artifact;
    dd.ops = dd.ops.map((o) => (o.path === change.path ? newOp : o));
  });
  return { manifest, op: newOp, artifact };
}
