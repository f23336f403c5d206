// The USB / filesystem-drop transport (ARCHITECTURE.md "Transports"): a Source over whatever sits on one
// or more mount points — `.ferry` bundles and repository folders — found again on every use, so a
// stick can come, go or be swapped between calls. It decides nothing about trust; the core
// verifies every byte. What it does guarantee is SECURITY.md row 12 ("USB swapped under us"):
//
//   - A bundle is never read in place. It is copied from the stick into `privateDir` while being
//     hashed, in one pass; only that private copy is unpacked (core/publish/bundle.ts openBundle) and
//     read. If the file changed or vanished while it was copied (a stick pulled out, a file
//     rewritten), the copy is thrown away and the read fails with ERR_IO (retryable): nothing
//     half-copied is ever unpacked, and nothing on the stick is read twice.
//   - Unpacked copies are named by the sha256 of the bundle file and never change once made, so
//     the same bundle dropped twice (two names, or removed and dropped again) is unpacked once.
//   - A copy stays readable for `releases/...` paths after its bundle left the stick ("retired"),
//     so an update whose channel pointer and manifest came from that bundle finishes with exactly
//     the bytes it verified even if the stick is swapped mid-update. Channel pointers and roots
//     come only from what is on the stick now: an empty or missing mount offers no update.
//
// Several candidates (bundles and folders): reads are MERGED rather than one bundle picked.
// Candidates are ranked by the highest channel sequence they carry (read without verification —
// ranking only, never trust), then by newest mtime. `channels/<c>.json` is served by the candidate
// with the highest sequence for that channel; any other path by the first candidate in rank order
// that has it. Merging is safe because every file the core takes is pinned by a signature or a
// hash chained to one, and it lets a root rotation on one bundle and a release on another combine.
// Its limit: a forged bundle that claims a huge sequence shadows genuine ones on the same stick
// (the device refuses it and records why; other transports are unaffected, as discover reads
// each Source on its own). Broken bundles (truncated, unsafe) are recorded in problems() and
// skipped; when nothing usable is left, reads throw the first problem so the refusal is visible.
// File names on a stick are anyone's text: every message quotes them through printable()
// (SECURITY.md row 14).

import { constants, type Stats } from 'node:fs';
import { lstat, mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { createHash, randomBytes } from 'node:crypto';
import { basename, join } from 'node:path';
import { FerryError, fromFsError, type ErrorCode } from '../../core/errors.ts';
import { createDirSource } from '../../core/ports/dir-source.ts';
import { openBundle } from '../../core/publish/bundle.ts';
import { printable } from '../../core/io/printable.ts';
import { parseEnvelope } from '../../core/trust/dsse.ts';
import { CHANNEL_MAX_BYTES, CHANNELS, channelPath, type Channel } from '../../core/trust/metadata.ts';
import type { Source } from '../../core/ports/source.ts';
import { isRepoFolder, listFolder } from './mount-listing.ts';

export interface UsbHooks {
  /** After each chunk copied from the stick, awaited (tests pull or swap the stick mid-copy here). */
  onCopyChunk?(info: { bundle: string; copied: number; size: number }): void | Promise<void>;
  /** After a copy is complete and checked, before it is unpacked (the stick is not read again). */
  onCopied?(info: { bundle: string; sha256: string }): void | Promise<void>;
}

export interface UsbSourceOptions {
  mounts: string[];
  /** Owned by this source: emptied on first use and removed by close(). */
  privateDir: string;
  /** Bundles considered per scan, newest first (a stick with thousands of files costs no more). */
  maxBundles?: number;
  /** A bundle larger than this is recorded as ERR_TOO_LARGE, not copied. */
  maxBundleBytes?: number;
  hooks?: UsbHooks;
}

export interface UsbProblem {
  path: string;
  code: ErrorCode;
  message: string;
}

export type UsbSource = Source & {
  close(): Promise<void>;
  /** Bundles found on the last scan that could not be used, and why. */
  problems(): UsbProblem[];
};

const DEFAULTS = { maxBundles: 8, maxBundleBytes: 8 * 1024 ** 3 };
const COPY_CHUNK = 256 * 1024;

interface Candidate {
  kind: 'bundle' | 'folder';
  /** Where it is on the stick. */
  origin: string;
  source: Source;
  mtimeMs: number;
  /** Channel sequences it carries, unverified (ranking only). */
  sequences: Map<Channel, number>;
}

interface Opened {
  sha: string;
  dir: string;
  source: Source;
  sequences: Map<Channel, number>;
}

/** The stat fields that change when a file is replaced or rewritten. */
function identity(st: Stats): string {
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
}

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

function ioError(err: unknown, what: string): FerryError {
  if (err instanceof FerryError) return err;
  const code = errno(err);
  if (code === 'ENOSPC' || code === 'EDQUOT') return fromFsError(err, what);
  return new FerryError('ERR_IO', `${what} failed (${code ?? printable((err as Error)?.message ?? String(err))}); was the stick removed? try again`, { cause: err });
}

async function readSequences(source: Source): Promise<Map<Channel, number>> {
  const out = new Map<Channel, number>();
  for (const channel of CHANNELS) {
    try {
      const bytes = await source.read(channelPath(channel), CHANNEL_MAX_BYTES);
      if (!bytes) continue;
      const payload = JSON.parse(Buffer.from(parseEnvelope(bytes, CHANNEL_MAX_BYTES, 'channel').payload, 'base64').toString('utf8')) as { sequence?: unknown };
      if (typeof payload.sequence === 'number' && Number.isSafeInteger(payload.sequence)) out.set(channel, payload.sequence);
    } catch {
      // Unreadable or malformed: ranks last; the core says what is wrong when it reads it.
    }
  }
  return out;
}

export function createUsbSource(options: UsbSourceOptions): UsbSource {
  const { mounts, privateDir } = options;
  const maxBundles = options.maxBundles ?? DEFAULTS.maxBundles;
  const maxBundleBytes = options.maxBundleBytes ?? DEFAULTS.maxBundleBytes;
  const name = `usb:${mounts.join(',')}`;

  /** sha256 → unpacked copy. */
  const opened = new Map<string, Opened>();
  /** bundle path on the stick → the identity it had when copied, and its sha (or its problem). */
  const seen = new Map<string, { id: string; sha: string } | { id: string; problem: UsbProblem }>();
  /** shas of copies whose bundle is no longer on the stick, oldest first. */
  let retired: string[] = [];
  let problems: UsbProblem[] = [];
  let prepared = false;
  let closed = false;
  let queue: Promise<unknown> = Promise.resolve();

  /** One scan at a time: two reads never copy the same bundle twice in parallel. */
  function serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = queue.then(fn, fn);
    queue = run.catch(() => {});
    return run;
  }

  async function prepare(): Promise<void> {
    // Leftovers of an earlier process (half copies, half unpacks, old copies) are not trusted.
    if (!prepared) await rm(privateDir, { recursive: true, force: true }).catch((err) => { throw fromFsError(err, `clearing ${privateDir}`); });
    // Made again on every scan: an updater clearing staging/ may have removed it (copies inside
    // are then found missing and made again).
    await mkdir(privateDir, { recursive: true }).catch((err) => { throw fromFsError(err, `creating ${privateDir}`); });
    prepared = true;
  }

  /** Copies `path` into privateDir while hashing it; the stick is read exactly once. */
  async function copyAndHash(path: string, size: number): Promise<{ file: string; sha: string }> {
    const shown = printable(path);
    const file = join(privateDir, `incoming-${randomBytes(6).toString('hex')}.ferry`);
    let src;
    try {
      src = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
    } catch (err) {
      throw ioError(err, `opening ${shown}`);
    }
    let dst;
    try {
      const before = await src.stat();
      if (!before.isFile()) throw new FerryError('ERR_UNSAFE_ARCHIVE', `${shown} is not a regular file`);
      if (before.size !== size) throw new FerryError('ERR_IO', `${shown} changed while it was opened; try again`);
      dst = await open(file, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
      const hash = createHash('sha256');
      const buf = Buffer.alloc(COPY_CHUNK);
      let copied = 0;
      for (;;) {
        const { bytesRead } = await src.read(buf, 0, buf.length, copied);
        if (bytesRead === 0) break;
        copied += bytesRead;
        if (copied > before.size) throw new FerryError('ERR_IO', `${shown} grew while it was copied; try again once it is fully written`);
        const chunk = buf.subarray(0, bytesRead);
        hash.update(chunk);
        await dst.write(chunk, 0, bytesRead);
        await options.hooks?.onCopyChunk?.({ bundle: path, copied, size: before.size });
      }
      // The copy is only what the stick held if the file is still there, the same file, unchanged.
      // A lazily unmounted or pulled stick, or a file replaced under us, fails here.
      const after = await src.stat();
      const now = await lstat(path).catch((err) => { throw ioError(err, `re-checking ${shown} after copying it`); });
      if (copied !== before.size || identity(after) !== identity(before) || identity(now) !== identity(before)) {
        throw new FerryError('ERR_IO', `${shown} changed or went away while it was copied; the copy was discarded, try again`);
      }
      await dst.close();
      dst = undefined;
      return { file, sha: hash.digest('hex') };
    } catch (err) {
      await dst?.close().catch(() => {});
      dst = undefined;
      await rm(file, { force: true });
      throw ioError(err, `copying ${shown}`);
    } finally {
      await dst?.close().catch(() => {});
      await src.close().catch(() => {});
    }
  }

  /** The unpacked copy of the bundle at `path`, copying and unpacking only what is new. */
  async function openOne(path: string, st: Stats): Promise<Opened> {
    if (st.size > maxBundleBytes) throw new FerryError('ERR_TOO_LARGE', `${printable(path)} is ${st.size} bytes, over the ${maxBundleBytes}-byte cap`);
    const { file, sha } = await copyAndHash(path, st.size);
    try {
      await options.hooks?.onCopied?.({ bundle: path, sha256: sha });
      const known = opened.get(sha);
      if (known && (await stat(known.dir).then((s) => s.isDirectory(), () => false))) return known;
      const dir = join(privateDir, sha);
      const work = join(privateDir, `unpack-${randomBytes(6).toString('hex')}`);
      try {
        await openBundle(file, work);
        await rm(dir, { recursive: true, force: true });
        await rename(work, dir);
      } catch (err) {
        await rm(work, { recursive: true, force: true });
        throw fromFsError(err, `unpacking ${printable(path)}`);
      }
      const source = createDirSource(dir, `${name}:${printable(basename(path))}`);
      const entry: Opened = { sha, dir, source, sequences: await readSequences(source) };
      opened.set(sha, entry);
      return entry;
    } finally {
      await rm(file, { force: true });
    }
  }

  /** What the mounts offer right now. */
  async function scan(): Promise<Candidate[]> {
    if (closed) throw new FerryError('ERR_USAGE', `${name} is closed`);
    await prepare();
    const folders: string[] = [];
    const bundles: { path: string; st: Stats }[] = [];
    for (const mount of mounts) {
      const st = await stat(mount).catch(() => null);
      if (!st?.isDirectory()) continue; // no stick: nothing offered, nothing thrown
      if (await isRepoFolder(mount)) folders.push(mount);
      // The mount and one folder down (listFolder bounds both).
      const top = await listFolder(mount);
      const files = [...top.files];
      for (const dir of top.dirs) {
        if (await isRepoFolder(dir)) { folders.push(dir); continue; }
        const below = await listFolder(dir);
        files.push(...below.files);
        for (const sub of below.dirs) if (await isRepoFolder(sub)) folders.push(sub);
      }
      for (const f of files) {
        if (!f.endsWith('.ferry')) continue;
        const fst = await lstat(f).catch(() => null);
        if (fst?.isFile()) bundles.push({ path: f, st: fst });
      }
    }
    bundles.sort((a, b) => b.st.mtimeMs - a.st.mtimeMs || a.path.localeCompare(b.path));

    const candidates: Candidate[] = [];
    const live = new Set<string>();
    const nextProblems: UsbProblem[] = [];
    for (const { path, st } of bundles.slice(0, maxBundles)) {
      const id = identity(st);
      const prev = seen.get(path);
      let entry: Opened | undefined;
      if (prev && prev.id === id) {
        // Unchanged since last time: reuse the copy (or the verdict) instead of copying again.
        if ('problem' in prev) { nextProblems.push(prev.problem); continue; }
        const known = opened.get(prev.sha);
        if (known && (await stat(known.dir).then((s) => s.isDirectory(), () => false))) entry = known;
      }
      if (!entry) {
        try {
          entry = await openOne(path, st);
          seen.set(path, { id, sha: entry.sha });
        } catch (err) {
          const e = fromFsError(err, `opening ${printable(path)}`);
          const problem = { path, code: e.code, message: e.message };
          // A stick pulled mid-copy is worth another try; a broken file is not, until it changes.
          if (!e.retryable) seen.set(path, { id, problem });
          else seen.delete(path);
          if (e.retryable) throw e;
          nextProblems.push(problem);
          continue;
        }
      }
      if (live.has(entry.sha)) continue; // the same bytes under two names: one candidate
      live.add(entry.sha);
      candidates.push({ kind: 'bundle', origin: path, source: entry.source, mtimeMs: st.mtimeMs, sequences: entry.sequences });
    }
    for (const dir of folders) {
      const source = createDirSource(dir, `${name}:${printable(dir)}`);
      const st = await stat(join(dir, 'channels')).catch(() => null);
      candidates.push({ kind: 'folder', origin: dir, source, mtimeMs: st?.mtimeMs ?? 0, sequences: await readSequences(source) });
    }
    problems = nextProblems;
    for (const p of [...seen.keys()]) if (!bundles.some((b) => b.path === p)) seen.delete(p);

    // Copies whose bundle left the stick stay for releases/ paths, bounded by maxBundles.
    retired = [...retired.filter((s) => !live.has(s)), ...[...opened.keys()].filter((s) => !live.has(s) && !retired.includes(s))];
    while (retired.length > maxBundles) {
      const sha = retired.shift()!;
      const gone = opened.get(sha);
      opened.delete(sha);
      if (gone) await rm(gone.dir, { recursive: true, force: true });
    }

    const best = (c: Candidate) => Math.max(-1, ...c.sequences.values());
    return candidates.sort((a, b) => best(b) - best(a) || b.mtimeMs - a.mtimeMs || a.origin.localeCompare(b.origin));
  }

  /** Candidates to ask for `path`, in order; `fallback` when nothing current is usable. */
  async function plan(path: string): Promise<{ order: Source[]; failure: FerryError | undefined }> {
    const candidates = await serial(scan);
    const channel = CHANNELS.find((c) => channelPath(c) === path);
    let order: Source[];
    if (channel) {
      order = candidates
        .filter((c) => c.sequences.has(channel))
        .sort((a, b) => b.sequences.get(channel)! - a.sequences.get(channel)!)
        .concat(candidates.filter((c) => !c.sequences.has(channel)))
        .map((c) => c.source);
    } else {
      order = candidates.map((c) => c.source);
    }
    // Manifests and artifacts are pinned by hashes in signed metadata: a retired copy can only
    // ever serve the bytes a pointer the device already verified asks for.
    if (path.startsWith('releases/')) {
      for (const sha of [...retired].reverse()) {
        const o = opened.get(sha);
        if (o) order.push(o.source);
      }
    }
    const first = problems[0];
    const failure = candidates.length === 0 && first ? new FerryError(first.code, `${printable(first.path)}: ${first.message}`) : undefined;
    return { order, failure };
  }

  return {
    name,
    offline: true,
    async read(path, maxBytes) {
      const { order, failure } = await plan(path);
      for (const source of order) {
        const bytes = await source.read(path, maxBytes);
        if (bytes) return bytes;
      }
      if (failure) throw failure;
      return undefined;
    },
    async fetch(path, dest, maxBytes, offset) {
      const { order, failure } = await plan(path);
      for (const source of order) {
        // A candidate that fails mid-copy throws: dest may hold its bytes, so no other is tried.
        if (await source.fetch(path, dest, maxBytes, offset)) return true;
      }
      if (failure) throw failure;
      return false;
    },
    async list(dir) {
      const { order } = await plan(dir);
      const names = new Set<string>();
      for (const source of order) for (const n of (await source.list?.(dir)) ?? []) names.add(n);
      return [...names].sort();
    },
    problems: () => [...problems],
    async close() {
      await serial(async () => {
        closed = true;
        opened.clear();
        seen.clear();
        retired = [];
        if (prepared) await rm(privateDir, { recursive: true, force: true });
      });
    },
  };
}

/** Parses a `usb:<dir>[,<dir>…]` source spec into its mount folders. */
export function parseUsbSpec(spec: string): string[] {
  const body = spec.startsWith('usb:') ? spec.slice(4) : spec;
  const mounts = body.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  if (mounts.length === 0) throw new FerryError('ERR_USAGE', `source "${spec}": usb: needs at least one mount folder (usb:/media/stick)`);
  return mounts;
}
