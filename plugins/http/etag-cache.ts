// The conditional-GET cache: for each metadata path, the body last read and its ETag, so an idle
// check sends If-None-Match and gets a 304 of a few hundred bytes instead of the body; or a note
// that the path was absent (404) last time, so the next check probes it with a HEAD and no error
// page comes back (issue 13 item 14). One file per path, named by the path's sha256: a header line
// of JSON, then the body. The cache is only a saving: an entry that is damaged or unreadable is
// ignored, one that cannot be written is skipped. (The bytes it returns are verified by the core
// like any others: ARCHITECTURE.md.)
//
// Release manifests are the one kind of path that keeps growing (one per release ever seen, up to
// MANIFEST_MAX_BYTES each), so their entries are named `manifest-<sha256>` and only the newest
// MANIFEST_ENTRIES_KEPT are kept; roots and channel pointers are few and stay.

import { createHash, randomBytes } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';

const CACHE_FORMAT = 1;

/** Manifest entries kept: the versions a device's channels offer at once, and a delta chain's hops. */
export const MANIFEST_ENTRIES_KEPT = 8;

const MANIFEST_PATH = /^releases\/[^/]+\/manifest\.json$/;
const MANIFEST_ENTRY = /^manifest-[0-9a-f]{64}$/;

/** The manifest entries to remove so that the newest `keep` (by modification time) stay. */
export function manifestEntriesToEvict(entries: { name: string; mtimeMs: number }[], keep: number): string[] {
  return entries
    .filter((e) => MANIFEST_ENTRY.test(e.name))
    .sort((a, b) => b.mtimeMs - a.mtimeMs || a.name.localeCompare(b.name))
    .slice(keep)
    .map((e) => e.name);
}

export interface CacheEntry {
  etag: string;
  body: Buffer;
}

/** What the cache knows of a path: its last body, or that it was absent. */
export type CacheRecord = CacheEntry | 'absent';

export interface EtagCache {
  load(path: string): Promise<CacheRecord | undefined>;
  save(path: string, entry: CacheEntry): Promise<void>;
  /** Notes that the origin said `path` does not exist (replacing any body kept for it). */
  saveAbsent(path: string): Promise<void>;
  drop(path: string): Promise<void>;
}

const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');

/**
 * The ETag of a 200 response worth keeping for If-None-Match, or undefined. Many servers derive
 * ETags from whole-second mtime and size (nginx: "mtime-size"), so a channel pointer re-signed
 * within the same second at the same length keeps its ETag, and a cached copy would hide the new
 * release behind 304s. A validator minted less than 2 s after the file's Last-Modified is
 * therefore not kept (RFC 9110 8.8.2.2: such a validator is weak); the next read is unconditional,
 * and a later one revalidates. `now` stands in for a missing Date header.
 */
export function keepableEtag(headers: IncomingHttpHeaders, now: number): string | undefined {
  const etag = headers.etag;
  if (!etag) return undefined;
  const modified = Date.parse(headers['last-modified'] ?? '');
  if (Number.isNaN(modified)) return etag;
  const served = Date.parse(headers.date ?? '');
  return (Number.isNaN(served) ? now : served) - modified >= 2000 ? etag : undefined;
}

export function encodeEntry(path: string, entry: CacheEntry): Buffer {
  const head = JSON.stringify({ v: CACHE_FORMAT, path, etag: entry.etag, sha256: sha256(entry.body) });
  return Buffer.concat([Buffer.from(head + '\n'), entry.body]);
}

/** The note that `path` was absent: a header line with no ETag and an empty body. */
export function encodeAbsent(path: string): Buffer {
  return Buffer.from(JSON.stringify({ v: CACHE_FORMAT, path, absent: true }) + '\n');
}

/** True when `raw` is a whole absence note for `path`. */
export function decodeAbsent(raw: Buffer, path: string): boolean {
  const nl = raw.indexOf(0x0a);
  if (nl < 0 || nl !== raw.length - 1) return false;
  try {
    const head = JSON.parse(raw.subarray(0, nl).toString('utf8')) as { v?: unknown; path?: unknown; absent?: unknown } | null;
    return head !== null && typeof head === 'object' && head.v === CACHE_FORMAT && head.path === path && head.absent === true;
  } catch {
    return false;
  }
}

/** The entry in `raw` when it is whole and is for `path`; undefined for anything else. */
export function decodeEntry(raw: Buffer, path: string): CacheEntry | undefined {
  const nl = raw.indexOf(0x0a);
  if (nl < 0) return undefined;
  let head: { v?: unknown; path?: unknown; etag?: unknown; sha256?: unknown };
  try {
    head = JSON.parse(raw.subarray(0, nl).toString('utf8'));
  } catch {
    return undefined;
  }
  const body = raw.subarray(nl + 1);
  // A damaged entry must not be used: the origin would keep answering 304 to its ETag forever.
  if (head === null || typeof head !== 'object' || head.v !== CACHE_FORMAT || head.path !== path || typeof head.etag !== 'string') return undefined;
  if (head.sha256 !== sha256(body)) return undefined;
  return { etag: head.etag, body };
}

/** The cache in `dir`; without a folder, a cache that holds nothing. */
export function openEtagCache(dir: string | undefined): EtagCache {
  if (dir === undefined) {
    return { load: async () => undefined, save: async () => {}, saveAbsent: async () => {}, drop: async () => {} };
  }
  const fileOf = (path: string) => join(dir, `${MANIFEST_PATH.test(path) ? 'manifest-' : ''}${sha256(path)}`);
  const evictOldManifests = async () => {
    const names = await readdir(dir).catch(() => [] as string[]);
    const entries = await Promise.all(names.filter((n) => MANIFEST_ENTRY.test(n)).map(async (name) => ({ name, mtimeMs: (await stat(join(dir, name)).catch(() => null))?.mtimeMs ?? 0 })));
    for (const name of manifestEntriesToEvict(entries, MANIFEST_ENTRIES_KEPT)) await rm(join(dir, name), { force: true }).catch(() => {});
  };
  const write = async (path: string, data: Buffer) => {
    const final = fileOf(path);
    const tmp = `${final}.${randomBytes(6).toString('hex')}.tmp`;
    try {
      await mkdir(dir, { recursive: true });
      const fh = await open(tmp, 'wx', 0o600);
      try {
        await fh.writeFile(data);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, final);
    } catch {
      // A cache that cannot be written costs bytes next time, nothing else.
      await rm(tmp, { force: true }).catch(() => {});
    }
  };
  return {
    async load(path) {
      try {
        const raw = await readFile(fileOf(path));
        return decodeEntry(raw, path) ?? (decodeAbsent(raw, path) ? 'absent' : undefined);
      } catch {
        return undefined;
      }
    },
    async save(path, entry) {
      await write(path, encodeEntry(path, entry));
      if (MANIFEST_PATH.test(path)) await evictOldManifests();
    },
    saveAbsent: (path) => write(path, encodeAbsent(path)),
    async drop(path) {
      await rm(fileOf(path), { force: true }).catch(() => {});
    },
  };
}
