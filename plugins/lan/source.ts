// The LAN source (ARCHITECTURE.md "Transports": lan): a PeerSource whose chunk peers are the devices
// that discovery finds, and whose metadata peers are the same devices, each read as a source of its
// own. Peers serve artifacts by sha256, in byte ranges, and the signed metadata they verified and
// kept (plugins/lan/peer-server.ts), so a LAN without an origin updates from one device that
// received a USB stick. The core verifies every document a peer sends as from any source — judged
// as offline metadata (offlineGraceDays) — and every chunk against its signed hash, passing over
// a peer that lies or stalls (SECURITY.md row 8). This file only moves bytes, with a deadline and
// a byte cap per request.

import { request, Agent } from 'node:http';
import { FerryError, isFerryError } from '../../core/errors.ts';
import type { ChunkPeer, MetadataPeerSource, PeerSource, Source } from '../../core/ports/source.ts';
import type { LanDiscovery } from './discovery.ts';
import { ARTIFACT_PREFIX, METADATA_PREFIX } from './peer-server.ts';

const SHA256 = /^[0-9a-f]{64}$/;
/** The repository paths a peer serves (core/update/kept-metadata.ts keptMetadataFile). */
const METADATA_PATH = /^(root\/[1-9][0-9]{0,8}|channels\/[a-z]{1,16}|releases\/[0-9A-Za-z.+-]{1,128}\/(manifest|files-[a-z0-9_]{1,32}-[a-z0-9_]{1,32}))\.json$/;

export interface LanSourceOptions {
  discovery: Pick<LanDiscovery, 'peers'>;
  /** This device's own peer server URL, so it never asks itself. */
  selfUrl?: string;
  /** Deadline for one request, connect to last byte: a peer that hangs is given up on (metadata: see metadataDeadlineMs). */
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

/**
 * How long a peer may take for one metadata document read with cap `maxBytes`: 2 s plus the cap at
 * 1 MiB/s, never more than the per-request deadline. Every device asks every peer for root/<N+1>.json
 * on each check, so a peer that answers nothing costs seconds (2.5 s for a root or pointer), not
 * the full chunk deadline; a large pinned manifest still has time on a slow LAN.
 */
export function metadataDeadlineMs(maxBytes: number, timeoutMs: number): number {
  return Math.min(timeoutMs, 2_000 + Math.ceil(maxBytes / 1_048.576));
}

/**
 * A peer's kept metadata file `path`, whole: undefined on 404 (the peer does not have it); rejects
 * on any other status, on a body past `maxBytes`, a short body, timeout or a failed connection.
 */
export function fetchPeerFile(agent: Agent, base: string, path: string, maxBytes: number, timeoutMs: number): Promise<Uint8Array | undefined> {
  return new Promise<Uint8Array | undefined>((resolve, reject) => {
    if (!METADATA_PATH.test(path)) return resolve(undefined); // peers serve nothing else
    const parts: Buffer[] = [];
    let got = 0;
    let settled = false;
    const finish = (err: Error | null, value?: Uint8Array) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err) {
        req.destroy();
        reject(err);
      } else resolve(value);
    };
    const timer = setTimeout(() => finish(new FerryError('ERR_IO', `${base}: no complete answer for ${path} within ${timeoutMs} ms`)), timeoutMs);
    const req = request(`${base}${METADATA_PREFIX}${path}`, { agent }, (res) => {
      if (res.statusCode === 404) {
        res.resume();
        return finish(null, undefined);
      }
      if (res.statusCode !== 200) {
        res.resume();
        return finish(new FerryError('ERR_IO', `${base}: HTTP ${res.statusCode} for ${path}`));
      }
      const declared = Number(res.headers['content-length']);
      if (Number.isFinite(declared) && declared > maxBytes) return finish(new FerryError('ERR_TOO_LARGE', `${base}: ${path} is ${declared} bytes, over its ${maxBytes}-byte cap`));
      res.on('data', (chunk: Buffer) => {
        got += chunk.length;
        // Never hold more than the document's cap: a peer streaming endless data is cut here (row 6).
        if (got > maxBytes) return finish(new FerryError('ERR_TOO_LARGE', `${base}: ${path} is over its ${maxBytes}-byte cap`));
        parts.push(chunk);
      });
      res.on('end', () => finish(null, Buffer.concat(parts, got)));
      res.on('error', (err) => finish(err));
      res.on('aborted', () => finish(new FerryError('ERR_IO', `${base}: connection closed mid-body`)));
    });
    req.on('error', (err) => finish(new FerryError('ERR_IO', `${base}: ${err.message}`, { cause: err })));
    req.end();
  });
}

export function createLanSource(options: LanSourceOptions): PeerSource & MetadataPeerSource & { close(): void } {
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
  /** One peer's kept metadata as a Source: offline (a peer relays what it got from a stick or an origin). */
  const metadataPeer = (url: string, name: string): Source => ({
    name: `lan:${name}`,
    offline: true,
    // A peer that cannot be reached, hangs or drops the connection did not answer (ERR_NO_SOURCE,
    // counted by discover's noSourceAnswered); what it does send is judged as any source's bytes.
    read: (path, maxBytes) => fetchPeerFile(agent, url, path, maxBytes, metadataDeadlineMs(maxBytes, options.timeoutMs)).catch((err: unknown) => {
      throw isFerryError(err, 'ERR_IO') ? new FerryError('ERR_NO_SOURCE', err.message, { cause: err }) : err;
    }),
    // Artifacts come through chunkPeers(), from every peer at once.
    async fetch() {
      return false;
    },
  });
  /** The peers discovery finds, each once, never this device itself. */
  const others = async (): Promise<{ url: string; name: string }[]> => {
    const found = await options.discovery.peers();
    const seen = new Set<string>();
    const out: { url: string; name: string }[] = [];
    for (const p of found) {
      const url = p.url.replace(/\/+$/, '');
      if (url === self || seen.has(url)) continue;
      seen.add(url);
      out.push({ url, name: p.name === url ? url : `${p.name}@${url}` });
    }
    return out;
  };
  return {
    name: 'lan',
    offline: true,
    // Metadata is read peer by peer (metadataPeers), never merged: each peer's documents are
    // verified and judged alone, so a peer that lies cannot hide one that does not.
    async read() {
      return undefined;
    },
    async fetch() {
      return false;
    },
    async chunkPeers() {
      return (await others()).map((p) => peer(p.url, p.name));
    },
    async metadataPeers() {
      return (await others()).map((p) => metadataPeer(p.url, p.name));
    },
    close() {
      agent.destroy();
    },
  };
}
