// Redirects: at most MAX_REDIRECTS hops, same scheme only, so an https origin is never downgraded
// to cleartext (nor the reverse). redirectStep decides; followRedirects does the requests.

import type { Exchange } from './exchange.ts';
import { finalFailure } from './retries.ts';

export const MAX_REDIRECTS = 3;
const REDIRECT_STATUSES: ReadonlySet<number> = new Set([301, 302, 303, 307, 308]);

export type RedirectStep =
  | { kind: 'arrived' } // not a redirect: this response is the answer
  | { kind: 'follow'; url: URL }
  | { kind: 'refuse'; reason: string };

/** What to do with a response of `status` to a request for `from`, after `hops` redirects so far. */
export function redirectStep(status: number, location: string | undefined, from: URL, hops: number): RedirectStep {
  if (!REDIRECT_STATUSES.has(status)) return { kind: 'arrived' };
  if (!location) return { kind: 'refuse', reason: `redirect ${status} without a Location from ${from.origin}` };
  if (hops >= MAX_REDIRECTS) return { kind: 'refuse', reason: `more than ${MAX_REDIRECTS} redirects` };
  let next: URL;
  try {
    next = new URL(location, from);
  } catch {
    return { kind: 'refuse', reason: `redirect ${status} to a malformed Location from ${from.origin}` };
  }
  if (next.protocol !== from.protocol) return { kind: 'refuse', reason: `refused a redirect from ${from.protocol} to ${next.protocol}` };
  return { kind: 'follow', url: next };
}

/** Sends `url` with `send`, following redirects; a refused redirect is final (not retried). */
export async function followRedirects(
  url: URL,
  what: string,
  send: (url: URL) => Promise<Exchange>,
  discard: (ex: Exchange) => Promise<void>,
): Promise<Exchange> {
  for (let hops = 0; ; hops++) {
    const ex = await send(url);
    const step = redirectStep(ex.res.statusCode ?? 0, ex.res.headers.location, url, hops);
    if (step.kind === 'arrived') return ex;
    await discard(ex);
    if (step.kind === 'refuse') throw finalFailure('ERR_IO', `${what}: ${step.reason}`);
    url = step.url;
  }
}
