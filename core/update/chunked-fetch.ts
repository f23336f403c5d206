// Downloads one artifact from several chunk peers at once. The artifact's signed chunk hashes
// (ArtifactRef.chunks) let every piece be checked on arrival, so a peer that lies is caught at
// its first bad chunk and dropped; a peer that stalls past the chunk deadline is dropped too. Each
// chunk is retried on another peer; when no peer is left the caller moves to its next source.

import { open } from 'node:fs/promises';
import { FerryError } from '../errors.ts';
import { sha256 } from '../io/hash.ts';
import type { ArtifactRef } from '../trust/metadata.ts';
import type { ChunkPeer } from '../ports/source.ts';

export interface ChunkedFetchResult {
  bytesMoved: number;
  /** Peers dropped, with why. */
  dropped: { peer: string; reason: string }[];
  /** Chunks served per peer. */
  served: Record<string, number>;
}

export async function fetchChunked(
  ref: ArtifactRef,
  peers: ChunkPeer[],
  dest: string,
  options: { concurrency?: number; chunkTimeoutMs?: number } = {},
): Promise<ChunkedFetchResult> {
  const concurrency = Math.max(1, Math.min(options.concurrency ?? 4, peers.length * 2));
  const chunkTimeoutMs = options.chunkTimeoutMs ?? 15_000;
  const healthy = new Set(peers);
  const dropped: ChunkedFetchResult['dropped'] = [];
  const served: Record<string, number> = {};
  const pending = ref.chunks.map((_, i) => i);
  let bytesMoved = 0;
  let next = 0; // round-robin cursor over healthy peers

  const drop = (peer: ChunkPeer, reason: string) => {
    if (healthy.delete(peer)) dropped.push({ peer: peer.name, reason });
  };
  const pickPeer = (): ChunkPeer | undefined => {
    const list = [...healthy];
    return list.length ? list[next++ % list.length] : undefined;
  };

  const handle = await open(dest, 'w', 0o600);
  try {
    await handle.truncate(ref.size);
    // The first worker to fail stops the others at their next chunk; all are awaited before the
    // file is closed, so no late write lands on a closed handle.
    let failure: unknown;
    const worker = async () => {
      while (failure === undefined) {
        const index = pending.shift();
        if (index === undefined) return;
        const start = index * ref.chunkSize;
        const end = Math.min(ref.size, start + ref.chunkSize);
        for (;;) {
          const peer = pickPeer();
          if (!peer) {
            failure ??= new FerryError('ERR_NOT_FOUND', `no peer left to serve chunk ${index} of ${ref.path} (${dropped.map((d) => `${d.peer}: ${d.reason}`).join('; ')})`);
            return;
          }
          const controller = new AbortController();
          const timer = setTimeout(() => controller.abort(), chunkTimeoutMs);
          let bytes: Uint8Array;
          try {
            bytes = await peer.fetchRange(ref.sha256, start, end, controller.signal);
          } catch (err) {
            drop(peer, controller.signal.aborted ? `stalled past ${chunkTimeoutMs} ms` : (err as Error).message);
            continue;
          } finally {
            clearTimeout(timer);
          }
          bytesMoved += bytes.length;
          if (bytes.length !== end - start || sha256(bytes) !== ref.chunks[index]) {
            drop(peer, `chunk ${index} does not match its signed hash`);
            continue;
          }
          try {
            await handle.write(bytes, 0, bytes.length, start);
          } catch (err) {
            failure ??= err;
            return;
          }
          served[peer.name] = (served[peer.name] ?? 0) + 1;
          break;
        }
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    if (failure !== undefined) throw failure;
    await handle.sync();
  } finally {
    await handle.close();
  }
  return { bytesMoved, dropped, served };
}
