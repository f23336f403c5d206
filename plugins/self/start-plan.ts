// The keeper's small decisions around one start of a self home's agent (ARCHITECTURE.md "Self-update";
// plugins/self/launch.ts does the effects): which release folder runs and whether
// it runs on trial, where its entry file is, and which exit code the keeper hands back to the
// launcher. Pure, so each rule is a table row in the tests.

import { constants } from 'node:os';
import { isAbsolute, join, normalize, sep } from 'node:path';
import { FerryError } from '../../core/errors.ts';
import type { StartDecision } from '../../core/self/boot-decision.ts';
import { RESTART_EXIT_CODE } from './restart-exit-code.ts';

/** What one start runs. */
export interface StartPlan {
  /** The release folder under releases/ that runs. */
  version: string;
  /** True when `version` is on trial: it must confirm before the record's deadline. */
  trial: boolean;
  /** For a trial: the deadline and the starts left after this one, as the written record says. */
  deadline?: string;
  triesLeft?: number;
  /** Set when this start rolls a trial back (`version` is then the confirmed one it returns to). */
  rollback?: { from: string; to: string; reason: string };
  /** A line worth logging (a damaged record replaced, a trial dropped or finished). */
  note?: string;
}

/**
 * The plan for a decision of decideStart. `current` names the confirmed version; any other
 * version the decision runs is the trial one (decideStart runs only those two).
 */
export function startPlan(decision: StartDecision, current: string): StartPlan {
  if (decision.action === 'rollback') return { version: decision.to, trial: false, rollback: { from: decision.from, to: decision.to, reason: decision.reason } };
  const note = decision.note ? { note: decision.note } : {};
  if (decision.version === current) return { version: current, trial: false, ...note };
  // A trial start always spends a try, so its decision carries the record with the trial in it.
  const t = decision.write?.tentative;
  if (!t || t.version !== decision.version) throw new FerryError('ERR_INTERNAL', `internal: a start of ${decision.version} on trial without its boot record`);
  return { version: decision.version, trial: true, deadline: t.deadline, triesLeft: t.triesLeft, ...note };
}

/** The history message of a rollback, e.g. "1.2.0 did not confirm within 3 starts; back on 1.1.0". */
export function rollbackMessage(rollback: { from: string; to: string; reason: string }): string {
  return `${rollback.from} ${rollback.reason}; back on ${rollback.to}`;
}

/**
 * The entry file of `version` in the self home: `<home>/releases/<version>/<entry>`. `entry` must
 * be a relative path that stays inside the release (ERR_USAGE otherwise): the keeper runs
 * whatever it names.
 */
export function entryPath(home: string, version: string, entry: string): string {
  const clean = normalize(entry);
  if (entry === '' || isAbsolute(entry) || clean === '..' || clean.startsWith(`..${sep}`) || clean === '.') {
    throw new FerryError('ERR_USAGE', `--entry must be a file path inside the release (e.g. dist/cli/ferry.js), not "${entry}"`);
  }
  return join(home, 'releases', version, clean);
}

/** A process's exit as a shell reports it: its code, or 128 + the number of the signal that ended it. */
export function exitStatus(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  const n = signal ? constants.signals[signal] : undefined;
  return n === undefined ? 1 : 128 + n;
}

/** How the agent's run ended, as the keeper saw it. */
export interface ChildEnd {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The agent ran on trial. */
  trial: boolean;
  /** Read after it ended: the boot record still names it on trial (never confirmed), or is damaged. */
  stillOnTrial: boolean;
  /** The stop signal the keeper received (and forwarded), if any. */
  stoppedBy: NodeJS.Signals | null;
}

/**
 * The keeper's exit code:
 *   - stopped by a signal → the agent's own status: a stop is final, so never 75 (an agent that
 *     answers the stop with 75 is reported as ended by that signal, 128 + n);
 *   - the agent exited 75 → 75 (it began a self-update and asks to be started again);
 *   - a trial agent that ended without confirming (any code, any signal, or killed at the
 *     deadline) → 75, so the next keeper spends another try or rolls back;
 *   - otherwise the agent's status.
 */
export function keeperExitCode(end: ChildEnd): number {
  const status = exitStatus(end.code, end.signal);
  if (end.stoppedBy) return status === RESTART_EXIT_CODE ? exitStatus(null, end.stoppedBy) : status;
  if (status === RESTART_EXIT_CODE) return RESTART_EXIT_CODE;
  if (end.trial && end.stillOnTrial) return RESTART_EXIT_CODE;
  return status;
}
