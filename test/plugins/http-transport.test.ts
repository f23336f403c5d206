// The HTTP transport against origins that misbehave on purpose, each a real server on 127.0.0.1
// written here: a connection cut mid-body (resume with Range), Range ignored or answered wrongly,
// conditional GETs (bytes on the wire counted at the server socket), an endless body and a huge
// Content-Length (SECURITY.md row 6), a 1 byte/s trickle, a stall and a silent origin (row 7),
// a bandwidth cap, 503s retried with backoff, redirects. Every server loop is bounded.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { createHttpTransport, type HttpTransportOptions } from '../../plugins/http/transport.ts';
import { startStaticServer, type StaticServer } from '../../plugins/http/server.ts';
import { pseudoRandomBytes, tempDir, type TempDir } from '../helpers/repo.ts';
import { assertCodeAsync } from '../helpers/assert-code.ts';

const BLOB = pseudoRandomBytes(300_000, 11);
const CHANNEL = Buffer.from(JSON.stringify({ payload: 'x'.repeat(2000) }));
const CHANNEL_ETAG = `"${createHash('sha256').update(CHANNEL).digest('hex').slice(0, 16)}"`;
const CUT_AT = 100_000;

interface Seen {
  method: string;
  path: string;
  range: string | undefined;
  ifNoneMatch: string | undefined;
  status: number;
  /** Bytes the server socket wrote for this response: status line, headers, body. */
  wire: number;
  /** Bytes the server socket read for this request (request line and headers). */
  wireIn: number;
}

/** The scripted origin: one route per misbehaviour. */
class Origin {
  server!: http.Server;
  url = '';
  seen: Seen[] = [];
  /** Paths in the order requests arrived (seen[] fills when responses close). */
  arrived: string[] = [];
  connections = 0;
  socketClosed: Promise<void> | undefined;
  /** Whether /appear/channels/security.json exists yet. */
  appeared = false;
  private counts = new Map<string, number>();
  private wireMark = new WeakMap<Socket, number>();
  private readMark = new WeakMap<Socket, number>();
  private timers = new Set<NodeJS.Timeout>();

  reset(): void {
    this.seen = [];
    this.arrived = [];
    this.counts.clear();
  }

  hits(path: string): number {
    return this.arrived.filter((p) => p === path).length;
  }

  async start(): Promise<void> {
    this.server = http.createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0]!;
      const n = (this.counts.get(path) ?? 0) + 1;
      this.counts.set(path, n);
      this.arrived.push(path);
      res.once('close', () => {
        const socket = req.socket;
        const wire = socket.bytesWritten - (this.wireMark.get(socket) ?? 0);
        this.wireMark.set(socket, socket.bytesWritten);
        const wireIn = socket.bytesRead - (this.readMark.get(socket) ?? 0);
        this.readMark.set(socket, socket.bytesRead);
        this.seen.push({ method: req.method ?? '', path, range: req.headers.range, ifNoneMatch: req.headers['if-none-match'], status: res.statusCode, wire, wireIn });
      });
      this.route(path, n, req, res);
    });
    this.server.on('connection', () => this.connections++);
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/`;
  }

  async stop(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private every(ms: number, fn: () => boolean): void {
    const t = setInterval(() => {
      if (!fn()) {
        clearInterval(t);
        this.timers.delete(t);
      }
    }, ms);
    this.timers.add(t);
  }

  private serveRange(req: http.IncomingMessage, res: http.ServerResponse, body: Buffer): void {
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (m) {
      const start = Number(m[1]);
      res.writeHead(206, { 'Content-Length': body.length - start, 'Content-Range': `bytes ${start}-${body.length - 1}/${body.length}` });
      res.end(body.subarray(start));
      return;
    }
    res.writeHead(200, { 'Content-Length': body.length });
    res.end(body);
  }

  private route(path: string, n: number, req: http.IncomingMessage, res: http.ServerResponse): void {
    switch (path) {
      case '/drop/blob.bin':
        // The first answer is cut after CUT_AT bytes; later ones honour Range.
        if (n === 1) {
          res.writeHead(200, { 'Content-Length': BLOB.length });
          res.write(BLOB.subarray(0, CUT_AT), () => setTimeout(() => req.socket.destroy(), 50));
          return;
        }
        return this.serveRange(req, res, BLOB);
      case '/norange/blob.bin':
        res.writeHead(200, { 'Content-Length': BLOB.length });
        return void res.end(BLOB);
      case '/badrange/blob.bin':
        // Answers every Range from byte 0 (a broken cache in front of the origin).
        if (req.headers.range) {
          res.writeHead(206, { 'Content-Length': BLOB.length, 'Content-Range': `bytes 0-${BLOB.length - 1}/${BLOB.length}` });
          return void res.end(BLOB);
        }
        res.writeHead(200, { 'Content-Length': BLOB.length });
        return void res.end(BLOB);
      case '/etag/channels/stable.json':
        if (req.headers['if-none-match'] === CHANNEL_ETAG) {
          res.writeHead(304, { ETag: CHANNEL_ETAG, 'Cache-Control': 'no-cache' });
          return void res.end();
        }
        res.writeHead(200, { ETag: CHANNEL_ETAG, 'Cache-Control': 'no-cache', 'Content-Length': CHANNEL.length, 'Content-Type': 'application/json' });
        return void res.end(CHANNEL);
      case '/fresh/channels/stable.json':
        // nginx-style: an mtime-and-size ETag for a file changed this very second.
        if (req.headers['if-none-match'] === CHANNEL_ETAG) {
          res.writeHead(304, { ETag: CHANNEL_ETAG });
          return void res.end();
        }
        res.writeHead(200, { ETag: CHANNEL_ETAG, 'Last-Modified': new Date().toUTCString(), 'Content-Length': CHANNEL.length });
        return void res.end(CHANNEL);
      case '/appear/channels/security.json':
        if (!this.appeared) {
          res.writeHead(404, { 'Content-Length': 10 });
          return void res.end('not found\n');
        }
        res.writeHead(200, { 'Content-Length': CHANNEL.length });
        return void res.end(CHANNEL);
      case '/nohead/channels/security.json':
        // An origin that does not do HEAD, and has no such file.
        res.writeHead(req.method === 'HEAD' ? 405 : 404, { 'Content-Length': 10 });
        return void res.end('not here\n');
      case '/endless/manifest.json': {
        // Chunked, never ending (bounded here: 64 MB or until the client goes away).
        this.socketClosed = new Promise((resolve) => req.socket.once('close', () => resolve()));
        res.writeHead(200, { 'Content-Type': 'application/json' });
        const chunk = Buffer.alloc(16 * 1024, 0x20);
        let sent = 0;
        const pump = () => {
          while (sent < 64 * 1024 * 1024 && !res.destroyed) {
            sent += chunk.length;
            if (!res.write(chunk)) return void res.once('drain', pump);
          }
          res.end();
        };
        return pump();
      }
      case '/huge/artifact.tar':
        this.socketClosed = new Promise((resolve) => req.socket.once('close', () => resolve()));
        res.writeHead(200, { 'Content-Length': 10 * 1024 * 1024 * 1024 });
        return void res.write(Buffer.alloc(1024));
      case '/trickle/channels/stable.json': {
        // One byte a second, at most 60 of them.
        res.writeHead(200, { 'Content-Length': 60 });
        let left = 60;
        res.write('{');
        return this.every(1000, () => (!res.destroyed && --left > 0 ? (res.write(' '), true) : false));
      }
      case '/stall/blob.bin':
        res.writeHead(200, { 'Content-Length': BLOB.length });
        return void res.write(BLOB.subarray(0, 10_000)); // ... and nothing more
      case '/silent/root.json':
        return; // never answers
      case '/flaky/root.json':
        if (n <= 2) {
          res.writeHead(503, { 'Content-Length': 5, 'Retry-After': '0' });
          return void res.end('busy\n');
        }
        res.writeHead(200, { 'Content-Length': CHANNEL.length });
        return void res.end(CHANNEL);
      case '/down/root.json':
        res.writeHead(503, { 'Content-Length': 0 });
        return void res.end();
      case '/forbidden/root.json':
        res.writeHead(403, { 'Content-Length': 0 });
        return void res.end();
      case '/moved/root.json':
        res.writeHead(302, { Location: '/flaky/root.json', 'Content-Length': 0 });
        return void res.end();
      case '/loop/root.json':
        res.writeHead(301, { Location: `/loop/root.json?${n}`, 'Content-Length': 0 });
        return void res.end();
      case '/downgrade/root.json':
        res.writeHead(302, { Location: 'https://127.0.0.1:1/root.json', 'Content-Length': 0 });
        return void res.end();
      default:
        res.writeHead(404, { 'Content-Length': 10 });
        return void res.end('not found\n');
    }
  }
}

const origin = new Origin();
let tmp: TempDir;
let dests = 0;
const transports: { close(): void }[] = [];
const dest = () => join(tmp.path, `dest-${dests++}`);
const sizeOf = (p: string) => stat(p).then((s) => s.size, () => null);

/** A transport on the scripted origin that records its backoff delays instead of waiting. */
function transport(options: Partial<HttpTransportOptions> = {}) {
  const delays: number[] = [];
  const t = createHttpTransport({ url: origin.url, sleep: async (ms) => { delays.push(ms); }, ...options });
  transports.push(t);
  return Object.assign(t, { delays });
}

async function setup(): Promise<void> {
  if (!origin.url) await origin.start();
  tmp ??= await tempDir('ferry-http-transport-');
  origin.reset();
}

async function teardown(): Promise<void> {
  for (const t of transports.splice(0)) t.close();
}

function within<T>(ms: number, p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms); }),
  ]);
}

function behaviour(name: string) {
  const s = suite(name);
  s.before.each(setup);
  s.after.each(teardown);
  return s;
}

// ---------------------------------------------------------------------------------------------

const resume = behaviour('resumes an interrupted download with Range');

resume('a cut connection leaves a .part file; the next fetch asks for the rest and completes it', async () => {
  const t = transport({ retries: 0 });
  const d = dest();
  await assertCodeAsync(() => t.fetch('drop/blob.bin', d, BLOB.length), 'ERR_IO');
  const have = (await sizeOf(d))!;
  assert.ok(have > 0 && have <= CUT_AT, `the partial file holds what arrived (${have} bytes)`);
  assert.ok((await readFile(d)).equals(BLOB.subarray(0, have)), 'the partial bytes are the first ones');
  assert.is(await t.fetch('drop/blob.bin', d, BLOB.length, have), true);
  assert.equal(origin.seen.map((s) => s.range), [undefined, `bytes=${have}-`]);
  assert.is(origin.seen[1]!.status, 206);
  assert.ok((await readFile(d)).equals(BLOB), 'complete and exact');
});

resume('with retries, one fetch call resumes by itself after a backoff', async () => {
  const t = transport();
  const d = dest();
  assert.is(await t.fetch('drop/blob.bin', d, BLOB.length), true);
  assert.is(origin.seen.length, 2);
  assert.match(origin.seen[1]!.range ?? '', /^bytes=\d+-$/);
  assert.ok((await readFile(d)).equals(BLOB));
  assert.is(t.delays.length, 1);
  assert.ok(t.delays[0]! >= 125 && t.delays[0]! <= 250, `first backoff ${t.delays[0]} ms is 250 ms with jitter`);
});

resume('an origin that ignores Range (200) rewrites the file from byte 0', async () => {
  const t = transport({ retries: 0 });
  const d = dest();
  await writeFile(d, Buffer.alloc(5000, 0xee)); // wrong bytes: must not survive
  assert.is(await t.fetch('norange/blob.bin', d, BLOB.length, 5000), true);
  assert.is(origin.seen[0]!.range, 'bytes=5000-');
  assert.ok((await readFile(d)).equals(BLOB), 'rewritten whole');
});

resume('a 206 that starts elsewhere than the offset is not appended: the file is fetched whole', async () => {
  const t = transport({ retries: 0 });
  const d = dest();
  await writeFile(d, BLOB.subarray(0, 7000));
  assert.is(await t.fetch('badrange/blob.bin', d, BLOB.length, 7000), true);
  assert.equal(origin.seen.map((s) => s.range), ['bytes=7000-', undefined]);
  assert.ok((await readFile(d)).equals(BLOB));
});

resume.run();

// ---------------------------------------------------------------------------------------------

const conditional = behaviour('revalidates metadata with If-None-Match: an idle check costs a few hundred bytes');

conditional('the second read of channels/stable.json sends the ETag, gets 304 and returns the cached bytes', async () => {
  const cache = await tempDir('ferry-http-cache-');
  try {
    const t = transport({ url: `${origin.url}etag/`, cacheDir: cache.path });
    const first = await t.read('channels/stable.json', 512 * 1024);
    const second = await t.read('channels/stable.json', 512 * 1024);
    assert.ok(first && Buffer.from(first).equals(CHANNEL));
    assert.ok(second && Buffer.from(second).equals(CHANNEL), 'the 304 answer gives the cached body');
    assert.equal(origin.seen.map((s) => [s.status, s.ifNoneMatch]), [[200, undefined], [304, CHANNEL_ETAG]]);
    const [full, revalidate] = origin.seen.map((s) => s.wire) as [number, number];
    const asked = origin.seen[1]!.wireIn;
    console.log(`  measured: first read ${full} bytes from the server; revalidation: ${asked} bytes of request, ${revalidate} bytes of 304`);
    assert.ok(asked > 0 && asked < 400, `the conditional request is ${asked} bytes`);
    assert.ok(full > CHANNEL.length, `the first read carried the body (${full} bytes)`);
    assert.ok(revalidate < 300, `the 304 costs ${revalidate} bytes, not ${full}`);
    // A fresh transport on the same cache folder revalidates too (the cache survives restarts).
    const later = transport({ url: `${origin.url}etag/`, cacheDir: cache.path });
    assert.ok(Buffer.from((await later.read('channels/stable.json', 512 * 1024))!).equals(CHANNEL));
    assert.is(origin.seen[2]!.status, 304);
  } finally {
    await cache.cleanup();
  }
});

conditional('an ETag served in the second its file changed is not kept (a same-second re-sign would hide behind it)', async () => {
  const cache = await tempDir('ferry-http-cache-');
  try {
    const t = transport({ url: `${origin.url}fresh/`, cacheDir: cache.path });
    await t.read('channels/stable.json', 512 * 1024);
    await t.read('channels/stable.json', 512 * 1024);
    assert.equal(origin.seen.map((s) => [s.status, s.ifNoneMatch]), [[200, undefined], [200, undefined]]);
  } finally {
    await cache.cleanup();
  }
});

conditional('a damaged cache entry is not trusted: the read goes unconditional', async () => {
  const cache = await tempDir('ferry-http-cache-');
  try {
    const t = transport({ url: `${origin.url}etag/`, cacheDir: cache.path });
    await t.read('channels/stable.json', 512 * 1024);
    const name = createHash('sha256').update('channels/stable.json').digest('hex');
    const raw = await readFile(join(cache.path, name));
    raw[raw.length - 1] = raw[raw.length - 1]! ^ 0xff;
    await writeFile(join(cache.path, name), raw);
    const again = await t.read('channels/stable.json', 512 * 1024);
    assert.ok(again && Buffer.from(again).equals(CHANNEL));
    assert.equal(origin.seen.map((s) => s.status), [200, 200]);
    assert.is(origin.seen[1]!.ifNoneMatch, undefined);
  } finally {
    await cache.cleanup();
  }
});

conditional('without a cache folder no If-None-Match is sent; the connection is reused', async () => {
  const t = transport({ url: `${origin.url}etag/` });
  const before = origin.connections;
  for (let i = 0; i < 3; i++) await t.read('channels/stable.json', 512 * 1024);
  assert.equal(origin.seen.map((s) => s.ifNoneMatch), [undefined, undefined, undefined]);
  assert.is(origin.connections - before, 1, 'keep-alive: one connection for three reads');
});

conditional('a path absent last time is probed with a bare HEAD; when it appears the same read GETs it, on one connection', async () => {
  const cache = await tempDir('ferry-http-cache-');
  origin.appeared = false;
  try {
    const t = transport({ url: `${origin.url}appear/`, cacheDir: cache.path });
    const before = origin.connections;
    assert.is(await t.read('channels/security.json', 512 * 1024), undefined);
    assert.is(await t.read('channels/security.json', 512 * 1024), undefined);
    origin.appeared = true;
    const got = await t.read('channels/security.json', 512 * 1024);
    assert.ok(got && Buffer.from(got).equals(CHANNEL), 'the file that appeared is read at once');
    assert.equal(origin.seen.map((s) => `${s.method} ${s.status}`), ['GET 404', 'HEAD 404', 'HEAD 200', 'GET 200']);
    const probe = origin.seen[1]!;
    assert.ok(probe.wire < probe.wireIn + 200 && probe.wire > 0, `the probe's answer carries no page (${probe.wire} bytes)`);
    assert.is(origin.connections - before, 1, 'keep-alive: the HEAD answers did not cost the connection');
  } finally {
    origin.appeared = false;
    await cache.cleanup();
  }
});

conditional('an origin that answers HEAD with 405 gets the GET the read would have sent', async () => {
  const cache = await tempDir('ferry-http-cache-');
  try {
    const t = transport({ url: `${origin.url}nohead/`, cacheDir: cache.path });
    assert.is(await t.read('channels/security.json', 512 * 1024), undefined);
    assert.is(await t.read('channels/security.json', 512 * 1024), undefined);
    assert.equal(origin.seen.map((s) => `${s.method} ${s.status}`), ['GET 404', 'HEAD 405', 'GET 404']);
  } finally {
    await cache.cleanup();
  }
});

conditional.run();

// ---------------------------------------------------------------------------------------------

const endless = behaviour('caps every response (SECURITY.md row 6)');

endless('an endless body is cut at maxBytes with ERR_TOO_LARGE and the connection closed', async () => {
  const t = transport();
  await within(5000, assertCodeAsync(() => t.read('endless/manifest.json', 100_000), 'ERR_TOO_LARGE'), 'endless read');
  await within(2000, origin.socketClosed!, 'the server sees its socket close');
  assert.is(origin.hits('/endless/manifest.json'), 1, 'not retried');
  const d = dest();
  await within(5000, assertCodeAsync(() => t.fetch('endless/manifest.json', d, 150_000), 'ERR_TOO_LARGE'), 'endless fetch');
  await within(2000, origin.socketClosed!, 'the server sees its socket close');
  const left = (await sizeOf(d)) ?? 0;
  assert.ok(left <= 150_000, `never more than maxBytes on disk (${left})`);
});

endless('a Content-Length over the cap is refused before the body is read', async () => {
  const t = transport();
  const d = dest();
  const started = performance.now();
  await assertCodeAsync(() => t.fetch('huge/artifact.tar', d, 1_000_000), 'ERR_TOO_LARGE');
  await within(2000, origin.socketClosed!, 'the server sees its socket close');
  assert.ok(performance.now() - started < 1000);
  assert.is(await sizeOf(d), null, 'nothing written');
  await assertCodeAsync(() => t.read('huge/artifact.tar', 1024), 'ERR_TOO_LARGE');
});

endless.run();

// ---------------------------------------------------------------------------------------------

const slow = behaviour('abandons slow origins with ERR_IO so the core moves on (SECURITY.md row 7)');

slow('a 1 byte/s origin is abandoned within timeoutMs + the window, and not retried', async () => {
  const t = transport({ timeoutMs: 1500, minBytesPerSecond: 1000, throughputWindowMs: 1000 });
  const started = performance.now();
  const err = await within(4000, assertCodeAsync(() => t.read('trickle/channels/stable.json', 1024), 'ERR_IO'), 'trickle');
  const took = performance.now() - started;
  console.log(`  measured: 1 byte/s origin abandoned after ${Math.round(took)} ms (${err.message})`);
  assert.ok(took < 1500 + 1000, `abandoned after ${Math.round(took)} ms`);
  assert.ok(err.retryable, 'ERR_IO is retryable for the core (another source, later)');
  assert.is(origin.hits('/trickle/channels/stable.json'), 1, 'the transport itself does not retry a slow origin');
});

slow('a body that stops is abandoned after timeoutMs, keeping what arrived for a resume', async () => {
  const t = transport({ timeoutMs: 600, minBytesPerSecond: 1 });
  const d = dest();
  const started = performance.now();
  await within(4000, assertCodeAsync(() => t.fetch('stall/blob.bin', d, BLOB.length), 'ERR_IO'), 'stall');
  const took = performance.now() - started;
  assert.ok(took >= 550 && took < 1500, `stall detected after ${Math.round(took)} ms`);
  assert.is(await sizeOf(d), 10_000, 'the partial file stays for the core to resume');
});

slow('an origin that never answers is abandoned after timeoutMs', async () => {
  const t = transport({ timeoutMs: 500 });
  const started = performance.now();
  await within(4000, assertCodeAsync(() => t.read('silent/root.json', 1024), 'ERR_IO'), 'silent');
  const took = performance.now() - started;
  assert.ok(took >= 450 && took < 1500, `gave up after ${Math.round(took)} ms`);
  assert.is(origin.hits('/silent/root.json'), 1);
});

slow.run();

// ---------------------------------------------------------------------------------------------

const cap = suite('holds a bandwidth cap');
let server: StaticServer;
let repoDir: TempDir;
const BIG = pseudoRandomBytes(600_000, 5);

cap.before(async () => {
  repoDir = await tempDir('ferry-http-cap-');
  await writeFile(join(repoDir.path, 'big.bin'), BIG);
  server = await startStaticServer({ root: repoDir.path });
});
cap.after(async () => {
  await server?.close();
  await repoDir?.cleanup();
  await teardown();
  await origin.stop();
  await tmp?.cleanup();
});

cap('600 KB at 200 KB/s takes at least 2.5 s; uncapped it is fast', async () => {
  const capped = createHttpTransport({ url: server.url, maxBytesPerSecond: 200_000 });
  const free = createHttpTransport({ url: server.url });
  transports.push(capped, free);
  const d1 = join(repoDir.path, 'capped.out');
  let started = performance.now();
  assert.is(await within(10_000, capped.fetch('big.bin', d1, BIG.length), 'capped fetch'), true);
  const took = performance.now() - started;
  started = performance.now();
  assert.is(await free.fetch('big.bin', join(repoDir.path, 'free.out'), BIG.length), true);
  const fast = performance.now() - started;
  console.log(`  measured: 600 KB capped at 200 KB/s in ${Math.round(took)} ms, uncapped in ${Math.round(fast)} ms`);
  assert.ok(took >= 2500, `capped transfer took ${Math.round(took)} ms`);
  assert.ok(fast < 2500, `uncapped transfer took ${Math.round(fast)} ms`);
  assert.ok((await readFile(d1)).equals(BIG));
});

cap('a cap below the minimum throughput is a usage error', () => {
  try {
    createHttpTransport({ url: server.url, maxBytesPerSecond: 500, minBytesPerSecond: 1000 });
    assert.unreachable('accepted');
  } catch (err) {
    assert.is((err as { code?: string }).code, 'ERR_USAGE');
  }
});

// ---------------------------------------------------------------------------------------------

const retries = behaviour('retries only what retrying can fix');

retries('503 twice then 200: read succeeds after two backoffs that double, with jitter', async () => {
  const t = transport();
  const got = await t.read('flaky/root.json', 64 * 1024);
  assert.ok(got && Buffer.from(got).equals(CHANNEL));
  assert.is(origin.hits('/flaky/root.json'), 3);
  assert.is(t.delays.length, 2);
  assert.ok(t.delays[0]! >= 125 && t.delays[0]! <= 250, `first delay ${t.delays[0]}`);
  assert.ok(t.delays[1]! >= 250 && t.delays[1]! <= 500, `second delay ${t.delays[1]}`);
});

retries('an origin that stays down: retries+1 requests, then ERR_IO', async () => {
  const t = transport({ retries: 2 });
  await assertCodeAsync(() => t.read('down/root.json', 1024), 'ERR_IO');
  assert.is(origin.hits('/down/root.json'), 3);
});

retries('404 is an answer: read → undefined, fetch → false, one request each, nothing written', async () => {
  const t = transport();
  assert.is(await t.read('missing/root.json', 1024), undefined);
  const d = dest();
  assert.is(await t.fetch('missing/blob.bin', d, 1024), false);
  assert.is(await sizeOf(d), null);
  assert.is(origin.seen.length, 2);
  assert.is(t.delays.length, 0);
});

retries('403 and ERR_TOO_LARGE are not retried', async () => {
  const t = transport();
  await assertCodeAsync(() => t.read('forbidden/root.json', 1024), 'ERR_IO');
  assert.is(origin.hits('/forbidden/root.json'), 1);
  // Two 503s are retried, then the 200 is over the cap: no third retry.
  await assertCodeAsync(() => t.read('flaky/root.json', 10), 'ERR_TOO_LARGE');
  assert.is(t.delays.length, 2);
  assert.is(origin.hits('/flaky/root.json'), 3);
  await assertCodeAsync(() => t.read('flaky/root.json', 10), 'ERR_TOO_LARGE');
  assert.is(t.delays.length, 2);
  assert.is(origin.hits('/flaky/root.json'), 4);
});

retries('a connection refused is retried, then ERR_IO', async () => {
  const closed = http.createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  const port = (closed.address() as AddressInfo).port;
  await new Promise<void>((resolve) => closed.close(() => resolve()));
  const t = transport({ url: `http://127.0.0.1:${port}/`, retries: 2 });
  await assertCodeAsync(() => t.read('root.json', 1024), 'ERR_IO');
  assert.is(t.delays.length, 2);
});

retries.run();

const redirects = behaviour('follows at most 3 redirects, same scheme only');

redirects('a 302 to another path is followed', async () => {
  const t = transport();
  const got = await t.read('moved/root.json', 64 * 1024);
  assert.ok(got && Buffer.from(got).equals(CHANNEL));
});

redirects('a redirect loop stops after 3 hops with ERR_IO', async () => {
  const t = transport();
  await assertCodeAsync(() => t.read('loop/root.json', 1024), 'ERR_IO');
  assert.is(origin.hits('/loop/root.json'), 4, 'the first request and 3 redirects');
});

redirects('a redirect from http to https is refused', async () => {
  const t = transport();
  const err = await assertCodeAsync(() => t.read('downgrade/root.json', 1024), 'ERR_IO');
  assert.match(err.message, /https:/);
  assert.is(origin.hits('/downgrade/root.json'), 1);
});

redirects.run();

cap.run();
