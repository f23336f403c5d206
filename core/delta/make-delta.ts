// Making a per-file delta between two release trees (publisher side; ARCHITECTURE.md "Artifacts
// and deltas"), in the 'pack' layout (core/trust/metadata.ts): a file of the new tree that the old
// tree holds at the same path with the same hash gets no op (the device copies it, checking the
// signed hash); any other file becomes an op — `copy` when some old file has the same hash (a
// rename), `patch` against the old file at the same path (a FERRYBD1 patch from bsdiff's matcher,
// or with `patchFrom` a zstd-from entry where that is smaller) or `whole` (the new file
// brotli-compressed), whichever of the last two is smaller. A new file with no same-path
// predecessor may be given a base at another path (`bases`): a container image's changed layer
// is a new blob name, and its base is the old layer at the same position (core/publish/publish.ts);
// the op's `from` then names that path, which the device reads and hash-checks as for any patch.
// Symlinks get no op: the device makes
// them from the signed file list. The artifact is the ops' entries concatenated, no framing: each
// op names its entry's {offset, size}, and the artifact's size, hash and chunk hashes are signed.
// Small files' entries may instead share one FERRYSB1 solid block (core/delta/solid-format.ts), one
// brotli stream over all of them that each of their ops names, kept when it is smaller than their
// own entries side by side.
// The x86-64 branch filter is decided here: when the old and the new file are both ELF x86-64
// (isElfX86_64), bsdiff also runs on filtered copies of both (core/delta/x86-filter.ts), and when
// that patch is the smaller it is kept, with filter 1 in its header, which the device undoes
// (core/delta/patch-apply.ts). Such a patch keeps an entry of its own: a FERRYSB1 member carries
// no filter. A far pair (a patch of an eighth of the file or more) is also matched in small
// windows (FINE_DIFF_WINDOWS, core/delta/diff-windows.ts) and the smaller of the two patches kept.
// Above quality 7 the candidates (patch, x86, fine, whole) are first compressed at 7 only for their
// size, and only those near the smallest are encoded at the publisher's quality
// (core/delta/pick-candidates.ts): quality 11 is ~2-3 s per MB of binary.
// core/delta/apply-delta.ts carries the ops out on the device.

import { mkdir, open, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { brotliCompress } from 'node:zlib';
import { join } from 'node:path';
import { appendPack, type PackWriter } from './delta-pack.ts';
import { encodeFerryPatch, writeFerryPatch } from './patch-encode.ts';
import { ESTIMATE_MARGIN, estimateQuality, pickCandidates } from './pick-candidates.ts';
import { writeZstdFromPatch } from './zstd-from.ts';
import { brotliBestOptions, compressedFileSize, compressFileBest, DEFAULT_QUALITY } from '../io/brotli.ts';
import { encodeSolid, SOLID_ID_BYTES, SOLID_MAX_DECODED, SOLID_MAX_FILE, writeSolidHeader, type SolidInput } from './solid-format.ts';
import type { RawPatch } from './raw-patch.ts';
import { FILTER_NONE, FILTER_X86, type PatchFilter } from './patch-format.ts';
import { isElfX86_64, x86FilterWhole } from './x86-filter.ts';
import { FINE_DIFF_WINDOWS, type WindowOptions } from './diff-windows.ts';
import { isLink, type DeltaOp, type FileEntry, type TreeEntry } from '../trust/metadata.ts';
import type { Patcher } from '../ports/patcher.ts';

const compress = promisify(brotliCompress);

/**
 * The new bytes of small files the publisher holds at once while it decides on a solid block
 * (their RawPatches, mostly zeros, are larger than what the block decodes to).
 */
const SOLID_HOLD_MAX = 16 * 1024 * 1024;

/** A small file's entry, kept out of the pack until the end: it goes into a solid block, or on its own. */
interface SolidCandidate {
  op: Extract<DeltaOp, { op: 'patch' | 'whole' }>;
  member: SolidInput;
  /** Its own entry (FERRYBD1 patch or brotli whole file) and that entry's size. */
  alone: string;
  aloneSize: number;
}

/** One entry the publisher tries for a changed file. */
interface Candidate {
  /** What it is, as told to onCandidate: 'patch', 'x86', 'fine', 'zstd-from' or 'whole'. */
  label: string;
  /** Its file in the work folder, once written. */
  name: string;
  kind: 'patch' | 'zstd-from' | 'whole';
  /** The filter a FERRYBD1 patch was diffed through. */
  filter: PatchFilter;
  /** A patch's streams, while it may still be encoded or join a solid block. */
  raw?: RawPatch;
  /** Bytes: of the entry written as `name` when `final`, else an estimate at the fast quality. */
  size: number;
  final: boolean;
}

/** What onCandidate is told: a candidate entry's size for the file at `path`, compressed at `quality`. */
export interface CandidateSize {
  path: string;
  candidate: string;
  quality: number;
  size: number;
}

/**
 * The smallest of a file's entries at the publisher's quality; the first of equals, except that
 * the whole file wins a tie (the device then needs no base).
 */
function smallestEntry(entries: readonly Candidate[]): Candidate {
  let best = entries[0]!;
  for (const c of entries.slice(1)) if (c.size < best.size || (c.kind === 'whole' && c.size <= best.size)) best = c;
  return best;
}

export interface MadeDelta {
  ops: DeltaOp[];
  /** The delta artifact: the op entries (each already compressed) concatenated. */
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
  /**
   * Also try a zstd-from entry per changed file (the new file compressed with the old one as
   * zstd's dictionary; core/delta/zstd-from.ts) and keep it where it is smallest. Only devices on
   * Node >= 22.15 can apply one (others fall back to the full artifact), so a publisher opts in.
   */
  patchFrom?: boolean;
  /** Brotli quality of whole-file entries and patch streams (core/io/brotli.ts; default 11, the smallest). */
  quality?: number;
  /**
   * New path → old path to patch from when the old tree has no file at the new path (an image's
   * layer i of the new manifest → layer i of the old). Ignored where a same-path file exists, or
   * the named old file is not a regular file of `oldFiles`.
   */
  bases?: ReadonlyMap<string, string>;
  /**
   * Told every size measured for a candidate entry: an estimate at the fast quality, or the entry
   * at the publisher's (core/delta/pick-candidates.ts). For a log, a bench or a test.
   */
  onCandidate?: (c: CandidateSize) => void;
}): Promise<MadeDelta> {
  const { oldDir, oldFiles, newDir, newFiles, workDir, patcher } = input;
  // Only regular files are bases: a link has no bytes to copy or patch from.
  const oldRegular = oldFiles.filter((f): f is FileEntry => !isLink(f));
  const oldByPath = new Map(oldRegular.map((f) => [f.path, f]));
  const oldByHash = new Map<string, FileEntry>();
  for (const f of oldRegular) if (!oldByHash.has(f.sha256)) oldByHash.set(f.sha256, f);
  await mkdir(workDir, { recursive: true });
  const quality = input.quality ?? DEFAULT_QUALITY;
  const estimateQ = estimateQuality(quality);

  const ops: DeltaOp[] = [];
  const candidates: SolidCandidate[] = [];
  let held = 0;
  let blockDecoded = 0;
  const pack = await appendPack(input.outFile);
  try {
    for (const [i, file] of newFiles.entries()) {
      if (isLink(file)) continue; // made from the signed file list
      const atPath = oldByPath.get(file.path);
      if (atPath?.sha256 === file.sha256) continue; // implied: copied from the same path
      const baseAt = atPath ? undefined : input.bases?.get(file.path);
      const same = atPath ?? (baseAt === undefined ? undefined : oldByPath.get(baseAt));
      const copyFrom = oldByHash.get(file.sha256);
      if (copyFrom) {
        ops.push({ op: 'copy', path: file.path, from: copyFrom.path, sha256: file.sha256 });
        continue;
      }
      let zstdFrom: Candidate | undefined;
      // Only a small file's patch may go into the solid block as its RawPatch (below).
      const mayJoinBlock = file.size <= SOLID_MAX_FILE && (same?.size ?? 0) <= SOLID_MAX_FILE;
      // Each candidate entry is measured (at a fast quality when the publisher's is slow:
      // core/delta/pick-candidates.ts); those near the smallest are then encoded for real.
      const tried: Candidate[] = [];
      const tell = (c: Candidate, atQuality: number) => input.onCandidate?.({ path: file.path, candidate: c.label, quality: atQuality, size: c.size });
      const measurePatch = async (raw: RawPatch, filter: PatchFilter, label: string, name: string): Promise<void> => {
        const c: Candidate = { label, name, kind: 'patch', filter, raw, size: 0, final: estimateQ === undefined };
        c.size = c.final ? await writeFerryPatch(raw, join(workDir, name), { quality: input.quality, filter }) : (await encodeFerryPatch(raw, { quality: estimateQ, filter })).size;
        tell(c, estimateQ ?? quality);
        tried.push(c);
        // Only a candidate that may still be encoded or join the solid block keeps its streams
        // (~80 MB for a 42 MB binary).
        const keep = new Set(pickCandidates(tried.map((t) => t.size), estimateQ === undefined ? 0 : ESTIMATE_MARGIN));
        tried.forEach((t, k) => { if (!keep.has(k) || (t.final && !mayJoinBlock)) t.raw = undefined; });
      };
      const bestPatch = () => tried.reduce<Candidate | undefined>((b, c) => (b && b.size <= c.size ? b : c), undefined);
      if (same && same.size > 0 && file.size > 0) {
        const oldFile = join(oldDir, same.path);
        const newFile = join(newDir, file.path);
        const diffPair = (pairFilter: PatchFilter, windows?: WindowOptions) => (pairFilter === FILTER_X86 ? diffFiltered(patcher, oldFile, newFile, join(workDir, `${i}`), windows) : patcher.diff(oldFile, newFile, windows));
        await measurePatch(await diffPair(FILTER_NONE), FILTER_NONE, 'patch', `${i}.patch`);
        // An ELF x86-64 pair is also diffed through the branch filter, and the smaller kept: it
        // wins on a Go binary (esbuild: −2.7% close, −5.6% far) and loses on a Rust shared object
        // (lightningcss 1.29.2 → 1.29.3: 389,216 bytes against 364,628).
        if ((await isElfX86_64File(oldFile)) && (await isElfX86_64File(newFile))) {
          await measurePatch(await diffPair(FILTER_X86), FILTER_X86, 'x86', `${i}.x86.patch`);
        }
        // A far pair (a patch of an eighth of the file or more) is matched again in small windows
        // (FINE_DIFF_WINDOWS: smaller on such pairs, larger on close ones), and the smaller kept.
        // An estimate is above the entry it stands for, so this tries fine windows at least
        // wherever the entry itself would.
        const best = bestPatch()!;
        if (best.size * 8 >= file.size && Math.max(file.size, same.size) > FINE_DIFF_WINDOWS.window) {
          await measurePatch(await diffPair(best.filter, FINE_DIFF_WINDOWS), best.filter, 'fine', `${i}.fine.patch`);
        }
        if (input.patchFrom) {
          const name = `${i}.zf`;
          zstdFrom = { label: 'zstd-from', name, kind: 'zstd-from', filter: FILTER_NONE, size: await writeZstdFromPatch(oldFile, newFile, join(workDir, name)), final: true };
          tell(zstdFrom, quality);
        }
      }
      // When the best patch is under an eighth of the file, brotli (a whole-file candidate that
      // rarely compresses 8x, and the slow one at quality 11) cannot win; skip it.
      const smallestPatch = Math.min(bestPatch()?.size ?? Infinity, zstdFrom?.size ?? Infinity);
      if (smallestPatch * 8 >= file.size) {
        // The only candidate (a file with no base) is encoded at once: there is nothing to rank.
        const whole: Candidate = { label: 'whole', name: `${i}.br`, kind: 'whole', filter: FILTER_NONE, size: 0, final: estimateQ === undefined || smallestPatch === Infinity };
        if (whole.final) await compressFileBest(join(newDir, file.path), join(workDir, whole.name), file.size, input.quality);
        whole.size = whole.final ? (await stat(join(workDir, whole.name))).size : await compressedFileSize(join(newDir, file.path), file.size, estimateQ!);
        tell(whole, whole.final ? quality : estimateQ!);
        tried.push(whole);
      }
      // The candidates near the smallest estimate are encoded at the publisher's quality, in turn.
      const near = new Set(pickCandidates(tried.map((c) => c.size), estimateQ === undefined ? 0 : ESTIMATE_MARGIN));
      tried.forEach((c, k) => { if (!near.has(k)) c.raw = undefined; });
      const real: Candidate[] = [];
      for (const [k, c] of tried.entries()) {
        if (!near.has(k)) continue;
        if (!c.final) {
          if (c.kind === 'whole') {
            await compressFileBest(join(newDir, file.path), join(workDir, c.name), file.size, input.quality);
            c.size = (await stat(join(workDir, c.name))).size;
          } else {
            c.size = await writeFerryPatch(c.raw!, join(workDir, c.name), { quality: input.quality, filter: c.filter });
            if (!mayJoinBlock) c.raw = undefined; // not held through the next candidate's encoding
          }
          c.final = true;
          tell(c, quality);
        }
        real.push(c);
      }
      if (zstdFrom) real.push(zstdFrom);
      const chosen = smallestEntry(real);
      for (const c of tried) if (c !== chosen) c.raw = undefined;
      const placeholder = { offset: 0, size: 0 };
      const op: SolidCandidate['op'] = chosen.kind === 'whole'
        ? { op: 'whole', path: file.path, sha256: file.sha256, entry: placeholder }
        : { op: 'patch', path: file.path, from: same!.path, baseSha256: same!.sha256, sha256: file.sha256, entry: placeholder };
      ops.push(op);
      const aloneSize = chosen.size;
      // A small file (and a small base) may join the solid block; a zstd-from entry stays alone.
      const small = mayJoinBlock && held + file.size <= SOLID_HOLD_MAX;
      const member: SolidInput | undefined = !small ? undefined
        : chosen.kind === 'whole' ? { kind: 'whole', sha256: file.sha256, data: await readFile(join(newDir, file.path)) }
          : chosen.kind === 'patch' && chosen.raw && chosen.filter === FILTER_NONE ? { kind: 'patch', sha256: file.sha256, raw: chosen.raw } : undefined;
      const decoded = member ? encodeSolid([member]).length : Infinity;
      if (member && blockDecoded + decoded <= SOLID_MAX_DECODED) {
        candidates.push({ op, member, alone: join(workDir, chosen.name), aloneSize });
        held += file.size;
        blockDecoded += decoded;
      } else {
        op.entry = await pack.add(join(workDir, chosen.name));
      }
    }
    await packSmallFiles(candidates, pack, join(workDir, 'solid'), input.quality);
  } finally {
    await pack.close();
  }
  return { ops, artifact: input.outFile };
}

/** Whether the file at `path` starts as an ELF x86-64 file (isElfX86_64 on its first 20 bytes). */
async function isElfX86_64File(path: string): Promise<boolean> {
  const h = await open(path, 'r');
  try {
    const head = Buffer.alloc(20);
    const { bytesRead } = await h.read(head, 0, head.length, 0);
    return isElfX86_64(head.subarray(0, bytesRead));
  } finally {
    await h.close();
  }
}

/**
 * bsdiff of filter(old) → filter(new) (in `windows`, or the patcher's default): both files are written through the x86-64 filter to
 * `prefix`.old-x86 and `prefix`.new-x86 in the work folder, diffed, and removed.
 */
async function diffFiltered(patcher: Patcher, oldFile: string, newFile: string, prefix: string, windows?: WindowOptions): Promise<RawPatch> {
  const oldX86 = `${prefix}.old-x86`;
  const newX86 = `${prefix}.new-x86`;
  try {
    await writeFile(oldX86, x86FilterWhole(await readFile(oldFile), true), { flag: 'wx' });
    await writeFile(newX86, x86FilterWhole(await readFile(newFile), true), { flag: 'wx' });
    return await patcher.diff(oldX86, newX86, windows);
  } finally {
    await rm(oldX86, { force: true });
    await rm(newX86, { force: true });
  }
}

/**
 * Puts the small files' entries into the pack: as one FERRYSB1 solid block (core/delta/solid-format.ts)
 * that every one of their ops names, when that is smaller than their own entries side by side (a
 * per-delta choice, by size), or each on its own.
 */
async function packSmallFiles(all: SolidCandidate[], pack: PackWriter, blockFile: string, quality?: number): Promise<void> {
  // A device finds its member by the first SOLID_ID_BYTES of the sha256 it builds, and takes the
  // first that matches: a second candidate with the same id (the same new bytes at another path,
  // or a prefix shared by chance) keeps an entry of its own, so no op ever meets another's member.
  const ids = new Set<string>();
  const candidates: SolidCandidate[] = [];
  const apart: SolidCandidate[] = [];
  for (const c of all) {
    const id = c.member.sha256.slice(0, 2 * SOLID_ID_BYTES);
    (ids.has(id) ? apart : candidates).push(c);
    ids.add(id);
  }
  for (const c of apart) c.op.entry = await pack.add(c.alone);
  if (candidates.length >= 2) {
    const decoded = encodeSolid(candidates.map((c) => c.member));
    const body = await compress(decoded, brotliBestOptions(decoded.length, quality));
    const block = Buffer.concat([writeSolidHeader(candidates.length, decoded.length), body]);
    if (block.length < candidates.reduce((sum, c) => sum + c.aloneSize, 0)) {
      await writeFile(blockFile, block, { flag: 'wx' });
      const entry = await pack.add(blockFile);
      for (const c of candidates) c.op.entry = entry;
      return;
    }
  }
  for (const c of candidates) c.op.entry = await pack.add(c.alone);
}
