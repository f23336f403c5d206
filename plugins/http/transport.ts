// The HTTP transport (ARCHITECTURE.md, transports): a Source over an origin URL that serves a
// repository as static files. It moves bytes and decides nothing — the core verifies every byte it
// returns — but it is what stands between the device and a hostile or broken network, so it bounds
// everything: response size (SECURITY.md row 6: capped before and while reading, the request
// aborted at maxBytes+1), time (row 7: headers within timeoutMs, no stall longer than timeoutMs,
// a minimum throughput over a sliding window, then ERR_IO so the core moves to the next source),
// and redirects (at most 3, same scheme). Resumes .part files with Range; given a cache folder,
// saves an idle check's bytes (issue 13 item 14) with conditional GETs (ETag / If-None-Match) and
// a bodiless HEAD probe for a file that was absent last time, each with minimal headers.
//
// This file checks the options and composes the parts beside it: exchange.ts (one GET),
// redirects.ts, body-reader.ts (caps, throughput-watchdog.ts, token-bucket.ts), retries.ts,
// conditional-read.ts with etag-cache.ts (read), partial-download.ts (fetch). node:http / node:https
// directly, one request at a time per call, a keep-alive agent owned by the transport (close()
// ends its sockets; idle sockets never keep the process alive).

import http from 'node:http';
import https from 'node:https';
import { setTimeout as delay } from 'node:timers/promises';
import { FerryError } from '../../core/errors.ts';
import { checkRelativePath } from '../../core/io/safe-path.ts';
import type { Source } from '../../core/ports/source.ts';
import { createBodyReader } from './body-reader.ts';
import { readOnce } from './conditional-read.ts';
import { openEtagCache } from './etag-cache.ts';
import { sendRequest, type Wire } from './exchange.ts';
import { fetchOnce, partSize } from './partial-download.ts';
import { followRedirects } from './redirects.ts';
import { withRetries } from './retries.ts';
import { TokenBucket } from './token-bucket.ts';

export interface HttpTransportOptions {
  /** Base URL of the repository (http: or https:); paths are resolved under it. */
  url: string;
  /** Folder for ETag + body of metadata reads; enables conditional GETs. */
  cacheDir?: string;
  /** Response headers must arrive, and no body byte may be missing for longer than this. */
  timeoutMs?: number;
  /** Below this rate over the sliding window (after the grace period) a transfer is abandoned. */
  minBytesPerSecond?: number;
  /** Length of the sliding throughput window. */
  throughputWindowMs?: number;
  /** Time after the response headers before throughput is judged (default: half the window). */
  throughputGraceMs?: number;
  /** Bandwidth cap for this transport (token bucket); undefined = none. */
  maxBytesPerSecond?: number;
  /** Retries of one call after a connection failure or a 5xx/408/429 answer. */
  retries?: number;
  /** First backoff delay; doubled per retry, with jitter. */
  retryBaseMs?: number;
  /** Sent with downloads (unconditional GETs), not with an idle check's probes (exchange.ts). */
  userAgent?: string;
  /** Waits between retries (tests pass one that records the delays). */
  sleep?: (ms: number) => Promise<void>;
  /** Jitter source in [0, 1). */
  random?: () => number;
}

export type HttpTransport = Source & {
  /** Ends the transport's keep-alive sockets. */
  close(): void;
};

const DEFAULTS = {
  timeoutMs: 15_000,
  minBytesPerSecond: 1024,
  throughputWindowMs: 10_000,
  retries: 3,
  retryBaseMs: 250,
  userAgent: 'ferry/0.1',
  sleep: (ms: number) => delay(ms),
  random: Math.random,
};

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** The options with defaults filled in and the base URL parsed; ERR_USAGE for what cannot work. */
function resolveOptions(options: HttpTransportOptions) {
  const config = { ...DEFAULTS, ...definedOnly(options), url: options.url };
  let base: URL;
  try {
    base = new URL(config.url);
  } catch (err) {
    throw new FerryError('ERR_USAGE', `http source: "${config.url}" is not a URL`, { cause: err });
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:') {
    throw new FerryError('ERR_USAGE', `http source: ${config.url} is not an http: or https: URL`);
  }
  if (!base.pathname.endsWith('/')) base.pathname += '/';
  base.search = '';
  base.hash = '';
  const positive = (n: number | undefined, what: string) => {
    if (n !== undefined && !(Number.isFinite(n) && n > 0)) throw new FerryError('ERR_USAGE', `http source: ${what} must be a positive number`);
  };
  positive(config.timeoutMs, 'timeoutMs');
  positive(config.minBytesPerSecond, 'minBytesPerSecond');
  positive(config.throughputWindowMs, 'throughputWindowMs');
  positive(config.maxBytesPerSecond, 'maxBytesPerSecond');
  if (!Number.isInteger(config.retries) || config.retries < 0) throw new FerryError('ERR_USAGE', 'http source: retries must be a whole number');
  // A cap under the minimum would make every large transfer fail the throughput check.
  if (config.maxBytesPerSecond !== undefined && config.maxBytesPerSecond < config.minBytesPerSecond) {
    throw new FerryError('ERR_USAGE', `http source: maxBytesPerSecond (${config.maxBytesPerSecond}) is below minBytesPerSecond (${config.minBytesPerSecond})`);
  }
  return { ...config, base };
}

export function createHttpTransport(options: HttpTransportOptions): HttpTransport {
  const config = resolveOptions(options);
  // The URL itself (without a trailing slash, so `${name}/${path}` in messages reads as a URL).
  const name = config.url.replace(/\/+$/, '');
  const agent = config.base.protocol === 'https:' ? new https.Agent({ keepAlive: true, maxSockets: 4 }) : new http.Agent({ keepAlive: true, maxSockets: 4 });
  const body = createBodyReader({
    throughput: {
      timeoutMs: config.timeoutMs,
      minBytesPerSecond: config.minBytesPerSecond,
      windowMs: config.throughputWindowMs,
      graceMs: config.throughputGraceMs ?? config.throughputWindowMs / 2,
    },
    bucket: config.maxBytesPerSecond !== undefined ? new TokenBucket(config.maxBytesPerSecond) : undefined,
  });
  const request = { agent, timeoutMs: config.timeoutMs, userAgent: config.userAgent };
  const wire: Wire = {
    send: (method, url, headers, what) => followRedirects(url, what, (u) => sendRequest(request, method, u, headers, what), body.discard),
    ...body,
  };
  const cache = openEtagCache(config.cacheDir);

  const urlFor = (path: string): URL => {
    checkRelativePath(path, 'source path');
    return new URL(path.split('/').map(encodeURIComponent).join('/'), config.base);
  };

  return {
    name,
    offline: false,
    async read(path, maxBytes) {
      const url = urlFor(path);
      return withRetries(config, name, () => readOnce(wire, cache, url, path, `${path} from ${name}`, maxBytes));
    },
    async fetch(path, dest, maxBytes, offset = 0) {
      const url = urlFor(path);
      if (offset > 0 && (await partSize(dest)) < offset) offset = 0;
      let first = true;
      return withRetries(config, name, async () => {
        // A retry continues from what the failed attempt wrote.
        const have = first ? offset : Math.min(await partSize(dest), maxBytes);
        first = false;
        return fetchOnce(wire, url, `${path} from ${name}`, dest, maxBytes, have);
      });
    },
    close() {
      agent.destroy();
    },
  };
}
