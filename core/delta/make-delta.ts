// Making a per-file delta between two release trees (publisher side; ARCHITECTURE.md "Artifacts
// and deltas"). Each file of the new tree becomes an op — `copy` when some old file has the same
// hash (unchanged or renamed), `patch` (bsdiff against the old file at the same path) or `whole`
// (the new file brotli-compressed), whichever of the last two is smaller. Each symlink of the new
// tree becomes a `link` op carrying its signed target, whatever the old tree held there.
// core/delta/apply-delta.ts carries the ops out on the device.

import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createBrotliCompress, constants as zlib } from 'node:zlib';
import { sha256File } from '../io/hash.ts';
import { packFiles } from '../publish/archive.ts';
import { isLink, type DeltaOp, type FileEntry, type FileRef, type TreeEntry } from '../trust/metadata.ts';
import type { Patcher } from '../ports/patcher.ts';
import { writeFerryPatch } from './patch-encode.ts';

async function brotliFile(src: string, dst: string, size: number): Promise<void> {
  // Quality 11 with a 16 MiB window is brotli's best; above 16 MiB it gets slow, so 9.
  await pipeline(
    createReadStream(src),
    createBrotliCompress({
      params: {
        [zlib.BROTLI_PARAM_QUALITY]: size > 16 * 1024 * 1024 ? 9 : 11,
        [zlib.BROTLI_PARAM_LGWIN]: 24,
        [zlib.BROTLI_PARAM_SIZE_HINT]: size,
      },
    }),
    createWriteStream(dst, { flags: 'wx' }),
  );
}

export interface MadeDelta {
  ops: DeltaOp[];
  /** The delta artifact: an uncompressed tar of the op entries (each already compressed). */
  artifact: string;
}

/** Builds the ops and the delta artifact turning `oldDir` (with `oldFiles`) into `newDir`. */
export async function makeDelta(input: {
  oldDir: string;
  oldFiles: TreeEntry[];
  newDir: string;
  newFiles: TreeEntry[];
  workDir: string;
  outFile: string;
  patcher: Patcher;
}): Promise<MadeDelta> {
  const { oldDir, oldFiles, newDir, newFiles, workDir, patcher } = input;
  // Only regular files are bases: a link has no bytes to copy or patch from.
  const oldRegular = oldFiles.filter((f): f is FileEntry => !isLink(f));
  const oldByPath = new Map(oldRegular.map((f) => [f.path, f]));
  const oldByHash = new Map<string, FileEntry>();
  for (const f of oldRegular) if (!oldByHash.has(f.sha256)) oldByHash.set(f.sha256, f);
  await mkdir(workDir, { recursive: true });

  const ops: DeltaOp[] = [];
  const entryNames: string[] = [];
  for (const [i, file] of newFiles.entries()) {
    if (isLink(file)) {
      ops.push({ op: 'link', path: file.path, target: file.target });
      continue;
    }
    const same = oldByPath.get(file.path);
    const copyFrom = same?.sha256 === file.sha256 ? same : oldByHash.get(file.sha256);
    if (copyFrom) {
      ops.push({ op: 'copy', path: file.path, from: copyFrom.path, sha256: file.sha256 });
      continue;
    }
    // bsdiff first: when its patch is under an eighth of the file, brotli (a whole-file
    // candidate that rarely compresses 8x, and the slow one at quality 11) cannot win; skip it.
    let patchSize = Infinity;
    const patchName = `${i}.bsdiff`;
    if (same && same.size > 0 && file.size > 0) {
      await writeFerryPatch(await patcher.diff(join(oldDir, same.path), join(newDir, file.path)), join(workDir, patchName));
      patchSize = (await stat(join(workDir, patchName))).size;
    }
    const wholeName = `${i}.br`;
    let entryName = patchName;
    if (patchSize * 8 >= file.size) {
      await brotliFile(join(newDir, file.path), join(workDir, wholeName), file.size);
      if ((await stat(join(workDir, wholeName))).size <= patchSize) entryName = wholeName;
    }
    const entryPath = join(workDir, entryName);
    const entry: FileRef = { path: entryName, size: (await stat(entryPath)).size, sha256: await sha256File(entryPath) };
    entryNames.push(entryName);
    ops.push(entryName === wholeName
      ? { op: 'whole', path: file.path, sha256: file.sha256, entry }
      : { op: 'patch', path: file.path, from: same!.path, baseSha256: same!.sha256, sha256: file.sha256, entry });
  }
  await packFiles(workDir, entryNames, input.outFile, false);
  return { ops, artifact: input.outFile };
}
