// Downloads one artifact into the cache, from the first source that has it with the right bytes.
// cache/<sha256>.part grows until complete (a restart resumes from its length); the complete file
// is verified against the signed size, sha256 and chunk hashes before it is renamed to
// cache/<sha256>. A source that serves wrong bytes loses its partial file and the next is tried.

import { lstat, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { FerryError, fromFsError } from '../errors.ts';
import { fsyncDir } from '../io/durable.ts';
import { verifyArtifactFile } from '../trust/trusted-metadata.ts';
import type { ArtifactRef } from '../trust/metadata.ts';
import { hasChunkPeers, type Source } from '../ports/source.ts';
import { fetchChunked } from './chunked-fetch.ts';
import type { ProgressSink } from '../ports/progress.ts';

/** How often a running fetch's .part file is measured for progress. */
const PROGRESS_POLL_MS = 250;

export interface FetchedArtifact {
  path: string;
  bytesMoved: number;
  source: string | null;
  /** What went wrong on the way (sources or peers passed over), for the log. */
  notes: string[];
}

/** Size of a regular file at `path` (never following a link); null when absent. */
async function sizeOf(path: string): Promise<number | null> {
  try {
    const st = await lstat(path);
    if (st.isFile()) return st.size;
    // Anything else at our own path (a planted link) is removed, never written through.
    await rm(path, { recursive: true, force: true });
    return null;
  } catch {
    return null;
  }
}

/**
 * Reports `ref`'s progress from `source` while `work` runs: the .part file's size every 250 ms
 * (whatever the transport), unless `measure` is false (a preallocated file says nothing). Never
 * throws because of progress; the poll stops when `work` settles.
 */
async function withProgress<T>(ref: ArtifactRef, source: string, part: string, onProgress: ProgressSink | undefined, measure: boolean, work: () => Promise<T>): Promise<T> {
  if (!onProgress) return work();
  let last = -1;
  let stopped = false;
  const report = (done: number) => {
    if (stopped) return; // a poll that lands after the fetch settled says nothing
    const clamped = Math.min(Math.max(done, 0), ref.size);
    if (clamped === last) return;
    last = clamped;
    try { onProgress({ step: 'download', label: ref.path, source, done: clamped, total: ref.size }); } catch { /* a display must not break a download */ }
  };
  report(measure ? ((await sizeOfQuiet(part)) ?? 0) : 0);
  let polling = false;
  const timer = measure
    ? setInterval(() => {
        if (polling) return;
        polling = true;
        void sizeOfQuiet(part).then((n) => { if (n !== null) report(n); }).finally(() => { polling = false; });
      }, PROGRESS_POLL_MS)
    : undefined;
  try {
    return await work();
  } finally {
    stopped = true;
    if (timer) clearInterval(timer);
  }
}

/** Size of whatever is at `path` without touching it (the poll must never remove anything). */
async function sizeOfQuiet(path: string): Promise<number | null> {
  try {
    return (await stat(path)).size;
  } catch {
    return null;
  }
}

export async function fetchArtifact(ref: ArtifactRef, sources: Source[], cacheDir: string, onProgress?: ProgressSink): Promise<FetchedArtifact> {
  const final = join(cacheDir, ref.sha256);
  const part = `${final}.part`;
  const completed = (source: string | null) => {
    try { onProgress?.({ step: 'download', label: ref.path, source, done: ref.size, total: ref.size }); } catch { /* display only */ }
  };
  if ((await sizeOf(final)) !== null) {
    // Cached earlier: re-hashed before use, because the disk may have changed under us.
    try {
      await verifyArtifactFile(final, ref);
      completed(null);
      return { path: final, bytesMoved: 0, source: null, notes: [] };
    } catch {
      await rm(final, { force: true });
    }
  }
  let bytesMoved = 0;
  let firstError: FerryError | undefined;
  const notes: string[] = [];
  for (const source of sources) {
    if (hasChunkPeers(source)) {
      // LAN peers: chunks from several peers at once, each checked against its signed hash.
      try {
        const peers = await source.chunkPeers();
        if (peers.length === 0) continue;
        // The .part file is preallocated by the chunked fetch: only its start and end are reported.
        const got = await withProgress(ref, source.name, part, onProgress, false, () => fetchChunked(ref, peers, part));
        bytesMoved += got.bytesMoved;
        for (const d of got.dropped) notes.push(`dropped peer ${d.peer}: ${d.reason}`);
        await verifyArtifactFile(part, ref);
        await rename(part, final);
        await fsyncDir(cacheDir, 'fetch.cache-dir');
        completed(source.name);
        return { path: final, bytesMoved, source: source.name, notes };
      } catch (err) {
        await rm(part, { force: true });
        notes.push(`${source.name}: ${(err as Error).message}`);
        const e = fromFsError(err, `fetching ${ref.path} from ${source.name}`);
        if (e.code === 'ERR_NO_SPACE') throw e;
        firstError ??= e;
        continue;
      }
    }
    const have = (await sizeOf(part)) ?? 0;
    const offset = have <= ref.size ? have : 0;
    if (have > ref.size) await rm(part, { force: true });
    try {
      const found = await withProgress(ref, source.name, part, onProgress, true, () => source.fetch(ref.path, part, ref.size, offset));
      if (!found) continue;
      bytesMoved += ((await sizeOf(part)) ?? 0) - offset;
      await verifyArtifactFile(part, ref);
      // The artifact's bytes are not fsynced (issue 14 item 7): nothing relies on them surviving a
      // power cut. A cached artifact is re-hashed before every use (above) and fetched again when
      // it comes back damaged; the tree built from it is fsynced file by file before it is renamed
      // into releases/; and a LAN peer's chunks are each checked against their signed hashes by
      // the device that takes them. Waiting for the whole artifact to reach the disk (15 MB for a
      // 50 MB tree, seconds on an SD card) bought only a cache entry that outlives a cut.
      await rename(part, final);
      await fsyncDir(cacheDir, 'fetch.cache-dir');
      completed(source.name);
      return { path: final, bytesMoved, source: source.name, notes };
    } catch (err) {
      const e = fromFsError(err, `fetching ${ref.path} from ${source.name}`);
      notes.push(`${source.name}: ${e.code} ${e.message}`);
      // Bad bytes: the partial file is poisoned, start over from the next source. A transient
      // error keeps the partial file for a resume.
      if (!e.retryable || e.code === 'ERR_NO_SPACE') await rm(part, { force: true });
      if (e.code === 'ERR_NO_SPACE') throw e;
      firstError ??= e;
    }
  }
  throw firstError ?? new FerryError('ERR_NOT_FOUND', `no source has ${ref.path}`);
}
