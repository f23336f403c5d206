// The device's update policy as tables: parsing ferry.json's "policy", the channels a device
// reads, maintenance windows in real time zones (DST changes, windows past midnight), when a
// staged release may be switched to, which release to take, and when to check again.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { CHANNELS, type Channel } from '../../core/trust/metadata.ts';
import {
  channelsFor,
  decideApply,
  decideTarget,
  DEFAULT_POLICY,
  inMaintenanceWindow,
  nextCheckDelay,
  parsePolicy,
  type ApplyDecision,
  type Candidate,
  type ReleaseFlags,
} from '../../core/policy/policy.ts';
import type { TimeWindow, UpdatePolicy } from '../../core/spec.ts';
import { assertCode } from '../helpers/assert-code.ts';

function policy(overrides: Partial<UpdatePolicy> = {}): UpdatePolicy {
  return { ...DEFAULT_POLICY, ...overrides };
}

// ---------------------------------------------------------------------------------------------

const parsing = suite('parses a policy from ferry.json, defaults filling what is left out');

const berlinNights: TimeWindow = { days: [1, 2, 3, 4, 5], startHour: 22, endHour: 2, timezone: 'Europe/Berlin' };

const parsed: { name: string; input: unknown; expected: UpdatePolicy }[] = [
  {
    name: 'the defaults are enabled, auto, stable, hourly, no window, no approval, no downgrade',
    input: {},
    expected: { enabled: true, autoUpdate: true, channel: 'stable', checkInterval: 3600, maintenanceWindow: null, requireApproval: false, allowDowngrade: false },
  },
  { name: 'no policy at all is the defaults', input: undefined, expected: policy() },
  { name: 'a partial policy is merged over the defaults', input: { channel: 'beta', requireApproval: true }, expected: policy({ channel: 'beta', requireApproval: true }) },
  {
    name: 'a full policy with a window reads back as written',
    input: { enabled: false, autoUpdate: false, channel: 'nightly', checkInterval: 60, maintenanceWindow: berlinNights, requireApproval: true, allowDowngrade: true },
    expected: { enabled: false, autoUpdate: false, channel: 'nightly', checkInterval: 60, maintenanceWindow: berlinNights, requireApproval: true, allowDowngrade: true },
  },
  { name: 'an explicit null window is always open', input: { maintenanceWindow: null }, expected: policy() },
  {
    name: 'a window without days is every day',
    input: { maintenanceWindow: { startHour: 2, endHour: 4, timezone: 'UTC' } },
    expected: policy({ maintenanceWindow: { days: [], startHour: 2, endHour: 4, timezone: 'UTC' } }),
  },
  {
    name: 'hours at their bounds (0 and 24) are accepted',
    input: { maintenanceWindow: { days: [0, 6], startHour: 0, endHour: 24, timezone: 'America/New_York' } },
    expected: policy({ maintenanceWindow: { days: [0, 6], startHour: 0, endHour: 24, timezone: 'America/New_York' } }),
  },
  { name: 'the security channel is accepted', input: { channel: 'security' }, expected: policy({ channel: 'security' }) },
];

for (const c of parsed) {
  parsing(c.name, () => {
    assert.equal(parsePolicy(c.input), c.expected);
  });
}

parsing('parsing returns a fresh object: changing it does not change the defaults', () => {
  const p = parsePolicy({});
  p.channel = 'beta';
  assert.is(DEFAULT_POLICY.channel, 'stable');
  assert.is(parsePolicy(undefined).channel, 'stable');
});

const win = (w: Record<string, unknown>): unknown => ({ maintenanceWindow: { days: [], startHour: 2, endHour: 4, timezone: 'UTC', ...w } });

const refused: { name: string; input: unknown; field: string }[] = [
  { name: 'a policy that is not an object', input: ['stable'], field: 'policy' },
  { name: 'a null policy', input: null, field: 'policy' },
  { name: 'a misspelt setting', input: { requireAproval: true }, field: 'policy.requireAproval' },
  { name: 'enabled as a string', input: { enabled: 'yes' }, field: 'policy.enabled' },
  { name: 'autoUpdate as a number', input: { autoUpdate: 1 }, field: 'policy.autoUpdate' },
  { name: 'requireApproval null', input: { requireApproval: null }, field: 'policy.requireApproval' },
  { name: 'allowDowngrade as the string "false"', input: { allowDowngrade: 'false' }, field: 'policy.allowDowngrade' },
  { name: 'an unknown channel', input: { channel: 'canary' }, field: 'policy.channel' },
  { name: 'a channel in capitals', input: { channel: 'Stable' }, field: 'policy.channel' },
  { name: 'checkInterval 0', input: { checkInterval: 0 }, field: 'policy.checkInterval' },
  { name: 'a fractional checkInterval', input: { checkInterval: 1.5 }, field: 'policy.checkInterval' },
  { name: 'checkInterval as a string', input: { checkInterval: '3600' }, field: 'policy.checkInterval' },
  { name: 'checkInterval over a day', input: { checkInterval: 86401 }, field: 'policy.checkInterval' },
  { name: 'a window that is a string', input: { maintenanceWindow: 'nights' }, field: 'policy.maintenanceWindow' },
  { name: 'an invalid timezone', input: win({ timezone: 'Mars/Olympus' }), field: 'policy.maintenanceWindow.timezone' },
  { name: 'an empty timezone', input: win({ timezone: '' }), field: 'policy.maintenanceWindow.timezone' },
  { name: 'a missing timezone', input: win({ timezone: undefined }), field: 'policy.maintenanceWindow.timezone' },
  { name: 'a UTC offset instead of a zone name', input: win({ timezone: '+02:00' }), field: 'policy.maintenanceWindow.timezone' },
  { name: 'weekday 7', input: win({ days: [7] }), field: 'policy.maintenanceWindow.days[0]' },
  { name: 'weekday -1', input: win({ days: [1, -1] }), field: 'policy.maintenanceWindow.days[1]' },
  { name: 'a fractional weekday', input: win({ days: [1.5] }), field: 'policy.maintenanceWindow.days[0]' },
  { name: 'a weekday repeated', input: win({ days: [1, 2, 1] }), field: 'policy.maintenanceWindow.days' },
  { name: 'days that are not a list', input: win({ days: 'weekdays' }), field: 'policy.maintenanceWindow.days' },
  { name: 'startHour 24', input: win({ startHour: 24 }), field: 'policy.maintenanceWindow.startHour' },
  { name: 'startHour -1', input: win({ startHour: -1 }), field: 'policy.maintenanceWindow.startHour' },
  { name: 'a missing startHour', input: win({ startHour: undefined }), field: 'policy.maintenanceWindow.startHour' },
  { name: 'endHour 0', input: win({ endHour: 0 }), field: 'policy.maintenanceWindow.endHour' },
  { name: 'endHour 25', input: win({ endHour: 25 }), field: 'policy.maintenanceWindow.endHour' },
  { name: 'startHour equal to endHour', input: win({ startHour: 3, endHour: 3 }), field: 'policy.maintenanceWindow.endHour' },
  { name: 'an unknown window setting', input: win({ start: 2 }), field: 'policy.maintenanceWindow.start' },
];

for (const c of refused) {
  parsing(`refuses ${c.name} (ERR_USAGE naming ${c.field})`, () => {
    const err = assertCode(() => parsePolicy(c.input), 'ERR_USAGE');
    assert.ok(err.message.startsWith(`${c.field} `), `message should name ${c.field}: ${err.message}`);
  });
}

parsing.run();

// ---------------------------------------------------------------------------------------------

const channels = suite('reads the channels a device follows, in preference order');

const channelCases: { name: string; input: Channel; expected: Channel[] }[] = [
  { name: 'a stable device reads stable, then security', input: 'stable', expected: ['stable', 'security'] },
  { name: 'a beta device also reads stable', input: 'beta', expected: ['beta', 'stable', 'security'] },
  { name: 'a nightly device reads beta and stable too', input: 'nightly', expected: ['nightly', 'beta', 'stable', 'security'] },
  { name: 'a security device reads only security', input: 'security', expected: ['security'] },
];

for (const c of channelCases) {
  channels(c.name, () => {
    assert.equal(channelsFor(c.input), c.expected);
  });
}

channels('every channel reads security, once and last: a security fix reaches every device (issue 13 item 1)', () => {
  for (const ch of CHANNELS) {
    const read = channelsFor(ch);
    assert.is(read.filter((c) => c === 'security').length, 1, `${ch} reads security once`);
    assert.is(read[read.length - 1], 'security', `${ch} reads security last`);
    assert.is(read[0], ch, `${ch} reads its own channel first`);
  }
});

channels('the list returned is the caller’s to change', () => {
  channelsFor('stable').push('beta');
  assert.equal(channelsFor('stable'), ['stable', 'security']);
});

channels.run();

// ---------------------------------------------------------------------------------------------

const windows = suite('judges maintenance windows in their own time zone');

const w = (timezone: string, startHour: number, endHour: number, days: number[] = []): TimeWindow => ({ days, startHour, endHour, timezone });
const SUN = 0, MON = 1, FRI = 5, SAT = 6;

// 2026-01-02 is a Friday. Berlin: CET (+1) until 2026-03-29 01:00Z, CEST (+2) until 2026-10-25 01:00Z.
const windowCases: { name: string; input: { window: TimeWindow | null; now: string }; expected: boolean }[] = [
  { name: 'no window is always open', input: { window: null, now: '2026-01-02T12:34:00Z' }, expected: true },
  { name: 'opens at startHour', input: { window: w('UTC', 9, 17, [MON]), now: '2026-01-05T09:00:00Z' }, expected: true },
  { name: 'closes at endHour', input: { window: w('UTC', 9, 17, [MON]), now: '2026-01-05T17:00:00Z' }, expected: false },
  { name: 'closed before startHour', input: { window: w('UTC', 9, 17, [MON]), now: '2026-01-05T08:59:59Z' }, expected: false },
  { name: 'closed on a day not listed', input: { window: w('UTC', 9, 17, [MON]), now: '2026-01-03T10:00:00Z' }, expected: false },
  { name: 'endHour 24 keeps the last hour open', input: { window: w('UTC', 22, 24), now: '2026-01-02T23:59:00Z' }, expected: true },
  { name: 'endHour 24 closes at midnight', input: { window: w('UTC', 22, 24), now: '2026-01-03T00:00:00Z' }, expected: false },
  { name: 'a 0-24 window is open all day', input: { window: w('Europe/Berlin', 0, 24), now: '2026-06-01T13:00:00Z' }, expected: true },

  // Berlin, spring forward on Sunday 2026-03-29: 02:00 CET becomes 03:00 CEST at 01:00Z.
  { name: 'Berlin, DST starts: 01:30Z is 03:30 CEST, inside a Sunday 03-04 window', input: { window: w('Europe/Berlin', 3, 4, [SUN]), now: '2026-03-29T01:30:00Z' }, expected: true },
  { name: 'Berlin, DST starts: 00:30Z is 01:30 CET, before a Sunday 03-04 window', input: { window: w('Europe/Berlin', 3, 4, [SUN]), now: '2026-03-29T00:30:00Z' }, expected: false },
  { name: 'Berlin, DST starts: 02:30Z is 04:30 CEST, after a Sunday 03-04 window', input: { window: w('Europe/Berlin', 3, 4, [SUN]), now: '2026-03-29T02:30:00Z' }, expected: false },
  { name: 'Berlin, DST starts: a 02-03 window never opens (the hour is skipped)', input: { window: w('Europe/Berlin', 2, 3, [SUN]), now: '2026-03-29T01:00:00Z' }, expected: false },
  { name: 'Berlin, the day before DST: 02:30Z is 03:30 CET, inside 03-04', input: { window: w('Europe/Berlin', 3, 4), now: '2026-03-28T02:30:00Z' }, expected: true },

  // Berlin, fall back on Sunday 2026-10-25: 03:00 CEST becomes 02:00 CET at 01:00Z; 02:xx happens twice.
  { name: 'Berlin, DST ends: 02:30Z is 03:30 CET, inside a Sunday 03-04 window', input: { window: w('Europe/Berlin', 3, 4, [SUN]), now: '2026-10-25T02:30:00Z' }, expected: true },
  { name: 'Berlin, DST ends: 01:30Z is the second 02:30, before a Sunday 03-04 window', input: { window: w('Europe/Berlin', 3, 4, [SUN]), now: '2026-10-25T01:30:00Z' }, expected: false },
  { name: 'Berlin, DST ends: the first 02:30 (CEST) is inside a 02-03 window', input: { window: w('Europe/Berlin', 2, 3, [SUN]), now: '2026-10-25T00:30:00Z' }, expected: true },
  { name: 'Berlin, DST ends: the second 02:30 (CET) is inside a 02-03 window too', input: { window: w('Europe/Berlin', 2, 3, [SUN]), now: '2026-10-25T01:30:00Z' }, expected: true },

  // A Friday 22-02 window: it opens Friday evening and stays open into Saturday.
  { name: 'Fri 22-02 is open Sat 01:00', input: { window: w('UTC', 22, 2, [FRI]), now: '2026-01-03T01:00:00Z' }, expected: true },
  { name: 'Fri 22-02 is closed Sat 02:30', input: { window: w('UTC', 22, 2, [FRI]), now: '2026-01-03T02:30:00Z' }, expected: false },
  { name: 'Fri 22-02 is open Fri 23:00', input: { window: w('UTC', 22, 2, [FRI]), now: '2026-01-02T23:00:00Z' }, expected: true },
  { name: 'Fri 22-02 is closed Fri 21:59', input: { window: w('UTC', 22, 2, [FRI]), now: '2026-01-02T21:59:00Z' }, expected: false },
  { name: 'Fri 22-02 is closed Fri 01:00 (that would be Thursday’s window)', input: { window: w('UTC', 22, 2, [FRI]), now: '2026-01-02T01:00:00Z' }, expected: false },
  { name: 'Fri 22-02 is closed Sat 22:30 (Saturday has no window)', input: { window: w('UTC', 22, 2, [FRI]), now: '2026-01-03T22:30:00Z' }, expected: false },
  { name: 'Fri 22-02 in Berlin is open at 21:30Z (22:30 CET)', input: { window: w('Europe/Berlin', 22, 2, [FRI]), now: '2026-01-02T21:30:00Z' }, expected: true },
  { name: 'Sat 22-02 is open Sun 00:30 (the week wraps too)', input: { window: w('UTC', 22, 2, [SAT]), now: '2026-01-04T00:30:00Z' }, expected: true },

  // The same instant in New York and in UTC.
  { name: 'UTC 02-04 is open at 03:00Z', input: { window: w('UTC', 2, 4), now: '2026-01-15T03:00:00Z' }, expected: true },
  { name: 'New York 02-04 is closed at 03:00Z (22:00 EST the evening before)', input: { window: w('America/New_York', 2, 4), now: '2026-01-15T03:00:00Z' }, expected: false },
  { name: 'UTC 02-04 is closed at 08:00Z', input: { window: w('UTC', 2, 4), now: '2026-01-15T08:00:00Z' }, expected: false },
  { name: 'New York 02-04 is open at 08:00Z (03:00 EST)', input: { window: w('America/New_York', 2, 4), now: '2026-01-15T08:00:00Z' }, expected: true },
  { name: 'New York in summer is EDT: 08:30Z is 04:30, closed', input: { window: w('America/New_York', 2, 4), now: '2026-07-15T08:30:00Z' }, expected: false },
  { name: 'New York Saturday 20-24 is open at Sunday 02:00Z (Saturday 21:00 EST)', input: { window: w('America/New_York', 20, 24, [SAT]), now: '2026-01-18T02:00:00Z' }, expected: true },
  { name: 'UTC Saturday 20-24 is closed at Sunday 02:00Z', input: { window: w('UTC', 20, 24, [SAT]), now: '2026-01-18T02:00:00Z' }, expected: false },
];

for (const c of windowCases) {
  windows(c.name, () => {
    assert.is(inMaintenanceWindow(c.input.window, new Date(c.input.now)), c.expected);
  });
}

windows.run();

// ---------------------------------------------------------------------------------------------

const applying = suite('decides whether a staged release may be switched to now');

const NIGHTS = w('UTC', 2, 4);
const IN_WINDOW = '2026-01-15T03:00:00Z';
const OUT_OF_WINDOW = '2026-01-15T12:00:00Z';

interface ApplyCase {
  name: string;
  input: { policy?: Partial<UpdatePolicy>; release?: Partial<ReleaseFlags>; approved?: boolean; now?: string; trigger?: 'manual' | 'auto'; ignoreWindow?: boolean };
  expected: { action: 'apply' } | { action: 'wait'; reason: Extract<ApplyDecision, { action: 'wait' }>['reason'] };
}

const SECURITY = { securityFix: true };
const MANDATORY = { mandatory: true };
const APPROVAL = { requireApproval: true };

const applyCases: ApplyCase[] = [
  { name: 'applies inside the window', input: {}, expected: { action: 'apply' } },
  { name: 'waits outside the window', input: { now: OUT_OF_WINDOW }, expected: { action: 'wait', reason: 'window' } },
  { name: 'ignoreWindow applies outside the window', input: { now: OUT_OF_WINDOW, ignoreWindow: true }, expected: { action: 'apply' } },
  { name: 'no window applies at any hour', input: { policy: { maintenanceWindow: null }, now: OUT_OF_WINDOW }, expected: { action: 'apply' } },
  { name: 'an automatic trigger with autoUpdate on applies', input: { trigger: 'auto' }, expected: { action: 'apply' } },

  { name: 'disabled waits on a manual trigger', input: { policy: { enabled: false } }, expected: { action: 'wait', reason: 'disabled' } },
  { name: 'disabled waits on an automatic trigger', input: { policy: { enabled: false }, trigger: 'auto' }, expected: { action: 'wait', reason: 'disabled' } },
  { name: 'disabled holds back even a security fix', input: { policy: { enabled: false }, release: SECURITY, trigger: 'auto' }, expected: { action: 'wait', reason: 'disabled' } },
  { name: 'disabled holds back an approved mandatory release with ignoreWindow', input: { policy: { enabled: false }, release: MANDATORY, approved: true, ignoreWindow: true }, expected: { action: 'wait', reason: 'disabled' } },

  { name: 'autoUpdate off: an automatic trigger waits for a person', input: { policy: { autoUpdate: false }, trigger: 'auto' }, expected: { action: 'wait', reason: 'manual-only' } },
  { name: 'autoUpdate off: a mandatory release still waits for a person', input: { policy: { autoUpdate: false }, release: MANDATORY, trigger: 'auto' }, expected: { action: 'wait', reason: 'manual-only' } },
  { name: 'autoUpdate off: a manual trigger applies', input: { policy: { autoUpdate: false }, trigger: 'manual' }, expected: { action: 'apply' } },
  { name: 'autoUpdate off: a security fix applies automatically, outside the window', input: { policy: { autoUpdate: false }, release: SECURITY, trigger: 'auto', now: OUT_OF_WINDOW }, expected: { action: 'apply' } },

  { name: 'a security release outside the window applies', input: { release: SECURITY, now: OUT_OF_WINDOW }, expected: { action: 'apply' } },
  { name: 'a security release without the required approval applies', input: { policy: APPROVAL, release: SECURITY, now: OUT_OF_WINDOW, trigger: 'auto' }, expected: { action: 'apply' } },

  { name: 'approval required and not given: waits', input: { policy: APPROVAL }, expected: { action: 'wait', reason: 'approval' } },
  { name: 'approval is asked for before the window is looked at', input: { policy: APPROVAL, now: OUT_OF_WINDOW }, expected: { action: 'wait', reason: 'approval' } },
  { name: 'approval required and given: applies in the window', input: { policy: APPROVAL, approved: true }, expected: { action: 'apply' } },
  { name: 'approval given: still waits for the window', input: { policy: APPROVAL, approved: true, now: OUT_OF_WINDOW }, expected: { action: 'wait', reason: 'window' } },
  { name: 'approval given and ignoreWindow: applies outside the window', input: { policy: APPROVAL, approved: true, now: OUT_OF_WINDOW, ignoreWindow: true }, expected: { action: 'apply' } },
  { name: 'ignoreWindow does not stand in for approval', input: { policy: APPROVAL, ignoreWindow: true }, expected: { action: 'wait', reason: 'approval' } },

  { name: 'mandatory without approval applies inside the window', input: { policy: APPROVAL, release: MANDATORY }, expected: { action: 'apply' } },
  { name: 'mandatory without approval waits outside the window', input: { policy: APPROVAL, release: MANDATORY, now: OUT_OF_WINDOW }, expected: { action: 'wait', reason: 'window' } },
  { name: 'mandatory waits for the window even when approval is not required', input: { release: MANDATORY, now: OUT_OF_WINDOW, trigger: 'auto' }, expected: { action: 'wait', reason: 'window' } },
  { name: 'mandatory with ignoreWindow applies outside the window', input: { policy: APPROVAL, release: MANDATORY, now: OUT_OF_WINDOW, ignoreWindow: true }, expected: { action: 'apply' } },
];

for (const c of applyCases) {
  applying(c.name, () => {
    const d = decideApply({
      policy: policy({ maintenanceWindow: NIGHTS, ...c.input.policy }),
      release: { version: '1.2.0', mandatory: false, securityFix: false, ...c.input.release },
      approved: c.input.approved ?? false,
      now: new Date(c.input.now ?? IN_WINDOW),
      trigger: c.input.trigger ?? 'manual',
      ignoreWindow: c.input.ignoreWindow ?? false,
    });
    assert.equal(d.action === 'wait' ? { action: d.action, reason: d.reason } : { action: d.action }, c.expected);
    assert.ok(d.why.includes('1.2.0'), `why names the version: ${d.why}`);
  });
}

applying.run();

// ---------------------------------------------------------------------------------------------

const targeting = suite('picks the release to install from the channels a device reads');

/** A channel pointer: channel, version, and 'fix' when its manifest says securityFix (always so on security). */
type Pointer = [Channel, string] | [Channel, string, 'fix'];

interface TargetCase {
  name: string;
  /** Every channel pointer in the repository; the device reads only channelsFor(channel). passOver: versions given up on (MAX_ATTEMPTS failed health checks) or held. */
  input: { channel: Channel; current: string | null; pointers: Pointer[]; allowDowngrade?: boolean; floor?: string; passOver?: string[] };
  expected: { kind: 'up-to-date' } | { kind: 'update' | 'downgrade-refused'; channel: Channel; version: string };
}

const targetCases: TargetCase[] = [
  { name: 'a stable device takes a newer stable', input: { channel: 'stable', current: '1.0.0', pointers: [['stable', '1.1.0']] }, expected: { kind: 'update', channel: 'stable', version: '1.1.0' } },
  { name: 'up to date when every pointer is at the installed version', input: { channel: 'stable', current: '1.1.0', pointers: [['stable', '1.1.0'], ['security', '1.0.1']] }, expected: { kind: 'up-to-date' } },
  { name: 'up to date with no pointers at all', input: { channel: 'stable', current: '1.1.0', pointers: [] }, expected: { kind: 'up-to-date' } },
  { name: 'a beta device gets a newer stable', input: { channel: 'beta', current: '1.1.0-beta.2', pointers: [['beta', '1.1.0-beta.2'], ['stable', '1.1.0'], ['security', '1.0.1']] }, expected: { kind: 'update', channel: 'stable', version: '1.1.0' } },
  { name: 'a beta device takes beta when beta is newest', input: { channel: 'beta', current: '1.1.0', pointers: [['beta', '1.2.0-beta.1'], ['stable', '1.1.1']] }, expected: { kind: 'update', channel: 'beta', version: '1.2.0-beta.1' } },
  { name: 'a stable device ignores a newer beta', input: { channel: 'stable', current: '1.1.0', pointers: [['beta', '1.2.0-beta.1'], ['nightly', '1.3.0-nightly.5'], ['stable', '1.1.0']] }, expected: { kind: 'up-to-date' } },
  { name: 'a nightly device takes a newer beta', input: { channel: 'nightly', current: '1.2.0-nightly.3', pointers: [['nightly', '1.2.0-nightly.3'], ['beta', '1.2.0-rc.1'], ['stable', '1.1.0']] }, expected: { kind: 'update', channel: 'beta', version: '1.2.0-rc.1' } },
  { name: 'security reaches a stable device', input: { channel: 'stable', current: '1.0.0', pointers: [['stable', '1.0.0'], ['security', '1.0.1']] }, expected: { kind: 'update', channel: 'security', version: '1.0.1' } },
  { name: 'security reaches a nightly device', input: { channel: 'nightly', current: '2.0.0-nightly.1', pointers: [['nightly', '2.0.0-nightly.1'], ['security', '2.0.0']] }, expected: { kind: 'update', channel: 'security', version: '2.0.0' } },
  { name: 'a security device ignores a newer stable', input: { channel: 'security', current: '1.0.0', pointers: [['stable', '2.0.0'], ['security', '1.0.1']] }, expected: { kind: 'update', channel: 'security', version: '1.0.1' } },
  { name: 'a tie goes to the preferred channel', input: { channel: 'beta', current: '1.0.0', pointers: [['stable', '1.1.0'], ['beta', '1.1.0'], ['security', '1.1.0']] }, expected: { kind: 'update', channel: 'beta', version: '1.1.0' } },
  { name: 'the highest wins over preference', input: { channel: 'beta', current: '1.0.0', pointers: [['beta', '1.1.0'], ['stable', '1.1.1']] }, expected: { kind: 'update', channel: 'stable', version: '1.1.1' } },

  { name: 'own channel moved back, allowDowngrade off: stays put', input: { channel: 'stable', current: '1.2.0', pointers: [['stable', '1.1.0']] }, expected: { kind: 'up-to-date' } },
  { name: 'own channel moved back, allowDowngrade on: follows it down', input: { channel: 'stable', current: '1.2.0', pointers: [['stable', '1.1.0']], allowDowngrade: true }, expected: { kind: 'update', channel: 'stable', version: '1.1.0' } },
  { name: 'a downgrade below the floor is refused', input: { channel: 'stable', current: '1.2.0', pointers: [['stable', '1.1.0']], allowDowngrade: true, floor: '1.1.5' }, expected: { kind: 'downgrade-refused', channel: 'stable', version: '1.1.0' } },
  { name: 'a downgrade exactly to the floor is allowed', input: { channel: 'stable', current: '1.2.0', pointers: [['stable', '1.1.0']], allowDowngrade: true, floor: '1.1.0' }, expected: { kind: 'update', channel: 'stable', version: '1.1.0' } },
  { name: 'a lower pointer on another channel never downgrades', input: { channel: 'beta', current: '1.2.0', pointers: [['beta', '1.2.0'], ['stable', '1.0.0'], ['security', '1.0.1']], allowDowngrade: true }, expected: { kind: 'up-to-date' } },
  { name: 'a downgrade follows the own channel even when others are lower still', input: { channel: 'beta', current: '1.3.0-beta.1', pointers: [['beta', '1.2.0'], ['stable', '1.1.0']], allowDowngrade: true }, expected: { kind: 'update', channel: 'beta', version: '1.2.0' } },
  { name: 'a higher version elsewhere beats a downgrade', input: { channel: 'stable', current: '1.2.0', pointers: [['stable', '1.1.0'], ['security', '1.2.1']], allowDowngrade: true }, expected: { kind: 'update', channel: 'security', version: '1.2.1' } },
  { name: 'a security device follows security down with allowDowngrade', input: { channel: 'security', current: '1.0.2', pointers: [['security', '1.0.1']], allowDowngrade: true }, expected: { kind: 'update', channel: 'security', version: '1.0.1' } },

  { name: 'a fresh device takes its own channel, even when another is higher', input: { channel: 'beta', current: null, pointers: [['beta', '1.1.0-beta.1'], ['stable', '1.1.0']] }, expected: { kind: 'update', channel: 'beta', version: '1.1.0-beta.1' } },
  { name: 'a fresh device whose channel has no pointer takes the highest', input: { channel: 'beta', current: null, pointers: [['stable', '1.0.0'], ['security', '1.0.1']] }, expected: { kind: 'update', channel: 'security', version: '1.0.1' } },
  { name: 'a fresh device with no pointers is up to date', input: { channel: 'stable', current: null, pointers: [] }, expected: { kind: 'up-to-date' } },
  { name: 'a fresh device never installs below the floor', input: { channel: 'stable', current: null, pointers: [['stable', '1.0.0']], floor: '1.1.0' }, expected: { kind: 'downgrade-refused', channel: 'stable', version: '1.0.0' } },
  { name: 'an update above the floor is not affected by it', input: { channel: 'stable', current: '1.0.0', pointers: [['stable', '1.3.0']], floor: '1.2.0' }, expected: { kind: 'update', channel: 'stable', version: '1.3.0' } },

  // issue 13 item 1: a security release reaches every device it applies to.
  { name: 'a fresh stable device takes security 1.2.1 over stable 1.2.0', input: { channel: 'stable', current: null, pointers: [['stable', '1.2.0'], ['security', '1.2.1']] }, expected: { kind: 'update', channel: 'security', version: '1.2.1' } },
  { name: 'a fresh beta device takes a security release newer than its beta', input: { channel: 'beta', current: null, pointers: [['beta', '1.2.0-beta.1'], ['stable', '1.1.0'], ['security', '1.2.0']] }, expected: { kind: 'update', channel: 'security', version: '1.2.0' } },
  { name: 'a fresh device keeps its own channel when it is newer than the security release', input: { channel: 'beta', current: null, pointers: [['beta', '1.3.0-beta.1'], ['security', '1.2.1']] }, expected: { kind: 'update', channel: 'beta', version: '1.3.0-beta.1' } },
  { name: 'a fresh device: a tie between its own channel and security goes to its own', input: { channel: 'stable', current: null, pointers: [['stable', '1.2.1'], ['security', '1.2.1']] }, expected: { kind: 'update', channel: 'stable', version: '1.2.1' } },
  { name: 'a fresh device takes a newer securityFix release of another channel it reads over its own', input: { channel: 'beta', current: null, pointers: [['beta', '1.2.0-beta.1'], ['stable', '1.2.0', 'fix']] }, expected: { kind: 'update', channel: 'stable', version: '1.2.0' } },
  { name: 'a fresh device does not take a newer ordinary release of another channel (only fixes win)', input: { channel: 'beta', current: null, pointers: [['beta', '1.2.0-beta.1'], ['stable', '1.2.0']] }, expected: { kind: 'update', channel: 'beta', version: '1.2.0-beta.1' } },
  { name: 'a security release not newer than the installed version does not apply', input: { channel: 'stable', current: '1.2.1', pointers: [['stable', '1.2.1'], ['security', '1.2.1']] }, expected: { kind: 'up-to-date' } },
  { name: 'a broken stable that gave up is passed over: security 1.2.1 below it is taken', input: { channel: 'stable', current: '1.2.0', pointers: [['stable', '1.3.0'], ['security', '1.2.1']], passOver: ['1.3.0'] }, expected: { kind: 'update', channel: 'security', version: '1.2.1' } },
  { name: 'control: without the gave-up, the broken stable is the pick', input: { channel: 'stable', current: '1.2.0', pointers: [['stable', '1.3.0'], ['security', '1.2.1']] }, expected: { kind: 'update', channel: 'stable', version: '1.3.0' } },
  { name: 'a gave-up beta is passed over for the newest stable', input: { channel: 'beta', current: '1.2.0', pointers: [['beta', '1.4.0-beta.1'], ['stable', '1.3.0'], ['security', '1.2.1']], passOver: ['1.4.0-beta.1'] }, expected: { kind: 'update', channel: 'stable', version: '1.3.0' } },
  { name: 'only a gave-up release is newer: it is still the pick (the caller refuses it, ERR_GAVE_UP)', input: { channel: 'stable', current: '1.2.0', pointers: [['stable', '1.3.0'], ['security', '1.1.1']], passOver: ['1.3.0'] }, expected: { kind: 'update', channel: 'stable', version: '1.3.0' } },
  { name: 'already on the security fix, the gave-up stable is still the pick (ERR_GAVE_UP, never a loop of installs)', input: { channel: 'stable', current: '1.2.1', pointers: [['stable', '1.3.0'], ['security', '1.2.1']], passOver: ['1.3.0'] }, expected: { kind: 'update', channel: 'stable', version: '1.3.0' } },
  { name: 'a fresh device passes over its own channel\'s gave-up release for the security release', input: { channel: 'stable', current: null, pointers: [['stable', '1.3.0'], ['security', '1.2.1']], passOver: ['1.3.0'] }, expected: { kind: 'update', channel: 'security', version: '1.2.1' } },
  { name: 'a release held after a manual rollback is passed over the same way: the security fix below it is taken', input: { channel: 'stable', current: '1.2.0', pointers: [['stable', '1.3.0'], ['security', '1.2.1']], passOver: ['1.3.0'] }, expected: { kind: 'update', channel: 'security', version: '1.2.1' } },
  { name: 'a gave-up version other than the candidates changes nothing', input: { channel: 'stable', current: '1.2.0', pointers: [['stable', '1.3.0']], passOver: ['1.2.5'] }, expected: { kind: 'update', channel: 'stable', version: '1.3.0' } },
];

/** The device's view: the pointers of the channels it reads, in its preference order. */
function candidatesFor(channel: Channel, pointers: Pointer[]): Candidate[] {
  return channelsFor(channel).flatMap((ch): Candidate[] => {
    const p = pointers.find(([c]) => c === ch);
    return p ? [{ channel: ch, version: p[1], sequence: 7, mandatory: false, securityFix: ch === 'security' || p[2] === 'fix' }] : [];
  });
}

for (const c of targetCases) {
  targeting(c.name, () => {
    const { channel, current, pointers, allowDowngrade = false, floor = null, passOver = [] } = c.input;
    const d = decideTarget({ current, candidates: candidatesFor(channel, pointers), policy: policy({ channel, allowDowngrade }), floor, passOver: new Set(passOver) });
    assert.equal(d.kind === 'up-to-date' ? { kind: d.kind } : { kind: d.kind, channel: d.candidate.channel, version: d.candidate.version }, c.expected);
    if (d.kind === 'downgrade-refused') assert.ok(d.why.includes(floor ?? '<no floor>'), `why names the floor: ${d.why}`);
  });
}

const badVersions: { name: string; input: { current: string | null; version: string; floor: string | null } }[] = [
  { name: 'an installed version that is not semver', input: { current: 'v1.0.0', version: '1.1.0', floor: null } },
  { name: 'a candidate version that is not semver', input: { current: '1.0.0', version: 'latest', floor: null } },
  { name: 'a floor that is not semver', input: { current: '1.0.0', version: '1.1.0', floor: '1.0' } },
];

for (const c of badVersions) {
  targeting(`refuses ${c.name} (ERR_VERSION)`, () => {
    const candidates: Candidate[] = [{ channel: 'stable', version: c.input.version, sequence: 1, mandatory: false, securityFix: false }];
    assertCode(() => decideTarget({ current: c.input.current, candidates, policy: policy(), floor: c.input.floor }), 'ERR_VERSION');
  });
}

targeting.run();

// ---------------------------------------------------------------------------------------------

const scheduling = suite('spaces checks with jitter and backs off while offline');

const delayCases: { name: string; input: { checkInterval: number; failures: number; rand: number }; expected: number }[] = [
  { name: 'rand 0.5 is exactly the interval', input: { checkInterval: 3600, failures: 0, rand: 0.5 }, expected: 3_600_000 },
  { name: 'rand 0 is 10% early', input: { checkInterval: 3600, failures: 0, rand: 0 }, expected: 3_240_000 },
  { name: 'rand 0.75 is 5% late', input: { checkInterval: 3600, failures: 0, rand: 0.75 }, expected: 3_780_000 },
  { name: 'rand just below 1 is just under 10% late', input: { checkInterval: 3600, failures: 0, rand: 0.9999 }, expected: 3_959_928 },
  { name: 'one failure doubles the wait', input: { checkInterval: 3600, failures: 1, rand: 0.5 }, expected: 7_200_000 },
  { name: 'three failures wait eight intervals', input: { checkInterval: 3600, failures: 3, rand: 0.5 }, expected: 28_800_000 },
  { name: 'backoff is capped at 24 h', input: { checkInterval: 3600, failures: 5, rand: 0.5 }, expected: 86_400_000 },
  { name: 'jitter still spreads devices at the cap (early side)', input: { checkInterval: 3600, failures: 5, rand: 0 }, expected: 77_760_000 },
  { name: 'jitter never pushes past 24 h', input: { checkInterval: 3600, failures: 5, rand: 0.99 }, expected: 86_400_000 },
  { name: 'thousands of failures stay at 24 h', input: { checkInterval: 3600, failures: 5000, rand: 0.5 }, expected: 86_400_000 },
  { name: 'never below 1 s', input: { checkInterval: 1, failures: 0, rand: 0 }, expected: 1000 },
  { name: 'a one-minute interval', input: { checkInterval: 60, failures: 0, rand: 0.25 }, expected: 57_000 },
  { name: 'a 24 h interval is not backed off further', input: { checkInterval: 86_400, failures: 2, rand: 0.5 }, expected: 86_400_000 },
];

for (const c of delayCases) {
  scheduling(c.name, () => {
    assert.is(nextCheckDelay(policy({ checkInterval: c.input.checkInterval }), c.input.failures, c.input.rand), c.expected);
  });
}

scheduling('every rand in [0, 1) lands within ±10% of the interval', () => {
  const p = policy({ checkInterval: 600 });
  for (let i = 0; i < 1000; i++) {
    const d = nextCheckDelay(p, 0, i / 1000);
    assert.ok(d >= 540_000 && d < 660_000, `rand ${i / 1000} gave ${d}`);
  }
});

scheduling.run();
