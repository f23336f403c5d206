// Writing a channel's next signed pointer: the one shape every publisher command shares
// (`ferry release`, `ferry promote`, the re-signing after a key rotation). The sequence grows by
// one over the pointer it replaces, so devices take it as fresher (SECURITY.md row 3), and the
// expiry starts again from `now` (row 5). The file is replaced atomically. A target's rollout
// (core/publish/rollout.ts) travels with it: re-pinning a re-written manifest keeps it.

import { join } from 'node:path';
import { encodeEnvelope, PAYLOAD_TYPES, signEnvelope } from '../trust/dsse.ts';
import { writeFileAtomic } from '../io/durable.ts';
import { FerryError } from '../errors.ts';
import { channelPath, channelPayload, parseChannelPayload, type Channel, type ChannelDoc, type ChannelTarget, type FileRef } from '../trust/metadata.ts';
import type { SigningKey } from '../trust/keys.ts';

export interface NextPointer {
  app: string;
  channel: Channel;
  /** The pointer this one replaces; none for a channel's first. */
  previous: ChannelDoc | undefined;
  targets: ChannelDoc['targets'];
  now: Date;
  /** Seconds from `now` to the expiry. */
  expiresIn: number;
  signers: SigningKey[];
}

/** Signs and writes `channels/<channel>.json` one sequence above `previous`; returns the document. */
export async function writeNextPointer(repo: string, next: NextPointer): Promise<ChannelDoc> {
  const doc: ChannelDoc = {
    type: 'ferry/channel',
    app: next.app,
    channel: next.channel,
    sequence: (next.previous?.sequence ?? 0) + 1,
    expires: new Date(next.now.getTime() + next.expiresIn * 1000).toISOString(),
    targets: next.targets,
  };
  const payload = channelPayload(doc);
  // Never sign what a device would refuse (a rollout field out of shape would stop the channel for
  // the whole fleet): the payload is read back by the devices' own parser first.
  try {
    parseChannelPayload(payload);
  } catch (err) {
    if (err instanceof FerryError && (err.code === 'ERR_SCHEMA' || err.code === 'ERR_JSON')) throw new FerryError('ERR_INTERNAL', `internal: the ${next.channel} pointer about to be signed does not parse (${err.message})`);
    throw err;
  }
  await writeFileAtomic(join(repo, channelPath(next.channel)), encodeEnvelope(signEnvelope(PAYLOAD_TYPES.channel, payload, next.signers)));
  return doc;
}

/**
 * `t` after `version`'s manifest was re-written with the bytes pinned by `pin` (a second target of
 * a release changes them): the pointer's own pin when it names `version`, and its rollout's
 * `previous` pin when that names `version`; the rollout itself is kept.
 */
export function repinTarget(t: ChannelTarget, version: string, pin: FileRef): ChannelTarget {
  const manifest = t.version === version ? pin : t.manifest;
  if (!t.rollout) return { version: t.version, manifest };
  const previous = t.rollout.previous?.version === version ? { version, manifest: pin } : t.rollout.previous;
  return { version: t.version, manifest, rollout: { ...t.rollout, previous } };
}

/** Whether `t` pins `version`'s manifest (as its version or as its rollout's previous). */
export function pinsVersion(t: ChannelTarget, version: string): boolean {
  return t.version === version || t.rollout?.previous?.version === version;
}
