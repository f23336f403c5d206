// The LAN peer server (ARCHITECTURE.md "Transports": lan): serves this device's verified artifact cache
// to peers, by sha256, with byte ranges so a peer can take one signed chunk at a time. It decides
// nothing about trust — the fetching device checks every chunk against its signed hash — but it
// only ever exposes complete cache entries: a file whose name is exactly a 64-hex sha256 (the core
// renames a download to that name only after verifying it), never a `.part`, never another path.

import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import { parseRange } from '../http/server.ts';
import { listenHttp } from '../http/listen.ts';

/** The one URL scheme peers speak; the client side is plugins/lan/source.ts. */
export const ARTIFACT_PREFIX = '/ferry/v1/artifacts/';
const SHA256_PATH = /^\/ferry\/v1\/artifacts\/([0-9a-f]{64})$/;

export interface PeerServerStats {
  /** Body bytes sent, over all requests. */
  bytesServed: number;
  /** Body bytes sent per artifact sha256. */
  bySha: Record<string, number>;
  /** Requests answered with 200 or 206. */
  requests: number;
  /** Requests refused (404, 405, 416). */
  refused: number;
}

export interface PeerServer {
  url: string;
  port: number;
  stats: PeerServerStats;
  close(): Promise<void>;
}

export interface PeerServerOptions {
  cacheDir: string;
  /** Address to listen on; a device binds its LAN address, tests a namespace or loopback address. */
  host: string;
  /** 0 picks a free port. */
  port?: number;
}

export async function startPeerServer(options: PeerServerOptions): Promise<PeerServer> {
  const stats: PeerServerStats = { bytesServed: 0, bySha: {}, requests: 0, refused: 0 };

  const refuse = (res: ServerResponse, status: number, headers: Record<string, string> = {}) => {
    stats.refused++;
    res.writeHead(status, { 'content-length': '0', ...headers }).end();
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return refuse(res, 405, { allow: 'GET, HEAD' });
    const m = SHA256_PATH.exec(req.url ?? '');
    if (!m) return refuse(res, 404);
    const sha = m[1]!;
    let file;
    try {
      // O_NOFOLLOW: a link in the cache is not followed out of it.
      file = await open(join(options.cacheDir, sha), constants.O_RDONLY | constants.O_NOFOLLOW);
    } catch {
      return refuse(res, 404);
    }
    try {
      const st = await file.stat();
      if (!st.isFile()) return refuse(res, 404);
      const range = parseRange(typeof req.headers.range === 'string' ? req.headers.range : undefined, st.size);
      if (range === 'unsatisfiable') return refuse(res, 416, { 'content-range': `bytes */${st.size}` });
      const start = range?.start ?? 0;
      const end = range ? range.end + 1 : st.size; // exclusive
      res.writeHead(range ? 206 : 200, {
        'content-type': 'application/octet-stream',
        'content-length': String(end - start),
        'accept-ranges': 'bytes',
        ...(range ? { 'content-range': `bytes ${start}-${end - 1}/${st.size}` } : {}),
      });
      stats.requests++;
      if (req.method === 'HEAD' || end === start) {
        res.end();
        return;
      }
      const stream = file.createReadStream({ start, end: end - 1, autoClose: false });
      stream.on('data', (chunk: Buffer | string) => {
        stats.bytesServed += chunk.length;
        stats.bySha[sha] = (stats.bySha[sha] ?? 0) + chunk.length;
      });
      await new Promise<void>((resolve) => {
        stream.once('error', () => { res.destroy(); resolve(); });
        res.once('close', () => { stream.destroy(); resolve(); });
        stream.pipe(res);
      });
    } finally {
      await file.close().catch(() => {});
    }
  };

  const server = createServer((req, res) => {
    handle(req, res).catch(() => res.destroy());
  });
  // A stalled client must not hold a descriptor for ever.
  server.requestTimeout = 60_000;
  server.headersTimeout = 10_000;
  const listening = await listenHttp(server, options.host, options.port ?? 0);
  return { url: listening.url, port: listening.port, stats, close: listening.close };
}
