// What the device's sources offer, verified: the newest root any source chains to, then for each
// channel the device reads, the freshest valid pointer across all sources. A source that lies,
// replays or is broken is recorded as a problem and passed over, so it cannot block a good one
// (SECURITY.md row 8).
//
// A source that delivered no bytes at all and failed to be read did not answer: ERR_NO_SOURCE (a
// folder not there, no peer), or, from an online source, ERR_IO (connection refused, timeouts,
// 5xx). A local source's ERR_IO (a bundle that changed while it was copied) keeps its own code.
// When no source answered, noSourceAnswered says so (ERR_NO_SOURCE, retryable): "nothing is
// newer" is a claim only a source that answered can make. A transport that has nobody to ask
// throws ERR_NO_SOURCE from read() to be counted so.

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
  /** How many sources were asked. */
  asked: number;
  /** For each source that did not answer (no bytes, only failures to reach it), its first problem. */
  silent: SourceProblem[];
}

/** Whether `problem` of `source` means it could not be reached, as opposed to an answer that was wrong. */
function unreachable(source: Source, problem: SourceProblem): boolean {
  return problem.code === 'ERR_NO_SOURCE' || (problem.code === 'ERR_IO' && !source.offline);
}

/** ERR_NO_SOURCE naming each source and why, when sources were asked, none answered and nothing is offered; else null. */
export function noSourceAnswered(found: Discovery): FerryError | null {
  if (found.offers.length > 0 || found.asked === 0 || found.silent.length < found.asked) return null;
  // Each source once: a message that already starts with the source's name is kept as it is.
  const each = found.silent.map((p) => (p.message.startsWith(p.source) ? p.message : `${p.source}: ${p.message}`));
  return new FerryError('ERR_NO_SOURCE', `no source answered: ${each.join('; ')}`);
}

/** The source as discover reads it, noting whether it ever delivered bytes. */
function watched(source: Source): { source: Source; delivered(): boolean } {
  let delivered = false;
  return {
    source: {
      name: source.name,
      offline: source.offline,
      async read(path, maxBytes) {
        const bytes = await source.read(path, maxBytes);
        if (bytes) delivered = true;
        return bytes;
      },
      fetch: (path, dest, maxBytes, offset) => source.fetch(path, dest, maxBytes, offset),
    },
    delivered: () => delivered,
  };
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
  const asked = input.sources.map((source) => ({ source, seen: watched(source), problems: [] as SourceProblem[] }));
  const note = (a: (typeof asked)[number], err: unknown) => {
    const p = problemOf(a.source, err);
    problems.push(p);
    a.problems.push(p);
  };

  // 1. The newest root any source chains to from the trusted one (TUF 5.3).
  let root = input.trusted;
  let rootBytes: Uint8Array | null = null;
  let rootChain: Uint8Array[] = [];
  const usable: (typeof asked)[number][] = [];
  for (const a of asked) {
    try {
      const walked = await updateRootWithBytes(a.seen.source, input.trusted);
      if (walked.root.version > root.version) {
        root = walked.root;
        rootBytes = walked.bytes;
        rootChain = walked.chain;
      }
      usable.push(a);
    } catch (err) {
      note(a, err);
    }
  }

  // 2. Channel pointers, verified under that root, fresh, unexpired (TUF 5.4-5.5).
  const now = effectiveNow(input.marks, input.clock, root);
  const best = new Map<Channel, Offer>();
  for (const a of usable) {
    const source = a.source;
    for (const channel of input.channels) {
      try {
        const c = await readChannel(a.seen.source, root, channel, null);
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
        note(a, err);
      }
    }
  }
  const offers = input.channels.map((c) => best.get(c)).filter((o): o is Offer => o !== undefined);
  const silent = asked.flatMap((a) => (!a.seen.delivered() && a.problems.length > 0 && a.problems.every((p) => unreachable(a.source, p)) ? [a.problems[0]!] : []));
  return { root, rootBytes, rootChain, offers, problems, asked: asked.length, silent };
}
