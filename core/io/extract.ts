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
//     written, fsynced, and given the signed mode (never setuid)
//   - caps on entries and total bytes; a signed archive is decompressed here and may expand only
//     as far as its signed list allows (core/io/expansion-bound.ts), an archive with no signed
//     list (an unsigned bundle) only up to a decompression ratio; tar's strict mode turns any
//     malformed or truncated header into an error

import { constants, createReadStream } from 'node:fs';
import { chmod, mkdir, open, symlink } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { createGunzip } from 'node:zlib';
import { Parser, type ReadEntry } from 'tar';
import { FerryError, fromFsError } from '../errors.ts';
import { expectHash } from './hash.ts';
import { checkRelativePath, linkProblem } from './safe-path.ts';
import { fsyncDirsUnder, skipsFsync } from './durable.ts';
import { signedExpansionBound } from './expansion-bound.ts';

export interface ExtractLimits {
  maxEntries: number;
  maxTotalBytes: number;
  /**
   * Decompressed bytes per compressed byte; tar aborts past it. Judges archives with no signed
   * list; a signed archive is held to the bytes its list allows instead (signedExpansionBound),
   * and the ratio only to a compressed layer inside it (which no publisher writes).
   */
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

export interface ExtractedFile {
  path: string;
  size: number;
  sha256: string;
}

/**
 * Extracts `archive` into `dest` (which must exist and be private to the caller). With `expected`,
 * the archive must hold exactly those files with those sizes and hashes, and those links with
 * those targets (without it, no link is admitted). On error, files already
 * written stay in `dest`: the caller owns `dest` and removes it. `onFileWritten` hears each
 * file's size once it is written and checked (for progress).
 */
export async function extractArchive(
  archive: string,
  dest: string,
  expected: Map<string, ExpectedEntry> | null,
  limits: ExtractLimits = DEFAULT_LIMITS,
  onFileWritten?: (bytes: number) => void,
): Promise<ExtractedFile[]> {
  const extracted: ExtractedFile[] = [];
  const dirs = new Set<string>(['']);
  const writes: Promise<void>[] = [];
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
      if (entry.type === 'Directory') {
        entry.resume();
        return;
      }
      const want = expected?.get(path);
      if (entry.type === 'SymbolicLink') {
        if (!want || !isExpectedLink(want)) throw new FerryError('ERR_UNSAFE_ARCHIVE', `archive entry ${path} is a SymbolicLink that is not signed as a link; only regular files and signed links are allowed`);
        if (entry.linkpath !== want.target) throw new FerryError('ERR_UNSAFE_ARCHIVE', `archive entry ${path} is a SymbolicLink to ${JSON.stringify(entry.linkpath)}, signed to ${JSON.stringify(want.target)}`);
        if (links.has(path)) throw new FerryError('ERR_UNSAFE_ARCHIVE', `archive entry ${path} collides with an earlier entry`);
        links.set(path, want.target);
        entry.resume();
        return;
      }
      if (entry.type !== 'File' && entry.type !== 'OldFile' && entry.type !== 'ContiguousFile') {
        throw new FerryError('ERR_UNSAFE_ARCHIVE', `archive entry ${path} is a ${entry.type}; only regular files (and signed links) are allowed`);
      }
      if (expected && !want) throw new FerryError('ERR_UNSAFE_ARCHIVE', `archive entry ${path} is not in the signed file list`);
      if (want && isExpectedLink(want)) throw new FerryError('ERR_UNSAFE_ARCHIVE', `archive entry ${path} is a file, signed as a symlink`);
      if (want && entry.size !== want.size) throw new FerryError('ERR_SIZE', `archive entry ${path} is ${entry.size} bytes, signed ${want.size}`);
      totalBytes += entry.size;
      if (totalBytes > limits.maxTotalBytes) throw new FerryError('ERR_TOO_LARGE', `archive expands past ${limits.maxTotalBytes} bytes`);
      active.add(entry);
      entry.on('end', () => active.delete(entry));
      entry.on('error', () => {}); // reported through writeEntry's reader; never an unhandled event
      writes.push(writeEntry(entry, dest, path, want, dirs).then((f) => { extracted.push(f); onFileWritten?.(f.size); }, fail));
    } catch (err) {
      entry.resume();
      fail(err);
    }
  });

  const bound = expected ? signedExpansionBound(expected) : null;
  const gzipped = bound !== null && (await startsWithGzip(archive));
  await new Promise<void>((resolve) => {
    const input = createReadStream(archive);
    input.on('error', (err) => { fail(fromFsError(err, `reading ${archive}`)); resolve(); });
    parser.on('error', (err: Error) => {
      const code = /decompression ratio/i.test(err.message) ? 'ERR_TOO_LARGE' : 'ERR_UNSAFE_ARCHIVE';
      fail(failure ?? new FerryError(code, `${code === 'ERR_TOO_LARGE' ? 'archive expands too far' : 'malformed archive'}: ${err.message}`, { cause: err }));
      resolve();
    });
    parser.on('close', () => { stopActive(failure ?? new FerryError('ERR_UNSAFE_ARCHIVE', 'archive ended inside an entry')); resolve(); });
    if (bound === null) {
      input.pipe(parser as unknown as NodeJS.WritableStream);
      return;
    }
    // A signed archive: decompressed here, and its tar bytes counted against what the signed
    // list allows, so nothing past that is ever inflated (trailing data included). The bytes up
    // to the bound reach the parser first, so an entry that contradicts its signed size is named
    // as such (ERR_SIZE) rather than as the bound.
    const inflate = gzipped ? createGunzip() : null;
    const source = inflate ? input.pipe(inflate) : input;
    const stop = (err: unknown) => {
      fail(err);
      input.destroy();
      inflate?.destroy();
      resolve();
    };
    inflate?.on('error', (err) => stop(new FerryError('ERR_UNSAFE_ARCHIVE', `malformed archive: ${err.message}`, { cause: err })));
    parser.on('error', () => { input.destroy(); inflate?.destroy(); });
    let seen = 0;
    source.on('data', (chunk: Buffer) => {
      if (failure !== undefined) return stop(failure);
      seen += chunk.length;
      const over = seen - bound;
      const more = parser.write(over > 0 ? chunk.subarray(0, chunk.length - over) : chunk);
      if (over > 0) return stop(new FerryError('ERR_TOO_LARGE', `archive expands past the ${bound} bytes its signed file list allows`));
      if (!more) {
        source.pause();
        parser.once('drain', () => source.resume());
      }
    });
    source.on('end', () => parser.end());
  });
  await Promise.allSettled(writes);
  if (failure !== undefined) throw failure;

  if (expected) {
    const got = new Set([...extracted.map((f) => f.path), ...links.keys()]);
    for (const path of expected.keys()) {
      if (!got.has(path)) throw new FerryError('ERR_UNSAFE_ARCHIVE', `archive lacks signed file ${path}`);
    }
  }
  if (expected && links.size > 0) await makeLinks(dest, expected, links, dirs);
  await fsyncDirsUnder(dest, 'extract.dirs');
  return extracted;
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

async function ensureParents(dest: string, path: string, dirs: Set<string>): Promise<void> {
  const parts = path.split('/').slice(0, -1);
  for (let i = 1; i <= parts.length; i++) {
    const rel = parts.slice(0, i).join('/');
    if (dirs.has(rel)) continue;
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
  if (unsafe) throw new FerryError('ERR_UNSAFE_ARCHIVE', `signed file list: ${unsafe.path} is a symlink that ${unsafe.why}`);
  try {
    for (const path of links.keys()) await ensureParents(dest, path, dirs);
    for (const [path, target] of links) await symlink(target, join(dest, path));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST' || code === 'ENOTDIR' || code === 'ELOOP') throw new FerryError('ERR_UNSAFE_ARCHIVE', `a signed symlink collides with an earlier entry`, { cause: err });
    throw fromFsError(err, `making the links of ${dest}`);
  }
}

async function writeEntry(entry: ReadEntry, dest: string, path: string, want: ExpectedFile | undefined, dirs: Set<string>): Promise<ExtractedFile> {
  const target = join(dest, path);
  try {
    await ensureParents(dest, path, dirs);
    const handle = await open(target, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    const hash = createHash('sha256');
    let size = 0;
    try {
      for await (const chunk of entry as AsyncIterable<Buffer>) {
        hash.update(chunk);
        size += chunk.length;
        await handle.write(chunk);
      }
      if (!skipsFsync('extract.file')) await handle.sync();
    } finally {
      await handle.close();
    }
    const sha256 = hash.digest('hex');
    if (want) {
      expectHash(sha256, want.sha256, `archive entry ${path}`);
      await chmod(target, want.mode & 0o777);
    } else {
      // No signed mode: keep only the owner's execute intent, never special bits.
      await chmod(target, (entry.mode ?? 0o644) & 0o100 ? 0o755 : 0o644);
    }
    return { path, size, sha256 };
  } catch (err) {
    entry.resume();
    if (err instanceof FerryError) throw err;
    if ((err as NodeJS.ErrnoException).code === 'EEXIST' || (err as NodeJS.ErrnoException).code === 'ELOOP' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') {
      throw new FerryError('ERR_UNSAFE_ARCHIVE', `archive entry ${path} collides with an earlier entry`, { cause: err });
    }
    throw fromFsError(err, `extracting ${path}`);
  }
}
