// Applying a per-file delta (device side, and the publisher's own check; ARCHITECTURE.md
// "Artifacts and deltas"). It carries the signed ops out: every base file and every output is
// hashed against the manifest, a patch header is checked against the signed target size before
// the patcher sees it, base files are never read through a link, and links are made last
// (nothing is written through one). core/delta/make-delta.ts makes the ops.

import { constants, createReadStream, createWriteStream } from 'node:fs';
import { chmod, copyFile, link, lstat, mkdir, mkdtemp, open, realpath, rename, stat, symlink } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import { createBrotliDecompress } from 'node:zlib';
import { FerryError, fromFsError } from '../errors.ts';
import { expectHash, sha256File } from '../io/hash.ts';
import { extractArchive, type ExpectedFile } from '../io/extract.ts';
import { fsyncDirsUnder, fsyncPath } from '../io/durable.ts';
import { checkPathSet, linkProblem } from '../io/safe-path.ts';
import { isLink, type DeltaOp, type TreeEntry } from '../trust/metadata.ts';
import type { Patcher } from '../ports/patcher.ts';
import { applyPatchEntry } from './patch-apply.ts';

/** Delta ops applied at once. */
const APPLY_CONCURRENCY = 4;

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

async function createExclusive(path: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const h = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  await h.close();
}

/**
 * Builds the signed tree `targetFiles` in `outDir` (empty, private) from `baseDir` and a delta
 * artifact. Throws ERR_HASH_MISMATCH when a base file is not the signed base, ERR_PATCH when a
 * patch or a compressed entry is bogus, ERR_IO when the base cannot be read: the caller then
 * falls back to the full artifact (core/update/delta-fallback.ts).
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
}): Promise<void> {
  const { ops, targetFiles, outDir, patcher } = input;
  const byPath = new Map(targetFiles.map((f) => [f.path, f]));
  // The signed list came through parseManifestPayload, which checked this; checked again because
  // the links are made from it here (SECURITY.md row 14).
  checkPathSet(targetFiles.map((f) => f.path), 'signed file list');
  const unsafe = linkProblem(targetFiles);
  if (unsafe) throw new FerryError('ERR_UNSAFE_ARCHIVE', `signed file list: ${unsafe.path} is a symlink that ${unsafe.why}`);
  const baseDir = await realpath(input.baseDir).catch((err) => { throw fromFsError(err, `resolving ${input.baseDir}`); });
  // A fresh private folder of our own: nothing planted at a predictable name (a link at p<i>,
  // b<i> or e/) can redirect a write, whatever the caller's workDir held.
  await mkdir(input.workDir, { recursive: true });
  const workDir = await mkdtemp(join(input.workDir, 'delta-'));
  const entriesDir = join(workDir, 'e');
  await mkdir(entriesDir);

  // The delta's entries are unpacked against their signed sizes and hashes before any is used. A
  // delta that only copies and links (a release that deletes files) has no entries: its artifact
  // is the empty archive makeDelta writes, already checked against its signed size and hash when
  // it was fetched, and there is nothing in it to unpack (ARCHITECTURE.md "Artifacts and deltas").
  const expected = new Map<string, ExpectedFile>();
  for (const op of ops) if (op.op === 'patch' || op.op === 'whole') expected.set(op.entry.path, { size: op.entry.size, sha256: op.entry.sha256, mode: 0o600 });
  if (expected.size > 0) await extractArchive(input.artifact, entriesDir, expected);

  // Ops run a few at a time (their cost is mostly waiting on the disk), but only one bsdiff at a
  // time: bspatch holds the whole base and output in memory.
  let patching: Promise<void> = Promise.resolve();
  const oneAtATime = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = patching.then(fn);
    patching = run.then(() => undefined, () => undefined);
    return run;
  };
  const applyOp = async (op: Exclude<DeltaOp, { op: 'link' }>, i: number): Promise<void> => {
    const file = byPath.get(op.path);
    if (!file || isLink(file)) throw new FerryError('ERR_SCHEMA', `delta op for ${op.path} has no signed regular file`);
    const target = join(outDir, op.path);
    try {
      switch (op.op) {
        case 'copy': {
          const base = await regularBaseFile(baseDir, op.from);
          if (input.linkUnchanged && ((await stat(base)).mode & 0o777) === file.mode) {
            // Release trees are immutable, so an unchanged file is shared by a hard link: no data
            // written. Its bytes are still hashed against the signed list before they are used.
            await mkdir(dirname(target), { recursive: true });
            await link(base, target);
            expectHash(await sha256File(target), op.sha256, `base file ${op.from} (linked as ${op.path})`);
            break;
          }
          // A kernel copy (a reflink where the filesystem can), then the copy is hashed: the bytes
          // checked are the bytes that stay.
          await mkdir(dirname(target), { recursive: true });
          await copyFile(base, target, constants.COPYFILE_EXCL | constants.COPYFILE_FICLONE);
          expectHash(await sha256File(target), op.sha256, `base file ${op.from} (copied to ${op.path})`);
          await fsyncPath(target);
          break;
        }
        case 'patch': {
          await oneAtATime(async () => {
            const base = await regularBaseFile(baseDir, op.from);
            expectHash(await sha256File(base), op.baseSha256, `base file ${op.from}`);
            // FERRYBD1 is applied in process; an old BSDIFF40 entry goes to the native patcher
            // (core/delta/patch-apply.ts). A fresh short path of ours is the output.
            const out = join(workDir, `p${i}`);
            const got = await applyPatchEntry({
              baseFile: base, baseSize: (await stat(base)).size,
              patch: { file: join(entriesDir, op.entry.path), offset: 0, size: op.entry.size },
              outFile: out, newSize: file.size, legacy: patcher,
            });
            expectHash(got.sha256, op.sha256, `patched ${op.path}`);
            await mkdir(dirname(target), { recursive: true });
            await fsyncPath(out);
            await rename(out, target);
          });
          break;
        }
        case 'whole': {
          await createExclusive(target);
          const counter = hashingCap(file.size, op.path);
          // Signed bytes that are not brotli are a bogus delta entry (ERR_PATCH), not an I/O
          // failure of this device: told apart by the stream that failed.
          const inflate = createBrotliDecompress();
          let undecodable: unknown;
          inflate.on('error', (err) => { undecodable ??= err; });
          await pipeline(createReadStream(join(entriesDir, op.entry.path)), inflate, counter, createWriteStream(target, { flags: 'r+' })).catch((err: unknown) => {
            if (err === undecodable) throw new FerryError('ERR_PATCH', `the delta's compressed bytes for ${op.path} do not decode: ${(err as Error).message}`, { cause: err });
            throw err;
          });
          const got = counter.digest();
          if (got.size !== file.size) throw new FerryError('ERR_SIZE', `${op.path} decompressed to ${got.size} bytes, signed ${file.size}`);
          expectHash(got.sha256, op.sha256, op.path);
          await fsyncPath(target);
          break;
        }
        default: {
          const never: never = op;
          throw new FerryError('ERR_INTERNAL', `unknown delta op ${JSON.stringify(never)}`);
        }
      }
      await chmod(target, file.mode);
      input.onFileWritten?.(file.size);
    } catch (err) {
      if (err instanceof FerryError) throw err;
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new FerryError('ERR_HASH_MISMATCH', `base file for ${op.path} is missing`, { cause: err });
      throw fromFsError(err, `applying delta op for ${op.path}`);
    }
  };
  // Links wait until every file is written, so no write below can pass through one.
  const linkOps: Extract<DeltaOp, { op: 'link' }>[] = [];
  const queue: [number, Exclude<DeltaOp, { op: 'link' }>][] = [];
  for (const [i, op] of ops.entries()) {
    if (op.op === 'link') linkOps.push(op);
    else queue.push([i, op]);
  }
  let failure: unknown;
  const worker = async () => {
    for (let next = queue.shift(); next && failure === undefined; next = queue.shift()) {
      try {
        await applyOp(next[1], next[0]);
      } catch (err) {
        failure ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: APPLY_CONCURRENCY }, worker));
  if (failure !== undefined) throw failure;
  await makeLinkOps(outDir, linkOps, byPath);
  await fsyncDirsUnder(outDir);
}

/** Makes the `link` ops' links: every folder first, then the links, each exactly as signed. */
async function makeLinkOps(outDir: string, ops: Extract<DeltaOp, { op: 'link' }>[], byPath: Map<string, TreeEntry>): Promise<void> {
  for (const op of ops) {
    const signed = byPath.get(op.path);
    if (!signed || !isLink(signed) || signed.target !== op.target) throw new FerryError('ERR_SCHEMA', `delta link op for ${op.path} does not match a signed symlink`);
  }
  try {
    for (const op of ops) await mkdir(dirname(join(outDir, op.path)), { recursive: true });
    for (const op of ops) await symlink(op.target, join(outDir, op.path));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST' || code === 'ENOTDIR') throw new FerryError('ERR_UNSAFE_ARCHIVE', `a delta link collides with another entry`, { cause: err });
    throw fromFsError(err, 'making the delta\'s links');
  }
}
