// Deterministic archives: the same files give the same bytes (sorted entries, fixed mtime, no
// owner names or ids), so a release can be rebuilt and checked, and artifacts dedupe in caches.
// A symlink among `paths` is stored as a link entry with its target (tar never follows it here).
// Hard-linked files are each stored whole: a signed tree lists regular files, and extraction admits
// no hard-link entries (SECURITY.md row 14); node-gyp leaves such pairs in node_modules.
// Full artifacts are brotli-compressed tars (core/io/brotli.ts: quality 11, within 1.02x of
// xz -9e, where gzip -9 was 1.3-2.2x); gzip stays for callers that still ask for it.

import { createWriteStream } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { brotliCompressSync, createGzip, gzipSync } from 'node:zlib';
import { Pack } from 'tar';
import { fromFsError } from '../errors.ts';
import { brotliBestOptions, createBrotliBest } from '../io/brotli.ts';
import { isLink, type TreeEntry } from '../trust/metadata.ts';
import { comparePaths } from './tree.ts';

const EPOCH = new Date(0);

/** A tar link cache that never remembers, so tar never writes a hard-link entry. */
class NoHardLinks extends Map<`${number}:${number}`, string> {
  override set(): this {
    return this;
  }
}

/** The end-of-archive marker: two zero blocks, all a tar with no entries holds. */
const EMPTY_TAR = Buffer.alloc(1024);

/** node-tar's options for a deterministic archive of entries under `cwd`. */
function deterministic(cwd: string): ConstructorParameters<typeof Pack>[0] {
  return { cwd, portable: true, mtime: EPOCH, noDirRecurse: true, follow: false, linkCache: new NoHardLinks(), strict: true };
}

/**
 * The tar stream of `sorted` (paths relative to `cwd`), added one by one to node-tar's Pack.
 * Not tar.create(): it reads a path starting with "@" as "the entries of this tar file", so a
 * tree with a top-level npm scope folder (`@scope/pkg/...`) failed to publish with ERR_NOT_FOUND.
 */
function tarOf(cwd: string, sorted: readonly string[]): Readable {
  const pack = new Pack(deterministic(cwd));
  for (const path of sorted) pack.add(path);
  pack.end();
  return pack as unknown as Readable;
}

/**
 * Writes a tar (gzip level 9 when `gzip`) of `paths`, relative to `cwd`, in byte order. No paths
 * give the empty archive (node-tar refuses to create one): the delta of a release that only
 * deletes files has no entries (ARCHITECTURE.md "Artifacts and deltas").
 */
export async function packFiles(cwd: string, paths: string[], outFile: string, gzip: boolean): Promise<void> {
  const sorted = [...paths].sort(comparePaths);
  try {
    if (sorted.length === 0) {
      await writeFile(outFile, gzip ? gzipSync(EMPTY_TAR, { level: 9 }) : EMPTY_TAR);
      return;
    }
    const tar = tarOf(cwd, sorted);
    await (gzip ? pipeline(tar, createGzip({ level: 9 }), createWriteStream(outFile)) : pipeline(tar, createWriteStream(outFile)));
  } catch (err) {
    throw fromFsError(err, `writing archive ${outFile}`);
  }
}

/**
 * No fewer bytes than the tar of `entries` holds (per entry a header, an extended header for a long
 * name, whole blocks of content; the end marker): the encoder's window and size hint, so the window
 * always covers the whole tar.
 */
export function tarSizeEstimate(entries: readonly TreeEntry[]): number {
  let bytes = EMPTY_TAR.length;
  for (const e of entries) bytes += 3 * 512 + (isLink(e) ? 0 : Math.ceil(e.size / 512) * 512);
  return bytes;
}

/**
 * Writes the full artifact of a release: the deterministic tar of `entries` (relative to `cwd`),
 * brotli-compressed as it is made (core/io/brotli.ts; `quality` 11 unless told), to `outFile`
 * (which must not exist). The device picks its decoder from the signed path's ".tar.br".
 */
export async function packFullArtifact(cwd: string, entries: readonly TreeEntry[], outFile: string, quality?: number): Promise<void> {
  const sorted = entries.map((e) => e.path).sort(comparePaths);
  try {
    if (sorted.length === 0) {
      await writeFile(outFile, brotliCompressSync(EMPTY_TAR, brotliBestOptions(EMPTY_TAR.length, quality)), { flag: 'wx' });
      return;
    }
    const tar = tarOf(cwd, sorted);
    // The standard 16 MiB window (brotliBestOptions' cap), not a large one: a device decodes the
    // whole tree through one stream, and a large window would hold up to the tree's size in memory (194 MB peak on a
    // 52 MB tree, against the 100 MB target) for ~0.05% smaller output on real release trees
    // (typescript 5.6.3: 1,909,618 vs 1,910,564 bytes).
    await pipeline(tar, createBrotliBest(tarSizeEstimate(entries), quality), createWriteStream(outFile, { flags: 'wx' }));
  } catch (err) {
    throw fromFsError(err, `writing archive ${outFile}`);
  }
}
