// How many bytes a signed archive may expand to (SECURITY.md row 16). The signed file list says
// what the archive holds, so it also says how large the tar inside the compression can be: a tar
// is 512-byte blocks, and each entry is a header block and its data rounded up to whole blocks.
// The bound also admits what writers legitimately add around the data: an extended (PAX or GNU
// long-name) header per entry carrying a path or link target too long for the header block, an
// entry per parent folder, and the end of the archive (two zero blocks, padded by some writers to
// a 20-block record). Expansion is judged against this instead of a fixed ratio, so a signed,
// highly compressible file (a disk image, a preallocated data file) installs, and a bomb cannot
// expand past what was signed.

import type { ExpectedEntry } from './extract.ts';

const BLOCK = 512;

/** The end of an archive: two zero blocks, padded to one 20-block record. */
const END_OF_ARCHIVE = 20 * BLOCK;

/**
 * Room in an extended header's body for its records other than the path and link target (times,
 * size, ids, names): each is a short "<len> key=value\n" line, a handful fit in one block.
 */
const OTHER_RECORDS = BLOCK;

const wholeBlocks = (bytes: number): number => Math.ceil(bytes / BLOCK) * BLOCK;

/** One entry's metadata: its header block, and an extended header holding its path and target. */
function entryMetadata(path: string, target = ''): number {
  const extended = BLOCK + wholeBlocks(Buffer.byteLength(path) + Buffer.byteLength(target) + OTHER_RECORDS);
  return BLOCK + extended;
}

/** The most bytes the uncompressed tar of exactly `expected` may hold. */
export function signedExpansionBound(expected: ReadonlyMap<string, ExpectedEntry>): number {
  let total = END_OF_ARCHIVE;
  const folders = new Set<string>();
  for (const [path, entry] of expected) {
    total += 'type' in entry ? entryMetadata(path, entry.target) : entryMetadata(path) + wholeBlocks(entry.size);
    for (let slash = path.indexOf('/'); slash > 0; slash = path.indexOf('/', slash + 1)) folders.add(path.slice(0, slash + 1));
  }
  for (const folder of folders) total += entryMetadata(folder);
  return total;
}
