// An app run under `ferry run` (DESIGN.md "Zero-downtime switch"). It needs nothing from ferry but
// the sockets at fds 3, 4, … (LISTEN_FDS): `server.listen({ fd })` on each. It serves every passed
// fd, including the private "ferry-health" one `--health` probes. Run alone, it listens on $PORT.
//   GET /          its version (FERRY_VERSION, else package.json)
//   GET /healthz   200 while it can serve
//   GET /slow?ms=N answers after N ms (an in-flight request for drain tests)
// On SIGTERM it drains: stops accepting (the next generation takes the shared queue), finishes
// in-flight requests, tells keep-alive clients "Connection: close" on their next response, and
// exits when every connection is closed.

import http from 'node:http';
import net from 'node:net';
import { readFileSync } from 'node:fs';

const version = process.env.FERRY_VERSION ?? JSON.parse(readFileSync(new URL('./package.json', import.meta.url), 'utf8')).version;
const HEALTHZ_STATUS = 200;
/** An idle keep-alive connection is closed during a drain only once it has been idle this long. */
const IDLE_CLOSE_MS = 1000;

let draining = false;
const servers = [];
const sockets = new Map(); // socket -> { busy: number, idleSince: number }

function send(res, status, body) {
  // While draining, every response ends its connection: the client knows not to reuse it, so no
  // request is ever sent on a connection we are about to close.
  if (draining) res.setHeader('connection', 'close');
  res.writeHead(status, { 'content-type': 'text/plain' });
  res.end(body);
}

function handle(req, res) {
  const state = sockets.get(req.socket);
  if (state) state.busy++;
  res.on('close', () => {
    if (state) {
      state.busy--;
      state.idleSince = Date.now();
    }
  });
  const url = new URL(req.url ?? '/', 'http://app');
  if (url.pathname === '/') return send(res, 200, `${version}\n`);
  if (url.pathname === '/healthz') return send(res, HEALTHZ_STATUS, HEALTHZ_STATUS === 200 ? 'ok\n' : 'unhealthy\n');
  if (url.pathname === '/slow') {
    const ms = Math.min(60_000, Math.max(0, Number(url.searchParams.get('ms') ?? 1000)));
    setTimeout(() => send(res, 200, `${version}\n`), ms);
    return;
  }
  send(res, 404, 'not found\n');
}

function serve(listen) {
  const server = http.createServer(handle);
  server.keepAliveTimeout = 30_000;
  server.on('connection', (socket) => {
    sockets.set(socket, { busy: 0, idleSince: Date.now() });
    socket.on('close', () => sockets.delete(socket));
  });
  servers.push(server);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen, resolve);
  });
}

const fds = Number(process.env.LISTEN_FDS) > 0 ? Array.from({ length: Number(process.env.LISTEN_FDS) }, (_, i) => 3 + i) : [];
if (fds.length > 0) await Promise.all(fds.map((fd) => serve({ fd })));
else await serve({ port: Number(process.env.PORT ?? 8080) });
console.log(`app ${version} (pid ${process.pid}) serving ${fds.length > 0 ? `fds ${fds.join(', ')}` : `port ${process.env.PORT ?? 8080}`}`);

// The supervisor channel: report ready, and drain if the supervisor dies (its end closes).
const notifyFd = Number(process.env.FERRY_NOTIFY_FD);
if (process.env.FERRY_RUN === '1' && notifyFd >= 3) {
  const channel = new net.Socket({ fd: notifyFd, readable: true, writable: true });
  channel.on('error', () => {});
  channel.on('close', () => drain('the supervisor went away'));
  channel.write('READY=1\n');
  channel.resume();
  channel.unref();
}

function drain(why) {
  if (draining) return;
  draining = true;
  console.log(`app ${version} (pid ${process.pid}) draining: ${why}`);
  // net.Server#close, not http.Server#close: the latter also drops idle keep-alive connections at
  // once, racing a client that is just sending its next request on one (it would see a reset).
  let open = servers.length;
  for (const server of servers) net.Server.prototype.close.call(server, () => { if (--open === 0) process.exit(0); });
  const sweep = setInterval(() => {
    const now = Date.now();
    for (const [socket, state] of sockets) if (state.busy === 0 && now - state.idleSince >= IDLE_CLOSE_MS) socket.end();
  }, 200);
  sweep.unref();
}

process.on('SIGTERM', () => drain('SIGTERM'));
process.on('SIGINT', () => drain('SIGINT'));
