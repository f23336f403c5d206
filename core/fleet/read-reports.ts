// The files `ferry fleet` reads: every *.json under a reports folder, at any depth (an inbox, a USB
// stick's reports/, a tree of copies people gathered by hand). Each file is stat'ed first and one
// over REPORT_MAX_BYTES is listed as oversized without reading a byte of it, so a 100 MB file
// dropped into the folder costs one stat (SECURITY.md, fleet rows: oversized reports). Symbolic
// links are not followed (a link could point anywhere on the reader's machine), and the fleet's own
// state file is skipped. Reading only: verification is parseReport's, trust is fleet-state.ts's.

import { open, readdir } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { FerryError, fromFsError } from '../errors.ts';
import { sha256 } from '../io/hash.ts';
import { parseReport, REPORT_MAX_BYTES } from './report.ts';
import type { Candidate } from './fleet-state.ts';

export type ReportFile =
  | { path: string; size: number; bytes: Buffer }
  /** Over REPORT_MAX_BYTES: never read. */
  | { path: string; size: number; bytes: null };

/** The report files under `dir`, sorted by path (relative to `dir`), skipping the `skip` paths. */
export async function readReportFiles(dir: string, options: { skip?: string[] } = {}): Promise<ReportFile[]> {
  const skip = new Set((options.skip ?? []).map((p) => resolve(p)));
  const paths: string[] = [];
  await walk(resolve(dir), skip, paths);
  paths.sort();
  // A few files at once: each costs four round trips to the thread pool (open, stat, read, close),
  // and one after the other 10,000 of them wait on each other more than on the disk.
  const read: (ReportFile | null)[] = new Array(paths.length).fill(null);
  let next = 0;
  const worker = async () => {
    while (next < paths.length) {
      const i = next++;
      read[i] = await readOne(paths[i]!, relative(dir, paths[i]!));
    }
  };
  await Promise.all(Array.from({ length: Math.min(READ_AT_ONCE, paths.length) }, worker));
  return read.filter((f): f is ReportFile => f !== null);
}

/** Files read at once (the thread pool has 4 threads by default; a little more keeps it busy). */
const READ_AT_ONCE = 8;

async function walk(dir: string, skip: Set<string>, out: string[]): Promise<void> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (err) {
    throw fromFsError(err, `reading ${dir}`);
  }
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (skip.has(path)) continue;
    if (entry.isDirectory()) await walk(path, skip, out);
    else if (entry.isFile() && entry.name.endsWith('.json')) out.push(path);
  }
}

/** One file, read only when small enough; null when it vanished between the walk and now. */
async function readOne(path: string, name: string): Promise<ReportFile | null> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw fromFsError(err, `opening ${path}`);
  }
  try {
    const { size } = await handle.stat();
    if (size > REPORT_MAX_BYTES) return { path: name, size, bytes: null };
    // Read at most one byte past the cap: a file growing after the stat is still bounded here.
    const buffer = Buffer.alloc(Math.min(size, REPORT_MAX_BYTES) + 1);
    let length = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, length);
      if (bytesRead === 0) break;
      length += bytesRead;
      if (length === buffer.length) break;
    }
    if (length > REPORT_MAX_BYTES) return { path: name, size: length, bytes: null };
    return { path: name, size: length, bytes: buffer.subarray(0, length) };
  } catch (err) {
    throw fromFsError(err, `reading ${path}`);
  } finally {
    await handle.close();
  }
}


/**
 * Each file verified on its own (parseReport), or recognised: bytes whose sha256 the state lists
 * as accepted by an earlier run are not verified again (they were, when first accepted), which
 * keeps a re-run over the same folder cheap. An oversized file is refused without its bytes.
 */
export function candidatesOf(files: readonly ReportFile[], seen: Readonly<Record<string, string>>): Candidate[] {
  return files.map((f): Candidate => {
    if (f.bytes === null) return { file: f.path, envelopeSha256: null, error: { code: 'ERR_TOO_LARGE', message: `${f.path} is ${f.size} bytes, over the ${REPORT_MAX_BYTES}-byte cap (not read)` } };
    const envelopeSha256 = sha256(f.bytes);
    const seenBefore = Object.hasOwn(seen, envelopeSha256) ? seen[envelopeSha256] : undefined;
    if (seenBefore !== undefined) return { file: f.path, envelopeSha256, seenBefore };
    try {
      return { file: f.path, envelopeSha256, verified: parseReport(f.bytes, f.path) };
    } catch (err) {
      if (!(err instanceof FerryError)) throw err;
      return { file: f.path, envelopeSha256, error: { code: err.code, message: err.message } };
    }
  });
}
