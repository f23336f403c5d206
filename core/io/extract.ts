// Safe extraction (SECURITY.md rows 14-16). node-tar parses; ferry writes. tar's own Unpack
// applies owners and setuid bits as root, re-roots absolute paths and never fsyncs, so each entry
// is checked here and written by this code alone:
//   - only regular files, directories and signed symlinks; hard links, devices and FIFOs are refused
//   - every path is a plain relative path, and (when a signed list is given) in that list with its
//     signed size, so nothing lands outside `dest` and a bomb cannot claim more than was signed
//   - a symlink only with a signed list that holds it as a link with exactly that target (and that
//     target resolves inside the tree); links are made last, after every file and folder is
//     written, so nothing is ever written through one
//   - files are created O_EXCL|O_NOFOLLOW (a duplicate entry or a planted link fails), hashed while
//     written; once every file is written and checked, all are fsynced in parallel (one batch, not
//     one wait per file) and given the signed mode (never setuid)
//   - caps on entries and total bytes; a signed archive is decompressed here and may expand only
//     as far as its signed list allows (core/io/expansion-bound.ts), an archive with no signed
//     list (an unsigned bundle) only up to a decompression ratio; tar's strict mode turns any
//     malformed or truncated header into an error
//   - the decoder (gzip, brotli or none) is the one the signed artifact path names (archiveCoder):
//     full artifacts are .tar.br since issue 14, and .tar.gz ones published before still extract
//   - a caller's layout check (`checkEntry`) runs on each entry before anything is made for it, so
//     an archive of the wrong shape is refused at its first stray entry (SECURITY.md row 16)
//   - reading stops at the archive's end marker: what follows it is never read nor parsed, so a
//     long tail costs nothing (node-tar would copy its buffer again for every chunk after the
//     marker: quadratic time; SECURITY.md row 16)
//   - entry names are quoted through printable(): they are untrusted text (SECURITY.md row 14)
//   - a refusal stops every write: no entry is taken after it, the parser is aborted, entries
//     being read are destroyed, and each write in flight stops at its next step (before a mkdir,
//     the open, each chunk, the hash check; the batched fsyncs and chmods run only once all
//     writes succeeded). extractArchive settles only once every write has, so the caller that
//     removes `dest` never races one (issue 13 item 13)

import { constants, createReadStream } from 'node:fs';
import { chmod, mkdir, open, stat, symlink } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { pipeline } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { createBrotliDecoder, DECODE_CHUNK } from './brotli.ts';
import { Parser, type ReadEntry } from 'tar';
import { FerryError, fromFsError } from '../errors.ts';
import { expectHash } from './hash.ts';
import { checkRelativePath, linkProblem } from './safe-path.ts';
import { printable, printableJson } from './printable.ts';
import { fsyncDirsUnder, skipsFsync } from './durable.ts';
import { signedExpansionBound } from './expansion-bound.ts';

export interface ExtractLimits {
  maxEntries: number;
  maxTotalBytes: number;
  /** Decompressed bytes per compressed byte (gzip); tar aborts past it. */
  maxRatio: number;
}

export const DEFAULT_LIMITS: ExtractLimits = { maxEntries: 65_536, maxTotalBytes: 16 * 1024 ** 3, maxRatio: 1000 };

export interface ExpectedFile {
  size: number;
  sha256: string;
  mode: number;
}

/** A signed symlink: the archive must hold a link at that path to exactly this target. */
export interface ExpectedLink {
  type: 'symlink';
  target: string;
}

export type ExpectedEntry = ExpectedFile | ExpectedLink;

function isExpectedLink(e: ExpectedEntry): e is ExpectedLink {
  return (e as ExpectedLink).type === 'symlink';
}

/**
 * Called with each entry's checked relative path and node-tar type, before anything is created
 * for it; throws (a FerryError) to refuse the archive there.
 */
export type EntryCheck = (path: string, type: string) => void;

/** How an archive's bytes are compressed: a plain tar, gzip, or brotli (core/io/brotli.ts). */
export type ArchiveCoder = 'tar' | 'gzip' | 'brotli';

/**
 * The decoder a signed artifact path names: ".tar.br" brotli (full artifacts since issue 14),
 * ".tar.gz" gzip (full artifacts published before), ".tar" none (delta artifacts). Any other name
 * is refused: the decoder is never guessed from the bytes of a signed artifact.
 */
export function archiveCoder(signedPath: string): ArchiveCoder {
  if (signedPath.endsWith('.tar.br')) return 'brotli';
  if (signedPath.endsWith('.tar.gz') || signedPath.endsWith('.tgz')) return 'gzip';
  if (signedPath.endsWith('.tar')) return 'tar';
  throw new FerryError('ERR_UNSAFE_ARCHIVE', `artifact ${printable(signedPath)} is not a .tar, .tar.gz or .tar.br`);
}

/** Files fsynced at once in the batch after extraction: enough to keep the disk's queue full. */
const FSYNC_PARALLEL = 32;

/**
 * Files being written at once before the archive is read further. node-tar hands out every entry
 * a decoded chunk holds at once, so without a bound a chunk of small files opens them all and
 * keeps the chunks they came from alive. Never a deadlock: tar entries come one after another,
 * so every write in flight but the newest has all its bytes and finishes on its own.
 */
const WRITES_IN_FLIGHT = 16;

/** Bytes handed to node-tar per write: one read of the file stream. */
const READ_CHUNK = 64 * 1024;

export interface ExtractedFile {
  path: string;
  size: number;
  sha256: string;
}

/** A file written and checked, waiting for the batched fsync and its mode. */
interface WrittenFile extends ExtractedFile {
  mode: number;
}

/**
 * Extracts `archive` into `dest` (which must exist and be private to the caller). With `expected`,
 * the archive must hold exactly those files with those sizes and hashes, and those links with
 * those targets (without it, no link is admitted). On error, files already
 * written stay in `dest`: the caller owns `dest` and removes it. `onFileWritten` hears each
 * file's size once it is written and checked (for progress). `checkEntry` refuses entries that do
 * not belong (a layout), before anything is written for them. Reading stops at the end marker.
 * `coder` is what the artifact's signed path names (archiveCoder); without it a signed archive is
 * inflated when it starts with gzip's magic, and an unsigned one goes to node-tar as it is.
 */
export async function extractArchive(
  archive: string,
  dest: string,
  expected: Map<string, ExpectedEntry> | null,
  limits: ExtractLimits = DEFAULT_LIMITS,
  onFileWritten?: (bytes: number) => void,
  checkEntry?: EntryCheck,
  coder?: ArchiveCoder,
): Promise<ExtractedFile[]> {
  const extracted: WrittenFile[] = [];
  const dirs = new Set<string>(['']);
  const writes: Promise<void>[] = [];
  // Writes not yet settled, and the feed waiting for them to drop to WRITES_IN_FLIGHT.
  let inFlight = 0;
  let wakeFeed: (() => void) | undefined;
  const writeSettled = () => {
    inFlight--;
    const wake = wakeFeed;
    wakeFeed = undefined;
    wake?.();
  };
  const backlog = async () => {
    while (inFlight > WRITES_IN_FLIGHT && failure === undefined) await new Promise<void>((resolve) => { wakeFeed = resolve; });
  };
  /** Signed links seen, path → target: made only once every file is written. */
  const links = new Map<string, string>();
  let entries = 0;
  let totalBytes = 0;
  let failure: unknown;

  const parser = new Parser({ strict: true, maxDecompressionRatio: limits.maxRatio } as ConstructorParameters<typeof Parser>[0]);
  // Entries still being written. When the parser stops mid-entry (truncated input, ratio cap),
  // their streams never end on their own: they are destroyed so each writer settles.
  const active = new Set<ReadEntry>();
  const stopActive = (err: unknown) => {
    for (const entry of active) entry.destroy(err instanceof Error ? err : new Error(String(err)));
    active.clear();
  };
  const fail = (err: unknown) => {
    if (failure === undefined) failure = err;
    parser.abort(err instanceof Error ? err : new Error(String(err)));
    stopActive(err);
  };

  parser.on('entry', (entry: ReadEntry) => {
    try {
      if (failure !== undefined) return entry.resume();
      entries++;
      if (entries > limits.maxEntries) throw new FerryError('ERR_UNSAFE_ARCHIVE', `archive has more than ${limits.maxEntries} entries`);
      const raw = entry.path.replace(/\/+$/, '');
      const path = checkRelativePath(raw, 'archive entry');
      checkEntry?.(path, entry.type);
      const shown = printable(path);
      if (entry.type === 'Directory') {
        entry.resume();
        return;
      }
      const want = expected?.get(path);
      if (entry.type === 'SymbolicLink') {
        if (!want || !isExpectedLink(want)) throw new FerryError('ERR_UNSAFE_ARCHIVE', `archive entry ${shown} is a SymbolicLink that is not signed as a link; only regular files and signed links are allowed`);
        if (entry.linkpath !== want.target) throw new FerryError('ERR_UNSAFE_ARCHIVE', `archive entry ${shown} is a SymbolicLink to ${printableJson(entry.linkpath)}, signed to ${printableJson(want.target)}`);
        if (links.has(path)) throw new FerryError('ERR_UNSAFE_ARCHIVE', `archive entry ${shown} collides with an earlier entry`);
        links.set(path, want.target);
        entry.resume();
        return;
      }
      if (entry.type !== 'File' && entry.type !== 'OldFile' && entry.type !== 'ContiguousFile') {
        throw new FerryError('ERR_UNSAFE_ARCHIVE', `archive entry ${shown} is a ${entry.type}; only regular files (and signed links) are allowed`);
      }
      if (expected && !want) throw new FerryError('ERR_UNSAFE_ARCHIVE', `archive entry ${shown} is not in the signed file list`);
      if (want && isExpectedLink(want)) throw new FerryError('ERR_UNSAFE_ARCHIVE', `archive entry ${shown} is a file, signed as a symlink`);
      if (want && entry.size !== want.size) throw new FerryError('ERR_SIZE', `archive entry ${shown} is ${entry.size} bytes, signed ${want.size}`);
      totalBytes += entry.size;
      if (totalBytes > limits.maxTotalBytes) throw new FerryError('ERR_TOO_LARGE', `archive expands past ${limits.maxTotalBytes} bytes`);
      active.add(entry);
      entry.on('end', () => active.delete(entry));
      entry.on('error', () => {}); // reported through writeEntry's reader; never an unhandled event
      inFlight++;
      writes.push(writeEntry(entry, dest, path, want, dirs, () => failure).then((f) => { extracted.push(f); onFileWritten?.(f.size); }, fail).finally(writeSettled));
    } catch (err) {
      entry.resume();
      fail(err);
    }
  });

  // node-tar says 'eof' at the end marker, once every entry before it has been handed out.
  let sawEnd = false;
  const parsed = new Promise<void>((resolve) => {
    parser.on('eof', () => {
      sawEnd = true;
      resolve();
      // Nothing after the marker is parsed: this also stops a gzip stream's decompressor, which
      // would otherwise go on inflating what was already read into node-tar's growing buffer.
      parser.abort(new Error('end of archive'));
    });
    parser.on('error', (err: Error) => {
      if (sawEnd) return; // the abort above
      const code = /decompression ratio/i.test(err.message) ? 'ERR_TOO_LARGE' : 'ERR_UNSAFE_ARCHIVE';
      fail(failure ?? new FerryError(code, `${code === 'ERR_TOO_LARGE' ? 'archive expands too far' : 'malformed archive'}: ${printable(err.message)}`, { cause: err }));
      resolve();
    });
    parser.on('close', () => {
      if (!sawEnd) stopActive(failure ?? new FerryError('ERR_UNSAFE_ARCHIVE', 'archive ended inside an entry'));
      resolve();
    });
  });
  // A signed archive is decompressed here and bounded by its signed list; an unsigned one named
  // by a coder is decompressed here under the ratio cap; an unsigned one without goes to node-tar
  // as it is (which inflates it under its ratio cap).
  const decode: ArchiveCoder = coder ?? (expected && (await startsWithGzip(archive)) ? 'gzip' : 'tar');
  const bound = expected ? signedExpansionBound(expected) : decode === 'tar' ? null : await ratioBound(archive, limits.maxRatio);
  await feed(archive, parser, { decode, bound }, () => sawEnd || failure !== undefined, backlog).catch(fail);
  await parsed;
  // Every write settles before this returns or throws; none starts after a failure (the entry
  // handler takes no entry then), so this one wait covers them all.
  await Promise.allSettled(writes);
  if (failure !== undefined) throw failure;

  if (expected) {
    const got = new Set([...extracted.map((f) => f.path), ...links.keys()]);
    for (const path of expected.keys()) {
      if (!got.has(path)) throw new FerryError('ERR_UNSAFE_ARCHIVE', `archive lacks signed file ${printable(path)}`);
    }
  }
  // Every file is written and hashed: now all are made durable together (issue 14 item 7), and
  // given their modes, before the links and folders and before the caller renames the tree.
  await settleFiles(dest, extracted);
  if (expected && links.size > 0) await makeLinks(dest, expected, links, dirs);
  await fsyncDirsUnder(dest, 'extract.dirs');
  return extracted.map(({ path, size, sha256 }) => ({ path, size, sha256 }));
}

/** The ratio cap as a byte bound on the decoded tar of `archive` (0 when it cannot be read: the read reports that). */
async function ratioBound(archive: string, maxRatio: number): Promise<number> {
  const size = await stat(archive).then((s) => s.size, () => 0);
  return Math.max(1, size) * maxRatio;
}

/**
 * fsyncs every written file, FSYNC_PARALLEL at a time (site 'extract.file': a power cut after the
 * rename must not leave empty files; SECURITY.md row 18), then gives each its mode. The files are
 * still 0600 and ours (dest is private), so each is reopened read-only, never through a link.
 */
async function settleFiles(dest: string, files: readonly WrittenFile[]): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < files.length) {
      const f = files[next++]!;
      const target = join(dest, f.path);
      try {
        if (!skipsFsync('extract.file')) {
          const handle = await open(target, constants.O_RDONLY | constants.O_NOFOLLOW);
          try {
            await handle.sync();
          } finally {
            await handle.close();
          }
        }
        await chmod(target, f.mode);
      } catch (err) {
        throw fromFsError(err, `syncing ${printable(f.path)}`);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(FSYNC_PARALLEL, files.length) }, worker));
}

/**
 * Writes `archive` to `parser` one read at a time, honouring its back-pressure, until `done()`
 * (the end marker was reached, or the archive was refused): the rest of the file is never read.
 * Ends the parser when the file ends first. With a `decode` coder the file is inflated here, and with a
 * `bound` the tar bytes may not pass it (what a signed file list allows): the bytes up to the bound
 * reach the parser first, so an entry that contradicts its signed size is named as such (ERR_SIZE)
 * rather than as the bound. Rejects with the FerryError to report.
 */
async function feed(archive: string, parser: Parser, how: { decode: ArchiveCoder; bound: number | null }, done: () => boolean, backlog: () => Promise<void>): Promise<void> {
  const input = createReadStream(archive, { highWaterMark: READ_CHUNK });
  const inflate = how.decode === 'gzip' ? createGunzip({ chunkSize: DECODE_CHUNK }) : how.decode === 'brotli' ? createBrotliDecoder() : null;
  // pipeline, not pipe: a read error of the file reaches the loop below through the inflater.
  const source = inflate ? pipeline(input, inflate, () => {}) : input;
  let seen = 0;
  try {
    for await (const chunk of source as AsyncIterable<Buffer>) {
      seen += chunk.length;
      const over = how.bound === null ? 0 : seen - how.bound;
      const more = parser.write(over > 0 ? chunk.subarray(0, chunk.length - over) : chunk);
      if (over > 0) {
        // The bytes up to the bound may end with the end marker behind entries still being written
        // (a decoded chunk holds many entries): let the parser get through them before judging.
        if (!more) await drained(parser, done);
        if (done()) return;
        throw new FerryError('ERR_TOO_LARGE', `archive expands past the ${how.bound} bytes its signed file list allows`);
      }
      if (!more) await drained(parser, done);
      await backlog();
      if (done()) return; // leaving the loop closes the file
    }
  } catch (err) {
    if (err instanceof FerryError) throw err;
    // zlib's errors carry Z_* codes (brotli's ERR__ERROR_*): bytes that do not inflate are a
    // malformed archive, not I/O.
    if (/^(Z_|ERR__ERROR_)/.test(String((err as NodeJS.ErrnoException)?.code))) throw new FerryError('ERR_UNSAFE_ARCHIVE', `malformed archive: ${printable((err as Error).message)}`, { cause: err });
    throw fromFsError(err, `reading ${archive}`);
  } finally {
    input.destroy();
    inflate?.destroy();
  }
  if (!done()) parser.end();
}

/** Resolves once the parser wants more input, or has reached the end, or has failed. */
function drained(parser: Parser, done: () => boolean): Promise<void> {
  if (done()) return Promise.resolve();
  return new Promise((resolve) => {
    const events = ['drain', 'eof', 'error', 'abort', 'close'] as const;
    const wake = () => {
      for (const e of events) parser.off(e, wake);
      resolve();
    };
    for (const e of events) parser.on(e, wake);
  });
}

/** Whether `path` starts with the gzip magic bytes (false when it cannot be read: the read reports that). */
async function startsWithGzip(path: string): Promise<boolean> {
  const head = Buffer.alloc(2);
  try {
    const h = await open(path, 'r');
    try {
      await h.read(head, 0, 2, 0);
    } finally {
      await h.close();
    }
  } catch {
    return false;
  }
  return head[0] === 0x1f && head[1] === 0x8b;
}

/** The refusal a write must stop for, or undefined to go on. */
type StopSignal = () => unknown;

/** Throws the refusal when there is one: the write stops here (issue 13 item 13). */
function stopIfRefused(stopped: StopSignal | undefined): void {
  const failure = stopped?.();
  if (failure !== undefined) throw failure;
}

async function ensureParents(dest: string, path: string, dirs: Set<string>, stopped?: StopSignal): Promise<void> {
  const parts = path.split('/').slice(0, -1);
  for (let i = 1; i <= parts.length; i++) {
    const rel = parts.slice(0, i).join('/');
    if (dirs.has(rel)) continue;
    stopIfRefused(stopped);
    // mkdir of a name that already exists as a file (or anything else) fails: nothing is followed.
    await mkdir(join(dest, rel), { mode: 0o755 }).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'EEXIST') throw err;
    });
    dirs.add(rel);
  }
}

/**
 * Makes the signed links, after every file is written. The signed list is checked again here
 * (each link resolves inside the tree), then every link's folder is made, and only then the links
 * themselves: no mkdir or write happens once a link exists. symlink() never follows the name it
 * creates, and fails on any name already there (a file, a folder or a duplicate).
 */
async function makeLinks(dest: string, expected: Map<string, ExpectedEntry>, links: Map<string, string>, dirs: Set<string>): Promise<void> {
  const unsafe = linkProblem([...expected].map(([path, e]) => (isExpectedLink(e) ? { path, type: 'symlink' as const, target: e.target } : { path, ...e })));
  if (unsafe) throw new FerryError('ERR_UNSAFE_ARCHIVE', `signed file list: ${printable(unsafe.path)} is a symlink that ${unsafe.why}`);
  try {
    for (const path of links.keys()) await ensureParents(dest, path, dirs);
    for (const [path, target] of links) await symlink(target, join(dest, path));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST' || code === 'ENOTDIR' || code === 'ELOOP') throw new FerryError('ERR_UNSAFE_ARCHIVE', `a signed symlink collides with an earlier entry`, { cause: err });
    throw fromFsError(err, `making the links of ${dest}`);
  }
}

/**
 * Writes one file entry and checks its hash; it is fsynced and given its mode later, with every
 * other file (settleFiles). `stopped` is checked before every step that touches the disk: once the
 * archive is refused, the write ends at its next step instead of finishing (an entry already
 * handed out whole is not destroyed, and thousands of small files may be waiting for the disk).
 */
async function writeEntry(entry: ReadEntry, dest: string, path: string, want: ExpectedFile | undefined, dirs: Set<string>, stopped: StopSignal): Promise<WrittenFile> {
  const target = join(dest, path);
  try {
    stopIfRefused(stopped);
    await ensureParents(dest, path, dirs, stopped);
    stopIfRefused(stopped);
    const handle = await open(target, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    const hash = createHash('sha256');
    let size = 0;
    try {
      for await (const chunk of entry as AsyncIterable<Buffer>) {
        stopIfRefused(stopped);
        hash.update(chunk);
        size += chunk.length;
        await handle.write(chunk);
      }
    } finally {
      await handle.close();
    }
    stopIfRefused(stopped);
    const sha256 = hash.digest('hex');
    if (want) expectHash(sha256, want.sha256, `archive entry ${printable(path)}`);
    // The signed mode, never special bits; with no signed mode, only the owner's execute intent.
    const mode = want ? want.mode & 0o777 : (entry.mode ?? 0o644) & 0o100 ? 0o755 : 0o644;
    return { path, size, sha256, mode };
  } catch (err) {
    entry.resume();
    if (err instanceof FerryError) throw err;
    if ((err as NodeJS.ErrnoException).code === 'EEXIST' || (err as NodeJS.ErrnoException).code === 'ELOOP' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') {
      throw new FerryError('ERR_UNSAFE_ARCHIVE', `archive entry ${printable(path)} collides with an earlier entry`, { cause: err });
    }
    throw fromFsError(err, `extracting ${printable(path)}`);
  }
}
