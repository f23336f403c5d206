// The spec's IntegrityVerifier over ferry's primitives: sha256 for bytes, DSSE threshold
// signatures for documents, and the root rotation chain for keys.

import { expectHash, sha256, sha256File } from '../io/hash.ts';
import { verifyRole, verifyRootRotation, type RootDoc } from './root.ts';
import type { Envelope } from './dsse.ts';
import type { IntegrityVerifier } from '../spec.ts';

export function createIntegrityVerifier(): IntegrityVerifier {
  return {
    async verifyChecksum(data, expectedSha256) {
      const actual = data instanceof Uint8Array ? sha256(data) : await sha256File(data.path);
      expectHash(actual, expectedSha256, data instanceof Uint8Array ? 'data' : data.path);
    },
    verifySignature(envelope: Envelope, payloadType: string, root: RootDoc, role) {
      return verifyRole(envelope, payloadType, root, role, payloadType);
    },
    verifyCertChain(trusted: RootDoc, chain: Uint8Array[]) {
      return chain.reduce((prev, bytes, i) => verifyRootRotation(prev, bytes, `root ${trusted.version + i + 1}`), trusted);
    },
  };
}
