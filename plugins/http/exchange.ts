// One request (GET, or HEAD for a probe) on the transport's keep-alive agent, resolved when the
// response headers arrive (they must within timeoutMs: SECURITY.md row 7), the headers each kind of
// request carries, and the Wire that the read and fetch paths talk through.

import http from 'node:http';
import https from 'node:https';
import { finalFailure, transientIo } from './retries.ts';

export type Method = 'GET' | 'HEAD';

export interface Exchange {
  method: Method;
  res: http.IncomingMessage;
  /** Ends the exchange: destroys the request and its socket (never reused after an abort). */
  abort(err?: Error): void;
}

/** What conditional-read.ts and partial-download.ts need from the origin (built in transport.ts). */
export interface Wire {
  /** A request that follows redirects (redirects.ts); resolves at the final response's headers. */
  send(method: Method, url: URL, headers: Record<string, string>, what: string): Promise<Exchange>;
  /** Streams the body into `sink` under the pacing and cap rules (body-reader.ts). */
  readBody(ex: Exchange, what: string, sink: (chunk: Buffer) => Promise<void>, cap: number): Promise<number>;
  /** Drops a body not wanted (error page, redirect), keeping the connection when that is cheap. */
  discard(ex: Exchange): Promise<void>;
}

export interface RequestSettings {
  agent: http.Agent;
  timeoutMs: number;
  userAgent: string;
}

/** A Content-Length of digits only; anything else counts as absent. */
export function contentLength(headers: http.IncomingHttpHeaders): number | undefined {
  const raw = headers['content-length'];
  if (raw === undefined) return undefined;
  return /^\d+$/.test(raw) ? Number(raw) : undefined;
}

/**
 * The headers a request carries besides Host and Connection (which node adds). An idle check is
 * paid for in bytes on every check (issue 13 item 14), so its requests carry only what the origin
 * needs to answer: a HEAD probe nothing, a conditional GET its If-None-Match and
 * `Accept-Encoding: identity` (its answer may be a body). A GET that downloads carries the
 * User-Agent too. identity: the byte caps count what is on the wire and what lands on disk alike.
 */
export function requestHeaders(method: Method, userAgent: string, extra: Record<string, string>): Record<string, string> {
  if (method === 'HEAD') return { ...extra };
  if (extra['If-None-Match'] !== undefined) return { 'Accept-Encoding': 'identity', ...extra };
  return { 'User-Agent': userAgent, 'Accept-Encoding': 'identity', ...extra };
}

/** Sends one request (no redirect following). */
export function sendRequest(settings: RequestSettings, method: Method, url: URL, headers: Record<string, string>, what: string): Promise<Exchange> {
  return new Promise<Exchange>((resolve, reject) => {
    const mod = url.protocol === 'https:' ? https : http;
    let timedOut: Error | undefined;
    const req = mod.request(url, { method, agent: settings.agent, headers: requestHeaders(method, settings.userAgent, headers) });
    // Headers must arrive within timeoutMs in total: a trickle of header bytes is a stall too.
    const timer = setTimeout(() => {
      timedOut = finalFailure('ERR_IO', `${what}: no response from ${url.origin} within ${settings.timeoutMs} ms`);
      req.destroy(timedOut);
    }, settings.timeoutMs);
    req.once('response', (res) => {
      clearTimeout(timer);
      // Errors after an abort are reported through the body reader; none may go unhandled.
      res.on('error', () => {});
      resolve({
        method,
        res,
        abort(err) {
          req.destroy(err);
          res.destroy(err);
        },
      });
    });
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(timedOut ?? transientIo(`${what}: ${url.origin}: ${err.message}`, err));
    });
    req.end();
  });
}
