// Download with a chosen version (the spec's Download, DownloadOptions.version): whether the
// version a caller names may be fetched, as a pure decision over the verified channel offers. A
// caller may pick among what the device's channels offer (a beta device may take the stable
// release instead of the beta one), never a version no signed pointer names: the pointers are what
// vouch that a release is current (SECURITY.md rows 3 and 5), and the anti-rollback floor
// and allowDowngrade hold as they do for the version the policy picks (core/policy/policy.ts
// decideTarget).

import * as semver from '../semver.ts';
import { FerryError } from '../errors.ts';
import type { UpdatePolicy } from '../spec.ts';
import type { Candidate, TargetDecision } from './policy.ts';

/**
 * The candidate offering `version`, or a refusal:
 * - not a semver version: ERR_USAGE;
 * - no channel offers it: ERR_NOT_FOUND, naming what they offer;
 * - below the anti-rollback floor: ERR_DOWNGRADE, even with allowDowngrade;
 * - below the installed version without allowDowngrade: ERR_DOWNGRADE.
 * The installed version itself is 'up-to-date'. Ties between channels offering the same version
 * go to the earlier candidate (channel preference), as in decideTarget.
 */
export function decideRequestedTarget(input: { version: string; current: string | null; candidates: Candidate[]; policy: UpdatePolicy; floor: string | null }): TargetDecision {
  const { version, current, candidates, policy, floor } = input;
  if (semver.valid(version) !== version) throw new FerryError('ERR_USAGE', `"${version}" is not a version`);
  const pick = candidates.find((c) => c.version === version);
  if (pick === undefined) {
    const offered = candidates.map((c) => `${c.channel} ${c.version}`).join(', ') || 'nothing';
    throw new FerryError('ERR_NOT_FOUND', `${version} is not offered by this device's channels (they offer ${offered})`);
  }
  if (floor !== null && semver.lt(version, floor)) {
    throw new FerryError('ERR_DOWNGRADE', `${version} is below the anti-rollback floor ${floor}`);
  }
  if (current !== null && version === current) return { kind: 'up-to-date' };
  if (current !== null && semver.lt(version, current) && !policy.allowDowngrade) {
    throw new FerryError('ERR_DOWNGRADE', `${version} is below the installed ${current}; the policy does not allow downgrades (allowDowngrade)`);
  }
  return { kind: 'update', candidate: pick };
}
