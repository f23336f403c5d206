// Source.fetch over HTTP: one GET of a file into `dest`, resuming a .part file with Range when the
// origin can continue it exactly where it ends, and rewriting it from byte 0 otherwise. resumeStep
// decides from the answer; fetchOnce is one attempt.

import { constants } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';
import { declaredSizeOverCap } from './body-reader.ts';
import { contentLength, type Wire } from './exchange.ts';
import { finalFailure, finalFsFailure, statusFailure } from './retries.ts';

export interface ContentRange {
  start: number | null;
  end: number | null;
  total: number | null;
}

/** "bytes a-b/total", "bytes a-b/*" or "bytes * /total" (416); undefined when malformed. */
export function parseContentRange(raw: string | undefined): ContentRange | undefined {
  if (!raw) return undefined;
  const m = /^bytes\s+(?:(\d+)-(\d+)|\*)\/(\d+|\*)$/.exec(raw.trim());
  if (!m) return undefined;
  return {
    start: m[1] !== undefined ? Number(m[1]) : null,
    end: m[2] !== undefined ? Number(m[2]) : null,
    total: m[3] !== undefined && m[3] !== '*' ? Number(m[3]) : null,
  };
}

export type ResumeStep =
  | { kind: 'complete' } // 416 and the file is exactly `have` bytes: the .part file was already whole
  | { kind: 'append'; start: number } // 206 from exactly `have`: write after what is there
  | { kind: 'restart' } // the origin cannot continue where the .part file ends: ask again for it whole
  | { kind: 'as-whole' }; // the answer is not a continuation (200, 404, 5xx ...): take it as for a plain GET

/** What the answer (`status`, Content-Range) to a GET for the bytes from `have` on means. */
export function resumeStep(have: number, status: number, contentRange: string | undefined): ResumeStep {
  if (have <= 0) return { kind: 'as-whole' };
  if (status === 416) return parseContentRange(contentRange)?.total === have ? { kind: 'complete' } : { kind: 'restart' };
  if (status === 206) return parseContentRange(contentRange)?.start === have ? { kind: 'append', start: have } : { kind: 'restart' };
  return { kind: 'as-whole' };
}

/** The size of the file at `path`, 0 when there is none. */
export async function partSize(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return 0;
  }
}

/** Opens `dest` to write from byte `start` (cut there: nothing stale after it), or afresh from 0. */
async function openPart(dest: string, start: number): Promise<FileHandle> {
  // O_NOFOLLOW: the partial file is written only if it is a file, never through a link.
  if (start === 0) return open(dest, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, 0o600);
  const fh = await open(dest, constants.O_RDWR | constants.O_NOFOLLOW);
  try {
    await fh.truncate(start);
    return fh;
  } catch (err) {
    await fh.close();
    throw err;
  }
}

/** One attempt at getting `url` into `dest`, which holds `have` bytes; false when the origin has no such file. */
export async function fetchOnce(wire: Wire, url: URL, what: string, dest: string, maxBytes: number, have: number): Promise<boolean> {
  let ex = await wire.send('GET', url, have > 0 ? { Range: `bytes=${have}-` } : {}, `fetching ${what}`);
  const step = resumeStep(have, ex.res.statusCode ?? 0, ex.res.headers['content-range']);
  if (step.kind === 'complete') {
    await wire.discard(ex);
    return true;
  }
  if (step.kind === 'restart') {
    await wire.discard(ex);
    ex = await wire.send('GET', url, {}, `fetching ${what}`);
  }
  const start = step.kind === 'append' ? step.start : 0;
  const status = ex.res.statusCode ?? 0;
  if (start === 0 && status !== 200) {
    await wire.discard(ex);
    if (status === 404 || status === 410) return false;
    throw statusFailure(`fetching ${what}`, status);
  }
  const length = contentLength(ex.res.headers);
  const total = start > 0 ? parseContentRange(ex.res.headers['content-range'])?.total : length;
  const declared = declaredSizeOverCap(start, length, total, maxBytes);
  if (declared !== undefined) {
    ex.abort();
    throw finalFailure('ERR_TOO_LARGE', `${what} is ${declared} bytes, over its ${maxBytes}-byte cap`);
  }
  let fh: FileHandle;
  try {
    fh = await openPart(dest, start);
  } catch (err) {
    ex.abort();
    throw finalFsFailure(err, `opening ${dest}`);
  }
  let pos = start;
  try {
    await wire.readBody(ex, what, async (chunk) => {
      try {
        await fh.write(chunk, 0, chunk.length, pos);
      } catch (err) {
        throw finalFsFailure(err, `writing ${dest}`);
      }
      pos += chunk.length;
    }, maxBytes - start);
  } finally {
    await fh.close();
  }
  return true;
}
