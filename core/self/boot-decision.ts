// The decisions of ferry's self-update by boot counting (ARCHITECTURE.md "Self-update"), as
// small pure functions over the boot record (core/self/boot-record.ts). The caller does the
// effects, in the order each result names: write the returned record durably, THEN act.
//
// Seen through this lens, a new ferry version that is broken at start can only fail in ways that
// leave the record unconfirmed:
//   - a crash at start (an exception, a missing module, a native ABI mismatch, a kill) never
//     reaches confirm, so each start spends one try and the tries run out;
//   - an exit 0 at start (it "finished" without working) never confirms either: the same as a
//     crash; an exit code proves nothing, only a confirm does;
//   - a hang never confirms and never exits, so tries alone would wait forever: the deadline
//     catches it. Whatever restarts ferry (the launcher's watchdog, systemd, a reboot) then finds
//     the deadline passed and rolls back.
// No rule needs the broken version's cooperation: every rollback is decided by the confirmed
// version's code, before any new code runs.

import { FerryError } from '../errors.ts';
import { MAX_REFUSED, MAX_TRIES, emptyBootRecord, isVersion, type BootRead, type BootRecord, type RefusedVersion, type TentativeSwitch } from './boot-record.ts';

/**
 * What a start does. `write`, when present, must be written durably BEFORE the version runs:
 * a try is spent before the code that may crash gets a chance to, and a rollback is recorded
 * before the old code runs (so a power cut in between repeats the same decision, never skips it).
 */
export type StartDecision =
  | { action: 'run'; version: string; write?: BootRecord; note?: string }
  | { action: 'rollback'; to: string; from: string; reason: string; write: BootRecord };

/**
 * The launcher-side start, before any new code runs. `current` is the version the `current` link
 * names: always a confirmed one, since only a confirm moves it (ARCHITECTURE.md "Self-update").
 */
export function decideStart(read: BootRead, current: string, now: Date): StartDecision {
  switch (read.state) {
    case 'damaged':
      // A record we cannot read might say anything, so the only safe version is the confirmed
      // one. A fresh record replaces it, or every later beginSwitch/confirm would stop on the same
      // damage; what the damage hid (a trial under way, refusals) is lost, which at worst lets a
      // failed version be tried once more, within its tries and deadline again.
      return { action: 'run', version: current, write: emptyBootRecord(), note: `the boot record was damaged (${read.error.code}: ${read.error.message}); running the confirmed version ${current}` };
    case 'ok':
      return decideFromRecord(read.record, current, now);
    default:
      return unreachable(read);
  }
}

function decideFromRecord(record: BootRecord, current: string, now: Date): StartDecision {
  const t = record.tentative;
  // No trial under way: the confirmed version, and nothing to write.
  if (t === null) return { action: 'run', version: current };
  // The trial version already moved `current` to itself (the first half of a confirm) but was cut
  // short before clearing the record: it did confirm, so finish the commit instead of counting a
  // try or rolling back a version that proved itself.
  if (t.version === current) return { action: 'run', version: current, write: { ...record, tentative: null }, note: `${t.version} had confirmed; its commit is finished now` };
  // `current` names neither side of the trial: it was moved outside this protocol (by hand, or a
  // restore). `current` is the truth (ARCHITECTURE.md "Device home layout"), so run it and drop the
  // stale trial without refusing its version: it never failed, it was overtaken.
  if (t.previous !== current) return { action: 'run', version: current, write: { ...record, tentative: null }, note: `the trial of ${t.version} from ${t.previous} no longer matches the current version ${current}; dropped` };
  // Out of tries: every granted start happened and none confirmed (crashes, exits). Checked
  // before the deadline because counting starts needs no clock, so it is the surer reason.
  if (t.triesLeft === 0) return rollback(record, t, `did not confirm within ${t.tries} start${t.tries === 1 ? '' : 's'}`, now);
  // Past the deadline: a start that hung. A clock set back only delays this rule (tries still
  // bound the trial); a clock stepped forward only makes it roll back early, to the safe side.
  if (now.getTime() >= Date.parse(t.deadline)) return rollback(record, t, `did not confirm before ${t.deadline}`, now);
  // A try left, in time: spend it durably first, so a crash of what runs next still counts.
  return { action: 'run', version: t.version, write: { ...record, tentative: { ...t, triesLeft: t.triesLeft - 1 } } };
}

function rollback(record: BootRecord, t: TentativeSwitch, reason: string, now: Date): StartDecision {
  // The version is refused, so the agent does not begin the same failure again by itself.
  const refused = withRefused(record.refused, { version: t.version, reason, at: now.toISOString() });
  return { action: 'rollback', to: t.previous, from: t.version, reason, write: { tentative: null, refused } };
}

/** One entry per version (a repeat failure replaces the old one), newest last, at most MAX_REFUSED. */
function withRefused(refused: readonly RefusedVersion[], entry: RefusedVersion): RefusedVersion[] {
  const rest = refused.filter((r) => r.version !== entry.version);
  return [...rest, entry].slice(-MAX_REFUSED);
}

export interface Confirmed {
  committed: true;
  version: string;
  previous: string;
  at: string;
  /** The record to write once `current` names `version` (switch first, then write). */
  write: BootRecord;
}

/**
 * The trial version confirms itself. The caller switches `current` to it, THEN writes `write`:
 * a cut between the two leaves `current` on the new version with the trial still recorded, which
 * decideStart reads as "confirmed" and finishes. The other order would leave no trial and
 * `current` on the old version: safe, but the update silently lost.
 *
 * A confirm after the deadline is accepted: reaching confirm is proof the start did not hang, and
 * the deadline exists only to catch starts that never get here. Refusing a late confirm would
 * turn a slow first start (a long store recovery) or a clock stepped forward into a rollback.
 *
 * Refused with ERR_NOT_FOUND, changing nothing, when no trial is under way or another version is
 * on trial: a version confirms only itself, and only when the record says it is on trial.
 */
export function confirm(record: BootRecord, version: string, now: Date): Confirmed {
  const t = record.tentative;
  if (t === null) throw new FerryError('ERR_NOT_FOUND', `no self-update is on trial, so ${version} has nothing to confirm`);
  if (t.version !== version) throw new FerryError('ERR_NOT_FOUND', `${t.version} is on trial, not ${version}; only the trial version can confirm`);
  return { committed: true, version, previous: t.previous, at: now.toISOString(), write: { ...record, tentative: null } };
}

export interface SwitchRequest {
  /** The staged, verified ferry version to try. */
  version: string;
  /** The confirmed version running now (what `current` names): where a rollback returns. */
  previous: string;
  /** How many starts the new version gets to confirm (e.g. 3). */
  tries: number;
  /** How long after the switch it may take to confirm. */
  deadlineMs: number;
  /** A manual retry of a refused version: clears its refusal. */
  force?: boolean;
}

/**
 * Begins a trial: the record to write durably BEFORE the launcher is asked to restart ferry.
 *
 * Refused with ERR_GAVE_UP for a version in `refused` unless `force`: a version that failed its
 * trial is not tried again by itself (a crash loop would otherwise repeat on every check, as the
 * app's health check does with ERR_GAVE_UP, ARCHITECTURE.md "Device state machine"). Refused with
 * ERR_BUSY while a trial is under way: its tries and deadline must settle first, and a second
 * trial would overwrite the only note of where to return. ERR_USAGE for arguments that cannot
 * make a valid record.
 */
export function beginSwitch(record: BootRecord, request: SwitchRequest, now: Date): BootRecord {
  const { version, previous, tries, deadlineMs, force = false } = request;
  if (!isVersion(version)) throw new FerryError('ERR_USAGE', `"${version}" is not a semver version`);
  if (!isVersion(previous)) throw new FerryError('ERR_USAGE', `"${previous}" is not a semver version`);
  if (version === previous) throw new FerryError('ERR_USAGE', `${version} is already the confirmed version`);
  if (!Number.isSafeInteger(tries) || tries < 1 || tries > MAX_TRIES) throw new FerryError('ERR_USAGE', `tries must be an integer from 1 to ${MAX_TRIES}, not ${tries}`);
  if (!Number.isSafeInteger(deadlineMs) || deadlineMs < 1) throw new FerryError('ERR_USAGE', `deadlineMs must be a positive integer, not ${deadlineMs}`);
  const deadline = new Date(now.getTime() + deadlineMs);
  if (Number.isNaN(deadline.getTime())) throw new FerryError('ERR_USAGE', `deadlineMs ${deadlineMs} is past the end of time`);
  if (record.tentative !== null) throw new FerryError('ERR_BUSY', `${record.tentative.version} is already on trial (from ${record.tentative.previous}); it must confirm or roll back first`);
  const failed = record.refused.find((r) => r.version === version);
  if (failed && !force) throw new FerryError('ERR_GAVE_UP', `${version} was refused at ${failed.at} (${failed.reason}); it is not tried again without force`);
  return {
    tentative: { version, previous, tries, triesLeft: tries, switchedAt: now.toISOString(), deadline: deadline.toISOString() },
    refused: record.refused.filter((r) => r.version !== version),
  };
}

function unreachable(value: never): never {
  throw new FerryError('ERR_INTERNAL', `unexpected value ${JSON.stringify(value)}`);
}
