// After a root rotation that changes the release keys, every manifest and channel pointer is
// re-signed with the new release keys (TUF re-signs targets metadata the same way): otherwise a
// device that walked to the new root would refuse the repository's metadata, and so would the
// publisher's own next release. Payloads stay byte-for-byte the same except each channel pointer,
// whose manifest pins change with the new envelopes and whose sequence grows by one.

import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import * as semver from '../semver.ts';
import { resignManifestEnvelope } from '../trust/manifest-envelope.ts';
import { writeNextPointer } from './channel-pointer.ts';
import { sha256 } from '../io/hash.ts';
import { writeFileAtomic } from '../io/durable.ts';
import { createDirSource } from '../ports/dir-source.ts';
import { readChannel, readManifest } from '../trust/trusted-metadata.ts';
import { CHANNELS, manifestPath, type ChannelDoc, type FileRef } from '../trust/metadata.ts';
import type { RootDoc } from '../trust/root.ts';
import type { SigningKey } from '../trust/keys.ts';

/** Re-signs what `previous` verified with `signers`; returns how many documents were rewritten. */
export async function resignReleaseMetadata(repo: string, previous: RootDoc, signers: SigningKey[], now: Date, expiresIn: number): Promise<number> {
  const source = createDirSource(repo);
  const pins = new Map<string, FileRef>();
  let written = 0;
  for (const version of (await readdir(join(repo, 'releases')).catch(() => [] as string[])).filter((v) => semver.valid(v) === v)) {
    const m = await readManifest(source, previous, version, null);
    if (!m) continue;
    // The payload type and bytes it found (plain or compressed), signed anew.
    const bytes = resignManifestEnvelope(m.bytes, signers, manifestPath(version));
    await writeFileAtomic(join(repo, manifestPath(version)), bytes);
    pins.set(version, { path: manifestPath(version), size: bytes.length, sha256: sha256(bytes) });
    written++;
  }
  for (const channel of CHANNELS) {
    const c = await readChannel(source, previous, channel, null);
    if (!c) continue;
    const targets: ChannelDoc['targets'] = {};
    for (const [key, t] of Object.entries(c.doc.targets)) targets[key] = { version: t.version, manifest: pins.get(t.version) ?? t.manifest };
    await writeNextPointer(repo, { app: c.doc.app, channel, previous: c.doc, targets, now, expiresIn, signers });
    written++;
  }
  return written;
}
