// Hostile network endpoints on 127.0.0.1 for the adversarial transport tests (SECURITY.md rows
// 6-8, 22): an HTTP origin serving a repository folder (GET, one byte range) whose answer for
// any path a test picks can be endless, longer than its Content-Length claims, trickling, or
// slowed to a given rate; and LAN peers (the plugins/lan protocol) that lie or hang. Each records
// what it was asked and how many body bytes it sent, so a test can tell what the device did.
// Every stream is bounded in bytes and time, and close() ends all connections and timers.

import http from 'node:http';
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { parseRange } from '../../plugins/http/server.ts';
import { listenHttp } from '../../plugins/http/listen.ts';

/** How the origin answers one path. */
export type Behaviour =
  | { kind: 'normal' }
  /** 200 with no Content-Length, then zeros until the client goes away (at most `limit` bytes). */
  | { kind: 'endless'; limit?: number }
  /** 200 claiming and sending the file plus `extra` bytes. */
  | { kind: 'longer'; extra: number }
  /** 200 with the file's length, then one byte per second (at most 60). */
  | { kind: 'trickle' }
  /** The file (or its range) at `bytesPerSecond`, in `chunk`-byte writes. */
  | { kind: 'rate'; bytesPerSecond: number; chunk?: number };

export interface OriginRequest {
  path: string;
  range: string | undefined;
  status: number;
  /** Body bytes written for this request (so far). */
  sent: number;
  /** The client closed the connection before the body was complete. */
  cutByClient: boolean;
}

export interface AdversarialOrigin {
  url: string;
  requests: OriginRequest[];
  /** Body bytes sent for `path`, over all requests. */
  sentFor(path: string): number;
  /** How each path is answered; a path not named is served normally. */
  behave: (path: string) => Behaviour;
  close(): Promise<void>;
}

const sleep = (ms: number, timers: Set<NodeJS.Timeout>) => new Promise<void>((resolve) => {
  const t = setTimeout(() => { timers.delete(t); resolve(); }, ms);
  timers.add(t);
});

/** Writes `chunk`, waiting for drain; false once the response is gone. */
async function put(res: http.ServerResponse, chunk: Buffer): Promise<boolean> {
  if (res.destroyed || res.writableEnded) return false;
  if (res.write(chunk)) return true;
  return new Promise<boolean>((resolve) => {
    const done = (ok: boolean) => { res.off('drain', onDrain); res.off('close', onClose); resolve(ok); };
    const onDrain = () => done(true);
    const onClose = () => done(false);
    res.once('drain', onDrain);
    res.once('close', onClose);
  });
}

export async function startAdversarialOrigin(root: string, behave: (path: string) => Behaviour = () => ({ kind: 'normal' })): Promise<AdversarialOrigin> {
  const requests: OriginRequest[] = [];
  const timers = new Set<NodeJS.Timeout>();
  let closing = false;

  async function handle(req: http.IncomingMessage, res: http.ServerResponse, entry: OriginRequest): Promise<void> {
    const path = entry.path;
    let file;
    try {
      if (path.split('/').includes('..')) throw new Error('no');
      file = await open(join(root, path), constants.O_RDONLY | constants.O_NOFOLLOW);
    } catch {
      entry.status = 404;
      res.writeHead(404, { 'content-length': '0' }).end();
      return;
    }
    try {
      const bytes = await file.readFile();
      const how = origin.behave(path);
      const send = async (body: Buffer, pace?: { every: number; size: number }) => {
        for (let at = 0; at < body.length && !closing; ) {
          const piece = body.subarray(at, at + (pace?.size ?? 256 * 1024));
          if (!(await put(res, piece))) return false;
          entry.sent += piece.length;
          at += piece.length;
          if (pace && at < body.length) await sleep(pace.every, timers);
        }
        return !closing;
      };
      if (how.kind === 'endless') {
        entry.status = 200;
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        const zeros = Buffer.alloc(64 * 1024);
        const limit = how.limit ?? 256 * 1024 * 1024;
        while (entry.sent < limit && !closing) {
          if (!(await put(res, zeros))) return;
          entry.sent += zeros.length;
        }
        res.end();
        return;
      }
      if (how.kind === 'longer') {
        const body = Buffer.concat([bytes, Buffer.alloc(how.extra, 0x42)]);
        entry.status = 200;
        res.writeHead(200, { 'content-length': String(body.length) });
        if (await send(body)) res.end();
        return;
      }
      if (how.kind === 'trickle') {
        entry.status = 200;
        res.writeHead(200, { 'content-length': String(bytes.length) });
        for (let i = 0; i < 60 && i < bytes.length && !closing; i++) {
          if (!(await put(res, bytes.subarray(i, i + 1)))) return;
          entry.sent++;
          await sleep(1000, timers);
        }
        res.destroy();
        return;
      }
      const range = parseRange(entry.range, bytes.length);
      if (range === 'unsatisfiable') {
        entry.status = 416;
        res.writeHead(416, { 'content-range': `bytes */${bytes.length}`, 'content-length': '0' }).end();
        return;
      }
      const start = range?.start ?? 0;
      const end = range ? range.end + 1 : bytes.length;
      entry.status = range ? 206 : 200;
      res.writeHead(entry.status, {
        'content-length': String(end - start),
        'accept-ranges': 'bytes',
        ...(range ? { 'content-range': `bytes ${start}-${end - 1}/${bytes.length}` } : {}),
      });
      const body = bytes.subarray(start, end);
      const pace = how.kind === 'rate' ? { size: how.chunk ?? 16 * 1024, every: Math.max(1, Math.round(((how.chunk ?? 16 * 1024) * 1000) / how.bytesPerSecond)) } : undefined;
      if (await send(body, pace)) res.end();
    } finally {
      await file.close().catch(() => {});
    }
  }

  const server = http.createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname).replace(/^\/+/, '');
    const entry: OriginRequest = { path, range: typeof req.headers.range === 'string' ? req.headers.range : undefined, status: 0, sent: 0, cutByClient: false };
    requests.push(entry);
    res.on('close', () => { if (!res.writableFinished) entry.cutByClient = true; });
    handle(req, res, entry).catch(() => res.destroy());
  });
  const listening = await listenHttp(server, '127.0.0.1', 0);
  const origin: AdversarialOrigin = {
    url: listening.url,
    requests,
    sentFor: (path) => requests.filter((r) => r.path === path).reduce((n, r) => n + r.sent, 0),
    behave,
    async close() {
      closing = true;
      for (const t of timers) clearTimeout(t);
      timers.clear();
      await listening.close();
    },
  };
  return origin;
}

export interface BadPeer {
  /** host:port, for a `lan:` source spec. */
  address: string;
  /** Range requests received. */
  requests: number;
  close(): Promise<void>;
}

/**
 * A LAN peer that lies (`corrupt`: answers every range with the asked length of wrong bytes) or
 * hangs (`hang`: takes the request and never answers until closed).
 */
export async function startBadPeer(kind: 'corrupt' | 'hang'): Promise<BadPeer> {
  const peer = { address: '', requests: 0, close: async () => {} };
  const hanging = new Set<http.ServerResponse>();
  const server = http.createServer((req, res) => {
    peer.requests++;
    if (kind === 'hang') {
      hanging.add(res);
      return;
    }
    const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
    if (!m) return void res.writeHead(416, { 'content-length': '0' }).end();
    const start = Number(m[1]);
    const end = Number(m[2]) + 1;
    res.writeHead(206, { 'content-length': String(end - start), 'content-range': `bytes ${start}-${end - 1}/*` });
    res.end(Buffer.alloc(end - start, 0x66));
  });
  const listening = await listenHttp(server, '127.0.0.1', 0);
  peer.address = `127.0.0.1:${listening.port}`;
  peer.close = async () => {
    for (const res of hanging) res.destroy();
    await listening.close();
  };
  return peer;
}
