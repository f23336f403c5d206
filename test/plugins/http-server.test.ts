// The static repository server (plugins/http/server.ts) speaking plain HTTP/1.1 to node:http
// requests and to a raw socket: ranges (206 / 416), ETags (304), HEAD, metadata vs artifact
// caching headers, and nothing served outside the root — encoded traversal, links, folders.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import http from 'node:http';
import net from 'node:net';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseRange, startStaticServer, type StaticServer } from '../../plugins/http/server.ts';
import { pseudoRandomBytes, tempDir, type TempDir } from '../helpers/repo.ts';

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

function get(url: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.setTimeout(5000, () => req.destroy(new Error('test request timed out')));
    req.on('error', reject);
    req.end();
  });
}

/** Sends a request line byte for byte (no client normalising "..") and returns the status code. */
function rawStatus(port: number, target: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let data = '';
    socket.setTimeout(5000, () => socket.destroy(new Error('raw request timed out')));
    socket.on('data', (d) => {
      data += d.toString('latin1');
      const m = /^HTTP\/1\.1 (\d{3})/.exec(data);
      if (m) {
        socket.destroy();
        resolve(Number(m[1]));
      }
    });
    socket.on('error', reject);
    socket.write(`GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
  });
}

interface Ctx {
  tmp: TempDir;
  root: string;
  server: StaticServer;
  blob: Buffer;
}

const s = suite<Ctx>('serves a repository folder with ranges, ETags and nothing outside it', {} as Ctx);

s.before(async (ctx) => {
  ctx.tmp = await tempDir('ferry-http-server-');
  ctx.root = join(ctx.tmp.path, 'repo');
  ctx.blob = pseudoRandomBytes(100_000, 3);
  await mkdir(join(ctx.root, 'releases', '1.0.0'), { recursive: true });
  await mkdir(join(ctx.root, 'channels'), { recursive: true });
  await writeFile(join(ctx.root, 'releases', '1.0.0', 'app full.tar'), ctx.blob);
  await writeFile(join(ctx.root, 'channels', 'stable.json'), '{"sequence":1}\n');
  await writeFile(join(ctx.root, 'empty.bin'), '');
  await writeFile(join(ctx.tmp.path, 'secret.txt'), 'outside the root\n');
  await symlink(join(ctx.tmp.path, 'secret.txt'), join(ctx.root, 'link.txt'));
  await symlink(ctx.tmp.path, join(ctx.root, 'linkdir'));
  ctx.server = await startStaticServer({ root: ctx.root });
});

s.after(async (ctx) => {
  await ctx.server?.close();
  await ctx.tmp?.cleanup();
});

s('GET serves the whole file with Content-Length, a strong ETag and immutable caching for artifacts', async (ctx) => {
  const r = await get(`${ctx.server.url}releases/1.0.0/app%20full.tar`);
  assert.is(r.status, 200);
  assert.ok(r.body.equals(ctx.blob), 'same bytes');
  assert.is(r.headers['content-length'], String(ctx.blob.length));
  assert.match(r.headers.etag ?? '', /^"[^"]+"$/, 'strong ETag');
  assert.match(r.headers['cache-control'] ?? '', /immutable/);
  assert.is(r.headers['accept-ranges'], 'bytes');
  assert.is(ctx.server.stats.bytesByPath.get('releases/1.0.0/app full.tar'), ctx.blob.length);
});

s('metadata is served no-cache; If-None-Match with its ETag answers 304 without a body', async (ctx) => {
  const first = await get(`${ctx.server.url}channels/stable.json`);
  assert.is(first.status, 200);
  assert.is(first.headers['cache-control'], 'no-cache');
  const etag = first.headers.etag!;
  const again = await get(`${ctx.server.url}channels/stable.json`, { 'If-None-Match': etag });
  assert.is(again.status, 304);
  assert.is(again.body.length, 0);
  assert.is(again.headers.etag, etag);
  const other = await get(`${ctx.server.url}channels/stable.json`, { 'If-None-Match': '"something-else"' });
  assert.is(other.status, 200, 'another ETag gets the body');
  const weak = await get(`${ctx.server.url}channels/stable.json`, { 'If-None-Match': `"x", W/${etag}` });
  assert.is(weak.status, 304, 'a list holding the weak form of the ETag matches');
});

s('HEAD sends the headers of a GET and no body', async (ctx) => {
  const r = await get(`${ctx.server.url}releases/1.0.0/app%20full.tar`, {}, 'HEAD');
  assert.is(r.status, 200);
  assert.is(r.headers['content-length'], String(ctx.blob.length));
  assert.is(r.body.length, 0);
});

s('single ranges: a-b, a-, suffix -n → 206 with Content-Range and exactly those bytes', async (ctx) => {
  const url = `${ctx.server.url}releases/1.0.0/app%20full.tar`;
  const n = ctx.blob.length;
  const cases: [string, number, number][] = [
    ['bytes=0-0', 0, 0],
    ['bytes=10-99', 10, 99],
    ['bytes=99000-', 99000, n - 1],
    ['bytes=-500', n - 500, n - 1],
    ['bytes=99990-200000', 99990, n - 1],
    ['bytes=-200000', 0, n - 1],
  ];
  for (const [range, start, end] of cases) {
    const r = await get(url, { Range: range });
    assert.is(r.status, 206, range);
    assert.is(r.headers['content-range'], `bytes ${start}-${end}/${n}`, range);
    assert.is(r.headers['content-length'], String(end - start + 1), range);
    assert.ok(r.body.equals(ctx.blob.subarray(start, end + 1)), `${range}: the right bytes`);
  }
});

s('unsatisfiable ranges → 416 with bytes */size; malformed or multiple ranges → the whole file', async (ctx) => {
  const url = `${ctx.server.url}releases/1.0.0/app%20full.tar`;
  for (const range of [`bytes=${ctx.blob.length}-`, 'bytes=200000-300000', 'bytes=-0']) {
    const r = await get(url, { Range: range });
    assert.is(r.status, 416, range);
    assert.is(r.headers['content-range'], `bytes */${ctx.blob.length}`, range);
  }
  assert.is((await get(`${ctx.server.url}empty.bin`, { Range: 'bytes=0-' })).status, 416, 'no byte of an empty file');
  for (const range of ['bytes=5-1', 'bytes=0-1,5-6', 'items=0-1', 'bytes=abc']) {
    const r = await get(url, { Range: range });
    assert.is(r.status, 200, range);
    assert.is(r.body.length, ctx.blob.length, range);
  }
  const stale = await get(url, { Range: 'bytes=0-9', 'If-Range': '"not-the-etag"' });
  assert.is(stale.status, 200, 'If-Range with another ETag: the whole file');
});

s('parseRange covers the grammar', () => {
  assert.equal(parseRange('bytes=0-', 10), { start: 0, end: 9 });
  assert.equal(parseRange('bytes=-3', 10), { start: 7, end: 9 });
  assert.equal(parseRange('bytes=3-3', 10), { start: 3, end: 3 });
  assert.is(parseRange('bytes=10-', 10), 'unsatisfiable');
  assert.is(parseRange('bytes=-', 10), undefined);
  assert.is(parseRange(undefined, 10), undefined);
});

s('404 for missing files, folders, links and anything outside the root, however encoded', async (ctx) => {
  const port = ctx.server.port;
  for (const target of [
    '/missing.json',
    '/releases',
    '/releases/',
    '/',
    '/link.txt',
    '/linkdir/secret.txt',
    '/%2e%2e/secret.txt',
    '/%2e%2e/etc/passwd',
    '/..%2f..%2fetc/passwd',
    '/../secret.txt',
    '/releases/../../secret.txt',
    '//etc/passwd',
    '/%2Fetc%2Fpasswd',
    '/a%00b',
    '/%E0%A4%A',
  ]) {
    const status = await rawStatus(port, target);
    assert.ok(status === 404 || status === 400, `${target} → ${status}`);
  }
});

s('other methods are refused with 405', async (ctx) => {
  assert.is((await get(`${ctx.server.url}channels/stable.json`, {}, 'DELETE')).status, 405);
});

s('counts requests and socket bytes', async (ctx) => {
  const before = { requests: ctx.server.stats.requests, bytes: ctx.server.stats.bytesSent };
  const r = await get(`${ctx.server.url}channels/stable.json`);
  assert.is(ctx.server.stats.requests, before.requests + 1);
  const sent = ctx.server.stats.bytesSent - before.bytes;
  assert.ok(sent > r.body.length && sent < r.body.length + 1000, `${sent} bytes on the wire for a ${r.body.length}-byte body and its headers`);
});

s.run();
