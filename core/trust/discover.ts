// What the device's sources offer, verified: the newest root any source chains to, then for each
// channel the device reads, the freshest valid pointer across all sources. A source that lies,
// replays or is broken is recorded as a problem and passed over, so it cannot block a good one
// (SECURITY.md row 8).

import { FerryError, type ErrorCode } from '../errors.ts';
import { readChannel, updateRootWithBytes } from './trusted-metadata.ts';
import { checkChannelFreshness, effectiveNow, type TrustMarks } from './trust-marks.ts';
import type { Channel, ChannelDoc } from './metadata.ts';
import type { RootDoc } from './root.ts';
import type { Source } from '../ports/source.ts';

export interface Offer {
  channel: Channel;
  doc: ChannelDoc;
  bytes: Uint8Array;
  source: Source;
}

export interface SourceProblem {
  source: string;
  code: ErrorCode;
  message: string;
}

export interface Discovery {
  root: RootDoc;
  /** Bytes of `root` when it is newer than the trusted one (to persist), else null. */
  rootBytes: Uint8Array | null;
  /** Bytes of every root from the trusted one's successor to `root`, in order (empty when not newer). */
  rootChain: Uint8Array[];
  offers: Offer[];
  problems: SourceProblem[];
}

function problemOf(source: Source, err: unknown): SourceProblem {
  if (err instanceof FerryError) return { source: source.name, code: err.code, message: err.message };
  return { source: source.name, code: 'ERR_IO', message: (err as Error)?.message ?? String(err) };
}

export async function discover(input: {
  sources: Source[];
  trusted: RootDoc;
  marks: TrustMarks;
  channels: Channel[];
  clock: Date;
  offlineGraceDays: number;
}): Promise<Discovery> {
  const problems: SourceProblem[] = [];

  // 1. The newest root any source chains to from the trusted one (TUF 5.3).
  let root = input.trusted;
  let rootBytes: Uint8Array | null = null;
  let rootChain: Uint8Array[] = [];
  const usable: Source[] = [];
  for (const source of input.sources) {
    try {
      const walked = await updateRootWithBytes(source, input.trusted);
      if (walked.root.version > root.version) {
        root = walked.root;
        rootBytes = walked.bytes;
        rootChain = walked.chain;
      }
      usable.push(source);
    } catch (err) {
      problems.push(problemOf(source, err));
    }
  }

  // 2. Channel pointers, verified under that root, fresh, unexpired (TUF 5.4-5.5).
  const now = effectiveNow(input.marks, input.clock, root);
  const best = new Map<Channel, Offer>();
  for (const source of usable) {
    for (const channel of input.channels) {
      try {
        const c = await readChannel(source, root, channel, null);
        if (!c) continue;
        const expires = Date.parse(c.doc.expires);
        if (expires <= now.getTime()) {
          // Offline grace: a folder or bundle may be used for a while past expiry — an air-gapped
          // device cannot get fresher metadata — but never an online source, and never unsigned.
          const graceMs = source.offline ? input.offlineGraceDays * 86_400_000 : 0;
          if (expires + graceMs <= now.getTime()) {
            throw new FerryError('ERR_EXPIRED', `channels/${channel}.json from ${source.name} expired at ${c.doc.expires}`);
          }
        }
        checkChannelFreshness(input.marks, c.doc, c.bytes, root);
        const prev = best.get(channel);
        if (!prev || c.doc.sequence > prev.doc.sequence) best.set(channel, { channel, doc: c.doc, bytes: c.bytes, source });
      } catch (err) {
        problems.push(problemOf(source, err));
      }
    }
  }
  const offers = input.channels.map((c) => best.get(c)).filter((o): o is Offer => o !== undefined);
  return { root, rootBytes, rootChain, offers, problems };
}
