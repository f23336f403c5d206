// ferry.json policy fields that may be written more than one way: the maintenance window's
// weekdays under ferry's name `days` or the spec's `dayOfWeek`, and `checkInterval` as integer
// seconds or a duration like the CLI's ("90s", "1h", "2d", core/io/duration.ts). Each returns the
// one canonical value UpdatePolicy holds (core/spec.ts); bad input is ERR_USAGE naming the field
// and showing the value given, as everywhere in parsePolicy (core/policy/policy.ts).

import { FerryError } from '../errors.ts';
import { parseDurationMs } from '../io/duration.ts';

/** The longest check interval: a week. A device that checks less often misses expiry and security fixes for too long. */
export const MAX_CHECK_INTERVAL_S = 7 * 24 * 3600;

function usage(what: string, expected: string, got: unknown): never {
  throw new FerryError('ERR_USAGE', `${what} must be ${expected} (got ${JSON.stringify(got) ?? String(got)})`);
}

function weekdays(raw: unknown, what: string): number[] {
  if (!Array.isArray(raw)) usage(what, 'an array of weekdays 0 (Sunday) to 6 (Saturday)', raw);
  const days = raw.map((d: unknown, i) => {
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0 || d > 6) usage(`${what}[${i}]`, 'an integer from 0 to 6', d);
    return d;
  });
  if (new Set(days).size !== days.length) usage(what, 'a list without repeats', raw);
  return days;
}

/**
 * The window's weekdays from `days` or `dayOfWeek` (the spec's name). Left out: [] (every day).
 * Both given: they must list the same days (in any order), else neither is trusted.
 */
export function parseWindowDays(window: { days?: unknown; dayOfWeek?: unknown }, what: string): number[] {
  const days = window.days === undefined ? undefined : weekdays(window.days, `${what}.days`);
  const dayOfWeek = window.dayOfWeek === undefined ? undefined : weekdays(window.dayOfWeek, `${what}.dayOfWeek`);
  if (days !== undefined && dayOfWeek !== undefined) {
    const same = days.length === dayOfWeek.length && days.every((d) => dayOfWeek.includes(d));
    if (!same) usage(`${what}.dayOfWeek`, `the same days as ${what}.days ${JSON.stringify(window.days)} (give one of the two)`, window.dayOfWeek);
  }
  return days ?? dayOfWeek ?? [];
}

/**
 * Seconds between checks: an integer (seconds) or a duration string ("90s", "1h", "2d"), from
 * 1 s to MAX_CHECK_INTERVAL_S, in whole seconds ("1500ms" is refused: the schedule counts seconds).
 */
export function parseCheckInterval(value: unknown, what: string): number {
  const expected = `whole seconds from 1 to ${MAX_CHECK_INTERVAL_S} (an integer) or a duration such as "90s", "1h", "2d"`;
  let seconds: number;
  if (typeof value === 'number') {
    seconds = value;
  } else if (typeof value === 'string' && !/^\s*\d+\s*$/.test(value)) {
    // A bare number in quotes ("3600") is refused like before: JSON has numbers for that.
    let ms: number;
    try {
      ms = parseDurationMs(value);
    } catch {
      usage(what, expected, value);
    }
    if (ms % 1000 !== 0) usage(what, expected, value);
    seconds = ms / 1000;
  } else {
    usage(what, expected, value);
  }
  if (!Number.isSafeInteger(seconds) || seconds < 1 || seconds > MAX_CHECK_INTERVAL_S) usage(what, expected, value);
  return seconds;
}
