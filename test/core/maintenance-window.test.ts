// When a maintenance window next opens (core/policy/maintenance-window.ts), as a table: DST spring-forward
// and fall-back days in Europe/Berlin and America/New_York, a window wrapping past midnight, a
// window on one weekday only, `now` inside, just before and just after a window, a half-hour-offset
// zone, and no window. Every expected instant was worked out by hand and checked against GNU
// `date` with the same TZ (an implementation independent of Intl), e.g.
// `TZ=Europe/Berlin date -d 2026-10-25T02:00:00Z` -> Sun 2026-10-25 03:00:00 CET.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { formatLocalTime, nextWindowOpening } from '../../core/policy/maintenance-window.ts';
import { inMaintenanceWindow } from '../../core/policy/policy.ts';
import type { TimeWindow } from '../../core/spec.ts';

const w = (days: number[], startHour: number, endHour: number, timezone: string): TimeWindow => ({ days, startHour, endHour, timezone });
const BERLIN = 'Europe/Berlin';
const NEW_YORK = 'America/New_York';
const EVERY_DAY: number[] = [];
const NOW = 'now';

interface Case {
  name: string;
  window: TimeWindow | null;
  now: string;
  /** The ISO instant expected, or NOW when the window is open at `now` already. */
  opens: string;
}

const cases: Case[] = [
  // Europe/Berlin, spring forward on Sun 2026-03-29: at 01:00Z 02:00 CET becomes 03:00 CEST.
  { name: 'Berlin spring-forward day: a 1-4 window opens at 01:00 CET, before the jump', window: w(EVERY_DAY, 1, 4, BERLIN), now: '2026-03-28T23:00:00Z', opens: '2026-03-29T00:00:00Z' },
  { name: 'Berlin spring-forward day: a 3-5 window opens 30 real minutes after 01:30 CET, when the clock jumps to 03:00 CEST', window: w(EVERY_DAY, 3, 5, BERLIN), now: '2026-03-29T00:30:00Z', opens: '2026-03-29T01:00:00Z' },
  { name: 'Berlin spring-forward day: a Sunday 2-3 window does not exist that day and opens a week later', window: w([0], 2, 3, BERLIN), now: '2026-03-28T23:00:00Z', opens: '2026-04-05T00:00:00Z' },
  // Europe/Berlin, fall back on Sun 2026-10-25: at 01:00Z 03:00 CEST becomes 02:00 CET.
  { name: 'Berlin fall-back day: a 3-4 window opens only after the repeated hour, at 03:00 CET', window: w(EVERY_DAY, 3, 4, BERLIN), now: '2026-10-25T00:30:00Z', opens: '2026-10-25T02:00:00Z' },
  { name: 'Berlin fall-back day: inside a 2-3 window during the second pass of 02:30 it is open now', window: w(EVERY_DAY, 2, 3, BERLIN), now: '2026-10-25T01:30:00Z', opens: NOW },
  { name: 'Berlin fall-back day: a 2-3 window opens at the first 02:00 (CEST)', window: w(EVERY_DAY, 2, 3, BERLIN), now: '2026-10-24T23:59:00Z', opens: '2026-10-25T00:00:00Z' },
  // America/New_York, spring forward on Sun 2026-03-08: at 07:00Z 02:00 EST becomes 03:00 EDT.
  { name: 'New York spring-forward day: a 2-3 window is skipped and opens the next day at 02:00 EDT', window: w(EVERY_DAY, 2, 3, NEW_YORK), now: '2026-03-08T05:00:00Z', opens: '2026-03-09T06:00:00Z' },
  { name: 'New York spring-forward day: a 3-4 window opens at the jump, 03:00 EDT', window: w(EVERY_DAY, 3, 4, NEW_YORK), now: '2026-03-08T05:00:00Z', opens: '2026-03-08T07:00:00Z' },
  // America/New_York, fall back on Sun 2026-11-01: at 06:00Z 02:00 EDT becomes 01:00 EST.
  { name: 'New York fall-back day: a 2-3 window opens three real hours after midnight, at 02:00 EST', window: w(EVERY_DAY, 2, 3, NEW_YORK), now: '2026-11-01T04:00:00Z', opens: '2026-11-01T07:00:00Z' },
  { name: 'New York fall-back day: inside a 1-2 window during the repeated 01:30 EST it is open now', window: w(EVERY_DAY, 1, 2, NEW_YORK), now: '2026-11-01T06:30:00Z', opens: NOW },
  { name: 'New York fall-back day: a 1-2 window just closed at 02:00 EST opens the next day at 01:00 EST', window: w(EVERY_DAY, 1, 2, NEW_YORK), now: '2026-11-01T07:00:00Z', opens: '2026-11-02T06:00:00Z' },
  // A Friday 22-02 window in Berlin (CET), wrapping past midnight into Saturday.
  { name: 'wrapping window: a millisecond before Friday 22:00 it opens at 22:00', window: w([5], 22, 2, BERLIN), now: '2026-11-27T20:59:59.999Z', opens: '2026-11-27T21:00:00Z' },
  { name: 'wrapping window: Saturday 01:30 belongs to the window Friday opened, so it is open now', window: w([5], 22, 2, BERLIN), now: '2026-11-28T00:30:00Z', opens: NOW },
  { name: 'wrapping window: just closed at Saturday 02:00, it opens next Friday at 22:00', window: w([5], 22, 2, BERLIN), now: '2026-11-28T01:00:00Z', opens: '2026-12-04T21:00:00Z' },
  { name: 'wrapping window: Saturday 22:30 is not a Friday, so it opens next Friday at 22:00', window: w([5], 22, 2, BERLIN), now: '2026-11-28T21:30:00Z', opens: '2026-12-04T21:00:00Z' },
  // A Wednesday-only 9-17 window in UTC.
  { name: 'one weekday only: a millisecond before Wednesday 09:00 it opens at 09:00', window: w([3], 9, 17, 'UTC'), now: '2026-12-02T08:59:59.999Z', opens: '2026-12-02T09:00:00Z' },
  { name: 'one weekday only: exactly at the opening it is open now', window: w([3], 9, 17, 'UTC'), now: '2026-12-02T09:00:00Z', opens: NOW },
  { name: 'one weekday only: a millisecond after the opening it is open now', window: w([3], 9, 17, 'UTC'), now: '2026-12-02T09:00:00.001Z', opens: NOW },
  { name: 'one weekday only: just closed at Wednesday 17:00 it opens next Wednesday', window: w([3], 9, 17, 'UTC'), now: '2026-12-02T17:00:00Z', opens: '2026-12-09T09:00:00Z' },
  { name: 'one weekday only: on Thursday it opens next Wednesday', window: w([3], 9, 17, 'UTC'), now: '2026-12-03T12:00:00Z', opens: '2026-12-09T09:00:00Z' },
  // Other shapes.
  { name: 'a +05:45 zone: a 9-10 window in Asia/Kathmandu opens at a quarter past the UTC hour', window: w(EVERY_DAY, 9, 10, 'Asia/Kathmandu'), now: '2026-11-26T00:00:00Z', opens: '2026-11-26T03:15:00Z' },
  { name: 'an empty day list is every day: a 23-24 window just closed opens the next evening', window: w(EVERY_DAY, 23, 24, 'UTC'), now: '2026-11-27T00:00:00Z', opens: '2026-11-27T23:00:00Z' },
  { name: 'no window: always open, so now', window: null, now: '2026-11-26T12:34:56.789Z', opens: NOW },
];

const opening = suite('nextWindowOpening: the first instant at or after now when the window is open');

for (const c of cases) {
  opening(c.name, () => {
    const now = new Date(c.now);
    const got = nextWindowOpening(c.window, now);
    assert.ok(got, 'an opening is found');
    assert.is(got!.toISOString(), new Date(c.opens === NOW ? c.now : c.opens).toISOString());
    // The agent must never wake before the updater's gate opens: the answer is open by the very
    // function the updater judges with, and (unless it is now) the millisecond before is not.
    assert.ok(inMaintenanceWindow(c.window, got!), 'open at the answer');
    if (c.opens !== NOW) assert.not.ok(inMaintenanceWindow(c.window, new Date(got!.getTime() - 1)), 'closed a millisecond earlier');
  });
}

opening.run();

const local = suite('formatLocalTime: an instant as people at the device read it');

local('names the weekday, local date and time and the UTC offset, so the repeated hour of a fall-back day reads twice distinctly', () => {
  assert.is(formatLocalTime(new Date('2026-10-25T00:30:00Z'), BERLIN), 'Sun 2026-10-25 02:30:00 GMT+2 (Europe/Berlin)');
  assert.is(formatLocalTime(new Date('2026-10-25T01:30:00Z'), BERLIN), 'Sun 2026-10-25 02:30:00 GMT+1 (Europe/Berlin)');
  assert.is(formatLocalTime(new Date('2026-11-01T06:30:00Z'), NEW_YORK), 'Sun 2026-11-01 01:30:00 EST (America/New_York)');
});

local.run();
