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
  const ex = await wire.send('GET', url, usable ? { 'If-None-Match': usable.etag } : {}, `reading ${what}`);
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
  const declared = declaredSizeOverCap(0, contentLength(ex.res.headers), undefined, maxBytes);
  if (declared !== undefined) {
    ex.abort();
    throw finalFailure('ERR_TOO_LARGE', `${what} is ${declared} bytes, over its ${maxBytes}-byte cap`);
  }
  const chunks: Buffer[] = [];
  await wire.readBody(ex, what, async (c) => { chunks.push(c); }, maxBytes);
  const body = Buffer.concat(chunks);
  const etag = keepableEtag(ex.res.headers, Date.now());
  if (etag) await cache.save(path, { etag, body });
  else await cache.drop(path);
  return body;
}
