// A plain static file server on loopback that counts what it sends, for bench/container: what a
// device downloads is read off the wire (every byte its sockets wrote, headers included, and the
// body bytes per path), not from ferry's own records. Serves GET/HEAD with single Range requests
// (ferry's HTTP source resumes with them); nothing else.

import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { join, normalize, sep } from 'node:path';

export interface CountingServer {
  url: string;
  /** Body bytes sent per path (relative to the root), since the last reset. */
  bodyBytes(): Map<string, number>;
  /** Every byte written to sockets (headers included), since the last reset. */
  wireBytes(): number;
  requests(): number;
  reset(): void;
  close(): Promise<void>;
}

export async function startCountingServer(root: string): Promise<CountingServer> {
  let body = new Map<string, number>();
  let wire = 0;
  let requests = 0;
  const written = new Map<Socket, number>();
  const account = (socket: Socket) => {
    const now = socket.bytesWritten;
    wire += now - (written.get(socket) ?? 0);
    written.set(socket, now);
  };
  const server: Server = createServer((req, res) => {
    requests++;
    res.on('finish', () => account(req.socket));
    const rel = normalize(decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)).replace(/^[/\\]+/, '');
    if (rel.startsWith('..') || rel.split(sep).includes('..') || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(400).end();
      return;
    }
    const file = join(root, rel);
    stat(file).then((st) => {
      if (!st.isFile()) { res.writeHead(404).end(); return; }
      let start = 0;
      let end = st.size - 1;
      let status = 200;
      const m = /^bytes=(\d*)-(\d*)$/.exec(req.headers.range ?? '');
      if (m && (m[1] !== '' || m[2] !== '')) {
        if (m[1] === '') start = Math.max(0, st.size - Number(m[2]));
        else { start = Number(m[1]); if (m[2] !== '') end = Math.min(end, Number(m[2])); }
        if (start > end) { res.writeHead(416, { 'Content-Range': `bytes */${st.size}` }).end(); return; }
        status = 206;
      }
      res.writeHead(status, {
        'Content-Length': end - start + 1,
        'Accept-Ranges': 'bytes',
        ...(status === 206 ? { 'Content-Range': `bytes ${start}-${end}/${st.size}` } : {}),
      });
      if (req.method === 'HEAD' || st.size === 0) { res.end(); return; }
      const stream = createReadStream(file, { start, end });
      stream.on('data', (chunk) => body.set(rel, (body.get(rel) ?? 0) + chunk.length));
      stream.on('error', () => res.destroy());
      stream.pipe(res);
    }, () => { res.writeHead(404).end(); });
  });
  server.on('connection', (socket) => socket.on('close', () => { account(socket); written.delete(socket); }));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    bodyBytes: () => new Map(body),
    wireBytes: () => wire,
    requests: () => requests,
    reset: () => { body = new Map(); wire = 0; requests = 0; for (const s of written.keys()) written.set(s, s.bytesWritten); },
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}
