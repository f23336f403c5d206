// The fleet at a glance, from the newest verified report of each device (fleet-state.ts) and the
// repository's channel pointers: devices per version and target, rollout progress per channel,
// failures by error code, devices not heard from, what was refused, and versions over time for
// the chart. Pure: the same inputs give the same summary; `ferry fleet` prints it, --json is it,
// fleet-html.ts draws it.

import * as semver from '../semver.ts';
import { decideRollout, rolloutPercentAt } from '../policy/rollout.ts';
import type { ChannelDoc } from '../trust/metadata.ts';
import type { DeviceReport } from './report.ts';
import type { Outcome } from './fleet-state.ts';

/** How many days the versions-over-time chart covers at most (ending today). */
export const HISTORY_MAX_DAYS = 30;
/** How many refused files the summary lists by name (all are counted). */
export const REFUSED_LISTED = 100;

export interface VersionRow { target: string; version: string | null; devices: number }
export interface RolloutRow {
  channel: string;
  target: string;
  version: string;
  /** The percentage in force now: 100 when the pointer has no rollout. */
  percentNow: number;
  phased: boolean;
  halted: boolean;
  /** Devices on this channel and target that report running `version`. */
  running: number;
  /** Devices on this channel and target (by their newest report): the ones the pointer is for. */
  eligible: number;
  /** Eligible devices whose bucket is under the percentage now (those that take it when they check). */
  inRollout: number;
}
export interface FailureRow {
  code: string;
  devices: number;
  /** The versions those attempts were for. */
  versions: string[];
  /** Where their bytes came from (an origin, a stick, a peer), at most FAILURE_SOURCES_LISTED. */
  sources: string[];
}
/** How many distinct sources a failure row names. */
export const FAILURE_SOURCES_LISTED = 5;
export interface SilentRow { deviceId: string; lastReport: string; currentVersion: string | null; channel: string; target: string }
export interface History {
  /** UTC days, YYYY-MM-DD, oldest first. */
  days: string[];
  /** Versions, oldest first. */
  versions: string[];
  /** counts[day][version]: devices running that version at the end of that day. */
  counts: number[][];
}

export interface FleetSummary {
  app: string;
  generatedAt: string;
  devices: number;
  reports: { files: number; accepted: number; alreadySeen: number; refused: number };
  /** Refused files by error code. */
  refusals: Record<string, number>;
  refused: { file: string; deviceId: string | null; code: string; message: string }[];
  versions: VersionRow[];
  rollouts: RolloutRow[];
  failures: FailureRow[];
  silent: { since: string; devices: SilentRow[] };
  history: History;
}

export interface SummaryInput {
  app: string;
  now: Date;
  /** The newest accepted report of every device known. */
  reports: readonly DeviceReport[];
  /** Verified channel pointers of the app's repository (none without --repo). */
  channels: readonly ChannelDoc[];
  silentSince: Date;
  outcomes: readonly Outcome[];
}

const byVersionDesc = (a: string | null, b: string | null) => (a === b ? 0 : a === null ? 1 : b === null ? -1 : semver.rcompare(a, b));
const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

export function summarizeFleet(input: SummaryInput): FleetSummary {
  const { reports, now } = input;
  const refusals: Record<string, number> = {};
  const refused: FleetSummary['refused'] = [];
  let accepted = 0, alreadySeen = 0;
  for (const o of input.outcomes) {
    if (o.result === 'accepted') accepted++;
    else if (o.result === 'same') alreadySeen++;
    else {
      refusals[o.code!] = (refusals[o.code!] ?? 0) + 1;
      if (refused.length < REFUSED_LISTED) refused.push({ file: o.file, deviceId: o.deviceId, code: o.code!, message: o.message ?? '' });
    }
  }
  const refusedCount = input.outcomes.length - accepted - alreadySeen;
  return {
    app: input.app,
    generatedAt: now.toISOString(),
    devices: reports.length,
    reports: { files: input.outcomes.length, accepted, alreadySeen, refused: refusedCount },
    refusals: Object.fromEntries(Object.entries(refusals).sort(([a], [b]) => cmp(a, b))),
    refused,
    versions: versionRows(reports),
    rollouts: rolloutRows(reports, input.channels, now),
    failures: failureRows(reports),
    silent: { since: input.silentSince.toISOString(), devices: silentRows(reports, input.silentSince) },
    history: versionsOverTime(reports, now),
  };
}

export function versionRows(reports: readonly DeviceReport[]): VersionRow[] {
  const counts = new Map<string, VersionRow>();
  for (const r of reports) {
    const key = `${r.target}\0${r.currentVersion ?? ''}`;
    const row = counts.get(key) ?? { target: r.target, version: r.currentVersion, devices: 0 };
    row.devices++;
    counts.set(key, row);
  }
  return [...counts.values()].sort((a, b) => cmp(a.target, b.target) || byVersionDesc(a.version, b.version));
}

export function rolloutRows(reports: readonly DeviceReport[], channels: readonly ChannelDoc[], now: Date): RolloutRow[] {
  const rows: RolloutRow[] = [];
  for (const doc of channels) {
    for (const [target, t] of Object.entries(doc.targets)) {
      const eligible = reports.filter((r) => r.channel === doc.channel && r.target === target);
      const rollout = t.rollout;
      const percentNow = rollout ? rolloutPercentAt(rollout, now) : 100;
      rows.push({
        channel: doc.channel,
        target,
        version: t.version,
        percentNow,
        phased: rollout !== undefined,
        halted: rollout !== undefined && percentNow === 0,
        running: eligible.filter((r) => r.currentVersion === t.version).length,
        eligible: eligible.length,
        // What each device decides (core/policy/rollout.ts), not a guess from the percentage.
        inRollout: eligible.filter((r) => decideRollout({ deviceId: r.deviceId, rollout, now, security: false }).take).length,
      });
    }
  }
  return rows.sort((a, b) => cmp(a.channel, b.channel) || cmp(a.target, b.target));
}

/** Devices whose last attempt ended with an error code, by code. */
export function failureRows(reports: readonly DeviceReport[]): FailureRow[] {
  const byCode = new Map<string, { devices: number; versions: Set<string>; sources: Set<string> }>();
  for (const r of reports) {
    const code = r.lastAttempt?.errorCode;
    if (!code) continue;
    const row = byCode.get(code) ?? { devices: 0, versions: new Set<string>(), sources: new Set<string>() };
    row.devices++;
    if (r.lastAttempt!.to) row.versions.add(r.lastAttempt!.to);
    if (r.lastAttempt!.source) row.sources.add(r.lastAttempt!.source);
    byCode.set(code, row);
  }
  return [...byCode.entries()]
    .map(([code, row]) => ({ code, devices: row.devices, versions: [...row.versions].sort(byVersionDesc), sources: [...row.sources].sort().slice(0, FAILURE_SOURCES_LISTED) }))
    .sort((a, b) => b.devices - a.devices || cmp(a.code, b.code));
}

/** Devices whose newest report is older than `since`, the longest silent first. */
export function silentRows(reports: readonly DeviceReport[], since: Date): SilentRow[] {
  return reports
    .filter((r) => Date.parse(r.time) < since.getTime())
    .map((r) => ({ deviceId: r.deviceId, lastReport: r.time, currentVersion: r.currentVersion, channel: r.channel, target: r.target }))
    .sort((a, b) => Date.parse(a.lastReport) - Date.parse(b.lastReport) || cmp(a.deviceId, b.deviceId));
}

const DAY_MS = 86_400_000;

/**
 * Devices per version at the end of each UTC day, from each device's `versions` list (what it
 * committed and when): a device counts for the version it committed last by then, and not at all
 * before its first. At most HISTORY_MAX_DAYS days, ending today.
 */
export function versionsOverTime(reports: readonly DeviceReport[], now: Date, maxDays = HISTORY_MAX_DAYS): History {
  const today = Math.floor(now.getTime() / DAY_MS);
  let first = today;
  const versionSet = new Set<string>();
  const timelines = reports.map((r) =>
    r.versions.map((v) => ({ version: v.version, at: Date.parse(v.since) })).sort((a, b) => a.at - b.at),
  );
  for (const line of timelines) {
    for (const v of line) {
      versionSet.add(v.version);
      first = Math.min(first, Math.floor(v.at / DAY_MS));
    }
  }
  first = Math.max(first, today - maxDays + 1);
  const versions = [...versionSet].sort(semver.compare);
  const index = new Map(versions.map((v, i) => [v, i]));
  const days: string[] = [];
  const counts: number[][] = [];
  for (let day = first; day <= today; day++) {
    const end = Math.min((day + 1) * DAY_MS, now.getTime() + 1);
    const row = new Array<number>(versions.length).fill(0);
    for (const line of timelines) {
      let current: string | null = null;
      for (const v of line) {
        if (v.at < end) current = v.version;
        else break;
      }
      if (current !== null) row[index.get(current)!]!++;
    }
    days.push(new Date(day * DAY_MS).toISOString().slice(0, 10));
    counts.push(row);
  }
  return { days, versions, counts };
}
