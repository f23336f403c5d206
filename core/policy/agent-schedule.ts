// When `ferry agent` wakes up next, as pure decisions: how an attempt's outcome is classified,
// how the count of consecutive offline attempts moves, and how long to sleep. Nothing here touches
// the clock, the disk or the network; the random number for jitter is a parameter, so every rule
// is a table test (test/core/agent-schedule.test.ts).
//
// The policy disabled (`enabled: false`) means the agent makes no attempt at all: no check, no
// download, no staging, no switch, security fixes included (attemptAllowed). It still wakes every
// checkInterval (and on a USB drop) to read ferry.json again, so setting `enabled` back to true
// takes effect without a restart. A person's `ferry check`, `download`, `update` still run.
//
// The rules, in order (afterAttempt):
//   1. A wake-up arrived while the attempt ran (a USB drop) -> run again at once: what landed on
//      the stick may be newer than what the attempt saw.
//   2. The home was busy (`ferry status`, `ferry apply` … held the lock) -> retry soon
//      (BUSY_RETRY_MS, never later than the normal interval); this is no failure and no backoff.
//   3. Otherwise nextCheckDelay(policy, failures, rand): the check interval, doubled per
//      consecutive offline attempt (capped at 24 h), with jitter.
//   4. When the attempt left a release staged and waiting for the maintenance window, the earlier of
//      that and the window's opening (core/policy/maintenance-window.ts) plus windowJitter: with an
//      interval of hours, a device would otherwise switch hours into the window, or miss a short
//      window entirely.
// Failures count only attempts that threw a retryable error (the sources were unreachable, the
// disk hiccupped). Any answer from a source — an update, "up to date", waiting for approval, even
// a refusal — shows the device is online and resets the count.

import type { UpdatePolicy } from '../spec.ts';
import { isFerryError } from '../errors.ts';
import { nextWindowOpening } from './maintenance-window.ts';
import { nextCheckDelay } from './policy.ts';

/** How soon a busy home is tried again. */
export const BUSY_RETRY_MS = 5000;

/** A wake-up for the window is never earlier than this after it opens (clocks and timers differ a little). */
export const WINDOW_GRACE_MS = 1000;
/** At most this much jitter after a window opens, so the window keeps almost all its length. */
export const WINDOW_JITTER_CAP_MS = 5 * 60 * 1000;

/** What one check+apply attempt came to, as far as scheduling cares. */
export type AttemptOutcome =
  | 'done' // up to date, waiting, committed or rolled back: the sources answered
  | 'busy' // another ferry process held the home (ERR_BUSY)
  | 'offline' // a retryable error: sources unreachable, I/O trouble
  | 'refused' // a non-retryable error (bad signature, expired metadata …): online, but nothing to take
  | 'disabled'; // the policy is disabled: no attempt was made

/** Whether the agent may make an automatic attempt at all under `policy` (the header's first paragraph). */
export function attemptAllowed(policy: UpdatePolicy): boolean {
  return policy.enabled;
}

/** Classifies what an attempt threw. */
export function classifyError(err: unknown): Exclude<AttemptOutcome, 'done' | 'disabled'> {
  if (isFerryError(err, 'ERR_BUSY')) return 'busy';
  if (isFerryError(err) && err.retryable) return 'offline';
  // A bug (ERR_INTERNAL, or anything that is not a FerryError) or an unexpected failure of the
  // machine is treated as offline, so the agent backs off instead of spinning on it.
  if (!isFerryError(err) || err.code === 'ERR_INTERNAL') return 'offline';
  return 'refused';
}

/** Consecutive offline attempts after one more attempt. Busy leaves the count as it was. */
export function nextFailures(failures: number, outcome: AttemptOutcome): number {
  switch (outcome) {
    case 'offline':
      return failures + 1;
    case 'busy':
      return failures;
    case 'done':
    case 'refused':
    case 'disabled': // says nothing about the sources; the next attempt after re-enabling is a normal one
      return 0;
    default: {
      const never: never = outcome;
      throw new Error(`unknown attempt outcome ${String(never)}`);
    }
  }
}

export interface Wake {
  /** Milliseconds to sleep before the next attempt (0 = at once). */
  delayMs: number;
  /** Consecutive offline attempts, to carry into the next decision. */
  failures: number;
  why: 'triggered' | 'busy' | 'interval' | 'backoff' | 'window' | 'disabled';
}

/**
 * Milliseconds after a window opens to wake for it: WINDOW_GRACE_MS, then up to 10% of the wait
 * (the interval's jitter, but only ever later) capped at WINDOW_JITTER_CAP_MS. A fleet that found
 * the window closed hours ahead would otherwise call the origin in the same second it opens; a
 * device that is only seconds away is already out of step with the others and needs no spread.
 */
export function windowJitter(waitMs: number, rand: number): number {
  const r = Number.isFinite(rand) ? Math.min(Math.max(rand, 0), 1) : 0.5;
  return WINDOW_GRACE_MS + Math.round(r * Math.min(Math.max(waitMs, 0) * 0.1, WINDOW_JITTER_CAP_MS));
}

/**
 * The next wake-up after an attempt; the rules are in the file header. `waitingForWindow`: the
 * attempt ended with a release staged and waiting for the maintenance window, judged at `now`.
 */
export function afterAttempt(input: { policy: UpdatePolicy; failures: number; outcome: AttemptOutcome; triggered: boolean; rand: number; waitingForWindow?: boolean; now?: Date }): Wake {
  const failures = nextFailures(input.failures, input.outcome);
  if (input.triggered) return { delayMs: 0, failures, why: 'triggered' };
  const normal = nextCheckDelay(input.policy, failures, input.rand);
  if (input.outcome === 'busy') return { delayMs: Math.min(BUSY_RETRY_MS, normal), failures, why: 'busy' };
  if (input.outcome === 'disabled') return { delayMs: normal, failures, why: 'disabled' };
  const interval: Wake = { delayMs: normal, failures, why: failures > 0 ? 'backoff' : 'interval' };
  if (!input.waitingForWindow || input.now === undefined) return interval;
  const opens = nextWindowOpening(input.policy.maintenanceWindow, input.now);
  if (opens === null) return interval;
  const waitMs = opens.getTime() - input.now.getTime();
  const atWindow = waitMs + windowJitter(waitMs, input.rand);
  return atWindow < normal ? { delayMs: atWindow, failures, why: 'window' } : interval;
}
