// The files `ferry fleet` reads: every *.json under a reports folder, at any depth (an inbox, a USB
// stick's reports/, a tree of copies people gathered by hand). Each file is stat'ed first and one
// over REPORT_MAX_BYTES is listed as oversized without reading a byte of it, so a 100 MB file
// dropped into the folder costs one stat (SECURITY.md, fleet rows: oversized reports). Symbolic
// links are not followed (a link could point anywhere on the reader's machine), and the fleet's own
// state file is skipped. Reading only: verification is parseReport's, trust is fleet-state.ts's.

import { closeSync, constants, fstatSync, openSync, readdirSync, readSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { FerryError, fromFsError } from '../errors.ts';
import { sha256 } from '../io/hash.ts';
import { parseReport, REPORT_MAX_BYTES } from './report.ts';
import type { Candidate } from './fleet-state.ts';

export type ReportFile =
  | { path: string; size: number; bytes: Buffer }
  /** Over REPORT_MAX_BYTES: never read. */
  | { path: string; size: number; bytes: null };

/**
 * The report files under `dir`, sorted by path (relative to `dir`), skipping the `skip` paths.
 * Synchronous file calls on purpose: `ferry fleet` does nothing else meanwhile, and 10,000 small
 * files through the promise API cost four thread-pool round trips each (open, stat, read, close),
 * several times the time of the reads themselves (bench/fleet-reports.ts).
 */
export async function readReportFiles(dir: string, options: { skip?: string[] } = {}): Promise<ReportFile[]> {
  const skip = new Set((options.skip ?? []).map((p) => resolve(p)));
  const paths: string[] = [];
  walk(resolve(dir), skip, paths);
  paths.sort();
  const files: ReportFile[] = [];
  const buffer = Buffer.alloc(REPORT_MAX_BYTES + 1);
  for (const path of paths) {
    const file = readOne(path, relative(dir, path), buffer);
    if (file) files.push(file);
  }
  return files;
}

function walk(dir: string, skip: Set<string>, out: string[]): void {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch (err) {
    throw fromFsError(err, `reading ${dir}`);
  }
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (skip.has(path)) continue;
    if (entry.isDirectory()) walk(path, skip, out);
    else if (entry.isFile() && entry.name.endsWith('.json')) out.push(path);
  }
}

/** One file, read only when small enough; null when it vanished between the walk and now. */
function readOne(path: string, name: string, buffer: Buffer): ReportFile | null {
  let fd: number;
  try {
    // As the inbox reads (core/fleet/report-inbox.ts): a file swapped for a link or a FIFO after
    // the walk is neither followed nor waited on.
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ELOOP' || code === 'ENXIO') return null;
    throw fromFsError(err, `opening ${path}`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) return null;
    const { size } = st;
    if (size > REPORT_MAX_BYTES) return { path: name, size, bytes: null };
    // Read at most one byte past the cap: a file growing after the stat is still bounded here.
    let length = 0;
    for (;;) {
      const bytesRead = readSync(fd, buffer, length, buffer.length - length, length);
      if (bytesRead === 0) break;
      length += bytesRead;
      if (length === buffer.length) break;
    }
    if (length > REPORT_MAX_BYTES) return { path: name, size: length, bytes: null };
    return { path: name, size: length, bytes: Buffer.from(buffer.subarray(0, length)) };
  } catch (err) {
    throw fromFsError(err, `reading ${path}`);
  } finally {
    closeSync(fd);
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
      return { file: f.path, envelopeSha256, verified: parseReport(f.bytes, f.path), bytes: f.bytes };
    } catch (err) {
      if (!(err instanceof FerryError)) throw err;
      return { file: f.path, envelopeSha256, error: { code: err.code, message: err.message } };
    }
  });
}
