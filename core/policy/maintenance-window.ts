// When a maintenance window next opens, as a pure function of the window and `now`, so `ferry agent`
// can wake for it instead of sleeping through it (core/policy/agent-schedule.ts). Whether an instant is
// inside the window is decided by inMaintenanceWindow (core/policy/policy.ts) and nothing else: this file
// only searches time for the first instant that function calls open, so the agent's alarm and the
// updater's gate can never disagree about weekdays, hours, windows wrapping past midnight, or DST.
//
// The search: from `now`, look every 15 minutes for an open instant (up to 15 days ahead), then
// bisect between the last closed and the first open probe down to the millisecond. 15 minutes is
// shorter than any opening can be (an hour of local time lasts at least 30 minutes of real time in
// every zone of the tz database, Lord Howe's half-hour DST step being the shortest), so no opening
// is stepped over. 15 days covers a one-weekday window whose only hour a spring-forward skipped
// (the next opening is a week later).

import { inMaintenanceWindow } from './policy.ts';
import type { TimeWindow } from '../spec.ts';

const PROBE_STEP_MS = 15 * 60 * 1000;
const HORIZON_MS = 15 * 24 * 3600 * 1000;

/**
 * The first instant at or after `now` when the window is open: `now` itself when it is open
 * already (a null window is always open); null if it does not open within 15 days, which no valid
 * window does.
 */
export function nextWindowOpening(window: TimeWindow | null, now: Date): Date | null {
  const open = (ms: number) => inMaintenanceWindow(window, new Date(ms));
  const start = now.getTime();
  if (open(start)) return new Date(start);
  let closed = start;
  for (let probe = start + PROBE_STEP_MS; probe - start <= HORIZON_MS; probe += PROBE_STEP_MS) {
    if (!open(probe)) {
      closed = probe;
      continue;
    }
    // closed is shut, probe is open: the opening is in (closed, probe].
    let hi = probe;
    while (hi - closed > 1) {
      const mid = Math.floor((closed + hi) / 2);
      if (open(mid)) hi = mid;
      else closed = mid;
    }
    return new Date(hi);
  }
  return null;
}

/**
 * `Sun 2026-10-25 02:30:00 GMT+1 (Europe/Berlin)`: an instant as the people at the device read it,
 * with the offset, so the two 02:30s of a fall-back day are told apart.
 */
export function formatLocalTime(at: Date, timeZone: string): string {
  const parts = new Intl.DateTimeFormat('en-US', {
    timeZone, hourCycle: 'h23', weekday: 'short', year: 'numeric', month: '2-digit', day: '2-digit',
    hour: '2-digit', minute: '2-digit', second: '2-digit', timeZoneName: 'short',
  }).formatToParts(at);
  const part = (type: Intl.DateTimeFormatPartTypes) => parts.find((p) => p.type === type)?.value ?? '?';
  return `${part('weekday')} ${part('year')}-${part('month')}-${part('day')} ${part('hour')}:${part('minute')}:${part('second')} ${part('timeZoneName')} (${timeZone})`;
}
