// Scanning one uncompressed image layer tar (ARCHITECTURE.md "Containers"; SECURITY.md
// "Containers" rows). The engine that unpacks a layer (umoci, podman) writes its entries into the
// container's root filesystem as root, so a layer is read here first, and refused with
// ERR_UNSAFE_ARCHIVE at its first entry that
//   - has an absolute path, or a ".." that climbs above the layer's root,
//   - is a character or block device (a device node inside the container reaches the host's
//     hardware whatever the container's own device list says),
//   - is a hard link whose target is absolute or climbs above the root,
//   - is a whiteout of "", "." or ".." (.wh.., CVE-2021-29136 in umoci < 0.4.7),
//   - follows a pax global header setting size, path or linkpath (read differently by umoci),
// and the whole file is hashed at the same time (one read: the caller compares the hash with the
// layer's file name and its signed diff_id). Whiteouts (.wh.<name>, .wh..wh..opq) are ordinary
// entries to this scan. node-tar parses (strict: a malformed header is an error); nothing is
// written. Caps bound the time a scan takes: entries (a large distribution layer holds ~100k
// files, more than ferry's own archives may: core/io/extract.ts), and the bytes entries claim.

import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { Parser, type ReadEntry } from 'tar';
import { FerryError, fromFsError } from '../errors.ts';
import { DEFAULT_LIMITS } from '../io/extract.ts';
import { printable, printableJson } from '../io/printable.ts';

/** Entries per layer: an order of magnitude above large distribution layers. */
export const MAX_LAYER_ENTRIES = 1_048_576;

export interface ScannedLayer {
  sha256: string;
  size: number;
  entries: number;
}

/**
 * Why `path` (a name inside a layer, as written in the tar) is unsafe, or null. "./a", "a/../b"
 * and "a/" are fine; "/a", "../a" and "a/../../b" are not.
 */
export function layerPathProblem(path: string): string | null {
  if (path.includes('\0')) return 'holds NUL';
  if (path.startsWith('/')) return 'is absolute';
  let depth = 0;
  for (const part of path.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      depth--;
      if (depth < 0) return 'climbs above the layer root with ..';
    } else {
      depth++;
    }
  }
  return null;
}

const DEVICE_TYPES = new Set(['CharacterDevice', 'BlockDevice']);

/** Checks one entry's header; throws ERR_UNSAFE_ARCHIVE naming it. */
export function checkLayerEntry(entry: { path: string; type: string; linkpath?: string }, layer: string): void {
  const shown = printableJson(entry.path.slice(0, 200));
  const bad = layerPathProblem(entry.path);
  if (bad) throw new FerryError('ERR_UNSAFE_ARCHIVE', `${layer}: entry ${shown} ${bad}`);
  // A whiteout of "", "." or ".." (".wh.", ".wh..", ".wh...") names no file of a lower layer but the
  // folder itself or its parent: umoci before 0.4.7 removed the parent of the rootfs for a top-level
  // ".wh.." (CVE-2021-29136). Never written by builders; refused whatever umoci the device has.
  const base = entry.path.replace(/\/+$/, '').split('/').pop() ?? '';
  if (base === '.wh.' || base === '.wh..' || base === '.wh...') throw new FerryError('ERR_UNSAFE_ARCHIVE', `${layer}: entry ${shown} is a whiteout of the folder itself or its parent`);
  if (DEVICE_TYPES.has(entry.type)) throw new FerryError('ERR_UNSAFE_ARCHIVE', `${layer}: entry ${shown} is a ${entry.type === 'CharacterDevice' ? 'character' : 'block'} device`);
  if (entry.type === 'Link') {
    const target = entry.linkpath ?? '';
    const why = target === '' ? 'is empty' : layerPathProblem(target);
    if (why) throw new FerryError('ERR_UNSAFE_ARCHIVE', `${layer}: hard link ${shown} to ${printableJson(target.slice(0, 200))}: the target ${why}`);
  }
}

/**
 * A pax global header that sets size, path or linkpath: node-tar applies it to the entries after it,
 * Go's archive/tar (umoci) does not, so the scan and the engine would read different archives (a
 * global size hides the next header from the scan; a global linkpath masks a hard link's real
 * target). No image builder writes one; refused (ERR_UNSAFE_ARCHIVE).
 */
function refuseGlobalOverrides(entry: ReadEntry, layer: string): void {
  const g = entry.globalExtended as Record<string, unknown> | null | undefined;
  if (!g) return;
  for (const key of ['size', 'path', 'linkpath']) {
    if (g[key] !== undefined && g[key] !== null) throw new FerryError('ERR_UNSAFE_ARCHIVE', `${layer}: a pax global header sets ${key} (engines ignore it, so the layer would unpack other than scanned)`);
  }
}

/** gzip, zstd, bzip2, xz magic numbers: a layer declared uncompressed must not start with one. */
const COMPRESSED_MAGIC = [Buffer.from([0x1f, 0x8b]), Buffer.from([0x28, 0xb5, 0x2f, 0xfd]), Buffer.from('BZh'), Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a])];

/** Scans the uncompressed layer tar at `file` (see the header); returns its sha256 and size. */
export async function scanLayerFile(file: string, layer: string): Promise<ScannedLayer> {
  // node-tar would inflate a compressed stream by itself; a layer signed as a plain tar must be one.
  const head = Buffer.alloc(8);
  try {
    const h = await open(file, 'r');
    try { await h.read(head, 0, head.length, 0); } finally { await h.close(); }
  } catch (err) {
    throw fromFsError(err, `reading ${layer}`);
  }
  if (COMPRESSED_MAGIC.some((m) => head.subarray(0, m.length).equals(m))) throw new FerryError('ERR_UNSAFE_ARCHIVE', `${layer} is compressed, but is declared an uncompressed tar`);

  const hash = createHash('sha256');
  let size = 0;
  let entries = 0;
  let bytes = 0;
  let failure: unknown;
  let ended = false;
  const parser = new Parser({ strict: true } as ConstructorParameters<typeof Parser>[0]);
  const fail = (err: unknown) => {
    failure ??= err;
    parser.abort(err instanceof Error ? err : new Error(String(err)));
  };
  parser.on('entry', (entry: ReadEntry) => {
    entry.resume();
    if (failure !== undefined) return;
    try {
      entries++;
      if (entries > MAX_LAYER_ENTRIES) throw new FerryError('ERR_UNSAFE_ARCHIVE', `${layer} has more than ${MAX_LAYER_ENTRIES} entries`);
      bytes += entry.size;
      if (bytes > DEFAULT_LIMITS.maxTotalBytes) throw new FerryError('ERR_TOO_LARGE', `${layer} holds more than ${DEFAULT_LIMITS.maxTotalBytes} bytes`);
      refuseGlobalOverrides(entry, layer);
      checkLayerEntry({ path: entry.path, type: entry.type, linkpath: entry.linkpath }, layer);
    } catch (err) {
      fail(err);
    }
  });
  parser.on('eof', () => { ended = true; });
  parser.on('error', (err: Error) => fail(failure ?? new FerryError('ERR_UNSAFE_ARCHIVE', `${layer} is not a well-formed tar: ${printable(err.message)}`, { cause: err })));
  try {
    // Every byte is hashed, also those after the end marker (they are part of the signed blob).
    for await (const chunk of createReadStream(file, { highWaterMark: 256 * 1024 }) as AsyncIterable<Buffer>) {
      hash.update(chunk);
      size += chunk.length;
      if (failure === undefined && !ended) {
        if (!parser.write(chunk)) await new Promise<void>((resolve) => {
          const wake = () => { for (const e of ['drain', 'error', 'abort', 'close', 'eof']) parser.off(e, wake); resolve(); };
          for (const e of ['drain', 'error', 'abort', 'close', 'eof']) parser.on(e, wake);
        });
      }
    }
  } catch (err) {
    throw fromFsError(err, `reading ${layer}`);
  }
  if (failure === undefined && !ended) parser.end();
  if (failure !== undefined) throw failure;
  return { sha256: hash.digest('hex'), size, entries };
}
