// The keeper: one start of a self home's agent, run by CONFIRMED code (ARCHITECTURE.md "Self-update").
// The launcher script (plugins/self/launcher-script.ts) runs
// `node S/current/<keeper> self launch --home S --entry E -- <args>` in a loop; each run:
//   1. reads the boot record and `current`, and decides (decideStart, core/self/boot-decision.ts)
//      which version starts: the confirmed one, the one on trial (spending a try), or a rollback;
//   2. writes the decided record durably FIRST (a try is spent before the code that may crash
//      runs; a rollback is recorded before the old code runs);
//   3. for a rollback, closes the staged attempt in the self home's history (rollback-record.ts);
//   4. starts `node S/releases/<v>/<entry> <args>` in its own process group, with FERRY_SELF_HOME
//      and FERRY_SELF_VERSION, forwarding SIGTERM/SIGINT/SIGHUP to it;
//   5. for a trial, SIGKILLs that process group at the record's deadline if the version has not
//      confirmed by then (a hung start never confirms and never exits);
//   6. exits with the code the launcher needs (start-plan.ts keeperExitCode): 75 to be started
//      again and re-decide, else the agent's own status.
// The agent runs detached (its own group) so that the deadline kill takes its helpers with it
// while `ferry run`, started by the agent in a group of its own, keeps the app serving.
// Decisions are the pure functions of core/self and start-plan.ts; this file is the effects.

import { spawn as nodeSpawn, type ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import { FerryError } from '../../core/errors.ts';
import { homeLayout } from '../../core/device/layout.ts';
import { readCurrent } from '../../core/device/switch.ts';
import { readBootRecord, writeBootRecord } from '../../core/self/boot-record.ts';
import { decideStart } from '../../core/self/boot-decision.ts';
import { pinRunningRelease } from '../running-release-pin.ts';
import { entryPath, exitStatus, keeperExitCode, rollbackMessage, startPlan } from './start-plan.ts';

/** The signals that stop the keeper; each is forwarded to the agent. */
const STOP_SIGNALS: readonly NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP'];
/** setTimeout's largest delay; a later deadline is waited for in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface LaunchOptions {
  /** The self home S. */
  home: string;
  /** The agent's entry file, relative to its release folder (e.g. dist/cli/ferry.js). */
  entry: string;
  /** Arguments for the agent. */
  args: string[];
  /** The agent's environment, to which FERRY_SELF_HOME and FERRY_SELF_VERSION are added (default: process.env). */
  env?: NodeJS.ProcessEnv;
  clock?: () => Date;
  log?: (message: string) => void;
  /** A test seam: how the agent is started (default: node:child_process spawn). */
  spawn?: typeof nodeSpawn;
  /** A test seam: called just before and just after the decided boot record is written. */
  killPoint?: (when: 'before' | 'after', phase: 'self-decide') => void;
}

/** How the agent ended. */
interface Ended {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/**
 * One start of the agent, to its end. Resolves with the keeper's exit code; throws a FerryError
 * when nothing could be started (ERR_NOT_INSTALLED with no `current`, ERR_USAGE for a bad entry,
 * the record's write failing, the spawn failing).
 */
export async function launchOnce(options: LaunchOptions): Promise<number> {
  const home = resolve(options.home);
  const clock = options.clock ?? (() => new Date());
  const log = options.log ?? (() => {});
  const spawn = options.spawn ?? nodeSpawn;

  let stoppedBy: NodeJS.Signals | null = null;
  let child: ChildProcess | null = null;
  let ended = false;
  const onSignal = (signal: NodeJS.Signals) => {
    stoppedBy ??= signal;
    if (child?.pid === undefined || ended) return;
    try {
      process.kill(child.pid, signal);
    } catch {
      // already gone: its exit is on its way
    }
  };
  for (const s of STOP_SIGNALS) process.on(s, onSignal);
  let timer: NodeJS.Timeout | undefined;
  try {
    // The keeper runs from a release of the self home: cleanup must not remove it meanwhile.
    await pinRunningRelease('self launch', log);

    // 1. Decide, by the confirmed code, before any new code runs.
    const current = await readCurrent(homeLayout(home));
    if (current === null) throw new FerryError('ERR_NOT_INSTALLED', `${home} has no current version; install one first (ferry update --home ${home})`);
    const decision = decideStart(await readBootRecord(home), current, clock());
    const plan = startPlan(decision, current);
    if (stoppedBy) return stopBeforeStart(stoppedBy, log);

    // 2. The decided record, durably, before acting on it.
    if (decision.write) {
      options.killPoint?.('before', 'self-decide');
      await writeBootRecord(home, decision.write);
      options.killPoint?.('after', 'self-decide');
    }
    if (plan.note) log(plan.note);

    // 3. A rollback: `current` never left the confirmed version; history says why.
    if (plan.rollback) {
      log(`rolled back: ${rollbackMessage(plan.rollback)}; ${plan.rollback.from} is not tried again automatically`);
      // Loaded only here: the Updater (LevelDB and the rest) is not worth its load time on every start.
      const { recordRollback } = await import('./rollback-record.ts');
      await recordRollback(home, plan.rollback, { clock, log });
    }
    if (stoppedBy) return stopBeforeStart(stoppedBy, log);

    // 4. Start the agent.
    const file = entryPath(home, plan.version, options.entry);
    log(plan.trial ? `starting ${plan.version} on trial (it must confirm by ${plan.deadline}; ${plan.triesLeft} more start${plan.triesLeft === 1 ? '' : 's'} after this one)` : `starting ${plan.version}`);
    const started = spawn(process.execPath, [file, ...options.args], {
      env: { ...(options.env ?? process.env), FERRY_SELF_HOME: home, FERRY_SELF_VERSION: plan.version },
      stdio: 'inherit',
      detached: true,
    });
    const end = new Promise<Ended>((resolveEnd) => started.once('exit', (code, signal) => { ended = true; resolveEnd({ code, signal }); }));
    await new Promise<void>((resolveSpawn, reject) => {
      started.once('spawn', resolveSpawn);
      started.once('error', (err) => reject(new FerryError('ERR_IO', `starting ${file} failed: ${err.message}`, { cause: err })));
    });
    child = started;
    // A stop signal that came while it was being started is its too.
    if (stoppedBy) onSignal(stoppedBy);

    // 5. A trial that neither confirms nor exits is killed at its deadline.
    let killedAtDeadline = false;
    if (plan.trial && plan.deadline) {
      const deadline = Date.parse(plan.deadline);
      const pid = started.pid!;
      const arm = () => {
        timer = setTimeout(() => void check(), Math.min(Math.max(deadline - clock().getTime(), 0), MAX_TIMER_MS));
      };
      const check = async () => {
        if (ended) return;
        if (clock().getTime() < deadline) return arm();
        if (!(await stillOnTrial(home, plan.version)) || ended) return;
        killedAtDeadline = true;
        log(`${plan.version} did not confirm by its deadline ${plan.deadline}: killing it (process group ${pid})`);
        try {
          process.kill(-pid, 'SIGKILL');
        } catch {
          // the group is gone already
        }
      };
      arm();
    }

    // 6. The exit code for the launcher.
    const { code, signal } = await end;
    clearTimeout(timer);
    const onTrial = plan.trial && (killedAtDeadline || (await stillOnTrial(home, plan.version)));
    const exit = keeperExitCode({ code, signal, trial: plan.trial, stillOnTrial: onTrial, stoppedBy });
    log(`${plan.version} ${signal ? `was ended by ${signal}` : `exited with ${code}`}${onTrial ? ' without confirming' : ''}${stoppedBy ? ` after ${stoppedBy}` : ''}; exiting with ${exit}`);
    return exit;
  } finally {
    clearTimeout(timer);
    for (const s of STOP_SIGNALS) process.off(s, onSignal);
  }
}

/** A stop that came before anything was started: nothing to forward, nothing more to do. */
function stopBeforeStart(signal: NodeJS.Signals, log: (message: string) => void): number {
  log(`${signal} before the agent started: not starting it`);
  return exitStatus(null, signal);
}

/**
 * Whether the boot record still has `version` on trial, i.e. it has not confirmed. A damaged
 * record counts as yes: the next keeper then decides afresh (and runs the confirmed version).
 */
async function stillOnTrial(home: string, version: string): Promise<boolean> {
  const read = await readBootRecord(home);
  return read.state === 'damaged' || read.record.tentative?.version === version;
}
