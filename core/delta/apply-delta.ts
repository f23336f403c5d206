// Applying a per-file delta (device side; ARCHITECTURE.md "Artifacts and deltas"). It carries the
// signed ops out: every base file and every output is hashed against the manifest, a patch header
// is checked against the signed target size before the patcher sees it, base files are never read
// through a link, and links are made last from the signed file list (nothing is written through
// one). Both layouts (core/trust/metadata.ts): a 'pack' delta's entries are read in place by range
// from the verified artifact; an old 'tar' delta is unpacked against its signed entry hashes first.
// A regular file with no op is copied from the same path of the base. Near the copy baseline
// (issue 14 item 7): each copy reads its base once (hashing what it writes, or a reflink then one
// hash; by direct system calls, a large file in 1 MiB steps with a yield every few MiB), so does
// each patch (core/delta/patch-apply.ts checks the base in the read that loads it), a FERRYSB1
// block is decoded once for all its members (core/delta/solid-blocks.ts), patches run in parallel
// only as far as a memory budget allows (core/delta/byte-budget.ts), the event loop gets a turn
// every few ms between synchronous steps (LoopTurns), and files are written without an fsync each
// and fsynced together, in parallel, at the end (before core/device/stage.ts renames the tree into
// releases/: SECURITY.md row 18). No process is started unless an old BSDIFF40 entry needs the
// native patcher.
// core/delta/make-delta.ts makes the ops.

import { closeSync, constants, createWriteStream, fchmodSync, fstatSync, openSync, readSync, realpathSync, writeSync } from 'node:fs';
import { chmod, copyFile, link, lstat, mkdir, mkdtemp, open, realpath, rm, stat, symlink } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import { FerryError, fromFsError } from '../errors.ts';
import { expectHash, sha256File } from '../io/hash.ts';
import { extractArchive, type ExpectedFile } from '../io/extract.ts';
import { skipsFsync } from '../io/durable.ts';
import { checkPathSet, linkProblem } from '../io/safe-path.ts';
import { isLink, isPackRange, type DeltaOp, type EntryRef, type FileEntry, type LinkEntry, type TreeEntry } from '../trust/metadata.ts';
import { packRangeStream } from './delta-pack.ts';
import { createBrotliDecoder } from '../io/brotli.ts';
import { BSDIFF40_MAGIC } from './patch-format.ts';
import type { Patcher } from '../ports/patcher.ts';
import { applyPatchEntry, applySolidMember, LARGE_OUTPUT, LARGE_STREAM_CHUNK, OLD_IN_MEMORY_MAX } from './patch-apply.ts';
import { SOLID_MAGIC } from './solid-format.ts';
import { ByteBudget } from './byte-budget.ts';
import { BaseBuffers } from './base-buffers.ts';
import { SolidBlocks } from './solid-blocks.ts';

/** Files written at once: their cost is mostly waiting on the disk. */
const APPLY_CONCURRENCY = 8;
/** The longest stretch the workers run synchronous steps (small copies) before the event loop gets a turn. */
const RUN_WITHOUT_YIELD_MS = 4;

/**
 * Bytes the patches applied at once may hold (ByteBudget, patchMemory): with the 16 MiB bases of
 * OLD_IN_MEMORY_MAX, one large patch at a time, or several small ones. Eight large ones at once
 * took bench/apply's delta update to 138 MiB of RSS (issue 14 item 7: under 100 MiB).
 */
export const PATCH_MEMORY_BUDGET = 24 * 1024 * 1024;

/**
 * What one patch holds in memory, roughly: its base when it is read whole (core/delta/patch-apply.ts
 * OLD_IN_MEMORY_MAX; a larger one is read through a small window), plus its decoders, whose brotli
 * windows grow with the output they have decoded (a diff stream's ≤ 4 MiB since
 * core/delta/patch-encode.ts DIFF_STREAM_MAX_LGWIN, an extra stream's up to 16 MiB, and an older
 * patch's diff stream up to 16 MiB too: counted as the new size, up to 16 MiB), and whose output
 * buffers are LARGE_STREAM_CHUNK each for a large output.
 */
export function patchMemory(baseSize: number, newSize: number): number {
  return (baseSize <= OLD_IN_MEMORY_MAX ? baseSize : 0) + Math.min(newSize, OLD_IN_MEMORY_MAX) + (newSize >= LARGE_OUTPUT ? 2 * LARGE_STREAM_CHUNK : 0);
}

/**
 * The magic of an old bsdiff patch (repositories made before FERRYBD1): core/delta/patch-apply.ts
 * hands it to the native patcher, which holds base and output in memory, so those run one at a time.
 */
const BSDIFF40 = Buffer.from(BSDIFF40_MAGIC, 'latin1');
/** A solid block (core/delta/solid-format.ts): several ops name it, each finding its member by its signed sha256. */
const SOLID = Buffer.from(SOLID_MAGIC, 'latin1');

/** Whether the `size` bytes at `offset` of `file` start with `magic`. */
async function startsWith(range: { file: string; offset: number; size: number }, magic: Buffer): Promise<boolean> {
  if (range.size < magic.length) return false;
  const head = Buffer.alloc(magic.length);
  const h = await open(range.file, 'r');
  try { await h.read(head, 0, head.length, range.offset); } finally { await h.close(); }
  return head.equals(magic);
}

/** Passes bytes through while hashing and counting them; errors past `cap` bytes. */
function hashingCap(cap: number, what: string): Transform & { digest(): { sha256: string; size: number } } {
  const hash = createHash('sha256');
  let size = 0;
  const t = new Transform({
    transform(chunk: Buffer, _enc, done) {
      size += chunk.length;
      if (size > cap) return done(new FerryError('ERR_SIZE', `${what} decompresses past its signed ${cap} bytes`));
      hash.update(chunk);
      done(null, chunk);
    },
  });
  return Object.assign(t, { digest: () => ({ sha256: hash.digest('hex'), size }) });
}

/**
 * The base file `from` under `realBase` (baseDir with every link in it resolved), as a path that
 * reaches a regular file through no symlink at all: a base tree's links (SECURITY.md row 14) are
 * never read through, not even to a file of the same tree. Anything else is a base that is not
 * the signed one (ERR_HASH_MISMATCH: the caller falls back to the full artifact).
 */
async function regularBaseFile(realBase: string, from: string): Promise<string> {
  const path = join(realBase, from);
  const resolved = await realpath(path).catch(() => null);
  if (resolved !== path || !(await lstat(path)).isFile()) throw new FerryError('ERR_HASH_MISMATCH', `base file ${from} is missing or is not a regular file`);
  return path;
}

const CREATE_NEW = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

/** Reflink errors that say "this filesystem cannot", after which plain copies are used. */
const NO_REFLINK = new Set(['EOPNOTSUPP', 'ENOTSUP', 'EXDEV', 'EINVAL', 'ENOSYS', 'ENOTTY', 'EBADF']);

/**
 * A copy's read buffer (copyHashed), shared: each chunk is read, hashed and written with no await
 * between. Synchronous 1 MiB steps copied 48 MB in ~45 ms where async 256 KiB round trips through
 * the thread pool took ~140 ms (bench/apply's 50 MB tree, issue 14 item 7).
 */
const COPY_CHUNK = 1024 * 1024;
const copyBuffer = Buffer.allocUnsafeSlow(COPY_CHUNK);

/**
 * Turns of the event loop for the synchronous steps of a delta (small copies, chunks of large
 * ones). A worker chaining synchronous copies through microtasks alone never lets the loop run:
 * the patches' decoded chunks and reads (the longest path of the delta) and, in `ferry agent`,
 * peers and status waited behind a whole tree of small copies (~200 ms for lodash's 1,037). Every
 * step calls maybeYield; once RUN_WITHOUT_YIELD_MS have passed since this turn began, the step
 * waits for the next turn, which all the workers share, so one turn stays near that long however
 * many workers run.
 */
class LoopTurns {
  private began = performance.now();
  private next: Promise<void> | undefined;

  maybeYield(): Promise<void> | undefined {
    if (performance.now() - this.began < RUN_WITHOUT_YIELD_MS) return undefined;
    return (this.next ??= new Promise<void>((resume) => setImmediate(() => {
      this.next = undefined;
      this.began = performance.now();
      resume();
    })));
  }
}

/**
 * Copies `src` to `dst` (which must not exist) reading `src` once, and returns the sha256 of the
 * bytes that stay in `dst`: a reflink (no data copied) then one hash of `dst`, or, where the
 * filesystem cannot reflink, one read that hashes and writes the same buffer, chunk by chunk.
 * Neither path is opened through a link at its last component (O_NOFOLLOW; `src` was resolved by
 * regularBaseFile), and `dst` is created new (O_EXCL).
 */
async function copyHashed(src: string, dst: string, reflink: { ok: boolean }, turns: LoopTurns): Promise<string> {
  if (reflink.ok) {
    try {
      await copyFile(src, dst, constants.COPYFILE_EXCL | constants.COPYFILE_FICLONE_FORCE);
      return await sha256File(dst);
    } catch (err) {
      if (!NO_REFLINK.has((err as NodeJS.ErrnoException).code ?? '')) throw err;
      reflink.ok = false;
      await rm(dst, { force: true });
    }
  }
  const hash = createHash('sha256');
  let from = -1;
  let to = -1;
  try {
    from = openSync(src, constants.O_RDONLY | constants.O_NOFOLLOW);
    to = openSync(dst, CREATE_NEW, 0o600);
    for (let at = 0; ;) {
      // Read, hash and write one chunk synchronously: the bytes hashed are the bytes written, and
      // the one shared buffer is free again before anything else runs.
      const n = readSync(from, copyBuffer, 0, copyBuffer.length, at);
      if (n === 0) break;
      const bytes = copyBuffer.subarray(0, n);
      hash.update(bytes);
      for (let done = 0; done < n;) done += writeSync(to, bytes, done, n - done);
      at += n;
      // A long file does not hold the event loop (the agent serves peers from it) past its turn.
      await turns.maybeYield();
    }
  } finally {
    if (from >= 0) closeSync(from);
    if (to >= 0) closeSync(to);
  }
  return hash.digest('hex');
}

/**
 * Unchanged files up to this size are copied by copySmall: synchronous reads and writes of one
 * buffer, no round trip through the thread pool per step. A patch bump of a 1,000-file tree copies
 * ~1,000 of them; each async step (realpath, lstat, two opens, reads, write, two closes, chmod)
 * waited on the pool, which made the copies cost more than extracting the whole tree did
 * (bench/apply, issue 14 item 7).
 */
const SMALL_COPY = 64 * 1024;
const smallBuffer = Buffer.allocUnsafeSlow(SMALL_COPY + 1);

/**
 * Copies the base file `from` (under `realBase`, reached through no link: the same rule as
 * regularBaseFile) to `target` (which must not exist) when it is exactly the signed `file`: its
 * signed size (one read of size + 1 bytes tells a longer file) and sha256 (ERR_HASH_MISMATCH
 * otherwise, before `target` is created). The copy gets the signed mode before it is closed.
 * Written, not fsynced: the caller syncs every file together. Synchronous from start to end, so
 * the one shared buffer is never used by two copies at once.
 */
function copySmall(realBase: string, from: string, target: string, file: FileEntry, sha256: string): void {
  const path = join(realBase, from);
  let resolved: string | null;
  try { resolved = realpathSync.native(path); } catch { resolved = null; }
  if (resolved !== path) throw new FerryError('ERR_HASH_MISMATCH', `base file ${from} is missing or is not a regular file`);
  let n: number;
  const src = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    if (!fstatSync(src).isFile()) throw new FerryError('ERR_HASH_MISMATCH', `base file ${from} is missing or is not a regular file`);
    n = 0;
    for (let got = -1; got !== 0 && n < smallBuffer.length;) n += got = readSync(src, smallBuffer, n, smallBuffer.length - n, n);
  } finally {
    closeSync(src);
  }
  if (n !== file.size) throw new FerryError('ERR_HASH_MISMATCH', `base file ${from} (copied to ${file.path}) is not its signed ${file.size} bytes`);
  const bytes = smallBuffer.subarray(0, n);
  expectHash(createHash('sha256').update(bytes).digest('hex'), sha256, `base file ${from} (copied to ${file.path})`);
  const out = openSync(target, CREATE_NEW, 0o600);
  try {
    for (let done = 0; done < n;) done += writeSync(out, bytes, done, n - done);
    fchmodSync(out, file.mode);
  } finally {
    closeSync(out);
  }
}

/** Files fsynced at once, after all are written: the disk sees one batch instead of a flush per file. */
const FSYNC_CONCURRENCY = 32;

/** Fsyncs every file in `paths`, a batch at a time, all after they were written (site 'delta.file'). */
async function fsyncAll(paths: string[]): Promise<void> {
  if (skipsFsync('delta.file')) return;
  let next = 0;
  const worker = async () => {
    while (next < paths.length) {
      const h = await open(paths[next++]!, 'r');
      try { await h.sync(); } finally { await h.close(); }
    }
  };
  await Promise.all(Array.from({ length: Math.min(FSYNC_CONCURRENCY, paths.length) }, worker));
}

/** The regular files of a signed list by path, their sha256 (applyDelta's `baseHashes`). */
export function baseHashes(files: readonly TreeEntry[]): Map<string, string> {
  return new Map(files.filter((f) => !isLink(f)).map((f) => [f.path, (f as { sha256: string }).sha256]));
}

/**
 * The signed hash a patch op's base file must have: its own `baseSha256`, else (a slim op) the base
 * release's signed hash of `from`. A `from` the base list lacks or holds as a link is
 * ERR_HASH_MISMATCH (the caller falls back to the full artifact).
 */
export function signedBaseHash(op: Extract<DeltaOp, { op: 'patch' }>, hashes: ReadonlyMap<string, string> | undefined): string {
  if (op.baseSha256 !== undefined) return op.baseSha256;
  const signed = hashes?.get(op.from);
  if (signed === undefined) throw new FerryError('ERR_HASH_MISMATCH', `base file ${op.from} is not a regular file of the base release's signed list`);
  return signed;
}

/** An op that writes a file (links are made from the signed list). */
type FileOp = Exclude<DeltaOp, { op: 'link' }>;

/**
 * Builds the signed tree `targetFiles` in `outDir` (empty, private) from `baseDir` and a delta
 * artifact (already checked against its signed size and hashes). Throws ERR_HASH_MISMATCH when a
 * base file is not the signed base, ERR_PATCH when a patch or a compressed entry is bogus, ERR_IO
 * when the base cannot be read: the caller then falls back to the full artifact
 * (core/update/delta-fallback.ts). Every file written is fsynced before this returns; folders are
 * the caller's to fsync (stage.ts, before its rename).
 */
export async function applyDelta(input: {
  baseDir: string;
  ops: DeltaOp[];
  targetFiles: TreeEntry[];
  artifact: string;
  outDir: string;
  workDir: string;
  patcher: Patcher;
  /**
   * Hard-link unchanged files from `baseDir` instead of copying them (only when the mode is the
   * same): fast and small, but the two releases then share those files, so damage to one (an app
   * writing into its own folder, a bad sector) is damage to both. Off unless a device opts in.
   */
  linkUnchanged?: boolean;
  /** Hears each target file's size once it is built and checked (for progress). */
  onFileWritten?: (bytes: number) => void;
  /** The memory budget of the patches applied at once (default: a budget of PATCH_MEMORY_BUDGET); passed in to see its peak. */
  budget?: ByteBudget;
  /** Where the delta's FERRYSB1 blocks are decoded, once each (default: a new SolidBlocks); passed in to see its decodes. */
  solidBlocks?: SolidBlocks;
  /**
   * The base release's signed hashes, path → sha256 of each regular file (baseHashes): what a slim
   * patch op (no baseSha256, issue 14 item 5) checks its base file against.
   */
  baseHashes?: ReadonlyMap<string, string>;
}): Promise<void> {
  const { ops, targetFiles, outDir, patcher } = input;
  const byPath = new Map(targetFiles.map((f) => [f.path, f]));
  // The signed list came through parseManifestPayload, which checked this; checked again because
  // the links are made from it here (SECURITY.md row 14).
  checkPathSet(targetFiles.map((f) => f.path), 'signed file list');
  const unsafe = linkProblem(targetFiles);
  if (unsafe) throw new FerryError('ERR_UNSAFE_ARCHIVE', `signed file list: ${unsafe.path} is a symlink that ${unsafe.why}`);
  // A 'tar' delta lists every link as an op: each must be exactly the signed link.
  for (const op of ops) {
    if (op.op !== 'link') continue;
    const signed = byPath.get(op.path);
    if (!signed || !isLink(signed) || signed.target !== op.target) throw new FerryError('ERR_SCHEMA', `delta link op for ${op.path} does not match a signed symlink`);
  }
  const baseDir = await realpath(input.baseDir).catch((err) => { throw fromFsError(err, `resolving ${input.baseDir}`); });
  // A fresh private folder of our own: nothing planted at a predictable name (a link at p<i>,
  // b<i> or e/) can redirect a write, whatever the caller's workDir held.
  await mkdir(input.workDir, { recursive: true });
  const workDir = await mkdtemp(join(input.workDir, 'delta-'));
  const entriesDir = join(workDir, 'e');
  await mkdir(entriesDir);

  // An old 'tar' delta's entries are unpacked against their signed sizes and hashes before any is
  // used. A 'pack' delta's entries are ranges of the artifact, read where they are.
  const expected = new Map<string, ExpectedFile>();
  for (const op of ops) if ((op.op === 'patch' || op.op === 'whole') && !isPackRange(op.entry)) expected.set(op.entry.path, { size: op.entry.size, sha256: op.entry.sha256, mode: 0o600 });
  if (expected.size > 0) await extractArchive(input.artifact, entriesDir, expected);
  const where = (entry: EntryRef): { file: string; offset: number; size: number } => (isPackRange(entry)
    ? { file: input.artifact, offset: entry.offset, size: entry.size }
    : { file: join(entriesDir, entry.path), offset: 0, size: entry.size });

  // Every signed regular file an op does not build is copied from the same path of the base.
  const work: FileOp[] = [];
  const listed = new Set<string>();
  for (const op of ops) {
    if (op.op === 'link') continue;
    const file = byPath.get(op.path);
    if (!file || isLink(file) || listed.has(op.path)) throw new FerryError('ERR_SCHEMA', `delta op for ${op.path} has no signed regular file, or is not its only op`);
    listed.add(op.path);
    work.push(op);
  }
  for (const file of targetFiles) if (!isLink(file) && !listed.has(file.path)) work.push({ op: 'copy', path: file.path, from: file.path, sha256: file.sha256 });
  // Each file complete (written, checked, given its mode), to fsync together at the end.
  const written: string[] = [];
  const made = new Set<string>(['.']);
  const parentOf = async (target: string): Promise<void> => {
    const dir = dirname(target);
    if (made.has(dir)) return;
    await mkdir(dir, { recursive: true });
    made.add(dir);
  };
  const reflink = { ok: true };
  const turns = new LoopTurns();
  const budget = input.budget ?? new ByteBudget(PATCH_MEMORY_BUDGET);
  const baseBuffers = new BaseBuffers(OLD_IN_MEMORY_MAX);
  // Every op naming a range, counted: a FERRYSB1 block several ops name is decoded by the first
  // and held until the last is done (core/delta/solid-blocks.ts).
  const solidBlocks = input.solidBlocks ?? new SolidBlocks();
  for (const op of work) if (op.op === 'patch' || op.op === 'whole') solidBlocks.expect(where(op.entry));

  // Only one old bsdiff at a time: bspatch holds the whole base and output in memory.
  let patching: Promise<void> = Promise.resolve();
  const oneAtATime = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = patching.then(fn);
    patching = run.then(() => undefined, () => undefined);
    return run;
  };
  const applyOp = async (op: FileOp, i: number): Promise<void> => {
    const file = byPath.get(op.path) as FileEntry;
    const target = join(outDir, op.path);
    let linked = false;
    try {
      await parentOf(target);
      switch (op.op) {
        case 'copy': {
          if (!input.linkUnchanged && file.size <= SMALL_COPY) {
            // Most files of a tree are small and unchanged: copied with a few direct system calls,
            // checked and given their mode before they are closed (copySmall).
            copySmall(baseDir, op.from, target, file, op.sha256);
            written.push(target);
            input.onFileWritten?.(file.size);
            return;
          }
          const base = await regularBaseFile(baseDir, op.from);
          if (input.linkUnchanged && ((await stat(base)).mode & 0o777) === file.mode) {
            // Release trees are immutable, so an unchanged file is shared by a hard link: no data
            // written (and nothing to fsync: the base's bytes are durable already). Its bytes are
            // still hashed against the signed list before they are used.
            await link(base, target);
            expectHash(await sha256File(target), op.sha256, `base file ${op.from} (linked as ${op.path})`);
            linked = true;
            break;
          }
          expectHash(await copyHashed(base, target, reflink, turns), op.sha256, `base file ${op.from} (copied to ${op.path})`);
          break;
        }
        case 'patch': {
          const base = await regularBaseFile(baseDir, op.from);
          // The base's signed hash: the op's own, or for a slim op the base release's signed list's.
          const baseSha256 = signedBaseHash(op, input.baseHashes);
          const patch = where(op.entry);
          const baseSize = (await stat(base)).size;
          // The base is checked against baseSha256 by applyPatchEntry, first thing, in the read
          // that loads it (read once, not hashed here and read again there), whatever the entry's
          // kind (FERRYBD1, a FERRYSB1 member, zstd-from, BSDIFF40), and the patch runs only while
          // the memory it holds fits the budget beside the others'.
          const run = () => budget.use(patchMemory(baseSize, file.size), () => applyPatchEntry({ baseFile: base, baseSize, baseSha256, baseBuffers, solidBlocks, patch, outFile: target, newSize: file.size, legacy: patcher, member: op.sha256 }));
          // FERRYBD1 (and zstd-from) are applied in process, several at once; an old BSDIFF40
          // entry goes to the native patcher, which holds base and output in memory: one at a time.
          const got = (await startsWith(patch, BSDIFF40)) ? await oneAtATime(run) : await run();
          try {
            if (got.size !== file.size) throw new FerryError('ERR_SIZE', `patched ${op.path} is ${got.size} bytes, signed ${file.size}`);
            expectHash(got.sha256, op.sha256, `patched ${op.path}`);
          } catch (err) {
            // Bytes that are not the signed ones do not stay, not even in staging.
            await rm(target, { force: true });
            throw err;
          }
          break;
        }
        case 'whole': {
          if (await startsWith(where(op.entry), SOLID)) {
            const got = await applySolidMember({ patch: where(op.entry), member: op.sha256, outFile: target, newSize: file.size, solidBlocks });
            try {
              expectHash(got.sha256, op.sha256, op.path);
            } catch (err) {
              await rm(target, { force: true });
              throw err;
            }
            break;
          }
          const h = await open(target, CREATE_NEW, 0o600);
          await h.close();
          const counter = hashingCap(file.size, op.path);
          // Signed bytes that are not brotli are a bogus delta entry (ERR_PATCH), not an I/O
          // failure of this device: told apart by the stream that failed.
          const inflate = createBrotliDecoder();
          let undecodable: unknown;
          inflate.on('error', (err) => { undecodable ??= err; });
          await pipeline(packRangeStream(where(op.entry).file, where(op.entry)), inflate, counter, createWriteStream(target, { flags: 'r+' })).catch((err: unknown) => {
            if (err === undecodable) throw new FerryError('ERR_PATCH', `the delta's compressed bytes for ${op.path} do not decode: ${(err as Error).message}`, { cause: err });
            throw err;
          });
          const got = counter.digest();
          if (got.size !== file.size) throw new FerryError('ERR_SIZE', `${op.path} decompressed to ${got.size} bytes, signed ${file.size}`);
          expectHash(got.sha256, op.sha256, op.path);
          break;
        }
        default: {
          const never: never = op;
          throw new FerryError('ERR_INTERNAL', `unknown delta op ${JSON.stringify(never)}`);
        }
      }
      await chmod(target, file.mode);
      // Linked files are the base's own bytes, durable already: nothing to fsync.
      if (!linked) written.push(target);
      input.onFileWritten?.(file.size);
    } catch (err) {
      if (err instanceof FerryError) throw err;
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new FerryError('ERR_HASH_MISMATCH', `base file for ${op.path} is missing`, { cause: err });
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new FerryError('ERR_UNSAFE_ARCHIVE', `delta output ${op.path} collides with another entry`, { cause: err });
      throw fromFsError(err, `applying delta op for ${op.path}`);
    }
  };

  let failure: unknown;
  let next = 0;
  const worker = async () => {
    while (next < work.length && failure === undefined) {
      const i = next++;
      try {
        await applyOp(work[i]!, i);
      } catch (err) {
        failure ??= err;
      }
      await turns.maybeYield();
    }
  };
  await Promise.all(Array.from({ length: APPLY_CONCURRENCY }, worker));
  if (failure !== undefined) throw failure;
  // Written first, fsynced together: one wait on the disk instead of one per file. (Fsyncing
  // files beside the work, two at a time, was measured and gained nothing on bench/apply's trees.)
  await fsyncAll(written).catch((err) => { throw fromFsError(err, 'syncing the delta\'s files'); });
  await makeLinks(outDir, targetFiles.filter(isLink));
}

/** Makes the signed links: every folder first, then the links, each exactly as signed. */
async function makeLinks(outDir: string, links: LinkEntry[]): Promise<void> {
  const ops = links;
  try {
    for (const op of ops) await mkdir(dirname(join(outDir, op.path)), { recursive: true });
    for (const op of ops) await symlink(op.target, join(outDir, op.path));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST' || code === 'ENOTDIR') throw new FerryError('ERR_UNSAFE_ARCHIVE', `a delta link collides with another entry`, { cause: err });
    throw fromFsError(err, 'making the delta\'s links');
  }
}
