// The device's update policy as pure decisions: which channel pointers it reads, which release it
// takes, whether a staged release may be switched to now, and when to check again. Nothing here
// touches the disk, the network or the clock: `now` and random numbers are parameters, so every
// rule is a table test.
//
// When a staged release may be switched to (decideApply), in this order:
//   1. Policy disabled, automatic trigger      -> wait 'disabled' (security fixes too). A person's
//      manual apply still runs: disabled turns off what the device does on its own (the agent
//      makes no attempt at all: core/policy/agent-schedule.ts).
//   2. Automatic trigger, autoUpdate off        -> wait 'manual-only' (a person runs `ferry apply`),
//      unless the release is a security fix.
//   3. Security fix                             -> apply at once: ignores approval and the window,
//      because the security channel exists to reach every device quickly.
//   4. requireApproval, not approved, not mandatory -> wait 'approval'. A mandatory release was
//      decided by the publisher, so no local approval is asked for.
//   5. Window closed and not ignoreWindow       -> wait 'window'. Mandatory releases wait too: the
//      window protects the device's users, not the publisher's schedule.
//   6. Otherwise                                -> apply.
//
// Which release to take (decideTarget): the highest version above the installed one among the
// pointers the device read; a signed move of the device's own channel to a lower version only with
// allowDowngrade; never anything below the anti-rollback floor. Two rules make a security fix reach
// every device it applies to (README "Policy"):
//   - every device reads the security channel (channelsFor), and a security release applies when it
//     is newer than what the device runs, or the device runs nothing: a fresh device whose own
//     channel points lower takes the security release instead;
//   - a release that failed its health check MAX_ATTEMPTS times (ERR_GAVE_UP), or that a person
//     rolled back by hand (held), is passed over, so the next-best release (a security fix below
//     the broken one) is taken instead of nothing.

import * as semver from '../semver.ts';
import { FerryError } from '../errors.ts';
import { bool, int, isObject } from '../io/schema.ts';
import type { Json } from '../io/strict-json.ts';
import { CHANNELS, isChannel, type Channel } from '../trust/metadata.ts';
import type { TimeWindow, UpdatePolicy } from '../spec.ts';
import { parseCheckInterval, parseWindowDays } from './policy-fields.ts';

export const DEFAULT_POLICY: UpdatePolicy = Object.freeze({
  enabled: true,
  autoUpdate: true,
  channel: 'stable',
  checkInterval: 3600,
  maintenanceWindow: null,
  requireApproval: false,
  allowDowngrade: false,
});

// ---------------------------------------------------------------------------------------------
// Parsing

const POLICY_KEYS: ReadonlySet<string> = new Set(Object.keys(DEFAULT_POLICY));
const WINDOW_KEYS: ReadonlySet<string> = new Set(['days', 'dayOfWeek', 'startHour', 'endHour', 'timezone']);

function usage(what: string, expected: string, got: unknown): never {
  throw new FerryError('ERR_USAGE', `${what} must be ${expected} (got ${JSON.stringify(got) ?? String(got)})`);
}

/**
 * Runs one of core/io/schema.ts's shape checks on a ferry.json value and reports a failure as
 * ERR_USAGE with the value given: this is a person's configuration, not signed metadata, and
 * "(got \"false\")" shows the typo.
 */
function checked<T>(value: unknown, check: (value: Json | undefined) => T): T {
  try {
    return check(value as Json | undefined);
  } catch (err) {
    if (!(err instanceof FerryError) || err.code !== 'ERR_SCHEMA') throw err;
    throw new FerryError('ERR_USAGE', `${err.message} (got ${JSON.stringify(value) ?? String(value)})`);
  }
}

/** Refuses keys we do not know: a misspelt "requireAproval" silently ignored would leave a fleet unguarded. */
function refuseUnknownKeys(o: Record<string, unknown>, known: ReadonlySet<string>, what: string): void {
  for (const key of Object.keys(o)) {
    if (!known.has(key)) throw new FerryError('ERR_USAGE', `${what}.${key} is not a policy setting (known: ${[...known].join(', ')})`);
  }
}

const boolField = (value: unknown, what: string): boolean => checked(value, (v) => bool(v, what));
const intField = (value: unknown, what: string, min: number, max: number): number => checked(value, (v) => int(v, what, min, max));

/** True when the runtime's time zone database knows `timeZone` (an IANA name such as "Europe/Berlin"). */
function isValidTimeZone(timeZone: string): boolean {
  // A UTC offset is not a zone (it knows no daylight saving time), yet Node 24's Intl accepts
  // "+02:00" where Node 20's refuses it: refuse offsets on every line alike.
  if (/^[+-]/.test(timeZone)) return false;
  try {
    new Intl.DateTimeFormat(undefined, { timeZone });
    return true;
  } catch (err) {
    if (err instanceof RangeError) return false;
    throw err;
  }
}

function parseWindow(value: unknown, what: string): TimeWindow | null {
  if (value === null) return null;
  if (!isObject(value)) usage(what, 'null or an object { days, startHour, endHour, timezone }', value);
  refuseUnknownKeys(value, WINDOW_KEYS, what);
  // days (or the spec's dayOfWeek) may be left out: an empty list already means "every day".
  const days = parseWindowDays(value, what);
  const startHour = intField(value.startHour, `${what}.startHour`, 0, 23);
  const endHour = intField(value.endHour, `${what}.endHour`, 1, 24);
  // start == end would be either "never" or "always"; neither is what anyone means by a window.
  if (startHour === endHour) usage(`${what}.endHour`, `different from startHour ${startHour}`, endHour);
  const timezone = value.timezone;
  if (typeof timezone !== 'string' || !isValidTimeZone(timezone)) usage(`${what}.timezone`, 'an IANA time zone such as "Europe/Berlin"', timezone);
  return { days, startHour, endHour, timezone };
}

/**
 * The policy from ferry.json's "policy" object. Any field may be left out and takes its default
 * from DEFAULT_POLICY; every field given is checked, and bad input is ERR_USAGE naming the field.
 */
export function parsePolicy(value: unknown): UpdatePolicy {
  if (value === undefined) return { ...DEFAULT_POLICY };
  if (!isObject(value)) usage('policy', 'an object', value);
  refuseUnknownKeys(value, POLICY_KEYS, 'policy');
  // Only a missing field takes the default; null is a wrong value like any other (except for the
  // window, where null is the documented "always open").
  const given = <K extends keyof UpdatePolicy>(key: K): unknown => (value[key] === undefined ? DEFAULT_POLICY[key] : value[key]);
  const channel = given('channel');
  if (typeof channel !== 'string' || !isChannel(channel)) usage('policy.channel', `one of ${CHANNELS.join(', ')}`, channel);
  return {
    enabled: boolField(given('enabled'), 'policy.enabled'),
    autoUpdate: boolField(given('autoUpdate'), 'policy.autoUpdate'),
    channel,
    checkInterval: parseCheckInterval(given('checkInterval'), 'policy.checkInterval'),
    maintenanceWindow: parseWindow(given('maintenanceWindow'), 'policy.maintenanceWindow'),
    requireApproval: boolField(given('requireApproval'), 'policy.requireApproval'),
    allowDowngrade: boolField(given('allowDowngrade'), 'policy.allowDowngrade'),
  };
}

// ---------------------------------------------------------------------------------------------
// Channels

/** The channels a device on each channel takes releases from, before security is added. */
const FOLLOWS: Readonly<Record<Channel, readonly Channel[]>> = {
  stable: ['stable'],
  beta: ['beta', 'stable'],
  nightly: ['nightly', 'beta', 'stable'],
  security: ['security'],
};

/**
 * Which channel pointers a device on `channel` reads, in preference order. A beta device also takes
 * newer stable releases; nightly takes beta and stable. Every device reads security, last, whatever
 * its channel: a security fix must reach every device it applies to (README "Policy").
 */
export function channelsFor(channel: Channel): Channel[] {
  const read = [...FOLLOWS[channel]];
  if (!read.includes('security')) read.push('security');
  return read;
}

// ---------------------------------------------------------------------------------------------
// Maintenance window

const WEEKDAYS: Readonly<Record<string, number>> = { Sun: 0, Mon: 1, Tue: 2, Wed: 3, Thu: 4, Fri: 5, Sat: 6 };

/** Local weekday (0 = Sunday) and hour (0-23) of `now` in `timeZone`, from the tz database, so DST is right. */
function localDayHour(now: Date, timeZone: string): { day: number; hour: number } {
  // 'en-US' fixes the weekday names we map; h23 makes midnight 0, never 24.
  const parts = new Intl.DateTimeFormat('en-US', { timeZone, hourCycle: 'h23', weekday: 'short', hour: 'numeric' }).formatToParts(now);
  const weekday = parts.find((p) => p.type === 'weekday')?.value;
  const hour = Number(parts.find((p) => p.type === 'hour')?.value);
  const day = weekday === undefined ? undefined : WEEKDAYS[weekday];
  if (day === undefined || !Number.isInteger(hour)) throw new FerryError('ERR_USAGE', `cannot read the local time in ${timeZone}`);
  return { day, hour: hour % 24 };
}

/** Is `now` inside the window, judged in the window's IANA timezone (DST-correct: use Intl.DateTimeFormat with timeZone and hourCycle h23 to get local weekday and hour). start > end wraps past midnight, and then the day that counts is the day the window OPENED (a Fri 22-02 window is open Sat 01:00). null window = always open. */
export function inMaintenanceWindow(window: TimeWindow | null, now: Date): boolean {
  if (window === null) return true;
  const { day, hour } = localDayHour(now, window.timezone);
  const opensOn = (d: number): boolean => window.days.length === 0 || window.days.includes(d);
  const { startHour, endHour } = window;
  if (startHour < endHour) return hour >= startHour && hour < endHour && opensOn(day);
  // Wrapping window: the evening part belongs to today's window, the early-morning part to the
  // window that opened yesterday evening.
  if (hour >= startHour) return opensOn(day);
  if (hour < endHour) return opensOn((day + 6) % 7);
  return false;
}

// ---------------------------------------------------------------------------------------------
// Apply

export interface ReleaseFlags {
  version: string;
  mandatory: boolean;
  securityFix: boolean;
}

export type ApplyDecision = { action: 'apply'; why: string } | { action: 'wait'; reason: 'disabled' | 'approval' | 'window' | 'manual-only'; why: string };

/** Whether a staged release may be switched to now; the rules, in order, are in the file header. */
export function decideApply(input: { policy: UpdatePolicy; release: ReleaseFlags; approved: boolean; now: Date; trigger: 'manual' | 'auto'; ignoreWindow: boolean }): ApplyDecision {
  const { policy, release, approved, now, trigger, ignoreWindow } = input;
  const v = release.version;
  if (!policy.enabled && trigger === 'auto') return { action: 'wait', reason: 'disabled', why: `updates are disabled by policy; ${v} stays staged` };
  if (trigger === 'auto' && !policy.autoUpdate && !release.securityFix) {
    return { action: 'wait', reason: 'manual-only', why: `autoUpdate is off: run \`ferry apply\` to switch to ${v}` };
  }
  if (release.securityFix) return { action: 'apply', why: `${v} is a security fix: applied without waiting for approval or the maintenance window` };
  if (policy.requireApproval && !approved && !release.mandatory) {
    return { action: 'wait', reason: 'approval', why: `policy requires approval before switching to ${v}` };
  }
  if (!ignoreWindow && !inMaintenanceWindow(policy.maintenanceWindow, now)) {
    return { action: 'wait', reason: 'window', why: `outside the maintenance window; ${v}${release.mandatory ? ' (mandatory)' : ''} waits for it` };
  }
  if (!policy.enabled) return { action: 'apply', why: `updates are disabled by policy, but a person asked: switching to ${v}` };
  return { action: 'apply', why: release.mandatory && policy.requireApproval && !approved ? `${v} is mandatory: no approval needed` : `switching to ${v}` };
}

// ---------------------------------------------------------------------------------------------
// Target

export interface Candidate {
  channel: Channel;
  version: string;
  sequence: number;
  mandatory: boolean;
  securityFix: boolean;
}

export type TargetDecision = { kind: 'update'; candidate: Candidate } | { kind: 'up-to-date' } | { kind: 'downgrade-refused'; candidate: Candidate; why: string };

function checkVersion(v: string, what: string): string {
  if (semver.valid(v) !== v) throw new FerryError('ERR_VERSION', `${what} "${v}" is not a semver version`);
  return v;
}

/** The first candidate with the highest version: earlier entries win ties (channel preference). */
function highest(candidates: Candidate[]): Candidate | undefined {
  let best: Candidate | undefined;
  for (const c of candidates) if (best === undefined || semver.gt(c.version, best.version)) best = c;
  return best;
}

/** A release failing its health check this often is not tried again automatically (ERR_GAVE_UP). */
export const MAX_ATTEMPTS = 3;

/** Whether a release that failed its health check `failures` times is given up on. */
export function gaveUpAfter(failures: number): boolean {
  return failures >= MAX_ATTEMPTS;
}

/** A security release: one the security channel names, or whose signed manifest says securityFix. */
export function isSecurityRelease(c: Candidate): boolean {
  return c.channel === 'security' || c.securityFix;
}

/** A security release applies to a device when it is newer than what the device runs, or the device runs nothing. */
export function securityApplies(c: Candidate, current: string | null): boolean {
  return isSecurityRelease(c) && (current === null || semver.gt(c.version, current));
}

/** The rules of decideTarget before the floor, over one list of candidates; undefined = stay. */
function pick(current: string | null, candidates: Candidate[], policy: UpdatePolicy): Candidate | undefined {
  const own = candidates.find((c) => c.channel === policy.channel);
  if (current === null) {
    // A fresh device starts on its own channel, but never below a security release: that one
    // wins when it is newer (the own pick comes first, so it keeps a tie).
    const base = own ?? highest(candidates);
    return highest([...(base ? [base] : []), ...candidates.filter((c) => securityApplies(c, current))]);
  }
  // Every candidate above `current` (security releases among them, since every device reads security).
  const up = highest(candidates.filter((c) => semver.gt(c.version, current)));
  if (up !== undefined) return up;
  if (policy.allowDowngrade && own !== undefined && semver.lt(own.version, current)) return own;
  return undefined;
}

/**
 * Picks what to install from the verified channel pointers a device read (already filtered to
 * its channelsFor list, in that order).
 * - The highest version above `current` wins; ties go to the earlier candidate.
 * - Nothing higher: with allowDowngrade, a device whose OWN channel now points below `current`
 *   follows it down (the pointer is signed with a newer sequence, so the publisher meant it);
 *   without allowDowngrade it stays where it is ('up-to-date').
 * - current null: the device's own channel's candidate if present, else the highest; but a
 *   security release newer than that is taken instead (securityApplies).
 * - A version in `passOver` (given up on after MAX_ATTEMPTS failed health checks, or held after a
 *   manual rollback) is passed over, and the same rules pick among the others. Only when nothing
 *   else is left is it picked anyway, so the caller reports ERR_GAVE_UP (or waits, held) rather
 *   than "up to date".
 * - Whatever was picked, a version below `floor` (the anti-rollback floor) is never installed:
 *   'downgrade-refused'. This stops a replayed or compromised pointer from walking the device back
 *   to a version with known holes.
 * Sequences are checked by the trust layer before the candidates get here; they do not rank.
 */
export function decideTarget(input: { current: string | null; candidates: Candidate[]; policy: UpdatePolicy; floor: string | null; passOver?: ReadonlySet<string> }): TargetDecision {
  const { current, candidates, policy, floor, passOver = new Set<string>() } = input;
  if (current !== null) checkVersion(current, 'installed version');
  if (floor !== null) checkVersion(floor, 'anti-rollback floor');
  for (const c of candidates) checkVersion(c.version, `${c.channel} channel version`);

  const chosen = pick(current, candidates.filter((c) => !passOver.has(c.version)), policy) ?? pick(current, candidates, policy);
  if (chosen === undefined) return { kind: 'up-to-date' };
  if (floor !== null && semver.lt(chosen.version, floor)) {
    return { kind: 'downgrade-refused', candidate: chosen, why: `${chosen.channel} points to ${chosen.version}, below the anti-rollback floor ${floor}` };
  }
  return { kind: 'update', candidate: chosen };
}

// ---------------------------------------------------------------------------------------------
// Check scheduling

const MIN_DELAY_MS = 1000;
const MAX_DELAY_MS = 24 * 3600 * 1000;
const JITTER = 0.1;

/**
 * Milliseconds until the next check: checkInterval seconds, doubled per consecutive failure
 * (offline devices back off), capped at 24 h (or at the interval, when that is longer), then ±10% jitter from `rand` in [0, 1) so a fleet
 * that booted together does not check together; the result stays within [1 s, that cap].
 */
export function nextCheckDelay(policy: UpdatePolicy, consecutiveFailures: number, rand: number): number {
  const failures = Number.isFinite(consecutiveFailures) ? Math.max(0, Math.floor(consecutiveFailures)) : 0;
  const r = Number.isFinite(rand) ? Math.min(Math.max(rand, 0), 1) : 0.5;
  // 2 ** failures may be Infinity for absurd counts; Math.min still gives the cap.
  const cap = Math.max(MAX_DELAY_MS, policy.checkInterval * 1000);
  const backedOff = Math.min(policy.checkInterval * 1000 * 2 ** failures, cap);
  const jittered = backedOff * (1 + JITTER * (2 * r - 1));
  return Math.round(Math.min(Math.max(jittered, MIN_DELAY_MS), cap));
}
