// The agent's wake-up rules as tables: how attempt errors are classified, how the count of
// consecutive offline attempts moves, and how long the agent sleeps next.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { afterAttempt, BUSY_RETRY_MS, classifyError, nextFailures, WINDOW_GRACE_MS, WINDOW_JITTER_CAP_MS, type AttemptOutcome, type Wake } from '../../core/policy/agent-schedule.ts';
import { FerryError } from '../../core/errors.ts';
import { DEFAULT_POLICY } from '../../core/policy/policy.ts';
import type { TimeWindow, UpdatePolicy } from '../../core/spec.ts';

const policy = (checkInterval: number): UpdatePolicy => ({ ...DEFAULT_POLICY, checkInterval });

const classify = suite('classifyError: busy, offline or refused');

const classifyCases: [string, unknown, AttemptOutcome][] = [
  ['another process holds the home', new FerryError('ERR_BUSY', 'held'), 'busy'],
  ['an origin that does not answer', new FerryError('ERR_IO', 'no response'), 'offline'],
  ['a full disk', new FerryError('ERR_NO_SPACE', 'full'), 'offline'],
  ['a bad signature', new FerryError('ERR_SIGNATURE', 'bad'), 'refused'],
  ['expired metadata', new FerryError('ERR_EXPIRED', 'old'), 'refused'],
  ['a release that failed too often', new FerryError('ERR_GAVE_UP', 'gave up'), 'refused'],
  ['an unexpected non-ferry error backs off too', new TypeError('bug'), 'offline'],
  ['a bug reported as ERR_INTERNAL backs off too', new FerryError('ERR_INTERNAL', 'impossible state'), 'offline'],
];
for (const [name, err, expected] of classifyCases) {
  classify(name, () => assert.is(classifyError(err), expected));
}
classify.run();

const failures = suite('nextFailures: only offline attempts count, any answer resets');

const failureCases: [number, AttemptOutcome, number][] = [
  [0, 'offline', 1],
  [3, 'offline', 4],
  [3, 'busy', 3],
  [3, 'done', 0],
  [3, 'refused', 0],
  [0, 'done', 0],
  [3, 'disabled', 0],
];
for (const [before, outcome, after] of failureCases) {
  failures(`${before} then ${outcome} -> ${after}`, () => assert.is(nextFailures(before, outcome), after));
}
failures.run();

const wake = suite('afterAttempt: when the agent wakes next');

const wakeCases: { name: string; input: Parameters<typeof afterAttempt>[0]; expected: Wake }[] = [
  { name: 'up to date: the interval, no jitter at rand 0.5', input: { policy: policy(60), failures: 0, outcome: 'done', triggered: false, rand: 0.5 }, expected: { delayMs: 60_000, failures: 0, why: 'interval' } },
  { name: 'success after being offline resets the backoff', input: { policy: policy(60), failures: 4, outcome: 'done', triggered: false, rand: 0.5 }, expected: { delayMs: 60_000, failures: 0, why: 'interval' } },
  { name: 'first offline attempt doubles the wait', input: { policy: policy(60), failures: 0, outcome: 'offline', triggered: false, rand: 0.5 }, expected: { delayMs: 120_000, failures: 1, why: 'backoff' } },
  { name: 'third offline attempt waits 8x', input: { policy: policy(60), failures: 2, outcome: 'offline', triggered: false, rand: 0.5 }, expected: { delayMs: 480_000, failures: 3, why: 'backoff' } },
  { name: 'offline for long: capped at 24 h', input: { policy: policy(3600), failures: 20, outcome: 'offline', triggered: false, rand: 0.5 }, expected: { delayMs: 86_400_000, failures: 21, why: 'backoff' } },
  { name: 'busy home: retried soon, no backoff', input: { policy: policy(3600), failures: 0, outcome: 'busy', triggered: false, rand: 0.5 }, expected: { delayMs: BUSY_RETRY_MS, failures: 0, why: 'busy' } },
  { name: 'busy home with a short interval: never later than the interval', input: { policy: policy(1), failures: 0, outcome: 'busy', triggered: false, rand: 0.5 }, expected: { delayMs: 1000, failures: 0, why: 'busy' } },
  { name: 'busy while offline keeps the count', input: { policy: policy(3600), failures: 2, outcome: 'busy', triggered: false, rand: 0.5 }, expected: { delayMs: BUSY_RETRY_MS, failures: 2, why: 'busy' } },
  { name: 'a refusal is an answer: interval, count reset', input: { policy: policy(60), failures: 2, outcome: 'refused', triggered: false, rand: 0.5 }, expected: { delayMs: 60_000, failures: 0, why: 'interval' } },
  { name: 'a USB drop during the attempt: again at once', input: { policy: policy(3600), failures: 0, outcome: 'done', triggered: true, rand: 0.5 }, expected: { delayMs: 0, failures: 0, why: 'triggered' } },
  { name: 'a USB drop while offline: at once, still counted', input: { policy: policy(3600), failures: 1, outcome: 'offline', triggered: true, rand: 0.5 }, expected: { delayMs: 0, failures: 2, why: 'triggered' } },
  { name: 'issue 13 item 15: disabled: no attempt, the next look at ferry.json after the interval', input: { policy: policy(60), failures: 2, outcome: 'disabled', triggered: false, rand: 0.5 }, expected: { delayMs: 60_000, failures: 0, why: 'disabled' } },
  { name: 'issue 13 item 15: disabled and a USB drop: ferry.json is read again at once', input: { policy: policy(60), failures: 0, outcome: 'disabled', triggered: true, rand: 0.5 }, expected: { delayMs: 0, failures: 0, why: 'triggered' } },
  { name: 'jitter: rand 0 is 10% early', input: { policy: policy(100), failures: 0, outcome: 'done', triggered: false, rand: 0 }, expected: { delayMs: 90_000, failures: 0, why: 'interval' } },
];
for (const c of wakeCases) {
  wake(c.name, () => assert.equal(afterAttempt(c.input), c.expected));
}
wake.run();

const windowWake = suite('afterAttempt: a release waiting for the maintenance window wakes the agent when the window opens');

// Wednesdays 09-17 UTC; 2026-12-02 is a Wednesday.
const WEDNESDAY: TimeWindow = { days: [3], startHour: 9, endHour: 17, timezone: 'UTC' };
const windowed = (checkInterval: number, window: TimeWindow | null = WEDNESDAY): UpdatePolicy => ({ ...DEFAULT_POLICY, checkInterval, maintenanceWindow: window });
const HOUR = 3_600_000;
const at = (iso: string) => new Date(iso);

const windowCases: { name: string; input: Parameters<typeof afterAttempt>[0]; expected: Wake }[] = [
  { name: 'an hour before the window with a 3 h interval: wakes at the opening plus the grace second (rand 0)', input: { policy: windowed(3 * 3600), failures: 0, outcome: 'done', triggered: false, rand: 0, waitingForWindow: true, now: at('2026-12-02T08:00:00Z') }, expected: { delayMs: HOUR + WINDOW_GRACE_MS, failures: 0, why: 'window' } },
  { name: 'the jitter is only ever later than the opening: rand 0.5 adds 5% of the half hour waited', input: { policy: windowed(3 * 3600), failures: 0, outcome: 'done', triggered: false, rand: 0.5, waitingForWindow: true, now: at('2026-12-02T08:30:00Z') }, expected: { delayMs: HOUR / 2 + WINDOW_GRACE_MS + 90_000, failures: 0, why: 'window' } },
  { name: 'the jitter is capped so the window keeps almost all its length (rand 1, an hour waited)', input: { policy: windowed(3 * 3600), failures: 0, outcome: 'done', triggered: false, rand: 1, waitingForWindow: true, now: at('2026-12-02T08:00:00Z') }, expected: { delayMs: HOUR + WINDOW_GRACE_MS + WINDOW_JITTER_CAP_MS, failures: 0, why: 'window' } },
  { name: 'ten seconds before the window: at most a second of jitter', input: { policy: windowed(3 * 3600), failures: 0, outcome: 'done', triggered: false, rand: 1, waitingForWindow: true, now: at('2026-12-02T08:59:50Z') }, expected: { delayMs: 10_000 + WINDOW_GRACE_MS + 1_000, failures: 0, why: 'window' } },
  { name: 'the window opened while the attempt ran: try again after the grace second', input: { policy: windowed(3 * 3600), failures: 0, outcome: 'done', triggered: false, rand: 1, waitingForWindow: true, now: at('2026-12-02T09:00:00.500Z') }, expected: { delayMs: WINDOW_GRACE_MS, failures: 0, why: 'window' } },
  { name: 'the interval comes before the window: the interval wins', input: { policy: windowed(60), failures: 0, outcome: 'done', triggered: false, rand: 0.5, waitingForWindow: true, now: at('2026-12-02T08:00:00Z') }, expected: { delayMs: 60_000, failures: 0, why: 'interval' } },
  { name: 'a window six days away and a one-day interval: the interval wins', input: { policy: windowed(24 * 3600), failures: 0, outcome: 'done', triggered: false, rand: 0.5, waitingForWindow: true, now: at('2026-12-03T09:00:00Z') }, expected: { delayMs: 24 * HOUR, failures: 0, why: 'interval' } },
  { name: 'waiting for approval, not the window: the interval, even while the window is shut', input: { policy: windowed(3 * 3600), failures: 0, outcome: 'done', triggered: false, rand: 0.5, waitingForWindow: false, now: at('2026-12-02T08:00:00Z') }, expected: { delayMs: 3 * HOUR, failures: 0, why: 'interval' } },
  { name: 'the window was removed from the policy since the attempt: try again after the grace second', input: { policy: windowed(3 * 3600, null), failures: 0, outcome: 'done', triggered: false, rand: 0.5, waitingForWindow: true, now: at('2026-12-02T08:00:00Z') }, expected: { delayMs: WINDOW_GRACE_MS, failures: 0, why: 'window' } },
  { name: 'a USB drop still wins over the window: at once', input: { policy: windowed(3 * 3600), failures: 0, outcome: 'done', triggered: true, rand: 0.5, waitingForWindow: true, now: at('2026-12-02T08:00:00Z') }, expected: { delayMs: 0, failures: 0, why: 'triggered' } },
  { name: 'a wrapping Friday 22-02 Berlin window, Friday 19:30 CET, 3 h interval: wakes at 22:00 CET', input: { policy: windowed(3 * 3600, { days: [5], startHour: 22, endHour: 2, timezone: 'Europe/Berlin' }), failures: 0, outcome: 'done', triggered: false, rand: 0, waitingForWindow: true, now: at('2026-11-27T18:30:00Z') }, expected: { delayMs: 2.5 * HOUR + WINDOW_GRACE_MS, failures: 0, why: 'window' } },
];
for (const c of windowCases) {
  windowWake(c.name, () => assert.equal(afterAttempt(c.input), c.expected));
}
windowWake.run();
