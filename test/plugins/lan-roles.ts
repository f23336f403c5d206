// The parts of a LAN update scenario (plugins/lan), usable in-process (loopback tests, the fleet
// bench) or as a child process inside a network namespace:
//   node --import tsx test/plugins/lan-roles.ts <role> '<json config>'
// A child prints one JSON line per event on stdout ({"event":"ready"|"stats"|"done"|"error"});
// a server role answers a "stats" line on stdin and stops when stdin closes. Every child also
// stops on its own after `lifetimeMs`, so nothing outlives a test that died.

import { createServer, type Socket } from 'node:net';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { initDevice } from '../../core/device/init.ts';
import { Updater } from '../../core/update/updater.ts';
import { createBundleSource } from '../../core/publish/bundle.ts';
import { CHUNK_SIZE } from '../../core/io/hash.ts';
import { FerryError } from '../../core/errors.ts';
import type { Source } from '../../core/ports/source.ts';
import { createBsdiffPatcher } from '../../plugins/bsdiff/patcher.ts';
import { startStaticServer } from '../../plugins/http/server.ts';
import { startPeerServer } from '../../plugins/lan/peer-server.ts';
import { createLanDiscovery } from '../../plugins/lan/discovery.ts';
import { createLanSource, type RangeEvent } from '../../plugins/lan/source.ts';

/** A minimal origin Source over HTTP (GET, Range resume), so these tests need only a static server. */
export function originSource(base: string): Source {
  const url = (path: string) => `${base.replace(/\/+$/, '')}/${path}`;
  return {
    name: `origin:${base}`,
    offline: false,
    async read(path, maxBytes) {
      const res = await fetch(url(path), { signal: AbortSignal.timeout(10_000) });
      if (res.status === 404) return undefined;
      if (!res.ok) throw new FerryError('ERR_IO', `${url(path)}: HTTP ${res.status}`);
      const buf = Buffer.from(await res.arrayBuffer());
      if (buf.length > maxBytes) throw new FerryError('ERR_TOO_LARGE', `${path} is over its ${maxBytes}-byte cap`);
      return buf;
    },
    async fetch(path, dest, maxBytes, offset = 0) {
      const res = await fetch(url(path), { signal: AbortSignal.timeout(30_000), headers: offset > 0 ? { range: `bytes=${offset}-` } : {} });
      if (res.status === 404) return false;
      if (res.status !== (offset > 0 ? 206 : 200) || !res.body) throw new FerryError('ERR_IO', `${url(path)}: HTTP ${res.status}`);
      const out = createWriteStream(dest, { flags: offset > 0 ? 'a' : 'w' });
      let seen = offset;
      try {
        for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
          seen += chunk.length;
          if (seen > maxBytes) throw new FerryError('ERR_TOO_LARGE', `${path} is over its ${maxBytes}-byte cap`);
          if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()));
        }
      } finally {
        await new Promise<void>((r) => out.end(() => r()));
      }
      return true;
    },
  };
}

/** A server that accepts connections and never answers (SECURITY.md row 8's hanging peer). */
export async function startHangServer(host: string, port = 0): Promise<{ url: string; port: number; accepted: () => number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  let accepted = 0;
  const server = createServer((s) => {
    accepted++;
    sockets.add(s);
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(port, host, () => resolve()); });
  const p = (server.address() as { port: number }).port;
  return {
    url: `http://${host}:${p}`,
    port: p,
    accepted: () => accepted,
    close: () => new Promise<void>((resolve) => { for (const s of sockets) s.destroy(); server.close(() => resolve()); }),
  };
}

/** Copies every complete artifact of `from` into `to` with one byte flipped in every chunk. */
export async function corruptCopy(from: string, to: string): Promise<string[]> {
  await mkdir(to, { recursive: true });
  const names = (await readdir(from)).filter((n) => /^[0-9a-f]{64}$/.test(n));
  for (const name of names) {
    const bytes = await readFile(join(from, name));
    for (let off = 17; off < bytes.length; off += CHUNK_SIZE) bytes[off] = bytes[off]! ^ 0xff;
    await writeFile(join(to, name), bytes);
  }
  return names;
}

export interface UpdateResult {
  version: string | null;
  status: string;
  source: string | null;
  bytesMoved: number;
  ms: number;
  ranges: RangeEvent[];
  cache: string[];
}

/** Makes a device home trusting `trust` and applies the newest release from `sources`. */
export async function updateDevice(input: { home: string; trust: Uint8Array; sources: Source[]; specs?: string[] }): Promise<UpdateResult> {
  const t0 = Date.now();
  await initDevice({ home: input.home, trustBytes: input.trust, sources: input.specs ?? ['lan', 'origin'], platform: 'linux', arch: 'x64' });
  const u = await Updater.open({ home: input.home, sources: input.sources, patcher: createBsdiffPatcher(), health: null });
  try {
    const r = await u.apply();
    const last = (await u.history()).at(-1);
    return {
      version: await u.currentVersion(),
      status: r.status,
      source: last?.source ?? null,
      bytesMoved: last?.bytesMoved ?? 0,
      ms: Date.now() - t0,
      ranges: [],
      cache: (await readdir(join(input.home, 'cache'))).sort(),
    };
  } finally {
    await u.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Child-process entry: one role per process, inside a namespace.

interface RoleConfig {
  host: string;
  port?: number;
  repo?: string;
  bundle?: string;
  home?: string;
  trust?: string;
  app?: string;
  origin?: string;
  cacheDir?: string;
  corruptFrom?: string;
  announce?: boolean;
  timeoutMs?: number;
  lifetimeMs?: number;
}

function emit(event: string, data: object = {}): void {
  process.stdout.write(`${JSON.stringify({ event, ...data })}\n`);
}

/** Waits for stdin to close, answering "stats" lines with `stats()`. */
async function serveUntilStdinCloses(stats: () => object): Promise<void> {
  const rl = createInterface({ input: process.stdin });
  for await (const line of rl) if (line.trim() === 'stats') emit('stats', stats());
}

async function main(role: string, config: RoleConfig): Promise<void> {
  const lifetime = setTimeout(() => { emit('error', { message: `lifetime of ${config.lifetimeMs} ms over` }); process.exit(3); }, config.lifetimeMs ?? 80_000);
  lifetime.unref();
  const announce = async (port: number) =>
    config.announce ? createLanDiscovery({ app: config.app!, port, interfaceAddress: config.host }) : null;
  switch (role) {
    case 'origin': {
      const server = await startStaticServer({ root: config.repo!, host: config.host, port: config.port ?? 0 });
      emit('ready', { url: server.url });
      await serveUntilStdinCloses(() => ({ requests: server.stats.requests, bytesByPath: Object.fromEntries(server.stats.bytesByPath) }));
      await server.close();
      break;
    }
    case 'peer': {
      // Device A: updates from a USB-style bundle, then serves its verified cache and announces it.
      const trust = await readFile(config.trust!);
      const result = await updateDevice({ home: config.home!, trust, sources: [createBundleSource(config.bundle!, join(config.home!, 'staging', 'bundle'))], specs: [config.bundle!] });
      const server = await startPeerServer({ cacheDir: join(config.home!, 'cache'), host: config.host, port: config.port ?? 0 });
      const discovery = await announce(server.port);
      emit('ready', { url: server.url, result });
      await serveUntilStdinCloses(() => server.stats);
      await discovery?.close();
      await server.close();
      break;
    }
    case 'bad': {
      // A peer that serves every artifact of `corruptFrom` with a byte flipped in each chunk.
      const names = await corruptCopy(config.corruptFrom!, config.cacheDir!);
      const server = await startPeerServer({ cacheDir: config.cacheDir!, host: config.host, port: config.port ?? 0 });
      const discovery = await announce(server.port);
      emit('ready', { url: server.url, names });
      await serveUntilStdinCloses(() => server.stats);
      await discovery?.close();
      await server.close();
      break;
    }
    case 'hang': {
      const server = await startHangServer(config.host, config.port ?? 0);
      const discovery = await announce(server.port);
      emit('ready', { url: server.url });
      await serveUntilStdinCloses(() => ({ accepted: server.accepted() }));
      await discovery?.close();
      await server.close();
      break;
    }
    case 'device': {
      // Devices B and C: sources [lan (mDNS on this namespace's address), origin].
      const trust = await readFile(config.trust!);
      const discovery = createLanDiscovery({ app: config.app!, interfaceAddress: config.host });
      const ranges: RangeEvent[] = [];
      const lan = createLanSource({ discovery, timeoutMs: config.timeoutMs ?? 1500, onRange: (e) => ranges.push(e) });
      try {
        const result = await updateDevice({ home: config.home!, trust, sources: [lan, originSource(config.origin!)] });
        emit('done', { result: { ...result, ranges } });
      } finally {
        lan.close();
        await discovery.close();
      }
      break;
    }
    case 'member': {
      // A fleet device (bench/fleet.ts): updates from [lan, origin] (or the origin alone), then
      // serves its cache and announces it, as the agent would.
      const trust = await readFile(config.trust!);
      const discovery = config.announce ? createLanDiscovery({ app: config.app!, interfaceAddress: config.host, browseMs: 1000 }) : null;
      const lan = discovery ? createLanSource({ discovery, timeoutMs: config.timeoutMs ?? 3000 }) : null;
      const result = await updateDevice({ home: config.home!, trust, sources: [...(lan ? [lan] : []), originSource(config.origin!)] });
      lan?.close();
      await discovery?.close();
      const server = config.announce ? await startPeerServer({ cacheDir: join(config.home!, 'cache'), host: config.host, port: config.port ?? 0 }) : null;
      const announcer = server ? await announce(server.port) : null;
      emit('ready', { result, url: server?.url ?? null });
      await serveUntilStdinCloses(() => server?.stats ?? {});
      await announcer?.close();
      await server?.close();
      break;
    }
    case 'browse': {
      // Lists what mDNS finds from this namespace (the discovery test).
      const discovery = createLanDiscovery({ app: config.app!, interfaceAddress: config.host, ...(config.port ? { port: config.port } : {}) });
      emit('done', { peers: await discovery.peers() });
      await discovery.close();
      break;
    }
    default:
      throw new Error(`unknown role ${role}`);
  }
  clearTimeout(lifetime);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const [role = '', json = '{}'] = process.argv.slice(2);
  main(role, JSON.parse(json) as RoleConfig).then(
    () => process.exit(0),
    (err: Error) => { emit('error', { message: `${err.message}\n${err.stack ?? ''}` }); process.exit(1); },
  );
}
