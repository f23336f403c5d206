// Applies one patch entry on the device (ARCHITECTURE.md "Patch format"), in pure TypeScript: no
// native module, no worker process. The entry's first 8 bytes say what it is:
//   FERRYBD1  ferry's own format, applied here as a stream (below);
//   BSDIFF40  a patch from a repository made before FERRYBD1, handed to the native patcher if the
//             device has one (ERR_NO_PATCHER if not: the update falls back to the full artifact);
//   FERRYZF1  a zstd-from entry (core/delta/zstd-from.ts; ERR_NO_PATCHER on a Node without zstd);
//   FERRYSB1  a member of a solid block (core/delta/solid-format.ts): the block is decoded into
//             memory (at most SOLID_MAX_DECODED bytes, a bomb stopped one chunk past that), split
//             and checked whole, once per delta for all its members (core/delta/solid-blocks.ts),
//             then the member is checked against its signed op and replayed like a FERRYBD1 patch
//             (or written, for a whole file) from those bytes;
//   anything else: ERR_PATCH.
//
// FERRYBD1 (SECURITY.md row 17): the header is checked against the signed op and the base before
// a byte is written; then the control entries are replayed, each checked before it writes, with
// the three brotli decoders pulled only as far as the entries need (a decompression bomb costs
// one chunk, never a drain), the output hashed as it is written, and every stream required to end
// exactly where the last entry ends. The base is read either whole (up to a cap) or by positioned
// reads, and the output leaves through a 1 MiB buffer, so the old and new files are never both in
// memory. A large output's diff and extra streams are decoded 256 KiB at a time, and diff bytes are
// added only in 4 KiB blocks that are not all zeros (issue 14 item 7). Given the base's signed hash (apply-delta always gives it), the base is checked first, in
// the read that loads it: a base held whole is patched from the very bytes that were hashed, and
// is read once (issue 14 item 7). The output is not fsynced here: the caller syncs its outputs together.
//
// A FERRYBD1 patch with filter 1 (the x86-64 branch filter, core/delta/x86-filter.ts) was made
// between filtered copies of both files: the base it reads is filter(base) — a base held in memory
// is filtered in place once its hash is checked, a larger one is first written filtered to a
// private temp file beside the output and read from that — and the output is unfiltered as it
// leaves the output buffer, before it is hashed and written (filteredBase, replay's flush). FERRYSB1
// members never carry a filter.

import { closeSync, constants as fsc, fstatSync, openSync, read, readSync, writeSync, type ReadStream } from 'node:fs';
import { copyFile, link, mkdtemp, open, rm, stat, unlink, type FileHandle } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream';
import { promisify } from 'node:util';
import { createBrotliDecompress, type BrotliDecompress } from 'node:zlib';
import { FerryError, fromFsError } from '../errors.ts';
import { expectHash, sha256File } from '../io/hash.ts';
import type { Patcher } from '../ports/patcher.ts';
import { applyZstdFromEntry } from './zstd-from.ts';
import { expandDiff, parseSolid, readSolidHeader, SOLID_MAGIC, type SolidMember } from './solid-format.ts';
import type { BaseBuffers } from './base-buffers.ts';
import { SolidBlocks } from './solid-blocks.ts';
import { brotliDecoder, collectDecodedGarbage, COLLECT_EVERY } from '../io/brotli.ts';
import {
  BSDIFF40_MAGIC, CONTROL_LEB128, FERRYBD1_MAGIC, FERRYZF1_MAGIC, FILTER_NONE, FILTER_X86, MAGIC_SIZE, MAX_VARINT_BYTES, PATCH_HEADER_SIZE,
  patchMagic, readPatchHeader, statedPatchSize, type ControlEncoding, type PatchFilter, type PatchHeader,
} from './patch-format.ts';
import { x86Filter, x86FilterStart, x86FilterWhole, X86_LOOKAHEAD } from './x86-filter.ts';
import { ControlGroups } from './control-groups.ts';

/** fs.read at a position, awaited (the filtered base's copy reads the open base while other patches run). */
const readAt = promisify(read);

export interface PatchEntryInput {
  /** The base file: a regular file whose sha256 the caller has already checked, or checks while this reads it. */
  baseFile: string;
  /** The base's signed size. */
  baseSize: number;
  /** Where the patch bytes are: `size` bytes at `offset` of `file` (a delta pack, or a file of its own). */
  patch: { file: string; offset: number; size: number };
  /** The output file; must not exist; created here with O_EXCL | O_NOFOLLOW, mode 0600, not fsynced. */
  outFile: string;
  /** The signed size of the output. */
  newSize: number;
  /**
   * The base's signed sha256. When given, the base is checked here before anything else is done
   * (ERR_HASH_MISMATCH when it differs), in the same read that loads it: a base held in memory
   * (up to `oldInMemoryMax`) is read once, hashed, and patched from that very buffer, instead of
   * being hashed by the caller and read again (issue 14 item 7). Without it the caller has
   * checked the base already.
   */
  baseSha256?: string;
  /** Where a base held in memory gets its buffer, and gives it back when the patch is done (reused across one delta's patches). */
  baseBuffers?: BaseBuffers;
  /** For old BSDIFF40 entries only (repositories made before FERRYBD1): the native patcher, if any. */
  legacy?: Patcher;
  /** A base up to this many bytes is read into memory whole (faster on patches that seek a lot); a larger one by positioned reads. Default OLD_IN_MEMORY_MAX. */
  oldInMemoryMax?: number;
  /** Hears the output's size so far each time a buffer of it is written (progress on large files). */
  onWritten?: (bytes: number) => void;
  /** For a FERRYSB1 entry (a solid block several ops name): the op's signed sha256, which names its member (core/delta/solid-format.ts). */
  member?: string;
  /** The solid blocks of the delta this entry is part of, each decoded once for all its members (core/delta/solid-blocks.ts); without it a block is decoded for this entry alone. */
  solidBlocks?: SolidBlocks;
}

/**
 * Bases up to this size are held in memory while patching (the output never is): far fewer reads
 * on a patch that seeks a lot, and it keeps a whole update of such files under ~100 MB of RSS.
 */
export const OLD_IN_MEMORY_MAX = 16 * 1024 * 1024;
/** Output buffer: written and hashed each time it fills. */
const OUT_CHUNK = 1024 * 1024;
/** Decoder output per pull, and compressed bytes per read. */
const STREAM_CHUNK = 64 * 1024;
/**
 * Decoder output per pull for the diff and extra streams of a patch whose output is at least
 * LARGE_OUTPUT bytes. A 9 MB file changed in a few bytes has a 9 MB diff stream of zeros: pulled
 * 64 KiB at a time, each pull a round trip through the thread pool, it took ~70 ms to decode, and
 * ~22 ms at 1 MiB (issue 14 item 7). 256 KiB is as fast (bench/apply's 50 MB delta in-process:
 * 557-657 ms against 637-707 at 1 MiB) and its dead chunks, each a fresh Buffer from the decoder,
 * cost the update's peak ~5 MiB less (87-92 MiB against 93-98). Two such buffers per patch,
 * counted in apply-delta's patchMemory.
 */
export const LARGE_STREAM_CHUNK = 256 * 1024;
export const LARGE_OUTPUT = 4 * 1024 * 1024;
/** Diff bytes compared at once against zeros (natively) before any is added in JS: bsdiff's diff is mostly zeros. */
const ZERO_BLOCK = 4096;
const ZEROS = Buffer.alloc(ZERO_BLOCK);
/** Positioned-read window over a base too large for memory (a larger one costs more on backward seeks). */
const OLD_WINDOW = 16 * 1024;
/** Reads of a base too large for memory while it is hashed. */
const BASE_READ_CHUNK = 256 * 1024;
/** bsdiff-node crashes on very long paths: a base path this long is handed to it through a short private link. */
const LONG_PATH = 200;

const bogus = (why: string) => new FerryError('ERR_PATCH', why);

/**
 * Builds `outFile` from the base and the patch, and returns the sha256 and size of what it wrote
 * (the caller compares them with the signed ones). ERR_PATCH for a bogus patch, before a byte is
 * written when the header can tell.
 */
export async function applyPatchEntry(input: PatchEntryInput): Promise<{ sha256: string; size: number }> {
  // The base first, as the caller did before: a base that is not the signed one is told as such
  // (ERR_HASH_MISMATCH), whatever the patch says.
  const checkedBase = input.baseSha256 === undefined ? undefined : await readCheckedBase(input.baseFile, input.baseSha256, input.oldInMemoryMax ?? OLD_IN_MEMORY_MAX, input.baseBuffers);
  try {
    return await applyEntry(input, checkedBase);
  } finally {
    if (checkedBase) input.baseBuffers?.give(checkedBase);
  }
}

async function applyEntry(input: PatchEntryInput, checkedBase: Buffer | undefined): Promise<{ sha256: string; size: number }> {
  const { patch } = input;
  if (!Number.isSafeInteger(patch.offset) || !Number.isSafeInteger(patch.size) || patch.offset < 0 || patch.size < 0) {
    throw new FerryError('ERR_INTERNAL', `patch range ${patch.offset}+${patch.size} is not a byte range`);
  }
  let head: Buffer;
  let fileSize: number;
  try {
    const h = await open(patch.file, fsc.O_RDONLY | fsc.O_NOFOLLOW);
    try {
      fileSize = (await h.stat()).size;
      head = Buffer.alloc(Math.min(PATCH_HEADER_SIZE, patch.size));
      const { bytesRead } = await h.read(head, 0, head.length, patch.offset);
      head = head.subarray(0, bytesRead);
    } finally {
      await h.close();
    }
  } catch (err) {
    throw fromFsError(err, `reading the patch ${patch.file}`);
  }
  if (patch.offset + patch.size > fileSize) throw bogus(`patch entry [${patch.offset}, ${patch.offset + patch.size}) lies past the end of ${patch.file} (${fileSize} bytes)`);
  const magic = patchMagic(head);
  switch (magic) {
    case FERRYBD1_MAGIC: return applyFerryPatch(input, readPatchHeader(head), checkedBase);
    case BSDIFF40_MAGIC: return applyLegacyPatch(input, fileSize);
    case FERRYZF1_MAGIC: return applyZstdFromEntry(input);
    case SOLID_MAGIC: return applySolidMember({ ...input, base: { file: input.baseFile, size: input.baseSize, ...(checkedBase ? { checked: checkedBase } : {}) } });
    default: throw bogus(head.length < MAGIC_SIZE ? `patch entry of ${patch.size} bytes has no magic` : `patch entry has an unknown magic ${JSON.stringify(magic)}`);
  }
}

/**
 * Checks the base against its signed sha256 in one read: a base up to `inMemoryMax` bytes is read
 * whole and returned (the bytes that were hashed are the bytes patched: nothing can change them
 * between the check and the use); a larger one is hashed as a stream and read again later by
 * positioned reads. Never through a link (O_NOFOLLOW); a missing base or a link is
 * ERR_HASH_MISMATCH, like a base that does not hash.
 */
async function readCheckedBase(path: string, sha256: string, inMemoryMax: number, buffers: BaseBuffers | undefined): Promise<Buffer | undefined> {
  let h: FileHandle;
  try {
    h = await open(path, fsc.O_RDONLY | fsc.O_NOFOLLOW);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ELOOP') throw new FerryError('ERR_HASH_MISMATCH', `base file ${path} is missing or is a link`, { cause: err });
    throw fromFsError(err, `reading the base ${path}`);
  }
  try {
    const size = (await h.stat()).size;
    const hash = createHash('sha256');
    if (size <= inMemoryMax) {
      const buf = buffers?.take(size) ?? Buffer.allocUnsafe(size);
      try {
        for (let done = 0; done < size;) {
          const { bytesRead } = await h.read(buf, done, size - done, done);
          if (bytesRead === 0) throw new FerryError('ERR_HASH_MISMATCH', `the base file ${path} shrank while it was read (${done} of ${size} bytes)`);
          done += bytesRead;
        }
        hash.update(buf);
        expectHash(hash.digest('hex'), sha256, `base file ${path}`);
      } catch (err) {
        buffers?.give(buf);
        throw err;
      }
      return buf;
    } else {
      for await (const chunk of h.createReadStream({ autoClose: false, highWaterMark: BASE_READ_CHUNK }) as AsyncIterable<Buffer>) hash.update(chunk);
    }
    expectHash(hash.digest('hex'), sha256, `base file ${path}`);
    return undefined;
  } catch (err) {
    if (err instanceof FerryError) throw err;
    throw fromFsError(err, `reading the base ${path}`);
  } finally {
    await h.close();
  }
}

// ---------------------------------------------------------------------------------------------
// BSDIFF40: the native patcher, behind the same size check as before FERRYBD1 existed.

async function applyLegacyPatch(input: PatchEntryInput, fileSize: number): Promise<{ sha256: string; size: number }> {
  const { legacy, patch } = input;
  if (!legacy) throw new FerryError('ERR_NO_PATCHER', 'a BSDIFF40 patch (a repository made before FERRYBD1) and no bsdiff patcher on this device');
  const header = Buffer.alloc(Math.min(legacy.headerSize, patch.size));
  let dir: string | undefined;
  try {
    const h = await open(patch.file, fsc.O_RDONLY | fsc.O_NOFOLLOW);
    try { await h.read(header, 0, header.length, patch.offset); } finally { await h.close(); }
    const promised = legacy.outputSize(header, patch.size);
    if (promised !== input.newSize) throw bogus(`patch promises ${promised} bytes, signed ${input.newSize}`);
    // A private folder beside the output: the patcher writes a fresh short path of ours (it would
    // follow a symlink at its output path) and reads a patch file of its own.
    dir = await mkdtemp(join(dirname(input.outFile), '.bsdiff40-'));
    let patchFile = patch.file;
    if (patch.offset !== 0 || patch.size !== fileSize) {
      patchFile = join(dir, 'patch');
      await copyRange(patch.file, patch.offset, patch.size, patchFile);
    }
    let base = input.baseFile;
    if (base.length > LONG_PATH) {
      const short = join(dir, 'base');
      await link(base, short).catch(() => copyFile(base, short, fsc.COPYFILE_EXCL));
      base = short;
    }
    const built = join(dir, 'new');
    await legacy.patch(base, built, patchFile);
    // link() never follows a link at its destination and fails if anything is there.
    await link(built, input.outFile);
    const size = (await stat(input.outFile)).size;
    return { sha256: await sha256File(input.outFile), size };
  } catch (err) {
    if (err instanceof FerryError) throw err;
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new FerryError('ERR_HASH_MISMATCH', `base file ${input.baseFile} is missing`, { cause: err });
    throw fromFsError(err, `applying a BSDIFF40 patch to ${input.baseFile}`);
  } finally {
    if (dir) await rm(dir, { recursive: true, force: true });
  }
}

/** Copies `size` bytes at `offset` of `from` into a new file `to`. */
async function copyRange(from: string, offset: number, size: number, to: string): Promise<void> {
  const src = await open(from, fsc.O_RDONLY | fsc.O_NOFOLLOW);
  try {
    const dst = await open(to, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600);
    try {
      const buf = Buffer.allocUnsafe(Math.min(OUT_CHUNK, Math.max(size, 1)));
      for (let done = 0; done < size;) {
        const { bytesRead } = await src.read(buf, 0, Math.min(buf.length, size - done), offset + done);
        if (bytesRead === 0) throw bogus(`patch file ${from} ends inside its entry`);
        await dst.write(buf, 0, bytesRead);
        done += bytesRead;
      }
    } finally {
      await dst.close();
    }
  } finally {
    await src.close();
  }
}

// ---------------------------------------------------------------------------------------------
// FERRYBD1

/** Bytes every patch of this process decoded since the last collection (noteDecoded). */
let decodedSinceCollect = 0;

/**
 * Counts decoded bytes over all patches and, every COLLECT_EVERY of them, collects the decoders'
 * dead chunks (core/io/brotli.ts collectDecodedGarbage): each chunk is a fresh Buffer, and a
 * delta's large patches would otherwise leave tens of MiB of them for V8 to notice (issue 14 item 7).
 */
function noteDecoded(bytes: number): void {
  decodedSinceCollect += bytes;
  if (decodedSinceCollect < COLLECT_EVERY) return;
  decodedSinceCollect = 0;
  collectDecodedGarbage();
}

/**
 * One brotli stream of the patch, decoded on demand: `more()` pulls the next decoded chunk (the
 * only await), `buf`/`pos` are what is decoded and not yet used. The decoder is paused by
 * backpressure whenever nobody pulls, so it never decodes far ahead of the entries.
 */
class BrotliPull {
  buf: Buffer = Buffer.alloc(0);
  pos = 0;
  private decoded = 0;
  private ended = false;
  private readonly decoder: BrotliDecompress;
  private readonly source: ReadStream | undefined;
  private readonly it: AsyncIterator<Buffer>;
  private readFailure: unknown;

  constructor(patch: FileHandle, start: number, private readonly length: number, private readonly cap: number, private readonly name: string, chunk = STREAM_CHUNK) {
    // Both coders decode with the large-window flag: it accepts standard streams too.
    this.decoder = createBrotliDecompress({ ...brotliDecoder(), chunkSize: chunk });
    // A stream that fails before anyone pulls it must not crash the process: its error surfaces
    // through the iterator when (if) it is pulled.
    this.decoder.on('error', () => undefined);
    if (length === 0) {
      // Nothing to read; the decoder then refuses the empty input (brotli has no empty stream).
      this.source = undefined;
      this.decoder.end();
    } else {
      this.source = patch.createReadStream({ start, end: start + length - 1, autoClose: false, highWaterMark: STREAM_CHUNK });
      this.source.on('error', (err) => { this.readFailure ??= err; });
      pipeline(this.source, this.decoder, () => { /* errors surface through the iterator */ });
    }
    this.it = this.decoder[Symbol.asyncIterator]();
  }

  /** Pulls the next decoded chunk into `buf`; false at the end of the stream. */
  async more(): Promise<boolean> {
    if (this.ended) return false;
    let next: IteratorResult<Buffer>;
    try {
      next = await this.it.next();
    } catch (err) {
      if (this.readFailure !== undefined) throw fromFsError(this.readFailure, `reading the patch's ${this.name} stream`);
      throw bogus(`the patch's ${this.name} stream does not decode: ${(err as Error).message}`);
    }
    if (next.done) {
      this.ended = true;
      return false;
    }
    this.decoded += next.value.length;
    if (this.decoded > this.cap) throw bogus(`the patch's ${this.name} stream decodes past the ${this.cap} bytes its entries can use`);
    noteDecoded(next.value.length);
    this.buf = next.value;
    this.pos = 0;
    return true;
  }

  /** Makes at least `n` unused bytes available when the stream has them (joins chunks); false if it ends first. */
  async atLeast(n: number): Promise<boolean> {
    while (this.buf.length - this.pos < n) {
      const rest = this.buf.subarray(this.pos);
      if (!(await this.more())) {
        this.buf = rest;
        this.pos = 0;
        return false;
      }
      this.buf = Buffer.concat([rest, this.buf]);
      this.pos = 0;
    }
    return true;
  }

  /** The entries are done: every decoded byte was used, the stream ends here, and its compressed bytes end exactly at its length. */
  async finish(): Promise<void> {
    if (this.pos !== this.buf.length || (await this.more())) throw bogus(`the patch's ${this.name} stream has bytes past its last entry`);
    if (this.decoder.bytesWritten !== this.length) throw bogus(`the patch's ${this.name} stream ends after ${this.decoder.bytesWritten} of its ${this.length} compressed bytes`);
  }

  close(): void {
    this.source?.destroy();
    this.decoder.destroy();
  }
}

/** The old file's bytes: all in memory, or a positioned-read window over the open file. */
interface OldBytes {
  /** Makes old[p] readable as `buf[p - start]`; returns how many bytes from p are there (≥ 1). */
  at(p: number): number;
  buf: Buffer;
  start: number;
}

/** Bytes of the base from p on; the entry checks keep p inside, so anything else is a bug (and would spin the add loop). */
function inside(p: number, size: number): number {
  if (!(p >= 0 && p < size)) throw new FerryError('ERR_INTERNAL', `read of the base at ${p} of ${size} bytes`);
  return size - p;
}

function oldBytes(fd: number, size: number, inMemoryMax: number, checked: Buffer | undefined): OldBytes {
  if (checked !== undefined && checked.length === size) return { buf: checked, start: 0, at: (p) => inside(p, size) };
  if (size <= inMemoryMax) {
    const buf = Buffer.allocUnsafe(size);
    for (let done = 0; done < size;) {
      const n = readSync(fd, buf, done, size - done, done);
      if (n === 0) throw new FerryError('ERR_HASH_MISMATCH', `the base file shrank while it was read (${done} of ${size} bytes)`);
      done += n;
    }
    return { buf, start: 0, at: (p) => inside(p, size) };
  }
  const full = Buffer.allocUnsafe(OLD_WINDOW);
  const w: OldBytes = {
    buf: full.subarray(0, 0),
    start: 0,
    at(p) {
      inside(p, size);
      let have = w.start + w.buf.length - p;
      if (p < w.start || have <= 0) {
        const n = readSync(fd, full, 0, Math.min(OLD_WINDOW, size - p), p);
        if (n === 0) throw new FerryError('ERR_HASH_MISMATCH', `the base file shrank while it was read (at ${p} of ${size} bytes)`);
        w.start = p;
        w.buf = full.subarray(0, n);
        have = n;
      }
      return have;
    },
  };
  return w;
}

/** `checkedBase`: the base's bytes, already read and checked against its signed hash (readCheckedBase), if it was small enough to hold. */
async function applyFerryPatch(input: PatchEntryInput, h: PatchHeader, checkedBase: Buffer | undefined): Promise<{ sha256: string; size: number }> {
  // Every check the header allows, before anything is opened for writing.
  if (h.newSize !== input.newSize) throw bogus(`patch promises ${h.newSize} bytes, signed ${input.newSize}`);
  if (h.oldSize !== input.baseSize) throw bogus(`patch is for a base of ${h.oldSize} bytes, the signed base has ${input.baseSize}`);
  if (statedPatchSize(h) !== input.patch.size) throw bogus(`patch header states ${statedPatchSize(h)} bytes, the signed entry has ${input.patch.size}`);

  let patchHandle: FileHandle | undefined;
  const streams: BrotliPull[] = [];
  try {
    patchHandle = await open(input.patch.file, fsc.O_RDONLY | fsc.O_NOFOLLOW);
    let at = input.patch.offset + PATCH_HEADER_SIZE;
    // What each stream may decode to at most: every entry's varints, and newSize for diff and extra.
    const ctrl = new BrotliPull(patchHandle, at, h.controlLength, h.entries * 3 * MAX_VARINT_BYTES, 'control');
    streams.push(ctrl);
    at += h.controlLength;
    const chunk = h.newSize >= LARGE_OUTPUT ? LARGE_STREAM_CHUNK : STREAM_CHUNK;
    const diff = new BrotliPull(patchHandle, at, h.diffLength, h.newSize, 'diff', chunk);
    streams.push(diff);
    at += h.diffLength;
    const extra = new BrotliPull(patchHandle, at, h.extraLength, h.newSize, 'extra', chunk);
    streams.push(extra);
    return await replay(input, h, ctrl, diff, extra, checkedBase, h.filter);
  } catch (err) {
    if (err instanceof FerryError) throw err;
    throw fromFsError(err, `applying a FERRYBD1 patch to ${input.baseFile}`);
  } finally {
    for (const s of streams) s.close();
    await patchHandle?.close();
  }
}

/** A patch's decoded stream as replay() reads it: a brotli stream pulled on demand, or bytes already in memory (a FERRYSB1 member). */
interface Pull {
  buf: Buffer;
  pos: number;
  more(): Promise<boolean>;
  atLeast(n: number): Promise<boolean>;
  finish(): Promise<void>;
}

/** Bytes in memory as a Pull: all of them are there from the start. */
class BufferPull implements Pull {
  pos = 0;
  constructor(public buf: Buffer, private readonly name: string) {}
  async more(): Promise<boolean> { return false; }
  async atLeast(n: number): Promise<boolean> { return this.buf.length - this.pos >= n; }
  async finish(): Promise<void> {
    if (this.pos !== this.buf.length) throw bogus(`the patch's ${this.name} bytes go on past its last entry`);
  }
}

/**
 * Replays the control entries of a patch whose sizes were checked against the signed ones: opens
 * the base (it must have exactly oldSize bytes), creates the output, checks each entry before it
 * writes, hashes what it writes, and requires every stream to end with the last entry. The output
 * is removed if anything fails. `checkedBase`: the base's bytes as applyPatchEntry read and
 * checked them (patched from those very bytes), when it held them in memory. `filter`: the
 * header's; with FILTER_X86 the entries read filter(base) and build filter(new), which is
 * unfiltered here before it is hashed and written.
 */
async function replay(input: PatchEntryInput, h: { entries: number; oldSize: number; newSize: number; controlEncoding: ControlEncoding }, ctrl: Pull, diff: Pull, extra: Pull, checkedBase: Buffer | undefined, filter: PatchFilter): Promise<{ sha256: string; size: number }> {
  let baseFd = -1;
  let outFd = -1;
  let created = false;
  let filtered: FilteredBase | undefined;
  try {
    try {
      baseFd = openSync(input.baseFile, fsc.O_RDONLY | fsc.O_NOFOLLOW);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ELOOP') throw new FerryError('ERR_HASH_MISMATCH', `base file ${input.baseFile} is missing or is a link`, { cause: err });
      throw err;
    }
    const st = fstatSync(baseFd);
    if (!st.isFile() || st.size !== h.oldSize) throw new FerryError('ERR_HASH_MISMATCH', `base file ${input.baseFile} has ${st.size} bytes, the patch and the signed base have ${h.oldSize}`);
    const inMemoryMax = input.oldInMemoryMax ?? OLD_IN_MEMORY_MAX;
    let old: OldBytes;
    if (filter === FILTER_X86) {
      filtered = await filteredBase(baseFd, h.oldSize, inMemoryMax, checkedBase, input.outFile);
      old = filtered.old;
    } else {
      old = oldBytes(baseFd, h.oldSize, inMemoryMax, checkedBase);
    }

    outFd = openSync(input.outFile, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600);
    created = true;
    const hash = createHash('sha256');
    // With the filter, up to X86_LOOKAHEAD undecided bytes stay in the buffer after a flush: room
    // for them, so a flush of a full buffer always makes room.
    const out = Buffer.allocUnsafe(Math.min(OUT_CHUNK, Math.max(h.newSize, 1)) + (filter === FILTER_X86 ? X86_LOOKAHEAD : 0));
    let o = 0;
    let written = 0;
    const unfilter = filter === FILTER_X86 ? x86FilterStart() : undefined;
    /** Writes and hashes the output buffer; `last` once the output is complete. */
    const flush = (last: boolean) => {
      // The filter undone (decode) on what the buffer holds; bytes it cannot decide before the next
      // ones are built (the end of a candidate instruction) move to the buffer's front.
      const ready = unfilter ? x86Filter(out.subarray(0, o), unfilter, false, last) : o;
      for (let done = 0; done < ready;) done += writeSync(outFd, out, done, ready - done);
      hash.update(out.subarray(0, ready));
      written += ready;
      out.copy(out, 0, ready, o);
      o -= ready;
      input.onWritten?.(written);
    };

    const { newSize, oldSize } = h;
    const control = new ControlGroups(ctrl, h.controlEncoding, h.entries);
    const t = control.triples;
    let groupStart = 0;
    let groupEnd = 0;
    let newPos = 0;
    let oldPos = 0;
    // The fast path is synchronous: an await happens only when a stream's decoded chunk runs out.
    for (let e = 0; e < h.entries; e++) {
      if (e === groupEnd) {
        groupStart = e;
        groupEnd = e + (await control.read(e));
      }
      const x = t[3 * (e - groupStart)]!;
      const y = t[3 * (e - groupStart) + 1]!;
      const seek = t[3 * (e - groupStart) + 2]!;
      // x and y are never negative (unsigned varints); their sum must fit what is left.
      if (x > newSize - newPos || y > newSize - newPos - x) throw bogus(`control entry ${e} writes past the signed ${newSize} bytes (at ${newPos}, +${x}, +${y})`);
      if (x > 0 && (oldPos < 0 || x > oldSize - oldPos)) throw bogus(`control entry ${e} adds old bytes [${oldPos}, ${oldPos + x}) outside the base's ${oldSize}`);

      // add: x old bytes plus x diff bytes
      for (let left = x; left > 0;) {
        if (diff.pos === diff.buf.length && !(await diff.more())) throw bogus(`the patch's diff stream ends before entry ${e} is done`);
        const avail = old.at(oldPos);
        const n = Math.min(left, diff.buf.length - diff.pos, out.length - o, avail);
        addBytes(out, o, old.buf, oldPos - old.start, diff.buf, diff.pos, n);
        o += n;
        diff.pos += n;
        oldPos += n;
        left -= n;
        if (o === out.length) flush(false);
      }
      // copy: y extra bytes
      for (let left = y; left > 0;) {
        if (extra.pos === extra.buf.length && !(await extra.more())) throw bogus(`the patch's extra stream ends before entry ${e} is done`);
        const n = Math.min(left, extra.buf.length - extra.pos, out.length - o);
        extra.buf.copy(out, o, extra.pos, extra.pos + n);
        o += n;
        extra.pos += n;
        left -= n;
        if (o === out.length) flush(false);
      }
      newPos += x + y;
      oldPos += seek;
      // Kept in a range where the arithmetic stays exact; any real seek is far inside it.
      if (Math.abs(oldPos) > MAX_OLD_POS) throw bogus(`control entry ${e} seeks the base to ${oldPos}`);
    }
    flush(true);
    if (newPos !== newSize) throw bogus(`the patch's ${h.entries} entries write ${newPos} bytes, signed ${newSize}`);
    for (const s of [ctrl, diff, extra]) await s.finish();
    return { sha256: hash.digest('hex'), size: written };
  } catch (err) {
    if (created) await unlink(input.outFile).catch(() => undefined);
    if (err instanceof FerryError) throw err;
    throw fromFsError(err, `applying a patch to ${input.baseFile}`);
  } finally {
    if (baseFd >= 0) closeSync(baseFd);
    if (outFd >= 0) closeSync(outFd);
    await filtered?.remove();
  }
}

/** filter(base) as a patch with filter 1 reads it; `remove` drops the temp file, if there is one. */
interface FilteredBase {
  old: OldBytes;
  remove(): Promise<void>;
}

/**
 * The base's bytes through the x86-64 filter (encode), for a patch with filter 1. A base held in
 * memory (`checked`, the buffer readCheckedBase hashed, or read whole here) is filtered in place:
 * the buffer is the patch's own scratch copy (from BaseBuffers, given back when the patch is done,
 * and never read as the base again). A larger base is written filtered to a temp file in a private
 * folder beside the output (the same filesystem as the output; created exclusively, removed when
 * the patch is done) and read from there through the positioned-read window.
 */
async function filteredBase(baseFd: number, size: number, inMemoryMax: number, checked: Buffer | undefined, outFile: string): Promise<FilteredBase> {
  if ((checked !== undefined && checked.length === size) || size <= inMemoryMax) {
    const old = oldBytes(baseFd, size, inMemoryMax, checked);
    x86FilterWhole(old.buf, true);
    return { old, remove: async () => undefined };
  }
  const dir = await mkdtemp(join(dirname(outFile), '.x86-base-'));
  let fd = -1;
  try {
    const file = join(dir, 'base');
    fd = openSync(file, fsc.O_RDWR | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600);
    const state = x86FilterStart();
    const buf = Buffer.allocUnsafe(BASE_READ_CHUNK + X86_LOOKAHEAD);
    let carried = 0;
    for (let at = 0; at < size;) {
      const { bytesRead } = await readAt(baseFd, buf, carried, Math.min(BASE_READ_CHUNK, size - at), at);
      if (bytesRead === 0) throw new FerryError('ERR_HASH_MISMATCH', `the base file shrank while it was read (${at} of ${size} bytes)`);
      at += bytesRead;
      const have = carried + bytesRead;
      const ready = x86Filter(buf.subarray(0, have), state, true, at === size);
      for (let done = 0; done < ready;) done += writeSync(fd, buf, done, ready - done);
      buf.copy(buf, 0, ready, have);
      carried = have - ready;
    }
    const tempFd = fd;
    return {
      old: oldBytes(tempFd, size, 0, undefined),
      remove: async () => {
        closeSync(tempFd);
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    if (fd >= 0) closeSync(fd);
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------
// FERRYSB1

export interface SolidMemberInput extends Omit<PatchEntryInput, 'baseFile' | 'baseSize' | 'legacy'> {
  /**
   * The base of a patch op, already checked against its signed sha256 by the caller
   * (applyPatchEntry, which also hands over the bytes it checked when it held them); absent for a
   * whole op.
   */
  base?: { file: string; size: number; checked?: Buffer };
}

/** The block's framing is at most this long: the magic and two varints. */
const SOLID_HEADER_MAX = 8 + 2 * MAX_VARINT_BYTES;

/** Decodes and splits the solid block at `patch` (ERR_PATCH for anything that is not exactly a block). */
async function readSolidBlock(patch: PatchEntryInput['patch']): Promise<SolidMember[]> {
  let handle: FileHandle | undefined;
  let pull: BrotliPull | undefined;
  try {
    handle = await open(patch.file, fsc.O_RDONLY | fsc.O_NOFOLLOW);
    const head = Buffer.alloc(Math.min(SOLID_HEADER_MAX, patch.size));
    const { bytesRead } = await handle.read(head, 0, head.length, patch.offset);
    const { members, decodedSize, headerSize } = readSolidHeader(head.subarray(0, bytesRead));
    if (patch.offset + patch.size > (await handle.stat()).size) throw bogus(`solid block [${patch.offset}, ${patch.offset + patch.size}) lies past the end of ${patch.file}`);
    pull = new BrotliPull(handle, patch.offset + headerSize, patch.size - headerSize, decodedSize, 'solid block');
    const chunks: Buffer[] = [];
    while (await pull.more()) chunks.push(pull.buf);
    pull.pos = pull.buf.length;
    await pull.finish();
    const decoded = Buffer.concat(chunks);
    if (decoded.length !== decodedSize) throw bogus(`the solid block decodes to ${decoded.length} bytes, its header states ${decodedSize}`);
    return parseSolid(decoded, members);
  } catch (err) {
    if (err instanceof FerryError) throw err;
    throw fromFsError(err, `reading the solid block in ${patch.file}`);
  } finally {
    pull?.close();
    await handle?.close();
  }
}

/**
 * Builds `outFile` from the member of the solid block at `patch` that names the op's signed sha256 (`member`): a patch member from `base`
 * (replayed with FERRYBD1's checks), a whole member from its bytes. The member's kind must be the
 * op's, and its stated sizes the signed ones, before anything is created.
 */
export async function applySolidMember(input: SolidMemberInput): Promise<{ sha256: string; size: number }> {
  const want = input.member;
  // A caller that names no member expected an entry of its own: a block there is a bogus entry.
  if (want === undefined || !/^[0-9a-f]{64}$/.test(want)) throw bogus('a FERRYSB1 solid block where an entry of its own was expected (no signed sha256 names a member)');
  const blocks = input.solidBlocks ?? new SolidBlocks();
  return blocks.use(input.patch, () => readSolidBlock(input.patch), (members) => applyMember(input, want, members));
}

/** applySolidMember on the block's members, decoded and checked whole by readSolidBlock. */
async function applyMember(input: SolidMemberInput, want: string, members: SolidMember[]): Promise<{ sha256: string; size: number }> {
  const k = members.findIndex((m) => want.startsWith(m.id));
  const m = members[k];
  if (!m) throw bogus(`no member of the solid block builds ${want.slice(0, 16)}…`);
  if (m.newSize !== input.newSize) throw bogus(`solid member ${k} promises ${m.newSize} bytes, signed ${input.newSize}`);
  const { base } = input;
  if (m.kind === 'patch') {
    if (!base) throw bogus(`solid member ${k} is a patch, the op has no base`);
    if (m.oldSize !== base.size) throw bogus(`solid member ${k} is for a base of ${m.oldSize} bytes, the signed base has ${base.size}`);
    const entry: PatchEntryInput = { ...input, baseFile: base.file, baseSize: base.size };
    return replay(entry, { ...m, controlEncoding: CONTROL_LEB128 }, new BufferPull(m.control, 'control'), new BufferPull(expandDiff(m), 'diff'), new BufferPull(m.extra, 'extra'), base.checked, FILTER_NONE);
  }
  if (base) throw bogus(`solid member ${k} is a whole file, the op is a patch`);
  let created = false;
  try {
    const fd = openSync(input.outFile, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600);
    created = true;
    try {
      for (let done = 0; done < m.data.length;) done += writeSync(fd, m.data, done, m.data.length - done);
    } finally {
      closeSync(fd);
    }
    input.onWritten?.(m.data.length);
    return { sha256: createHash('sha256').update(m.data).digest('hex'), size: m.data.length };
  } catch (err) {
    if (created) await unlink(input.outFile).catch(() => undefined);
    throw fromFsError(err, `writing ${input.outFile} from a solid block`);
  }
}

/**
 * out[o + i] = old[op + i] + diff[dp + i] (mod 256) for i < n. The old bytes are copied first
 * (a memcpy) and only the non-zero diff bytes added: bsdiff's diff stream is mostly zeros, so a
 * block of ZERO_BLOCK diff bytes that compares equal to zeros (a native compare, ~1 ms for 9 MB
 * where a JS scan took 12-20 ms) is skipped whole.
 */
function addBytes(out: Buffer, o: number, old: Buffer, op: number, diff: Buffer, dp: number, n: number): void {
  old.copy(out, o, op, op + n);
  for (let b = 0; b < n; b += ZERO_BLOCK) {
    const end = Math.min(n, b + ZERO_BLOCK);
    if (ZEROS.compare(diff, dp + b, dp + end, 0, end - b) === 0) continue;
    for (let i = b; i < end; i++) {
      const d = diff[dp + i]!;
      if (d !== 0) out[o + i] = out[o + i]! + d;
    }
  }
}

const MAX_OLD_POS = 2 ** 53 / 4;
