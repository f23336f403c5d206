// The LAN peer server (ARCHITECTURE.md "Transports": lan): serves this device's verified artifact cache
// to peers, by sha256, with byte ranges so a peer can take one signed chunk at a time, and, given
// the device home, the signed metadata the device verified and kept (core/update/kept-metadata.ts:
// its root chain, its accepted channel pointers, its installed releases' manifests), so a LAN with
// no origin can update from one device that received a USB stick. It decides nothing about trust —
// the fetching device verifies every document and every chunk itself (SECURITY.md row 8) — but it
// only ever exposes what the core wrote after verifying it: a complete cache entry whose name is
// exactly a 64-hex sha256 (never a `.part`, never another path), or a file keptMetadataFile names
// (never the config, the marks, the state or anything else in the home).
//
// Given the device home, it also takes other devices' reports, PUT /ferry/v1/reports/<deviceId>
// (plugins/lan/report-relay.ts sends them), into <home>/reports/: verified and capped like `ferry
// serve --reports` (plugins/http/report-route.ts), for the home's own app only, the newest per
// device, and at most PEER_INBOX_MAX_DEVICES devices (core/fleet/bounded-report-inbox.ts), so a
// neighbour can neither fill this device's disk nor replace a report it did not sign.

import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import { parseRange } from '../http/server.ts';
import { listenHttp } from '../http/listen.ts';
import { handleReportPut } from '../http/report-route.ts';
import { homeLayout } from '../../core/device/layout.ts';
import { readDeviceConfig } from '../../core/device/config.ts';
import { createBoundedInbox, type BoundedInbox } from '../../core/fleet/bounded-report-inbox.ts';
import { REPORTS_PREFIX } from './report-relay.ts';
import { keptMetadataFile } from '../../core/update/kept-metadata.ts';

/** The URL scheme peers speak; the client side is plugins/lan/source.ts. */
export const ARTIFACT_PREFIX = '/ferry/v1/artifacts/';
/** Followed by a repository path: root/<N>.json, channels/<c>.json, releases/<v>/manifest.json, releases/<v>/files-<target>.json. */
export const METADATA_PREFIX = '/ferry/v1/metadata/';
const SHA256_PATH = /^\/ferry\/v1\/artifacts\/([0-9a-f]{64})$/;
const REPORT_PATH = /^\/ferry\/v1\/reports\/([0-9a-f]{32})$/;

export interface PeerServerStats {
  /** Body bytes sent, over all requests. */
  bytesServed: number;
  /** Body bytes sent per artifact sha256. */
  bySha: Record<string, number>;
  /** Requests answered with 200 or 206. */
  requests: number;
  /** Requests refused (404, 405, 416). */
  refused: number;
  /** Body bytes sent per metadata path (root/2.json, channels/stable.json, …). */
  byMetadataPath: Record<string, number>;
  /** Report PUTs answered, by status (201, 200, 409, 413 …). */
  reportsByStatus: Record<string, number>;
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
  /** The device home whose kept verified metadata is served too; absent: artifacts only. */
  metadataHome?: string;
  /** Devices whose reports the home's inbox keeps (default PEER_INBOX_MAX_DEVICES). */
  maxInboxDevices?: number;
}

export async function startPeerServer(options: PeerServerOptions): Promise<PeerServer> {
  const stats: PeerServerStats = { bytesServed: 0, bySha: {}, requests: 0, refused: 0, byMetadataPath: {}, reportsByStatus: {} };
  const layout = options.metadataHome ? homeLayout(options.metadataHome) : null;
  const allow = layout ? 'GET, HEAD, PUT' : 'GET, HEAD';

  // Made at the first report, for the app the home's ferry.json names (read again after a failure).
  let inbox: Promise<BoundedInbox> | null = null;
  const reportInbox = (): Promise<BoundedInbox> => {
    inbox ??= readDeviceConfig(layout!.config).then(
      (config) => createBoundedInbox({ dir: layout!.reportsInbox, app: config.app, ...(options.maxInboxDevices ? { maxDevices: options.maxInboxDevices } : {}) }),
      (err: unknown) => { inbox = null; throw err; },
    );
    return inbox;
  };

  const takeReport = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const m = REPORT_PATH.exec(req.url ?? '');
    if (!m) return refuse(res, 404);
    const { status } = await handleReportPut(req, res, m[1]!, async (bytes, verified) => (await reportInbox()).accept(bytes, verified));
    stats.reportsByStatus[status] = (stats.reportsByStatus[status] ?? 0) + 1;
  };

  const refuse = (res: ServerResponse, status: number, headers: Record<string, string> = {}) => {
    stats.refused++;
    res.writeHead(status, { 'content-length': '0', ...headers }).end();
  };

  /**
   * A kept metadata file, whole. No size cap: the core wrote it after verifying it, and the
   * reading device caps it at its signed pin (a file list of a very large tree may pass the 16 MiB
   * a manifest may hold). It is streamed, so a large one never sits in memory here.
   */
  const serveMetadata = async (req: IncomingMessage, res: ServerResponse, path: string): Promise<void> => {
    const name = layout ? keptMetadataFile(layout, path) : null;
    if (!name) return refuse(res, 404);
    let file;
    try {
      file = await open(name, constants.O_RDONLY | constants.O_NOFOLLOW);
    } catch {
      return refuse(res, 404);
    }
    try {
      const st = await file.stat();
      if (!st.isFile()) return refuse(res, 404);
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(st.size) });
      stats.requests++;
      if (req.method === 'HEAD' || st.size === 0) {
        res.end();
        return;
      }
      await sendRange(file, 0, st.size, res, (n) => {
        stats.bytesServed += n;
        stats.byMetadataPath[path] = (stats.byMetadataPath[path] ?? 0) + n;
      });
    } finally {
      await file.close().catch(() => {});
    }
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    if (layout && req.method === 'PUT' && req.url?.startsWith(REPORTS_PREFIX)) return takeReport(req, res);
    if (req.method !== 'GET' && req.method !== 'HEAD') return refuse(res, 405, { allow });
    if (req.url?.startsWith(METADATA_PREFIX)) return serveMetadata(req, res, req.url.slice(METADATA_PREFIX.length));
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
      await sendRange(file, start, end, res, (n) => {
        stats.bytesServed += n;
        stats.bySha[sha] = (stats.bySha[sha] ?? 0) + n;
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

/**
 * Streams bytes [start, end) of the open `file` to `res`, telling `sent` each chunk's size; settles
 * when the body is sent, the client goes away or the read fails (then the response is cut).
 */
function sendRange(file: FileHandle, start: number, end: number, res: ServerResponse, sent: (bytes: number) => void): Promise<void> {
  const stream = file.createReadStream({ start, end: end - 1, autoClose: false });
  stream.on('data', (chunk: Buffer | string) => sent(chunk.length));
  return new Promise<void>((resolve) => {
    stream.once('error', () => { res.destroy(); resolve(); });
    res.once('close', () => { stream.destroy(); resolve(); });
    stream.pipe(res);
  });
}
