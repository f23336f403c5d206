// The LAN source (ARCHITECTURE.md "Transports": lan): a PeerSource whose chunk peers are the devices
// that discovery finds. Peers serve artifacts only — by sha256, in byte ranges — never metadata:
// what to install is decided from the origin's or a bundle's signed metadata, and the core checks
// every chunk a peer sends against its signed hash, dropping a peer that lies or stalls
// (SECURITY.md row 8). This file only moves bytes, with a deadline and a byte cap per request.

import { request, Agent } from 'node:http';
import { FerryError } from '../../core/errors.ts';
import type { ChunkPeer, PeerSource } from '../../core/ports/source.ts';
import type { LanDiscovery } from './discovery.ts';
import { ARTIFACT_PREFIX } from './peer-server.ts';

const SHA256 = /^[0-9a-f]{64}$/;

export interface LanSourceOptions {
  discovery: Pick<LanDiscovery, 'peers'>;
  /** This device's own peer server URL, so it never asks itself. */
  selfUrl?: string;
  /** Deadline for one range request, connect to last byte: a peer that hangs is given up on. */
  timeoutMs: number;
  /** Told about every range request (tests and `--verbose` use it). */
  onRange?: (event: RangeEvent) => void;
}

export interface RangeEvent {
  peer: string;
  sha256: string;
  start: number;
  end: number;
  outcome: 'ok' | 'error';
  detail?: string;
  ms: number;
}

/** Bytes [start, end) of `url`'s artifact `sha`; rejects on any status but 206, short or long bodies, timeout or abort. */
export function fetchPeerRange(agent: Agent, base: string, sha: string, start: number, end: number, signal: AbortSignal, timeoutMs: number): Promise<Uint8Array> {
  return new Promise<Uint8Array>((resolve, reject) => {
    if (!SHA256.test(sha)) return reject(new FerryError('ERR_USAGE', `"${sha}" is not a sha256`));
    if (!(Number.isSafeInteger(start) && Number.isSafeInteger(end) && start >= 0 && end > start)) {
      return reject(new FerryError('ERR_USAGE', `bad range [${start}, ${end})`));
    }
    if (signal.aborted) return reject(new FerryError('ERR_IO', 'aborted before the request'));
    const want = end - start;
    const parts: Buffer[] = [];
    let got = 0;
    let settled = false;
    const finish = (err: Error | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      if (err) {
        req.destroy();
        reject(err);
      } else resolve(Buffer.concat(parts, got));
    };
    const onAbort = () => finish(new FerryError('ERR_IO', `${base}: aborted`));
    const timer = setTimeout(() => finish(new FerryError('ERR_IO', `${base}: no complete answer within ${timeoutMs} ms`)), timeoutMs);
    signal.addEventListener('abort', onAbort, { once: true });
    const req = request(`${base}${ARTIFACT_PREFIX}${sha}`, { agent, headers: { range: `bytes=${start}-${end - 1}` } }, (res) => {
      if (res.statusCode !== 206) {
        res.resume();
        return finish(new FerryError('ERR_NOT_FOUND', `${base}: HTTP ${res.statusCode} for ${sha.slice(0, 12)}… [${start}, ${end})`));
      }
      res.on('data', (chunk: Buffer) => {
        got += chunk.length;
        // Never hold more than was asked for: a peer streaming endless data is cut here (row 6).
        if (got > want) return finish(new FerryError('ERR_TOO_LARGE', `${base}: sent more than the ${want} bytes asked for`));
        parts.push(chunk);
      });
      res.on('end', () => finish(got === want ? null : new FerryError('ERR_SIZE', `${base}: sent ${got} of ${want} bytes`)));
      res.on('error', (err) => finish(err));
      res.on('aborted', () => finish(new FerryError('ERR_IO', `${base}: connection closed mid-body`)));
    });
    req.on('error', (err) => finish(err));
    req.end();
  });
}

export function createLanSource(options: LanSourceOptions): PeerSource & { close(): void } {
  // Keep-alive: one connection per peer carries its chunks one after another.
  const agent = new Agent({ keepAlive: true, maxSockets: 4 });
  const self = options.selfUrl?.replace(/\/+$/, '');
  const peer = (url: string, name: string): ChunkPeer => ({
    name: `lan:${name}`,
    async fetchRange(sha, start, end, signal) {
      const t0 = Date.now();
      try {
        const bytes = await fetchPeerRange(agent, url, sha, start, end, signal, options.timeoutMs);
        options.onRange?.({ peer: url, sha256: sha, start, end, outcome: 'ok', ms: Date.now() - t0 });
        return bytes;
      } catch (err) {
        options.onRange?.({ peer: url, sha256: sha, start, end, outcome: 'error', detail: (err as Error).message, ms: Date.now() - t0 });
        throw err;
      }
    },
  });
  return {
    name: 'lan',
    // Peers are local and carry no metadata of their own; "offline" only matters for metadata.
    offline: true,
    // Metadata comes from the origin or a bundle and is verified there.
    async read() {
      return undefined;
    },
    async fetch() {
      return false;
    },
    async chunkPeers() {
      const found = await options.discovery.peers();
      const seen = new Set<string>();
      const out: ChunkPeer[] = [];
      for (const p of found) {
        const url = p.url.replace(/\/+$/, '');
        if (url === self || seen.has(url)) continue;
        seen.add(url);
        out.push(peer(url, p.name === url ? url : `${p.name}@${url}`));
      }
      return out;
    },
    close() {
      agent.destroy();
    },
  };
}
