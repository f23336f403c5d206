// Issue 16 item 3, reports over HTTP: plugins/fleet/http-report.ts putReport against a real
// `ferry serve <repo> --reports DIR` (the built CLI as a child process on 127.0.0.1, stopped by
// pid). A report lands in DIR verified; a forged, a replayed, another app's, a mislabelled and a
// 100 MB report are each refused with their stable code and leave DIR as it was; the 100 MB body is
// cut off early (the server reads one cap of it, its memory does not grow by the body).

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import { createServer, type Socket } from 'node:net';
import { readFileSync } from 'node:fs';
import { readdir, readFile as readFileP } from 'node:fs/promises';
import { join } from 'node:path';
import { makeRepo, tempDir, type TempDir, type TestRepo } from '../helpers/repo.ts';
import { assertCodeAsync } from '../helpers/assert-code.ts';
import { ferry, ROOT } from '../helpers/cli.ts';
import { FerryError } from '../../core/errors.ts';
import { REPORT_MAX_BYTES } from '../../core/fleet/report.ts';
import { putReport, reportUrl } from '../../plugins/fleet/http-report.ts';
import { refusalError } from '../../plugins/fleet/report-refusal.ts';
import { startStaticServer } from '../../plugins/http/server.ts';
import { forge, makeDevice, snapshot, type TestDevice } from './report-fixtures.ts';

interface Ctx {
  tmp: TempDir;
  repo: TestRepo;
  inbox: string;
  serve: ChildProcess;
  /** The report endpoint `ferry serve` printed (…/reports/). */
  endpoint: string;
  device: TestDevice;
}

/** `ferry serve <repo> --reports <inbox> --port 0 --json` from dist/, and the JSON it prints. */
async function startServe(repo: string, inbox: string): Promise<{ child: ChildProcess; printed: { url: string; reportsUrl: string } }> {
  const child = spawn(process.execPath, ['dist/cli/ferry.js', 'serve', repo, '--reports', inbox, '--port', '0', '--json'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => { out += d; });
  child.stderr!.on('data', (d) => { err += d; });
  for (let i = 0; i < 200; i++) {
    try {
      return { child, printed: JSON.parse(out) as { url: string; reportsUrl: string } };
    } catch {
      if (child.exitCode !== null) break;
      await new Promise((r) => setTimeout(r, 25));
    }
  }
  if (child.exitCode === null) process.kill(child.pid!, 'SIGKILL');
  throw new Error(`ferry serve did not start: ${out} ${err}`);
}

/** Peak resident memory of a process (VmHWM), in bytes. */
function peakRss(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]) * 1024;
}

const s = suite<Ctx>('issue 16 item 3: reports over HTTP into `ferry serve --reports`', {} as Ctx);

s.before(async (ctx) => {
  ctx.tmp = await tempDir('ferry-report-http-');
  ctx.repo = await makeRepo();
  ctx.inbox = join(ctx.tmp.path, 'inbox');
  ctx.device = await makeDevice(ctx.tmp.path);
  const { child, printed } = await startServe(ctx.repo.repo, ctx.inbox);
  ctx.serve = child;
  ctx.endpoint = printed.reportsUrl;
  assert.is(printed.reportsUrl, `${printed.url}reports/`);
});

s.after(async (ctx) => {
  if (ctx.serve && ctx.serve.exitCode === null) {
    const exited = new Promise((r) => ctx.serve.once('exit', r));
    process.kill(ctx.serve.pid!, 'SIGTERM');
    const killer = setTimeout(() => process.kill(ctx.serve.pid!, 'SIGKILL'), 5000);
    await exited;
    clearTimeout(killer);
  }
  await ctx.repo?.cleanup();
  await ctx.tmp?.cleanup();
});

s('issue 16 item 3: a report PUT round-trips into DIR; a newer one replaces it; the same one again is fine', async (ctx) => {
  const first = ctx.device.report({ sequence: 1 });
  // The endpoint without its trailing slash works the same.
  await putReport(ctx.endpoint.replace(/\/$/, ''), ctx.device.identity.id, first);
  const kept = join(ctx.inbox, `${ctx.device.identity.id}.json`);
  assert.ok((await readFileP(kept)).equals(first), 'DIR holds the report as sent');
  const second = ctx.device.report({ sequence: 2, time: '2026-12-05T21:00:00.000Z' });
  await putReport(ctx.endpoint, ctx.device.identity.id, second);
  assert.ok((await readFileP(kept)).equals(second), 'the newer report replaced it');
  await putReport(ctx.endpoint, ctx.device.identity.id, second);
  assert.equal(Object.keys(await snapshot(ctx.inbox)), [`${ctx.device.identity.id}.json`]);
});

s('issue 16 item 3: forged, replayed, other-app and mislabelled reports are refused with their codes; DIR unchanged', async (ctx) => {
  const id = ctx.device.identity.id;
  await putReport(ctx.endpoint, id, ctx.device.report({ sequence: 5, time: '2026-12-05T21:05:00.000Z' }));
  const before = await snapshot(ctx.inbox);
  // Forged: the signature altered (a newer sequence, so only the signature can be why).
  await assertCodeAsync(() => putReport(ctx.endpoint, id, forge(ctx.device.report({ sequence: 6 }))), 'ERR_SIGNATURE');
  // Replayed: validly signed, older than the kept one.
  await assertCodeAsync(() => putReport(ctx.endpoint, id, ctx.device.report({ sequence: 4 })), 'ERR_DOWNGRADE');
  // Another app's device: validly signed, newer, for an app this repository is not.
  const stranger = await makeDevice(ctx.tmp.path, 'other-app');
  await assertCodeAsync(() => putReport(ctx.endpoint, stranger.identity.id, stranger.report({ sequence: 9 })), 'ERR_WRONG_TARGET');
  // Mislabelled: a valid report sent under another device's id.
  const other = await makeDevice(ctx.tmp.path);
  const err = await assertCodeAsync(() => putReport(ctx.endpoint, other.identity.id, ctx.device.report({ sequence: 7 })), 'ERR_SCHEMA');
  assert.match(err.message, /HTTP 400/);
  assert.equal(await snapshot(ctx.inbox), before, 'DIR unchanged by every refusal');
  // The same new report, labelled right, is taken: the refusals were about the label.
  await putReport(ctx.endpoint, id, ctx.device.report({ sequence: 7 }));
});

/**
 * PUTs a body of `total` bytes in 64 KiB chunks (chunked, or with its Content-Length declared),
 * stopping when the server answers or closes (a `rude` client goes on sending after the answer
 * until the connection breaks); what the client managed to hand the kernel by then.
 */
function streamBody(url: string, total: number, declare: boolean, rude = false): Promise<{ status: number | null; body: string; sent: number; ms: number }> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const chunk = Buffer.alloc(64 * 1024, 0x7b);
    const req = http.request(url, { method: 'PUT', agent: false, headers: declare ? { 'content-length': String(total) } : {} });
    let written = 0;
    let stopped = false;
    let status: number | null = null;
    let body = '';
    const done = () => {
      if (stopped) return;
      stopped = true;
      const sent = req.socket?.bytesWritten ?? written;
      req.destroy();
      resolve({ status, body, sent, ms: Date.now() - t0 });
    };
    req.on('response', (res) => {
      status = res.statusCode ?? null;
      res.on('data', (d) => { body += d; });
      if (!rude) {
        res.on('end', done);
        res.on('error', done);
      }
    });
    req.on('error', done);
    req.on('close', () => setTimeout(done, 50));
    const pump = () => {
      while (!stopped && written < total) {
        written += chunk.length;
        if (!req.write(chunk)) return void req.once('drain', pump);
      }
      if (!stopped) req.end();
    };
    pump();
    setTimeout(done, 15_000).unref();
  });
}

s('issue 16 item 3: a 100 MB report body is cut off early (413 ERR_TOO_LARGE), never buffered; DIR unchanged', async (ctx) => {
  const id = ctx.device.identity.id;
  const before = await snapshot(ctx.inbox);
  const hwm0 = peakRss(ctx.serve.pid!);
  const hundredMb = 100 * 1024 * 1024;
  for (const declare of [false, true]) {
    const r = await streamBody(`${ctx.endpoint}${id}.json`, hundredMb, declare);
    assert.is(r.status, 413, `${declare ? 'declared' : 'chunked'}: status (sent ${r.sent} bytes)`);
    assert.is((JSON.parse(r.body) as { code: string }).code, 'ERR_TOO_LARGE');
    // The server stopped reading at one cap: the client got no further than what the socket
    // buffers between them hold (a few MB on loopback), nowhere near the 100 MB it meant to send.
    assert.ok(r.sent < 16 * 1024 * 1024, `${declare ? 'declared' : 'chunked'}: ${r.sent} bytes were sent before the refusal`);
    assert.ok(r.ms < 10_000, `refused in ${r.ms} ms`);
  }
  // A client that goes on sending after its answer is cut off too: the server reads nothing more
  // and closes after plugins/http/request-body.ts LINGER_MS.
  const rude = await streamBody(`${ctx.endpoint}${id}.json`, hundredMb, false, true);
  assert.is(rude.status, 413);
  assert.ok(rude.sent < 16 * 1024 * 1024, `rude: ${rude.sent} bytes were sent before the connection broke`);
  assert.ok(rude.ms < 10_000, `rude: cut off in ${rude.ms} ms`);
  const grown = peakRss(ctx.serve.pid!) - hwm0;
  assert.ok(grown < 32 * 1024 * 1024, `the server's peak memory grew by ${grown} bytes`);
  assert.equal(await snapshot(ctx.inbox), before);
  // A body just over the cap is refused the same way by the server (putReport refuses it unsent).
  const over = Buffer.alloc(REPORT_MAX_BYTES + 1, 0x20);
  const r = await streamBody(`${ctx.endpoint}${id}.json`, over.length, true);
  assert.is(r.status, 413);
  await assertCodeAsync(() => putReport(ctx.endpoint, id, over), 'ERR_TOO_LARGE');
  // The server still serves the repository afterwards.
  const root = await fetch(`${ctx.endpoint.replace(/reports\/$/, '')}root.json`);
  assert.is(root.status, 200);
  assert.ok(Buffer.from(await root.arrayBuffer()).equals(await readFileP(join(ctx.repo.repo, 'root.json'))));
});

s('a reports folder inside the repository is refused (it would be served to anyone): ERR_USAGE, nothing made', async (ctx) => {
  const run = ferry('serve', ctx.repo.repo, '--reports', join(ctx.repo.repo, 'reports'), '--port', '0', '--json');
  assert.is.not(run.status, 0);
  assert.match(run.stdout + run.stderr, /ERR_USAGE/);
  assert.match(run.stdout + run.stderr, /inside the repository/);
  assert.not.ok((await readdir(ctx.repo.repo)).includes('reports'), 'no reports folder was made in the repository');
});

const client = suite('issue 16 item 3: putReport without a report route');

client('no server → ERR_NO_SOURCE; a server that never answers → ERR_NO_SOURCE within the timeout', async () => {
  const tmp = await tempDir('ferry-report-client-');
  const device = await makeDevice(tmp.path);
  const id = device.identity.id;
  const body = device.report();
  // A port nobody listens on: take a free one, then close it.
  const closed = createServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', () => r()));
  const freePort = (closed.address() as { port: number }).port;
  await new Promise<void>((r) => closed.close(() => r()));
  await assertCodeAsync(() => putReport(`http://127.0.0.1:${freePort}/reports/`, id, body), 'ERR_NO_SOURCE');

  const sockets = new Set<Socket>();
  const hang = createServer((sock) => { sockets.add(sock); sock.on('error', () => {}); });
  await new Promise<void>((r) => hang.listen(0, '127.0.0.1', () => r()));
  const t0 = Date.now();
  await assertCodeAsync(() => putReport(`http://127.0.0.1:${(hang.address() as { port: number }).port}/r`, id, body, { timeoutMs: 300 }), 'ERR_NO_SOURCE');
  const ms = Date.now() - t0;
  assert.ok(ms >= 250 && ms < 3000, `gave up after ${ms} ms`);
  for (const sock of sockets) sock.destroy();
  await new Promise<void>((r) => hang.close(() => r()));
  await tmp.cleanup();
});

client('issue 16 review item 3: an endpoint that answers 201 and keeps streaming has its connection closed once putReport resolves', async () => {
  const tmp = await tempDir('ferry-report-stream-');
  const device = await makeDevice(tmp.path);
  let closedAt = 0;
  let timer: NodeJS.Timeout | undefined;
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(201, { 'content-type': 'text/plain' });
      // A body that never ends (bounded by the test: the connection closing stops it).
      timer = setInterval(() => { if (!res.destroyed) res.write('x'.repeat(1024)); }, 10);
    });
    res.on('close', () => { closedAt = Date.now(); clearInterval(timer); });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  try {
    await putReport(`http://127.0.0.1:${(server.address() as { port: number }).port}/reports/`, device.identity.id, device.report(), { timeoutMs: 5000 });
    const resolvedAt = Date.now();
    for (let i = 0; i < 40 && closedAt === 0; i++) await new Promise((r) => setTimeout(r, 25));
    assert.ok(closedAt > 0 && closedAt - resolvedAt < 1000, 'the server saw the connection closed within a second');
  } finally {
    clearInterval(timer);
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
    await tmp.cleanup();
  }
});

client('a repository server without --reports answers a PUT 405, as before: ERR_IO', async () => {
  const repo = await makeRepo();
  const server = await startStaticServer({ root: repo.repo });
  try {
    const device = await makeDevice(repo.dir);
    const err = await assertCodeAsync(() => putReport(`${server.url}reports`, device.identity.id, device.report()), 'ERR_IO');
    assert.match(err.message, /HTTP 405/);
  } finally {
    await server.close();
    await repo.cleanup();
  }
});

client('endpoint URLs: trailing slash or not; a bad device id or endpoint is ERR_USAGE', () => {
  const id = 'ab'.repeat(16);
  assert.is(reportUrl('http://h:1/reports', id).href, `http://h:1/reports/${id}.json`);
  assert.is(reportUrl('http://h:1/reports/', id).href, `http://h:1/reports/${id}.json`);
  assert.is(reportUrl('https://h/', id).href, `https://h/${id}.json`);
  for (const [endpoint, deviceId] of [['http://h/r', '../x'], ['ftp://h/r', id], ['not a url', id], ['http://h/r?x=1', id]] as const) {
    try {
      reportUrl(endpoint, deviceId);
      assert.unreachable(`${endpoint} ${deviceId}`);
    } catch (err) {
      assert.ok(err instanceof FerryError && err.code === 'ERR_USAGE', `${endpoint} ${deviceId}: ${String(err)}`);
    }
  }
});

client('refusal bodies map back to their codes; a plain page maps by status; the server text is stripped of controls', () => {
  const table: [number, string, string][] = [
    [409, '{"code":"ERR_DOWNGRADE","message":"older"}', 'ERR_DOWNGRADE'],
    [403, '{"code":"ERR_SIGNATURE","message":"bad"}', 'ERR_SIGNATURE'],
    [403, '{"code":"ERR_WRONG_TARGET","message":"x"}', 'ERR_WRONG_TARGET'],
    [400, '{"code":"ERR_SCHEMA","message":"x"}', 'ERR_SCHEMA'],
    [413, '{"code":"ERR_TOO_LARGE","message":"x"}', 'ERR_TOO_LARGE'],
    [507, '{"code":"ERR_NO_SPACE","message":"x"}', 'ERR_NO_SPACE'],
    [413, '<html>too big</html>', 'ERR_TOO_LARGE'],
    [409, '', 'ERR_DOWNGRADE'],
    [500, '{"code":"ERR_INTERNAL","message":"x"}', 'ERR_IO'],
    [403, '{"code":"ERR_BOGUS"}', 'ERR_IO'],
    [404, 'not found', 'ERR_IO'],
  ];
  for (const [status, body, code] of table) assert.is(refusalError(status, Buffer.from(body), 'e').code, code, `${status} ${body}`);
  const msg = refusalError(409, Buffer.from('{"code":"ERR_DOWNGRADE","message":"a\\u001b[31mred\\nb"}'), 'e').message;
  assert.not.match(msg, /[\u0000-\u001f]/);
});

s.run();
client.run();
