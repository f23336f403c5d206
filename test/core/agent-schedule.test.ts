// The agent's wake-up rules as tables: how attempt errors are classified, how the count of
// consecutive offline attempts moves, and how long the agent sleeps next.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { afterAttempt, BUSY_RETRY_MS, classifyError, nextFailures, type AttemptOutcome, type Wake } from '../../core/agent-schedule.ts';
import { FerryError } from '../../core/errors.ts';
import { DEFAULT_POLICY } from '../../core/policy.ts';
import type { UpdatePolicy } from '../../core/spec.ts';

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
  { name: 'jitter: rand 0 is 10% early', input: { policy: policy(100), failures: 0, outcome: 'done', triggered: false, rand: 0 }, expected: { delayMs: 90_000, failures: 0, why: 'interval' } },
];
for (const c of wakeCases) {
  wake(c.name, () => assert.equal(afterAttempt(c.input), c.expected));
}
wake.run();
