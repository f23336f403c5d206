// The transport port (ARCHITECTURE.md "Transports"): where a device, `ferry verify` or a bundle reader
// takes repository files from. A Source finds and fetches bytes and decides nothing: the core
// verifies every byte it returns against signed metadata. Implementations: core/ports/dir-source.ts
// (folders), core/publish/bundle.ts (bundles), plugins/http, plugins/usb, plugins/lan.

import { FerryError } from '../errors.ts';

export interface Source {
  /** Says where bytes came from, for history records and messages. */
  readonly name: string;
  /** Reads a small file whole; undefined when it does not exist; ERR_TOO_LARGE past maxBytes. */
  read(path: string, maxBytes: number): Promise<Uint8Array | undefined>;
  /**
   * Copies a file to `dest`; false when absent; ERR_TOO_LARGE past maxBytes. With `offset` > 0,
   * `dest` already holds that many bytes (a .part file) and only the rest is appended.
   */
  fetch(path: string, dest: string, maxBytes: number, offset?: number): Promise<boolean>;
  /** Local folders and bundles are offline sources: DeviceConfig.offlineGraceDays applies to them. */
  readonly offline: boolean;
  /** Names in a folder, when the source can list (a folder can; plain HTTP cannot). */
  list?(dir: string): Promise<string[]>;
}

/**
 * A peer that serves verified artifacts by their sha256, in byte ranges (LAN peers). The core asks
 * several at once for the signed chunks and checks each chunk's hash itself: a peer that serves
 * bad bytes or stalls is dropped and its chunk taken elsewhere (SECURITY.md row 8).
 */
export interface ChunkPeer {
  readonly name: string;
  /** Bytes [start, end) of the artifact with this sha256; rejects on any failure or abort. */
  fetchRange(sha256: string, start: number, end: number, signal: AbortSignal): Promise<Uint8Array>;
}

/** A Source whose artifacts may come from chunk peers (plugins/lan). */
export interface PeerSource extends Source {
  chunkPeers(): Promise<ChunkPeer[]>;
}

export function hasChunkPeers(source: Source): source is PeerSource {
  return typeof (source as Partial<PeerSource>).chunkPeers === 'function';
}

/**
 * A Source made of independent peers (plugins/lan). Discovery reads metadata from each peer as a
 * Source of its own, so one peer that lies, lags or is broken is passed over like any other source
 * and cannot hide a good one (SECURITY.md row 8).
 */
export interface MetadataPeerSource extends Source {
  metadataPeers(): Promise<Source[]>;
}

export function hasMetadataPeers(source: Source): source is MetadataPeerSource {
  return typeof (source as Partial<MetadataPeerSource>).metadataPeers === 'function';
}

/**
 * The sources discovery reads metadata from: each source with metadata peers replaced by its
 * peers, the peers after every other source. No peer found is a source that did not answer
 * (ERR_NO_SOURCE), so a device whose only source is the LAN says so instead of "up to date". Discovery keeps the
 * first of equally fresh offers, so a document an origin, folder or bundle also offers is read
 * from there, and a peer (which relays only what it installed) is used for what only it has.
 * When the peers cannot be listed, a stand-in that fails every read keeps the failure visible as
 * that source's problem instead of ending the check.
 */
export async function metadataSources(sources: Source[]): Promise<Source[]> {
  const direct: Source[] = [];
  const peers: Source[] = [];
  for (const source of sources) {
    if (!hasMetadataPeers(source)) {
      direct.push(source);
      continue;
    }
    const failing = (err: unknown): Source => ({ name: source.name, offline: source.offline, read: async () => { throw err; }, fetch: async () => false });
    try {
      const found = await source.metadataPeers();
      peers.push(...(found.length > 0 ? found : [failing(new FerryError('ERR_NO_SOURCE', `${source.name}: no peer found`))]));
    } catch (err) {
      peers.push(failing(err));
    }
  }
  return [...direct, ...peers];
}
