// Reading response bodies under the transport's bounds: a byte cap checked before reading (the
// declared size) and while reading (the request aborted at cap+1, the sink never sees a byte past
// it: SECURITY.md row 6), the throughput watchdog (row 7) and the bandwidth cap.

import { FerryError } from '../../core/errors.ts';
import { contentLength, type Exchange, type Wire } from './exchange.ts';
import { AttemptFailure, finalFailure, transientIo } from './retries.ts';
import { describeVerdict, startWatchdog, type ThroughputLimits } from './throughput-watchdog.ts';
import type { TokenBucket } from './token-bucket.ts';

/** Error bodies (404, 503 ...) up to this size are drained so the connection can be reused. */
export const DRAIN_LIMIT = 64 * 1024;

/**
 * The size a response declares when it is over `maxBytes`, else undefined. `start` bytes are
 * already on disk (a resume), `length` is the Content-Length, `total` the whole file's size from
 * a Content-Range (null when the origin wrote "*").
 */
export function declaredSizeOverCap(start: number, length: number | undefined, total: number | null | undefined, maxBytes: number): number | undefined {
  const over = (length !== undefined && start + length > maxBytes) || (total != null && total > maxBytes);
  return over ? Math.max(start + (length ?? 0), total ?? 0) : undefined;
}

export interface Pacing {
  throughput: ThroughputLimits;
  /** The transport's bandwidth cap, when it has one. */
  bucket?: TokenBucket;
}

export function createBodyReader(pacing: Pacing): Pick<Wire, 'readBody' | 'discard'> {
  /** Streams the body into `sink`; returns the number of bytes received. */
  async function readBody(ex: Exchange, what: string, sink: (chunk: Buffer) => Promise<void>, cap: number): Promise<number> {
    let received = 0;
    let failure: AttemptFailure | undefined;
    const fail = (f: AttemptFailure) => {
      failure ??= f;
      ex.abort(failure);
    };
    const watchdog = startWatchdog(pacing.throughput, (verdict) => fail(finalFailure('ERR_IO', `${what}: ${describeVerdict(verdict, pacing.throughput)}`)));
    try {
      for await (const data of ex.res) {
        const chunk = data as Buffer;
        watchdog.arrived(chunk.length);
        received += chunk.length;
        if (received > cap) {
          const room = cap - (received - chunk.length);
          if (room > 0) await sink(chunk.subarray(0, room));
          fail(finalFailure('ERR_TOO_LARGE', `${what} is over its ${cap}-byte cap`));
          break;
        }
        await sink(chunk);
        if (pacing.bucket) await pacing.bucket.take(chunk.length);
        watchdog.waiting();
      }
    } catch (err) {
      if (failure) throw failure;
      if (err instanceof AttemptFailure || err instanceof FerryError) throw err;
      // The connection ended before the body did (reset, premature close): worth a retry.
      throw transientIo(`${what}: ${(err as Error).message}`, err);
    } finally {
      watchdog.stop();
    }
    if (failure) throw failure;
    const length = contentLength(ex.res.headers);
    if (length !== undefined && received !== length) throw transientIo(`${what}: got ${received} of ${length} bytes`);
    return received;
  }

  /** Reads and drops a small body (keeps the connection), or aborts a large or unsized one. */
  async function discard(ex: Exchange): Promise<void> {
    // A response to HEAD has no body whatever its Content-Length says: nothing to read.
    if (ex.method === 'HEAD') {
      // Waiting for its end lets the agent take the connection back before the next request.
      // (A response stream that is never read never ends, and holds its connection.)
      if (!ex.res.readableEnded) await new Promise<void>((resolve) => ex.res.once('end', resolve).once('close', resolve).resume());
      return;
    }
    const length = contentLength(ex.res.headers);
    if (length === undefined || length > DRAIN_LIMIT) return ex.abort();
    try {
      await readBody(ex, 'error body', async () => {}, DRAIN_LIMIT);
    } catch {
      ex.abort();
    }
  }

  return { readBody, discard };
}
