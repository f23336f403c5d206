// Phased rollouts, decided on the device from the signed channel pointer (no server asked): a
// device takes a version under rollout when its bucket falls under the percentage in force. Pure
// functions, so the same device id, salt and time always give the same answer, online or not.
// The time is the device's clock, never below its signed time floor (SECURITY.md row 5), so a
// device whose clock was set back does not drop out of a step it already reached.
// A device outside a rollout is offered the version the channel named before (`previous`), and
// only when that is above what it runs: a rollout never takes a device down (a halted rollout
// leaves the devices that have the version on it; ARCHITECTURE.md, phased rollouts).

import { createHash } from 'node:crypto';
import * as semver from '../semver.ts';
import type { ChannelTarget, FileRef, Rollout } from '../trust/metadata.ts';

/** Buckets per rollout: percentages have two decimals. */
export const BUCKETS = 10_000;

/** The device's bucket for this salt, 0 … BUCKETS-1: the first 4 bytes of sha256(salt ":" id). */
export function rolloutBucket(deviceId: string, salt: string): number {
  const digest = createHash('sha256').update(`${salt}:${deviceId}`).digest();
  return digest.readUInt32BE(0) % BUCKETS;
}

/** The percentage in force at `now`: the last step reached, else the rollout's own. */
export function rolloutPercentAt(rollout: Rollout, now: Date): number {
  let percent = rollout.percent;
  for (const step of rollout.steps) {
    if (Date.parse(step.at) <= now.getTime()) percent = step.percent;
  }
  return percent;
}

export type RolloutDecision =
  | { take: true; why: string }
  | { take: false; why: string; bucket: number; percent: number };

/**
 * Whether this device takes a version offered under `rollout`. Security releases ignore rollouts
 * (a fix must reach every device at once); no rollout means everyone.
 */
export function decideRollout(input: { deviceId: string | null; rollout: Rollout | undefined; now: Date; security: boolean }): RolloutDecision {
  const { rollout } = input;
  if (!rollout) return { take: true, why: 'no rollout: every device takes it' };
  if (input.security) return { take: true, why: 'a security release ignores its rollout' };
  const percent = rolloutPercentAt(rollout, input.now);
  // A device without an id (its key could not be made) has no bucket: it waits for the rollout to end.
  if (input.deviceId === null) return { take: false, why: 'this device has no id yet (no device key), so no bucket', bucket: BUCKETS, percent };
  const bucket = rolloutBucket(input.deviceId, rollout.salt);
  if (bucket < Math.round(percent * (BUCKETS / 100))) return { take: true, why: `bucket ${bucket} is under ${percent}%` };
  return { take: false, why: `bucket ${bucket} is not under ${percent}%`, bucket, percent };
}

/** A version a channel pointer offers, with the manifest pin to read it by. */
export interface PointerOffer {
  version: string;
  manifest: FileRef;
}

/**
 * What `pointer` offers this device once its rollout was decided: the pointer's own version when
 * the device is in (or there is no rollout); else the rollout's `previous` when that is above
 * `current` (or nothing is installed); else nothing (null). So a device outside the rollout that
 * already runs the rolled version, or anything above `previous`, is offered nothing by this
 * pointer and stays where it is: no downgrade, no ERR_DOWNGRADE.
 */
export function offerUnderRollout(input: { pointer: ChannelTarget; decision: RolloutDecision; current: string | null }): PointerOffer | null {
  const { pointer, decision, current } = input;
  if (decision.take) return { version: pointer.version, manifest: pointer.manifest };
  const previous = pointer.rollout?.previous ?? null;
  if (previous === null) return null;
  if (current !== null && !semver.gt(previous.version, current)) return null;
  return { version: previous.version, manifest: previous.manifest };
}
