// A stock nginx serving a repository folder on loopback, and a byte-counting TCP relay in front of
// it, for tests that measure what a device puts on the wire (issue 13 item 14). nginx is this
// helper's own child (generated config, temp prefix and pid file; never the system service) and is
// stopped by its own pid. The relay counts every byte of HTTP each way (request line, headers and
// bodies: the TCP payload, without TCP/IP headers or handshakes) and keeps the raw text so a test
// can show what was asked.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort } from './net.ts';

/** nginx's path, or '' when it is not installed. */
export const nginxPath = spawnSync('sh', ['-c', 'command -v nginx'], { encoding: 'utf8' }).stdout.trim();

export interface NginxOrigin {
  url: string;
  port: number;
  stop(): Promise<void>;
}

function status(url: string): Promise<number> {
  return new Promise((resolve) => {
    const req = http.get(url, { agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.setTimeout(1000, () => req.destroy());
    req.on('error', () => resolve(0));
  });
}

/** Stops a child by its own pid: `signal`, SIGKILL after 5 s. */
async function stopChild(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill(signal);
  let timer: NodeJS.Timeout | undefined;
  const killed = new Promise<'timeout'>((resolve) => { timer = setTimeout(() => resolve('timeout'), 5000); });
  if ((await Promise.race([exited, killed])) === 'timeout') {
    child.kill('SIGKILL');
    await exited;
  }
  clearTimeout(timer);
}

/** nginx with a minimal config serving `root` on 127.0.0.1; `dir` holds its prefix and logs. */
export async function startNginx(root: string, dir: string): Promise<NginxOrigin> {
  const port = await freePort();
  // As root the workers would switch to "nobody", who cannot enter the 0700 temp folders.
  const user = process.getuid?.() === 0 ? 'user root;\n' : '';
  const conf = `${user}daemon off;
master_process on;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  server { listen 127.0.0.1:${port}; root ${root}; }
}
`;
  await writeFile(join(dir, 'nginx.conf'), conf);
  let log = '';
  const child = spawn(nginxPath, ['-e', join(dir, 'error.log'), '-p', dir, '-c', join(dir, 'nginx.conf')], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (d) => { log += d; });
  child.stderr!.on('data', (d) => { log += d; });
  const url = `http://127.0.0.1:${port}/`;
  // Bounded wait until it answers (root.json is in every test repository).
  for (let i = 0; i < 50 && child.exitCode === null; i++) {
    if ((await status(`${url}root.json`)) === 200) return { url, port, stop: () => stopChild(child, 'SIGQUIT') };
    await new Promise((r) => setTimeout(r, 100));
  }
  await stopChild(child, 'SIGQUIT');
  const errorLog = await readFile(join(dir, 'error.log'), 'utf8').catch(() => '');
  throw new Error(`nginx did not come up on ${url}: ${log}${errorLog}`);
}

/** The bytes one connection carried each way, as text (latin1: one char per byte). */
export interface Conversation {
  requests: string;
  responses: string;
}

export interface ByteCounter {
  url: string;
  /** Bytes the client sent (requests) and received (responses) since the last reset. */
  sent: number;
  received: number;
  /** Each connection's bytes since the last reset, in the order the connections opened. */
  conversations: Conversation[];
  reset(): void;
  close(): Promise<void>;
}

/** A TCP relay on 127.0.0.1 to `port` that counts the bytes of every connection through it. */
export async function startByteCounter(port: number): Promise<ByteCounter> {
  const sockets = new Set<net.Socket>();
  const counter: ByteCounter = {
    url: '',
    sent: 0,
    received: 0,
    conversations: [],
    reset() {
      counter.sent = counter.received = 0;
      counter.conversations = [];
    },
    close: async () => {},
  };
  const server = net.createServer((client) => {
    const upstream = net.connect(port, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => { client.destroy(); upstream.destroy(); });
    }
    // A connection kept alive across a reset is counted from its next byte, in a new conversation.
    let talk: Conversation | undefined;
    const current = () => {
      if (!talk || !counter.conversations.includes(talk)) counter.conversations.push((talk = { requests: '', responses: '' }));
      return talk;
    };
    client.on('data', (d: Buffer) => { counter.sent += d.length; current().requests += d.toString('latin1'); });
    upstream.on('data', (d: Buffer) => { counter.received += d.length; current().responses += d.toString('latin1'); });
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  counter.url = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}/`;
  counter.close = async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return counter;
}

export interface WireRequest {
  method: string;
  path: string;
  /** Header names in lower case. */
  headers: Map<string, string>;
  bytes: number;
}

export interface WireResponse {
  status: number;
  headers: Map<string, string>;
  /** Body bytes (none for an answer to HEAD, a 304 or a 204). */
  body: number;
  bytes: number;
}

export interface WireExchange {
  request: WireRequest;
  response: WireResponse | undefined;
}

function parseHead(text: string): { first: string; headers: Map<string, string>; length: number } | undefined {
  const end = text.indexOf('\r\n\r\n');
  if (end < 0) return undefined;
  const [first = '', ...lines] = text.slice(0, end).split('\r\n');
  const headers = new Map(lines.map((l) => [l.slice(0, l.indexOf(':')).trim().toLowerCase(), l.slice(l.indexOf(':') + 1).trim()] as [string, string]));
  return { first, headers, length: end + 4 };
}

/** The request/response pairs of one conversation (requests without bodies, as a device sends). */
export function exchangesOf(talk: Conversation): WireExchange[] {
  const out: WireExchange[] = [];
  let req = talk.requests;
  let res = talk.responses;
  for (let head = parseHead(req); head; head = parseHead(req)) {
    const [method = '', path = ''] = head.first.split(' ');
    req = req.slice(head.length);
    const request = { method, path, headers: head.headers, bytes: head.length };
    const answer = parseHead(res);
    if (!answer) {
      out.push({ request, response: undefined });
      continue;
    }
    const status = Number(answer.first.split(' ')[1]);
    const body = method === 'HEAD' || status === 304 || status === 204 ? 0 : Number(answer.headers.get('content-length') ?? 0);
    res = res.slice(answer.length + body);
    out.push({ request, response: { status, headers: answer.headers, body, bytes: answer.length + body } });
  }
  return out;
}
