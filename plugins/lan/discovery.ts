// Finding LAN peers (ARCHITECTURE.md "Transports": lan): DNS-SD over mDNS (RFC 6763 over RFC 6762),
// service type `_ferry._tcp`, TXT `app=<app>` (and `ver=<version>`, the release the peer runs), or
// a static list (`lan:host:port,host:port`) where multicast is unwanted. What discovery returns is only a list of URLs to ask for bytes: a peer
// that lies about itself can waste a chunk request, nothing more, because every chunk is checked
// against its signed hash by the core.
//
// Multicast is sent only when no static list is given. `interfaceAddress` pins the multicast
// interface (IP_MULTICAST_IF and the group membership) to one address; tests always pass one
// inside a network namespace they own, so nothing is ever multicast on a real interface.

import makeMdns from 'multicast-dns';
import { randomBytes } from 'node:crypto';
import { hostname, networkInterfaces } from 'node:os';
import { FerryError } from '../../core/errors.ts';

export const SERVICE = '_ferry._tcp.local';
const TTL_S = 120;

export interface LanPeer {
  /** The DNS-SD instance name, or `host:port` for a static entry. */
  name: string;
  /** Base URL of the peer's server (plugins/lan/peer-server.ts). */
  url: string;
}

export interface LanDiscovery {
  /** Peers of the same app, from a bounded browse (cached for `cacheMs`). */
  peers(): Promise<LanPeer[]>;
  /** Our own DNS-SD instance name, when we announce. */
  readonly instance: string | null;
  /**
   * Announces that this device now runs `version` (a few unsolicited answers, bounded), so
   * peers that listen can react at once. No-op when not announcing.
   */
  announceVersion(version: string): void;
  /** Says goodbye (TTL 0) if announcing, and closes the socket. */
  close(): Promise<void>;
}

export interface LanDiscoveryOptions {
  app: string;
  /** Announce a peer server on this port (omit to browse only). */
  port?: number;
  /** The address whose interface carries mDNS, and the address announced. */
  interfaceAddress?: string;
  /** Fixed peers instead of mDNS: `host:port` or `http://host:port`. */
  static?: string[];
  /** How long a browse listens for answers (default 1500 ms). */
  browseMs?: number;
  /** How long a browse result is reused (default 5000 ms). */
  cacheMs?: number;
  /** Instance label (default `<app>-<hostname>-<random>`). */
  instanceName?: string;
  /** mDNS UDP port (default 5353). */
  mdnsPort?: number;
  /** The release this device runs, announced in TXT as `ver=` (when announcing). */
  version?: string;
  /**
   * Hears a peer of the same app announce the release it runs: once per peer and version. The
   * claim is unverified (a wake-up hint, never trusted for anything but "look now").
   */
  onPeerVersion?: (peer: LanPeer & { version: string }) => void;
}

/** `lan` → undefined (mDNS); `lan:h:p,h:p` → the list. */
export function parseLanSpec(spec: string): { static?: string[] } | null {
  if (spec === 'lan') return {};
  if (!spec.startsWith('lan:')) return null;
  const list = spec.slice(4).split(',').map((s) => s.trim()).filter(Boolean);
  if (list.length === 0) throw new FerryError('ERR_USAGE', `source "${spec}": a static LAN list needs host:port entries`);
  for (const entry of list) staticUrl(entry);
  return { static: list };
}

function staticUrl(entry: string): string {
  const withScheme = /^https?:\/\//.test(entry) ? entry : `http://${entry}`;
  let u: URL;
  try {
    u = new URL(withScheme);
  } catch {
    throw new FerryError('ERR_USAGE', `LAN peer "${entry}" is not host:port`);
  }
  if (!u.port || (u.pathname !== '/' && u.pathname !== '')) throw new FerryError('ERR_USAGE', `LAN peer "${entry}" is not host:port`);
  return `${u.protocol}//${u.host}`;
}

/** A DNS label from free text: letters, digits and dashes, at most 63 bytes. */
function label(text: string): string {
  return text.replace(/[^A-Za-z0-9-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 63) || 'ferry';
}

function txtValues(data: unknown): string[] {
  const list = Array.isArray(data) ? data : [data];
  return list.map((d) => (Buffer.isBuffer(d) ? d.toString('utf8') : typeof d === 'string' ? d : '')).filter(Boolean);
}

function ownAddresses(pinned: string | undefined): string[] {
  if (pinned) return [pinned];
  const out: string[] = [];
  for (const list of Object.values(networkInterfaces())) {
    for (const i of list ?? []) if (i.family === 'IPv4' && !i.internal) out.push(i.address);
  }
  return out;
}

interface Seen {
  port?: number;
  target?: string;
  app?: string;
  /** The release the peer says it runs (TXT `ver=`), and the last one reported to onPeerVersion. */
  version?: string;
  reported?: string;
  /** Where the answer came from: the address used when no A record names the target. */
  from: string;
  expiresAt: number;
}

export function createLanDiscovery(options: LanDiscoveryOptions): LanDiscovery {
  const browseMs = options.browseMs ?? 1500;
  const cacheMs = options.cacheMs ?? 5000;

  if (options.static && options.static.length > 0) {
    const list = options.static.map((entry) => ({ name: entry, url: staticUrl(entry) }));
    return { instance: null, peers: async () => list, announceVersion: () => {}, close: async () => {} };
  }

  const instanceLabel = label(options.instanceName ?? `${options.app}-${hostname()}-${randomBytes(3).toString('hex')}`);
  const instance = `${instanceLabel}.${SERVICE}`;
  const target = `${instanceLabel}.local`;
  const announcing = options.port !== undefined;
  let version = options.version;

  const mdns = makeMdns({
    port: options.mdnsPort ?? 5353,
    ...(options.interfaceAddress ? { interface: options.interfaceAddress, bind: '0.0.0.0' } : {}),
  });
  let lastError: Error | null = null;
  mdns.on('error', (err: Error) => { lastError = err; });
  mdns.on('warning', () => {});

  const records = (ttl: number) => {
    const port = options.port ?? 0;
    return {
      answers: [{ name: SERVICE, type: 'PTR' as const, ttl, data: instance }],
      additionals: [
        { name: instance, type: 'SRV' as const, ttl, data: { port, target, priority: 0, weight: 0 } },
        { name: instance, type: 'TXT' as const, ttl, data: [`app=${options.app}`, 'v=1', ...(version ? [`ver=${version}`] : [])] },
        ...ownAddresses(options.interfaceAddress).map((a) => ({ name: target, type: 'A' as const, ttl, data: a })),
      ],
    };
  };

  if (announcing) {
    mdns.on('query', (query) => {
      const asked = query.questions.some((q) => (q.name === SERVICE && (q.type === 'PTR' || (q.type as string) === 'ANY')) || q.name === instance || q.name === target);
      if (asked) mdns.respond(records(TTL_S));
    });
  }

  const seen = new Map<string, Seen>();
  const hosts = new Map<string, { address: string; expiresAt: number }>();
  mdns.on('response', (packet, rinfo) => {
    const now = Date.now();
    let ours = false; // a packet with a _ferry._tcp record, the only kind worth a version report
    for (const r of [...(packet.answers ?? []), ...(packet.additionals ?? [])]) {
      const ttlMs = (('ttl' in r ? r.ttl : undefined) ?? TTL_S) * 1000;
      if (r.type === 'PTR' && r.name === SERVICE && typeof r.data === 'string') {
        if (ttlMs === 0) seen.delete(r.data);
        else seen.set(r.data, { ...seen.get(r.data), from: rinfo.address, expiresAt: now + ttlMs });
      } else if (r.type === 'SRV' && r.name.endsWith(`.${SERVICE}`)) {
        const s = seen.get(r.name) ?? { from: rinfo.address, expiresAt: now + ttlMs };
        seen.set(r.name, { ...s, port: r.data.port, target: r.data.target });
      } else if (r.type === 'TXT' && r.name.endsWith(`.${SERVICE}`)) {
        ours = true;
        const txt = txtValues(r.data);
        const app = txt.find((t) => t.startsWith('app='))?.slice(4);
        const ver = txt.find((t) => t.startsWith('ver='))?.slice(4);
        const s = seen.get(r.name) ?? { from: rinfo.address, expiresAt: now + ttlMs };
        seen.set(r.name, { ...s, ...(app !== undefined ? { app } : {}), ...(ver ? { version: ver } : {}) });
      } else if (r.type === 'A' && typeof r.data === 'string') {
        if (ttlMs === 0) hosts.delete(r.name);
        else hosts.set(r.name, { address: r.data, expiresAt: now + ttlMs });
      }
    }
    if (ours) reportVersions();
  });

  // A few unsolicited announcements (RFC 6762 8.3), bounded in count.
  const timers = new Set<NodeJS.Timeout>();
  const later = (ms: number, fn: () => void) => {
    const t = setTimeout(() => { timers.delete(t); fn(); }, ms);
    timers.add(t);
  };
  if (announcing) {
    mdns.respond(records(TTL_S));
    later(1000, () => mdns.respond(records(TTL_S)));
  }

  // Each peer's announced version, once per peer and version, after a whole packet is read (its
  // TXT, SRV and A records may come in any order).
  const reportVersions = () => {
    if (!options.onPeerVersion) return;
    for (const peer of current()) {
      const s = seen.get(`${peer.name}.${SERVICE}`);
      if (!s?.version || s.reported === s.version) continue;
      s.reported = s.version;
      options.onPeerVersion({ ...peer, version: s.version });
    }
  };

  const current = (): LanPeer[] => {
    const now = Date.now();
    const out: LanPeer[] = [];
    for (const [name, s] of seen) {
      if (name === instance || s.expiresAt <= now || s.app !== options.app || !s.port) continue;
      const host = s.target ? hosts.get(s.target) : undefined;
      const address = host && host.expiresAt > now ? host.address : s.from;
      out.push({ name: name.slice(0, -(SERVICE.length + 1)), url: `http://${address.includes(':') ? `[${address}]` : address}:${s.port}` });
    }
    return out.sort((a, b) => a.url.localeCompare(b.url));
  };

  let cached: { at: number; peers: LanPeer[] } | null = null;
  let browsing: Promise<LanPeer[]> | null = null;
  let closed = false;
  const browse = (): Promise<LanPeer[]> =>
    new Promise<LanPeer[]>((resolve) => {
      const ask = () => { if (!closed) mdns.query({ questions: [{ name: SERVICE, type: 'PTR' }] }); };
      // Two queries, a third of the window apart: one lost datagram does not hide every peer.
      ask();
      later(Math.floor(browseMs / 3), ask);
      later(browseMs, () => resolve(current()));
    });

  return {
    instance: announcing ? instance : null,
    announceVersion(next) {
      if (!announcing || closed || next === version) return;
      version = next;
      mdns.respond(records(TTL_S));
      later(1000, () => { if (!closed) mdns.respond(records(TTL_S)); });
    },
    async peers() {
      if (closed) return [];
      if (lastError) throw new FerryError('ERR_IO', `mDNS: ${(lastError as Error).message}`);
      if (cached && Date.now() - cached.at < cacheMs) return cached.peers;
      browsing ??= browse().then((peers) => {
        cached = { at: Date.now(), peers };
        browsing = null;
        return peers;
      });
      return browsing;
    },
    async close() {
      if (closed) return;
      closed = true;
      for (const t of timers) clearTimeout(t);
      timers.clear();
      if (announcing) await new Promise<void>((resolve) => mdns.respond(records(0), () => resolve()));
      await new Promise<void>((resolve) => mdns.destroy(() => resolve()));
    },
  };
}
