// A static file server for a repository folder (`ferry serve`, and the origin in tests): GET and
// HEAD, strong ETags with If-None-Match → 304, one byte range per request (206 / 416), metadata
// marked no-cache and artifacts immutable. Devices need nothing more than this from an origin —
// any plain static server (nginx) works the same — so this is a convenience, not a protocol.
//
// With `reports` (`ferry serve --reports DIR`), PUT /reports/<deviceId>.json takes device reports
// into DIR (plugins/http/report-route.ts); every other PUT is still 405 and GETs still read only
// the root.
//
// Only regular files under the root are served: the decoded path must pass checkRelativePath,
// its folder must resolve inside the root, and the file is opened with O_NOFOLLOW.
//
// Metadata (.json) is sent brotli-compressed to a client that asks (`Accept-Encoding: br`), as
// nginx's `gzip on` would: a manifest is a third of its size that way (issue 14 item 5). The
// device trusts the compressed body for nothing (plugins/http/conditional-read.ts).

import http from 'node:http';
import { constants } from 'node:fs';
import { open, realpath, type FileHandle } from 'node:fs/promises';
import { dirname, join, sep } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { brotliCompressSync, constants as zlib } from 'node:zlib';
import type { Socket } from 'node:net';
import { checkRelativePath } from '../../core/io/safe-path.ts';
import { createBoundedInbox, type BoundedInbox } from '../../core/fleet/bounded-report-inbox.ts';

/** Devices `ferry serve --reports` keeps by default: ~150 MB of real reports, 6 GiB at the 64 KiB worst. */
export const SERVE_INBOX_MAX_DEVICES = 100_000;
import { listenHttp } from './listen.ts';
import { handleReportPut } from './report-route.ts';

export interface StaticServerOptions {
  root: string;
  host?: string;
  /** 0 (the default) picks a free port. */
  port?: number;
  /**
   * Accept PUT /reports/<deviceId>.json into this report inbox, for this app only when given,
   * keeping at most `maxDevices` devices (default SERVE_INBOX_MAX_DEVICES; the one heard from
   * longest ago leaves first): anyone who reaches the endpoint can make device keys, so what it
   * keeps must not grow with them (SECURITY.md row 31).
   */
  reports?: { dir: string; app?: string; maxDevices?: number };
}

/** PUT /reports/<deviceId>.json */
const REPORT_PATH = /^\/reports\/([0-9a-f]{32})\.json$/;

export interface StaticServerStats {
  requests: number;
  /** Bytes written to client sockets: status lines, headers and bodies. */
  bytesSent: number;
  /** Body bytes read for each served path (relative to the root). */
  bytesByPath: Map<string, number>;
}

export interface StaticServer {
  url: string;
  port: number;
  close(): Promise<void>;
  stats: StaticServerStats;
}

const DEFAULTS = { host: '127.0.0.1', port: 0 };

/** Compressed metadata documents kept (the oldest made is dropped first). */
const COMPRESSED_KEPT = 32;

/** Metadata files larger than this are sent as they are (signed documents are far smaller). */
const COMPRESS_MAX = 16 * 1024 * 1024;

/** Whether an Accept-Encoding header admits brotli (a `br` token not given q=0). */
export function acceptsBrotli(header: string | undefined): boolean {
  return (header ?? '').split(',').some((t) => {
    const [name, ...params] = t.trim().toLowerCase().split(';').map((x) => x.trim());
    return name === 'br' && !params.some((p) => /^q=0(\.0*)?$/.test(p));
  });
}
const HIGH_WATER_MARK = 256 * 1024;

interface ByteRange {
  start: number;
  end: number; // inclusive
}

/**
 * The one range of a `Range` header: a range, 'unsatisfiable', or undefined when the header is
 * absent, malformed or asks for several ranges (then the whole file is served, as RFC 9110 allows).
 */
export function parseRange(header: string | undefined, size: number): ByteRange | 'unsatisfiable' | undefined {
  if (!header) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m) return undefined;
  const [, a = '', b = ''] = m;
  if (a === '' && b === '') return undefined;
  if (a === '') {
    const n = Number(b);
    if (n === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(a);
  if (b !== '' && Number(b) < start) return undefined;
  if (start >= size) return 'unsatisfiable';
  return { start, end: b === '' ? size - 1 : Math.min(Number(b), size - 1) };
}

function etagMatches(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  if (header.trim() === '*') return true;
  // Weak comparison (RFC 9110 13.1.2): W/"x" matches "x".
  return header.split(',').some((t) => t.trim().replace(/^W\//, '') === etag);
}

export async function startStaticServer(options: StaticServerOptions): Promise<StaticServer> {
  const config = { ...DEFAULTS, ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) } as Required<StaticServerOptions>;
  const root = await realpath(config.root);
  const stats: StaticServerStats = { requests: 0, bytesSent: 0, bytesByPath: new Map() };
  const counted = new WeakMap<Socket, number>();
  const countSocket = (socket: Socket | null) => {
    if (!socket) return;
    const before = counted.get(socket) ?? 0;
    stats.bytesSent += socket.bytesWritten - before;
    counted.set(socket, socket.bytesWritten);
  };

  /** Opens a regular file under the root, or returns undefined (→ 404) for anything else. */
  async function openFile(rawPath: string): Promise<{ rel: string; fh: FileHandle } | undefined> {
    let rel: string;
    try {
      rel = checkRelativePath(decodeURIComponent(rawPath).slice(1), 'request path');
    } catch {
      return undefined;
    }
    const full = join(root, rel);
    let fh: FileHandle | undefined;
    try {
      // O_NOFOLLOW covers the last component; the folder must still resolve inside the root, so a
      // linked folder cannot lead out of it.
      const dir = await realpath(dirname(full));
      if (dir !== root && !dir.startsWith(root + sep)) return undefined;
      fh = await open(full, constants.O_RDONLY | constants.O_NOFOLLOW);
      if (!(await fh.stat()).isFile()) {
        await fh.close();
        return undefined;
      }
      return { rel, fh };
    } catch {
      await fh?.close().catch(() => {});
      return undefined;
    }
  }

  /**
   * Brotli at quality 11 (a manifest's best), made once per file version: every device asks for
   * the same few documents, so the compression is paid per release, not per request.
   */
  const compressed = new Map<string, Buffer>();
  async function compressedOnce(key: string, fh: FileHandle): Promise<Buffer> {
    const hit = compressed.get(key);
    if (hit) return hit;
    const raw = await fh.readFile();
    const body = brotliCompressSync(raw, { params: { [zlib.BROTLI_PARAM_QUALITY]: 11, [zlib.BROTLI_PARAM_SIZE_HINT]: raw.length } });
    if (compressed.size >= COMPRESSED_KEPT) compressed.delete(compressed.keys().next().value!);
    compressed.set(key, body);
    return body;
  }

  let reportInbox: BoundedInbox | null = null;

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    stats.requests++;
    const reports = options.reports;
    if (reports && req.method === 'PUT') {
      const m = REPORT_PATH.exec((req.url ?? '').split('?')[0]!);
      if (m) {
        reportInbox ??= createBoundedInbox({ dir: reports.dir, ...(reports.app === undefined ? {} : { app: reports.app }), maxDevices: reports.maxDevices ?? SERVE_INBOX_MAX_DEVICES });
        await handleReportPut(req, res, m[1]!, (bytes, verified) => reportInbox!.accept(bytes, verified));
        return;
      }
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Length': 0 }).end();
      return;
    }
    const rawPath = (req.url ?? '/').split('?')[0]!;
    const opened = rawPath.startsWith('/') ? await openFile(rawPath) : undefined;
    if (!opened) {
      const body = 'not found\n';
      res.writeHead(404, { 'Content-Type': 'text/plain', 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-cache' });
      res.end(req.method === 'HEAD' ? undefined : body);
      return;
    }
    const { rel, fh } = opened;
    let streaming = false;
    try {
      const st = await fh.stat();
      const etag = `"${st.size.toString(16)}-${Math.floor(st.mtimeMs).toString(16)}-${st.ino.toString(16)}"`;
      const headers: http.OutgoingHttpHeaders = {
        ETag: etag,
        'Last-Modified': st.mtime.toUTCString(),
        'Accept-Ranges': 'bytes',
        'Content-Type': rel.endsWith('.json') ? 'application/json' : 'application/octet-stream',
        // Metadata changes in place (channel pointers): revalidate every time. Artifacts are named
        // by version and never rewritten.
        'Cache-Control': rel.endsWith('.json') ? 'no-cache' : 'public, max-age=31536000, immutable',
      };
      if (etagMatches(req.headers['if-none-match'], etag)) {
        res.writeHead(304, headers).end();
        return;
      }
      if (rel.endsWith('.json') && req.method === 'GET' && req.headers.range === undefined && st.size <= COMPRESS_MAX && acceptsBrotli(req.headers['accept-encoding'])) {
        const body = await compressedOnce(`${rel}\0${etag}`, fh);
        // Another representation of the same file: a weak ETag of its own, revalidated like the strong one.
        res.writeHead(200, { ...headers, ETag: `W/${etag}`, 'Content-Encoding': 'br', Vary: 'Accept-Encoding', 'Content-Length': body.length });
        stats.bytesByPath.set(rel, (stats.bytesByPath.get(rel) ?? 0) + body.length);
        res.end(body);
        return;
      }
      const ifRange = req.headers['if-range'];
      const range = ifRange === undefined || ifRange === etag ? parseRange(req.headers.range, st.size) : undefined;
      if (range === 'unsatisfiable') {
        res.writeHead(416, { ...headers, 'Content-Range': `bytes */${st.size}`, 'Content-Length': 0 }).end();
        return;
      }
      const { start, end } = range ?? { start: 0, end: st.size - 1 };
      const length = Math.max(0, end - start + 1);
      res.writeHead(range ? 206 : 200, {
        ...headers,
        'Content-Length': length,
        ...(range ? { 'Content-Range': `bytes ${start}-${end}/${st.size}` } : {}),
      });
      if (req.method === 'HEAD' || length === 0) {
        res.end();
        return;
      }
      streaming = true;
      const stream = fh.createReadStream({ start, end, highWaterMark: HIGH_WATER_MARK, autoClose: true });
      stream.on('data', (chunk) => stats.bytesByPath.set(rel, (stats.bytesByPath.get(rel) ?? 0) + chunk.length));
      await pipeline(stream, res).catch(() => {
        // The client went away mid-body: nothing to answer, the socket is already gone.
      });
    } finally {
      if (!streaming) await fh.close().catch(() => {});
    }
  }

  const server = http.createServer((req, res) => {
    res.once('close', () => countSocket(req.socket));
    handle(req, res).catch(() => {
      if (!res.headersSent) res.writeHead(500, { 'Content-Length': 0 }).end();
      else res.destroy();
    });
  });
  server.keepAliveTimeout = 5_000;

  const listening = await listenHttp(server, config.host, config.port);
  return { url: `${listening.url}/`, port: listening.port, stats, close: listening.close };
}
