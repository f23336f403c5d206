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
//     one wait per file). Each file is given its signed mode (never setuid) on its own descriptor
//     once its hash matched, before it is closed: `dest` is private to the caller, so the mode
//     exposes nothing before the tree is renamed into place
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
//   - a refusal stops every write: entries are written synchronously as the parser hands out
//     their bytes (one file open at a time, one decoded chunk per step; issue 14 item 7), so when
//     a refusal comes no write is in flight; no entry is taken after it, the parser is aborted, and
//     the entry being read is destroyed and its file closed. The batched fsyncs run only once all
//     writes succeeded. extractArchive settles only once the decoder has stopped, so the caller that
//     removes `dest` never races a write (issue 13 item 13)

import { closeSync, constants, createReadStream, fchmodSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { open, stat, symlink } from 'node:fs/promises';
import { createHash, type Hash } from 'node:crypto';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { createGunzip, type Gunzip, type BrotliDecompress } from 'node:zlib';
import { collectDecodedGarbage, COLLECT_EVERY, createBrotliDecoder, DECODE_CHUNK } from './brotli.ts';
import { Parser, type ReadEntry } from 'tar';
import { FerryError, fromFsError } from '../errors.ts';
import { expectHash } from './hash.ts';
import { checkRelativePath, linkProblem } from './safe-path.ts';
import { printable, printableJson } from './printable.ts';
import { fsyncDirs, fsyncFd, skipsFsync } from './durable.ts';
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

/** Bytes per read of an archive node-tar parses as it is (an uncompressed tar). */
const READ_CHUNK = 64 * 1024;

/**
 * Bytes per read of a compressed archive. Each read is handed to the decoder, and the two read
 * buffers are reused (one is read into while the decoder works on the other), so the compressed
 * bytes leave no garbage behind.
 */
const COMPRESSED_READ = 256 * 1024;

/**
 * Decoded bytes queued for the parser before the decoder is paused: the decoder (on the thread
 * pool) runs ahead of the writes (on this thread) by about this much.
 */
const DECODED_AHEAD = 1024 * 1024;

export interface ExtractedFile {
  path: string;
  size: number;
  sha256: string;
}

/** A file written and checked, waiting for the batched fsync. */
interface WrittenFile extends ExtractedFile {
  mode: number;
}

/**
 * Whether `mode` is given after the fsync, on the descriptor the fsync opens, rather than when the
 * file is written: a mode without the owner's read bit could not be reopened for the fsync once set.
 */
function modeAfterSync(mode: number): boolean {
  return (mode & 0o400) === 0;
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
  /** Signed links seen, path → target: made only once every file is written. */
  const links = new Map<string, string>();
  let entries = 0;
  let totalBytes = 0;
  let failure: unknown;

  const parser = new Parser({ strict: true, maxDecompressionRatio: limits.maxRatio } as ConstructorParameters<typeof Parser>[0]);
  // The file being written, if any. Entries come one after another and each is written as its
  // bytes arrive, so at most one is open: when the parser stops mid-entry (truncated input, ratio
  // cap, a refusal) its stream never ends on its own, and it is destroyed and its file closed.
  let writing: FileWriter | undefined;
  const stopWriting = (err: unknown) => {
    const w = writing;
    writing = undefined;
    w?.abandon(err instanceof Error ? err : new Error(String(err)));
  };
  const fail = (err: unknown) => {
    if (failure === undefined) failure = err;
    parser.abort(err instanceof Error ? err : new Error(String(err)));
    stopWriting(err);
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
      const writer = new FileWriter(entry, dest, path, want, dirs);
      writing = writer;
      writer.start(
        (f) => {
          if (writing === writer) writing = undefined;
          extracted.push(f);
          onFileWritten?.(f.size);
        },
        (err) => {
          if (writing === writer) writing = undefined;
          fail(err);
        },
      );
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
      if (!sawEnd) stopWriting(failure ?? new FerryError('ERR_UNSAFE_ARCHIVE', 'archive ended inside an entry'));
      resolve();
    });
  });
  try {
    // A signed archive is decompressed here and bounded by its signed list; an unsigned one named
    // by a coder is decompressed here under the ratio cap; an unsigned one without goes to node-tar
    // as it is (which inflates it under its ratio cap).
    const decode: ArchiveCoder = coder ?? (expected && (await startsWithGzip(archive)) ? 'gzip' : 'tar');
    const bound = expected ? signedExpansionBound(expected) : decode === 'tar' ? null : await ratioBound(archive, limits.maxRatio);
    await feed(archive, parser, { decode, bound }, () => sawEnd || failure !== undefined).catch(fail);
    await parsed;
  } finally {
    // Writes are synchronous: none is in flight here. A file left open (the parser stopped
    // inside it) is closed before this settles.
    stopWriting(failure ?? new FerryError('ERR_UNSAFE_ARCHIVE', 'archive ended inside an entry'));
  }
  if (failure !== undefined) throw failure;

  if (expected) {
    const got = new Set([...extracted.map((f) => f.path), ...links.keys()]);
    for (const path of expected.keys()) {
      if (!got.has(path)) throw new FerryError('ERR_UNSAFE_ARCHIVE', `archive lacks signed file ${printable(path)}`);
    }
  }
  // Every file is written and hashed: now all are made durable together (issue 14 item 7), before
  // the links and folders and before the caller renames the tree.
  await settleFiles(dest, extracted);
  if (expected && links.size > 0) await makeLinks(dest, expected, links, dirs);
  await fsyncDirs([...dirs].map((d) => join(dest, d)), 'extract.dirs');
  return extracted.map(({ path, size, sha256 }) => ({ path, size, sha256 }));
}

/** The ratio cap as a byte bound on the decoded tar of `archive` (0 when it cannot be read: the read reports that). */
async function ratioBound(archive: string, maxRatio: number): Promise<number> {
  const size = await stat(archive).then((s) => s.size, () => 0);
  return Math.max(1, size) * maxRatio;
}

/**
 * fsyncs every written file, FSYNC_PARALLEL at a time (site 'extract.file': a power cut after the
 * rename must not leave empty files; SECURITY.md row 18). Each is reopened read-only, never
 * through a link (dest is private, and its files are ours), and only the fsync itself goes to the
 * thread pool: one round trip per file. A file whose signed mode lacks the owner's read bit was
 * left 0600 when written and gets its mode here, after its fsync.
 */
async function settleFiles(dest: string, files: readonly WrittenFile[]): Promise<void> {
  const sync = !skipsFsync('extract.file');
  let next = 0;
  const worker = async () => {
    while (next < files.length) {
      const f = files[next++]!;
      if (!sync && !modeAfterSync(f.mode)) continue;
      let fd: number | undefined;
      try {
        fd = openSync(join(dest, f.path), constants.O_RDONLY | constants.O_NOFOLLOW);
        if (sync) await fsyncFd(fd);
        if (modeAfterSync(f.mode)) fchmodSync(fd, f.mode);
      } catch (err) {
        throw fromFsError(err, `syncing ${printable(f.path)}`);
      } finally {
        if (fd !== undefined) closeSync(fd);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(FSYNC_PARALLEL, files.length) }, worker));
}

/**
 * Writes `archive` to `parser`, decoded chunk by decoded chunk, honouring its back-pressure, until
 * `done()` (the end marker was reached, or the archive was refused): the rest of the file is never
 * read. Ends the parser when the file ends first. With a `decode` coder the file is inflated here,
 * and with a `bound` the tar bytes may not pass it (what a signed file list allows): the bytes up to
 * the bound reach the parser first, so an entry that contradicts its signed size is named as such
 * (ERR_SIZE) rather than as the bound. Rejects with the FerryError to report.
 *
 * The decoder runs on the thread pool while this thread parses and writes: each decoded chunk is
 * queued and parsed in a microtask, after the decoder was handed its next piece of work (a
 * listener that parsed inside the 'data' event would hold the decoder idle meanwhile), and the
 * decoder is paused while DECODED_AHEAD bytes wait.
 */
async function feed(archive: string, parser: Parser, how: { decode: ArchiveCoder; bound: number | null }, done: () => boolean): Promise<void> {
  const inflate: Gunzip | BrotliDecompress | null = how.decode === 'gzip' ? createGunzip({ chunkSize: DECODE_CHUNK }) : how.decode === 'brotli' ? createBrotliDecoder() : null;
  const input = inflate ? null : createReadStream(archive, { highWaterMark: READ_CHUNK });
  const source: Readable = inflate ?? input!;
  let stopReading = false;
  const reading = inflate ? readInto(archive, inflate, () => stopReading || done()) : Promise.resolve();
  // A read error also destroys the decoder: it surfaces below, through the decoder's 'error'.
  reading.catch((err: unknown) => inflate?.destroy(err instanceof Error ? err : new Error(String(err))));
  try {
    await new Promise<void>((resolve, reject) => {
      let seen = 0;
      let nextCollect = COLLECT_EVERY;
      let ended = false;
      let settled = false;
      let scheduled = false;
      let waiting = false;
      const queue: Buffer[] = [];
      let queued = 0;
      const finish = (err?: unknown) => {
        if (settled) return;
        settled = true;
        if (err === undefined) resolve();
        else reject(err);
      };
      const schedule = () => {
        if (scheduled || waiting || settled) return;
        scheduled = true;
        queueMicrotask(work);
      };
      const work = () => {
        scheduled = false;
        try {
          while (queue.length > 0) {
            if (done()) return finish();
            const chunk = queue.shift()!;
            queued -= chunk.length;
            seen += chunk.length;
            if (inflate && seen >= nextCollect) {
              nextCollect = seen + COLLECT_EVERY;
              collectDecodedGarbage();
            }
            const over = how.bound === null ? 0 : seen - how.bound;
            const more = parser.write(over > 0 ? chunk.subarray(0, chunk.length - over) : chunk);
            if (over > 0) {
              // The bytes up to the bound may end with the end marker behind entries still being
              // read (a decoded chunk holds many entries): let the parser get through them first.
              const judge = () => finish(done() ? undefined : new FerryError('ERR_TOO_LARGE', `archive expands past the ${how.bound} bytes its signed file list allows`));
              waiting = true;
              if (more) judge();
              else void drained(parser, done).then(judge);
              return;
            }
            if (!more) {
              waiting = true;
              void drained(parser, done).then(() => {
                waiting = false;
                work();
              });
              return;
            }
          }
          if (done()) return finish();
          if (ended) {
            parser.end();
            return finish();
          }
          if (queued < DECODED_AHEAD && source.isPaused()) source.resume();
        } catch (err) {
          finish(err);
        }
      };
      source.on('data', (chunk: Buffer) => {
        queue.push(chunk);
        queued += chunk.length;
        if (queued >= DECODED_AHEAD) source.pause();
        schedule();
      });
      source.on('end', () => {
        ended = true;
        schedule();
      });
      source.on('error', (err: unknown) => finish(err));
    });
  } catch (err) {
    if (err instanceof FerryError) throw err;
    // zlib's errors carry Z_* codes (brotli's ERR__ERROR_*): bytes that do not inflate are a
    // malformed archive, not I/O.
    if (/^(Z_|ERR__ERROR_)/.test(String((err as NodeJS.ErrnoException)?.code))) throw new FerryError('ERR_UNSAFE_ARCHIVE', `malformed archive: ${printable((err as Error).message)}`, { cause: err });
    throw fromFsError(err, `reading ${archive}`);
  } finally {
    stopReading = true;
    input?.destroy();
    inflate?.destroy();
    // The file is closed before this settles (a refusal removes dest next; the archive may go too).
    await reading.catch(() => {});
  }
}

/**
 * Reads `archive` into `sink` (a decoder) through two reused buffers, COMPRESSED_READ bytes at a
 * time: one is read into while the decoder works on the other, and a buffer is read into again
 * only once the decoder has taken all of it (the write's callback). Stops when `stop()` says so;
 * ends `sink` at the end of the file.
 */
async function readInto(archive: string, sink: Gunzip | BrotliDecompress, stop: () => boolean): Promise<void> {
  const handle = await open(archive, 'r');
  try {
    const buffers = [Buffer.allocUnsafe(COMPRESSED_READ), Buffer.allocUnsafe(COMPRESSED_READ)];
    let taken: Promise<void> = Promise.resolve();
    for (let i = 0; ; i ^= 1) {
      const buf = buffers[i]!;
      const { bytesRead } = await handle.read(buf, 0, buf.length, null);
      await taken;
      if (stop() || sink.destroyed) return;
      if (bytesRead === 0) {
        sink.end();
        return;
      }
      // A decoder that fails or is destroyed never calls back for the write it was doing: its
      // 'close' ends the wait too (the read stops there; the decoder's error is reported by feed).
      taken = new Promise<void>((resolve) => {
        const closed = () => resolve();
        sink.once('close', closed);
        sink.write(buf.subarray(0, bytesRead), () => {
          sink.off('close', closed);
          resolve();
        });
      });
    }
  } finally {
    await handle.close();
  }
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

function ensureParents(dest: string, path: string, dirs: Set<string>): void {
  const parts = path.split('/').slice(0, -1);
  for (let i = 1; i <= parts.length; i++) {
    const rel = parts.slice(0, i).join('/');
    if (dirs.has(rel)) continue;
    // mkdir of a name that already exists as a file (or anything else) fails: nothing is followed.
    try {
      mkdirSync(join(dest, rel), { mode: 0o755 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
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
    for (const path of links.keys()) ensureParents(dest, path, dirs);
    for (const [path, target] of links) await symlink(target, join(dest, path));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST' || code === 'ENOTDIR' || code === 'ELOOP') throw new FerryError('ERR_UNSAFE_ARCHIVE', `a signed symlink collides with an earlier entry`, { cause: err });
    throw fromFsError(err, `making the links of ${dest}`);
  }
}

/**
 * Writes one file entry as its bytes arrive and checks its hash; it is fsynced later, with every
 * other file (settleFiles). Every step is synchronous and short (a folder, the open, one chunk,
 * the check, the mode, the close), so a write is never in flight while the archive is refused:
 * `abandon` (the parser stopped inside the entry, or the archive was refused) closes the file and
 * nothing more is written to it.
 */
class FileWriter {
  private fd: number | undefined;
  private readonly hash: Hash = createHash('sha256');
  private size = 0;
  private failed: ((err: unknown) => void) | undefined;

  constructor(
    private readonly entry: ReadEntry,
    private readonly dest: string,
    private readonly path: string,
    private readonly want: ExpectedFile | undefined,
    private readonly dirs: Set<string>,
  ) {}

  start(done: (f: WrittenFile) => void, failed: (err: unknown) => void): void {
    this.failed = failed;
    const { entry } = this;
    entry.on('error', (err: unknown) => this.refuse(err));
    try {
      ensureParents(this.dest, this.path, this.dirs);
      this.fd = openSync(join(this.dest, this.path), constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    } catch (err) {
      this.refuse(err);
      return;
    }
    entry.on('data', (chunk: Buffer) => {
      if (this.fd === undefined) return; // refused: the rest of the entry is dropped
      try {
        this.hash.update(chunk);
        this.size += chunk.length;
        for (let off = 0; off < chunk.length; ) off += writeSync(this.fd, chunk, off, chunk.length - off);
      } catch (err) {
        this.refuse(err);
      }
    });
    entry.on('end', () => {
      const fd = this.fd;
      if (fd === undefined) return;
      try {
        const sha256 = this.hash.digest('hex');
        if (this.want) expectHash(sha256, this.want.sha256, `archive entry ${printable(this.path)}`);
        // The signed mode, never special bits; with no signed mode, only the owner's execute intent.
        const mode = this.want ? this.want.mode & 0o777 : (entry.mode ?? 0o644) & 0o100 ? 0o755 : 0o644;
        // Given now, on this descriptor, unless the file could not be reopened for its fsync then.
        if (!modeAfterSync(mode)) fchmodSync(fd, mode);
        this.fd = undefined;
        closeSync(fd);
        done({ path: this.path, size: this.size, sha256, mode });
      } catch (err) {
        this.refuse(err);
      }
    });
  }

  /** The parser stopped inside this entry, or the archive was refused: close, write nothing more. */
  abandon(err: Error): void {
    const fd = this.fd;
    this.fd = undefined;
    this.failed = undefined; // the failure is already the caller's
    if (fd !== undefined) {
      try {
        closeSync(fd);
      } catch {
        // the refusal is the error to report
      }
    }
    if (!this.entry.destroyed) this.entry.destroy(err);
  }

  private refuse(err: unknown): void {
    const fd = this.fd;
    this.fd = undefined;
    if (fd !== undefined) {
      try {
        closeSync(fd);
      } catch {
        // the write's own error is the one to report
      }
    }
    this.entry.resume();
    const failed = this.failed;
    this.failed = undefined;
    failed?.(describeWriteError(err, this.path));
  }
}

/** A write's error as the FerryError to report: a collision with an earlier entry is an unsafe archive. */
function describeWriteError(err: unknown, path: string): FerryError {
  if (err instanceof FerryError) return err;
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'EEXIST' || code === 'ELOOP' || code === 'ENOTDIR') {
    return new FerryError('ERR_UNSAFE_ARCHIVE', `archive entry ${printable(path)} collides with an earlier entry`, { cause: err });
  }
  return fromFsError(err, `extracting ${printable(path)}`);
}
