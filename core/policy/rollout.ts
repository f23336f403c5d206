// Phased rollouts, decided on the device from the signed channel pointer (no server asked): a
// device takes a version under rollout when its bucket falls under the percentage in force. Pure
// functions, so the same device id, salt and time always give the same answer, online or not.
// The time is the device's clock, never below its signed time floor (SECURITY.md row 5), so a
// device whose clock was set back does not drop out of a step it already reached.

import { createHash } from 'node:crypto';
import type { Rollout } from '../trust/metadata.ts';

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
export function decideRollout(input: { deviceId: string; rollout: Rollout | undefined; now: Date; security: boolean }): RolloutDecision {
  const { rollout } = input;
  if (!rollout) return { take: true, why: 'no rollout: every device takes it' };
  if (input.security) return { take: true, why: 'a security release ignores its rollout' };
  const percent = rolloutPercentAt(rollout, input.now);
  const bucket = rolloutBucket(input.deviceId, rollout.salt);
  if (bucket < Math.round(percent * (BUCKETS / 100))) return { take: true, why: `bucket ${bucket} is under ${percent}%` };
  return { take: false, why: `bucket ${bucket} is not under ${percent}%`, bucket, percent };
}
