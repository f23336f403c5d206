// Source.read over HTTP: one GET of a small file, made conditional (If-None-Match) when the ETag
// cache holds a copy that fits the cap, or first a HEAD when the file was absent last time.
// readStep and probeStep decide what a status means; readOnce is one attempt.
//
// Why HEAD for a file absent last time (issue 13 item 14): every check asks for root/<N+1>.json
// (a root rotation must be seen: SECURITY.md row 2) and for channel pointers that usually do not
// exist (channels/security.json); a stock origin answers each 404 with an HTML page that costs as
// much as the headers. A HEAD gets the same status without the page. Absence is never signed, so
// it is never trusted: the probe is sent on every check, and anything but 404/410 (the file
// appeared, or the origin does not do HEAD) is followed by the GET the read would have sent.
//
// Why reads accept brotli and gzip (issue 14 item 5): a signed manifest is JSON in a base64
// envelope, and a patch bump of a thousand-file tree still carries its file list (179 KB raw,
// 59 KB as brotli). Any origin that compresses JSON (nginx `gzip on`, a CDN, `ferry serve`) sends
// it compressed; one that does not sends it as it is. The compressed body is trusted for nothing:
// it is read under the cap plus a little, decoded with the output capped at the same cap (a bomb
// stops there), and what the caller receives is the decoded bytes, which readManifest holds to the
// channel's signed size and sha256 exactly as before (SECURITY.md row 6). Downloads (fetch) stay
// identity: their caps and ranges count the bytes on disk.

import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import { declaredSizeOverCap } from './body-reader.ts';
import { keepableEtag, type CacheEntry, type EtagCache } from './etag-cache.ts';
import { contentLength, type Wire } from './exchange.ts';
import { finalFailure, statusFailure } from './retries.ts';

export type ReadStep =
  | 'body' // 200: read it
  | 'cached' // 304 to our If-None-Match: the cached copy is current
  | 'unasked-304' // 304 to an unconditional request: a broken or hostile origin
  | 'missing' // the file does not exist
  | 'failed'; // any other status

export function readStep(status: number, conditional: boolean): ReadStep {
  if (status === 200) return 'body';
  if (status === 304) return conditional ? 'cached' : 'unasked-304';
  if (status === 404 || status === 410) return 'missing';
  return 'failed';
}

/** What a HEAD probe of a path absent last time says: still absent, or ask with a GET. */
export function probeStep(status: number): 'missing' | 'get' {
  return status === 404 || status === 410 ? 'missing' : 'get';
}

/** One attempt at reading `path` (at `url`) whole; `what` names it in messages. */
export async function readOnce(wire: Wire, cache: EtagCache, url: URL, path: string, what: string, maxBytes: number): Promise<Uint8Array | undefined> {
  const record = await cache.load(path);
  if (record === 'absent') {
    const probe = await wire.send('HEAD', url, {}, `probing ${what}`);
    await wire.discard(probe);
    if (probeStep(probe.res.statusCode ?? 0) === 'missing') return undefined;
  }
  const cached: CacheEntry | undefined = record === 'absent' ? undefined : record;
  const usable = cached && cached.body.length <= maxBytes ? cached : undefined;
  // Same length as the 'identity' it replaces: an idle check's header bytes do not grow.
  const ex = await wire.send('GET', url, { 'Accept-Encoding': 'br, gzip', ...(usable ? { 'If-None-Match': usable.etag } : {}) }, `reading ${what}`);
  const status = ex.res.statusCode ?? 0;
  const step = readStep(status, usable !== undefined);
  if (step !== 'body') {
    await wire.discard(ex);
    if (step === 'cached' && usable) return usable.body;
    if (step === 'missing') {
      await cache.saveAbsent(path);
      return undefined;
    }
    if (step === 'unasked-304') throw finalFailure('ERR_IO', `reading ${what}: 304 to an unconditional request`);
    throw statusFailure(`reading ${what}`, status);
  }
  const encoding = contentEncoding(ex.res.headers['content-encoding']);
  if (encoding === undefined) {
    ex.abort();
    throw finalFailure('ERR_IO', `${what} came with Content-Encoding "${String(ex.res.headers['content-encoding']).slice(0, 40)}", which was not asked for`);
  }
  // A compressed body may be a little larger than what it decodes to (tiny, incompressible files).
  const wireCap = encoding === 'identity' ? maxBytes : maxBytes + COMPRESSED_SLACK;
  const declared = declaredSizeOverCap(0, contentLength(ex.res.headers), undefined, wireCap);
  if (declared !== undefined) {
    ex.abort();
    throw finalFailure('ERR_TOO_LARGE', `${what} is ${declared} bytes, over its ${maxBytes}-byte cap`);
  }
  const chunks: Buffer[] = [];
  await wire.readBody(ex, what, async (c) => { chunks.push(c); }, wireCap);
  const body = decodeBody(Buffer.concat(chunks), encoding, maxBytes, what);
  const etag = keepableEtag(ex.res.headers, Date.now());
  if (etag) await cache.save(path, { etag, body });
  else await cache.drop(path);
  return body;
}

/** Bytes a compressed body may exceed the cap of what it decodes to. */
const COMPRESSED_SLACK = 1024;

/** The body's coding: one of those asked for ('br, gzip') or none; undefined for anything else. */
export function contentEncoding(header: string | undefined): 'identity' | 'br' | 'gzip' | undefined {
  const value = (header ?? 'identity').trim().toLowerCase();
  if (value === '' || value === 'identity') return 'identity';
  if (value === 'br' || value === 'gzip' || value === 'x-gzip') return value === 'br' ? 'br' : 'gzip';
  return undefined;
}

/**
 * Decodes a body under `maxBytes` of output: past it ERR_TOO_LARGE (a bomb costs at most the
 * cap), bytes that do not decode ERR_IO. The result is still unverified: the caller checks it.
 */
export function decodeBody(body: Buffer, encoding: 'identity' | 'br' | 'gzip', maxBytes: number, what: string): Buffer {
  if (encoding === 'identity') return body;
  try {
    return encoding === 'br' ? brotliDecompressSync(body, { maxOutputLength: Math.max(1, maxBytes) }) : gunzipSync(body, { maxOutputLength: Math.max(1, maxBytes) });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') throw finalFailure('ERR_TOO_LARGE', `${what} decompresses past its ${maxBytes}-byte cap`);
    throw finalFailure('ERR_IO', `${what}: its ${encoding} body does not decode: ${(err as Error).message}`);
  }
}
