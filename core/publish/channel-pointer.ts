// Writing a channel's next signed pointer: the one shape every publisher command shares
// (`ferry release`, `ferry promote`, the re-signing after a key rotation). The sequence grows by
// one over the pointer it replaces, so devices take it as fresher (SECURITY.md row 3), and the
// expiry starts again from `now` (row 5). The file is replaced atomically.

import { join } from 'node:path';
import { encodeEnvelope, PAYLOAD_TYPES, signEnvelope } from '../trust/dsse.ts';
import { writeFileAtomic } from '../io/durable.ts';
import { channelPath, type Channel, type ChannelDoc } from '../trust/metadata.ts';
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
  await writeFileAtomic(join(repo, channelPath(next.channel)), encodeEnvelope(signEnvelope(PAYLOAD_TYPES.channel, Buffer.from(JSON.stringify(doc)), next.signers)));
  return doc;
}
