// The HTTP transport (DESIGN.md "Transports"): a Source over an origin URL that serves a repository
// as static files. It moves bytes and decides nothing — the core verifies every byte it returns —
// but it is what stands between the device and a hostile or broken network, so it bounds
// everything: response size (THREATS.md row 6: capped before and while reading, the request
// aborted at maxBytes+1), time (row 7: headers within timeoutMs, no stall longer than timeoutMs,
// a minimum throughput over a sliding window, then ERR_IO so the core moves to the next source),
// and redirects (at most 3, same scheme). Resumes .part files with Range; saves an idle check's
// bytes with conditional GETs (ETag / If-None-Match) when given a cache folder.
//
// node:http / node:https directly, one request at a time per call, a keep-alive agent owned by
// the transport (close() ends its sockets; idle sockets never keep the process alive).

import http from 'node:http';
import https from 'node:https';
import { createHash, randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { mkdir, open, readFile, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { FerryError, fromFsError } from '../../core/errors.ts';
import { checkRelativePath } from '../../core/io/safe-path.ts';
import type { Source } from '../../core/ports/source.ts';

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

const MAX_REDIRECTS = 3;
/** Error bodies (404, 503 ...) up to this size are drained so the connection can be reused. */
const DRAIN_LIMIT = 64 * 1024;
const CACHE_FORMAT = 1;

/** Errors the transport must not retry itself: the source is slow, hostile or wrong, not flaky. */
const FINAL = new WeakSet<FerryError>();

function finalError(code: 'ERR_IO' | 'ERR_TOO_LARGE', message: string, cause?: unknown): FerryError {
  const err = new FerryError(code, message, { cause });
  FINAL.add(err);
  return err;
}

function retryableIo(message: string, cause?: unknown): FerryError {
  return new FerryError('ERR_IO', message, { cause });
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** A token bucket shared by every request of one transport: the bandwidth cap is per origin. */
class TokenBucket {
  private tokens: number;
  private last = performance.now();
  private readonly capacity: number;

  constructor(private readonly rate: number) {
    // A quarter second of burst: enough to keep the socket busy, small enough to hold the cap.
    this.capacity = Math.max(16 * 1024, rate / 4);
    this.tokens = this.capacity;
  }

  /** Takes `n` bytes' worth of tokens, waiting while the bucket is in debt. */
  async take(n: number): Promise<void> {
    const now = performance.now();
    this.tokens = Math.min(this.capacity, this.tokens + ((now - this.last) * this.rate) / 1000);
    this.last = now;
    this.tokens -= n;
    if (this.tokens < 0) await delay(Math.ceil((-this.tokens * 1000) / this.rate));
  }
}

interface Exchange {
  res: http.IncomingMessage;
  /** Ends the exchange: destroys the request and its socket (never reused after an abort). */
  abort(err?: Error): void;
}

interface CacheEntry {
  etag: string;
  body: Buffer;
}

function parseContentLength(res: http.IncomingMessage): number | undefined {
  const raw = res.headers['content-length'];
  if (raw === undefined) return undefined;
  return /^\d+$/.test(raw) ? Number(raw) : undefined;
}

/** "bytes a-b/total" or "bytes * /total" (416); undefined when malformed. */
function parseContentRange(raw: string | undefined): { start: number | null; end: number | null; total: number | null } | undefined {
  if (!raw) return undefined;
  const m = /^bytes\s+(?:(\d+)-(\d+)|\*)\/(\d+|\*)$/.exec(raw.trim());
  if (!m) return undefined;
  return {
    start: m[1] !== undefined ? Number(m[1]) : null,
    end: m[2] !== undefined ? Number(m[2]) : null,
    total: m[3] !== undefined && m[3] !== '*' ? Number(m[3]) : null,
  };
}

/**
 * Whether an ETag may be kept for If-None-Match. Many servers derive ETags from whole-second
 * mtime and size (nginx: "mtime-size"), so a channel pointer re-signed within the same second at
 * the same length keeps its ETag, and a cached copy would hide the new release behind 304s. A
 * validator minted less than 2 s after the file's Last-Modified is therefore not kept (RFC 9110
 * 8.8.2.2: such a validator is weak); the next read is unconditional, and a later one revalidates.
 */
function validatorIsSafe(headers: http.IncomingHttpHeaders): boolean {
  const modified = Date.parse(headers['last-modified'] ?? '');
  if (Number.isNaN(modified)) return true;
  const served = Date.parse(headers.date ?? '');
  return (Number.isNaN(served) ? Date.now() : served) - modified >= 2000;
}

function statusRetryable(status: number): boolean {
  return status >= 500 || status === 408 || status === 429;
}

export function createHttpTransport(options: HttpTransportOptions): HttpTransport {
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
  const graceMs = config.throughputGraceMs ?? config.throughputWindowMs / 2;
  // The URL itself (without a trailing slash, so `${name}/${path}` in messages reads as a URL).
  const name = config.url.replace(/\/+$/, '');
  const agent = base.protocol === 'https:' ? new https.Agent({ keepAlive: true, maxSockets: 4 }) : new http.Agent({ keepAlive: true, maxSockets: 4 });
  const bucket = config.maxBytesPerSecond !== undefined ? new TokenBucket(config.maxBytesPerSecond) : undefined;

  const urlFor = (path: string): URL => {
    checkRelativePath(path, 'source path');
    return new URL(path.split('/').map(encodeURIComponent).join('/'), base);
  };

  /** Sends one GET, following at most MAX_REDIRECTS same-scheme redirects; resolves at the headers. */
  async function request(url: URL, headers: Record<string, string>, what: string): Promise<Exchange> {
    for (let hops = 0; ; hops++) {
      const ex = await requestOnce(url, headers, what);
      const { statusCode = 0 } = ex.res;
      if (![301, 302, 303, 307, 308].includes(statusCode)) return ex;
      const location = ex.res.headers.location;
      await discard(ex);
      if (!location) throw finalError('ERR_IO', `${what}: redirect ${statusCode} without a Location from ${url.origin}`);
      if (hops >= MAX_REDIRECTS) throw finalError('ERR_IO', `${what}: more than ${MAX_REDIRECTS} redirects`);
      const next = new URL(location, url);
      // Same scheme only: an https origin must not be downgraded to cleartext (nor the reverse).
      if (next.protocol !== url.protocol) throw finalError('ERR_IO', `${what}: refused a redirect from ${url.protocol} to ${next.protocol}`);
      url = next;
    }
  }

  function requestOnce(url: URL, headers: Record<string, string>, what: string): Promise<Exchange> {
    return new Promise<Exchange>((resolve, reject) => {
      const mod = url.protocol === 'https:' ? https : http;
      let failure: FerryError | undefined;
      const req = mod.request(url, {
        method: 'GET',
        agent,
        headers: { 'User-Agent': config.userAgent, 'Accept-Encoding': 'identity', ...headers },
      });
      // Headers must arrive within timeoutMs in total: a trickle of header bytes is a stall too.
      const timer = setTimeout(() => {
        failure = finalError('ERR_IO', `${what}: no response from ${url.origin} within ${config.timeoutMs} ms`);
        req.destroy(failure);
      }, config.timeoutMs);
      req.once('response', (res) => {
        clearTimeout(timer);
        // Errors after an abort are reported through the body reader; none may go unhandled.
        res.on('error', () => {});
        resolve({
          res,
          abort(err) {
            req.destroy(err);
            res.destroy(err);
          },
        });
      });
      req.on('error', (err) => {
        clearTimeout(timer);
        reject(failure ?? retryableIo(`${what}: ${url.origin}: ${(err as Error).message}`, err));
      });
      req.end();
    });
  }

  /** Reads and drops a small error body (keeps the connection), or aborts a large one. */
  async function discard(ex: Exchange): Promise<void> {
    const length = parseContentLength(ex.res);
    if (length === undefined || length > DRAIN_LIMIT) return ex.abort();
    try {
      await streamBody(ex, 'error body', async () => {}, DRAIN_LIMIT);
    } catch {
      ex.abort();
    }
  }

  /**
   * Streams a response body into `sink`, enforcing the stall timeout, the minimum throughput over
   * the sliding window, the bandwidth cap and `cap` (the request is aborted at cap+1 bytes; sink
   * never sees a byte past the cap). Returns the number of bytes received.
   */
  async function streamBody(ex: Exchange, what: string, sink: (chunk: Buffer) => Promise<void>, cap: number): Promise<number> {
    const started = performance.now();
    let received = 0;
    let waitingSince = started; // when we last went back to waiting for the network
    let waiting = true;
    let failure: FerryError | undefined;
    const samples: { t: number; bytes: number }[] = [{ t: started, bytes: 0 }];
    const tick = Math.max(20, Math.min(250, config.throughputWindowMs / 4, config.timeoutMs / 4));
    const fail = (err: FerryError) => {
      failure ??= err;
      ex.abort(failure);
    };
    const watchdog = setInterval(() => {
      const now = performance.now();
      samples.push({ t: now, bytes: received });
      // Keep one sample at or before the window's start, so the rate covers the whole window.
      while (samples.length > 2 && samples[1]!.t <= now - config.throughputWindowMs) samples.shift();
      if (waiting && now - waitingSince > config.timeoutMs) {
        return fail(finalError('ERR_IO', `${what}: stalled, no data for ${config.timeoutMs} ms`));
      }
      const from = samples[0]!;
      if (now - started >= graceMs && now > from.t) {
        const rate = ((received - from.bytes) * 1000) / (now - from.t);
        if (rate < config.minBytesPerSecond) {
          fail(finalError('ERR_IO', `${what}: ${Math.round(rate)} B/s over the last ${Math.round(now - from.t)} ms, under the ${config.minBytesPerSecond} B/s minimum`));
        }
      }
    }, tick);
    try {
      for await (const data of ex.res) {
        const chunk = data as Buffer;
        waiting = false;
        received += chunk.length;
        if (received > cap) {
          const room = cap - (received - chunk.length);
          if (room > 0) await sink(chunk.subarray(0, room));
          fail(finalError('ERR_TOO_LARGE', `${what} is over its ${cap}-byte cap`));
          break;
        }
        await sink(chunk);
        if (bucket) await bucket.take(chunk.length);
        waiting = true;
        waitingSince = performance.now();
      }
    } catch (err) {
      if (failure) throw failure;
      if (err instanceof FerryError) throw err;
      // The connection ended before the body did (reset, premature close): worth a retry.
      throw retryableIo(`${what}: ${(err as Error).message}`, err);
    } finally {
      clearInterval(watchdog);
    }
    if (failure) throw failure;
    const length = parseContentLength(ex.res);
    if (length !== undefined && received !== length) throw retryableIo(`${what}: got ${received} of ${length} bytes`);
    return received;
  }

  function statusError(what: string, status: number): FerryError {
    const message = `${what}: HTTP ${status}`;
    return statusRetryable(status) ? retryableIo(message) : finalError('ERR_IO', message);
  }

  /** Runs `attempt` again after retryable failures, with exponential backoff and jitter. */
  async function withRetries<T>(attempt: () => Promise<T>): Promise<T> {
    for (let n = 0; ; n++) {
      try {
        return await attempt();
      } catch (err) {
        const e = err instanceof FerryError ? err : fromFsError(err, `using ${name}`);
        if (e.code !== 'ERR_IO' || FINAL.has(e) || n >= config.retries) throw e;
        const backoff = config.retryBaseMs * 2 ** n;
        await config.sleep(Math.round(backoff / 2 + (config.random() * backoff) / 2));
      }
    }
  }

  // --- conditional-GET cache: one file per path, named by the path's sha256 -----------------

  const cacheFile = (path: string) => join(config.cacheDir!, createHash('sha256').update(path).digest('hex'));

  async function loadCache(path: string): Promise<CacheEntry | undefined> {
    if (!config.cacheDir) return undefined;
    try {
      const raw = await readFile(cacheFile(path));
      const nl = raw.indexOf(0x0a);
      const head = JSON.parse(raw.subarray(0, nl).toString('utf8')) as { v?: unknown; path?: unknown; etag?: unknown; sha256?: unknown };
      const body = raw.subarray(nl + 1);
      // A damaged entry must not be used: the origin would keep answering 304 to its ETag forever.
      if (nl < 0 || head.v !== CACHE_FORMAT || head.path !== path || typeof head.etag !== 'string') return undefined;
      if (head.sha256 !== createHash('sha256').update(body).digest('hex')) return undefined;
      return { etag: head.etag, body };
    } catch {
      return undefined;
    }
  }

  async function saveCache(path: string, etag: string, body: Buffer): Promise<void> {
    if (!config.cacheDir) return;
    const final = cacheFile(path);
    const tmp = `${final}.${randomBytes(6).toString('hex')}.tmp`;
    const head = JSON.stringify({ v: CACHE_FORMAT, path, etag, sha256: createHash('sha256').update(body).digest('hex') });
    try {
      await mkdir(config.cacheDir, { recursive: true });
      const fh = await open(tmp, 'wx', 0o600);
      try {
        await fh.writeFile(Buffer.concat([Buffer.from(head + '\n'), body]));
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, final);
    } catch {
      // A cache that cannot be written costs bytes next time, nothing else.
      await rm(tmp, { force: true }).catch(() => {});
    }
  }

  async function dropCache(path: string): Promise<void> {
    if (config.cacheDir) await rm(cacheFile(path), { force: true }).catch(() => {});
  }

  // --- the Source ---------------------------------------------------------------------------

  async function readOnce(url: URL, path: string, maxBytes: number): Promise<Uint8Array | undefined> {
    const cached = await loadCache(path);
    const usable = cached && cached.body.length <= maxBytes ? cached : undefined;
    const ex = await request(url, usable ? { 'If-None-Match': usable.etag } : {}, `reading ${path} from ${name}`);
    const status = ex.res.statusCode ?? 0;
    if (status === 304) {
      await discard(ex);
      if (!usable) throw finalError('ERR_IO', `reading ${path} from ${name}: 304 to an unconditional request`);
      return usable.body;
    }
    if (status === 404 || status === 410) {
      await discard(ex);
      await dropCache(path);
      return undefined;
    }
    if (status !== 200) {
      await discard(ex);
      throw statusError(`reading ${path} from ${name}`, status);
    }
    const length = parseContentLength(ex.res);
    if (length !== undefined && length > maxBytes) {
      ex.abort();
      throw finalError('ERR_TOO_LARGE', `${path} from ${name} is ${length} bytes, over its ${maxBytes}-byte cap`);
    }
    const chunks: Buffer[] = [];
    await streamBody(ex, `${path} from ${name}`, async (c) => { chunks.push(c); }, maxBytes);
    const body = Buffer.concat(chunks);
    const etag = ex.res.headers.etag;
    if (etag && validatorIsSafe(ex.res.headers)) await saveCache(path, etag, body);
    else await dropCache(path);
    return body;
  }

  /** One GET of the rest of `path` into `dest`, which holds `have` bytes. */
  async function fetchOnce(url: URL, path: string, dest: string, maxBytes: number, have: number): Promise<boolean> {
    const what = `${path} from ${name}`;
    let ex = await request(url, have > 0 ? { Range: `bytes=${have}-` } : {}, `fetching ${what}`);
    let status = ex.res.statusCode ?? 0;
    let start = 0;
    if (have > 0 && status === 416) {
      const range = parseContentRange(ex.res.headers['content-range']);
      await discard(ex);
      if (range?.total === have) return true; // the .part file was already complete
    }
    if (have > 0 && status === 206) {
      const range = parseContentRange(ex.res.headers['content-range']);
      if (range?.start === have) start = have;
      else await discard(ex);
    }
    if (have > 0 && start === 0 && status !== 200 && status !== 404 && status !== 410) {
      // The origin could not continue the .part file where it ends: fetch it whole.
      if (status === 206 || status === 416) {
        ex = await request(url, {}, `fetching ${what}`);
        status = ex.res.statusCode ?? 0;
      }
    }
    if (status === 404 || status === 410) {
      await discard(ex);
      return false;
    }
    if (!(status === 200 || (status === 206 && start > 0))) {
      await discard(ex);
      throw statusError(`fetching ${what}`, status);
    }
    const length = parseContentLength(ex.res);
    const total = status === 206 ? parseContentRange(ex.res.headers['content-range'])?.total : length;
    if ((length !== undefined && start + length > maxBytes) || (total !== undefined && total !== null && total > maxBytes)) {
      ex.abort();
      throw finalError('ERR_TOO_LARGE', `${what} is ${Math.max(start + (length ?? 0), total ?? 0)} bytes, over its ${maxBytes}-byte cap`);
    }
    let fh: FileHandle;
    try {
      // O_NOFOLLOW: the partial file is written only if it is a file, never through a link.
      if (start > 0) {
        fh = await open(dest, constants.O_RDWR | constants.O_NOFOLLOW);
        await fh.truncate(start);
      } else {
        fh = await open(dest, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, 0o600);
      }
    } catch (err) {
      ex.abort();
      throw fsFailure(err, `opening ${dest}`);
    }
    let pos = start;
    try {
      await streamBody(ex, what, async (chunk) => {
        try {
          await fh.write(chunk, 0, chunk.length, pos);
        } catch (err) {
          throw fsFailure(err, `writing ${dest}`);
        }
        pos += chunk.length;
      }, maxBytes - start);
    } finally {
      await fh.close();
    }
    return true;
  }

  /** A disk failure is not the origin's fault: never retried here. */
  function fsFailure(err: unknown, what: string): FerryError {
    const e = fromFsError(err, what);
    FINAL.add(e);
    return e;
  }

  async function sizeOf(path: string): Promise<number> {
    try {
      return (await stat(path)).size;
    } catch {
      return 0;
    }
  }

  return {
    name,
    offline: false,
    async read(path, maxBytes) {
      const url = urlFor(path);
      return withRetries(() => readOnce(url, path, maxBytes));
    },
    async fetch(path, dest, maxBytes, offset = 0) {
      const url = urlFor(path);
      if (offset > 0 && (await sizeOf(dest)) < offset) offset = 0;
      let first = true;
      return withRetries(async () => {
        // A retry continues from what the failed attempt wrote.
        const have = first ? offset : Math.min(await sizeOf(dest), maxBytes);
        first = false;
        return fetchOnce(url, path, dest, maxBytes, have);
      });
    },
    close() {
      agent.destroy();
    },
  };
}
