// Adopting a `ferry run` that already serves the home: the agent starts `ferry run` detached
// (plugins/agent/app-child.ts), so it outlives an agent that crashed, was killed, or handed over
// to a new version of itself (ARCHITECTURE.md "Self-update"). The next agent finds it (its
// control socket answers; its pid is in <home>/run/supervisor.pid) and supervises the app through
// it instead of starting a second one, which would only fail with ERR_BUSY.
//
// An adopted `ferry run` is not the agent's child: no 'exit' event tells when it ends. The agent
// watches its pid with bounded polling on its own sleep, and stops it as it stops a child: SIGTERM
// to that pid, the same grace, then SIGKILL.

import { readFileSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { pidAlive } from '../../core/io/pid-alive.ts';
import { pidFilePath, requestSupervisor } from '../run/control.ts';
import { SUPERVISOR_START_MS, type SupervisorGone, type SupervisorHandle } from './app-child.ts';
import type { SleepFn } from './sleep.ts';

/** How often the agent asks whether an adopted `ferry run` still runs (and a starting one answers yet). */
export const ADOPTED_POLL_MS = 1000;
const STARTING_POLL_MS = 100;
/** How long the control socket gets to answer a status request. */
const STATUS_TIMEOUT_MS = 1000;
/** After SIGKILL, how long the agent waits to see the pid gone. */
const KILLED_WAIT_MS = 5000;

/** What the agent found on the home: who answered the control socket, and what the pid file says. */
export interface SupervisorSeen {
  /** The pid the answering supervisor reports (its status), or null when nothing answered. */
  answered: number | null;
  /** The pid file: its pid, whether that process runs, and how old the file is. */
  pidFile: { pid: number; running: boolean; ageMs: number } | null;
  /** This process (an in-process Supervisor is never adopted: the agent would signal itself). */
  self: number;
}

export type AdoptDecision =
  | { action: 'adopt'; pid: number }
  /** A supervisor wrote its pid file moments ago and may still be opening its control socket. */
  | { action: 'wait' }
  | { action: 'spawn' };

/** Adopt what answers; wait for a supervisor that is starting; otherwise start one (a stale pid file is the supervisor's own business). */
export function decideAdoption(seen: SupervisorSeen): AdoptDecision {
  const a = seen.answered;
  if (a !== null && Number.isSafeInteger(a) && a > 0 && a !== seen.self) return { action: 'adopt', pid: a };
  const f = seen.pidFile;
  // Pid file written, then sockets bound, then the control socket opened (plugins/run/supervisor.ts
  // start): a young pid file naming a live process is a supervisor on its way. An old one whose pid
  // runs is a pid reused after a crash or a reboot: waiting for it would only delay the app.
  if (a === null && f && f.running && f.pid !== seen.self && f.ageMs >= 0 && f.ageMs < SUPERVISOR_START_MS) return { action: 'wait' };
  return { action: 'spawn' };
}

/** True while `pid` runs; a zombie (exited, not yet reaped by whoever inherited it) does not count. */
export function processRunning(pid: number): boolean {
  if (!pidAlive(pid)) return false;
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return s.slice(s.lastIndexOf(')') + 2, s.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true; // no /proc: kill(0) is all there is to go by
  }
}

async function look(home: string): Promise<SupervisorSeen> {
  const answered = await requestSupervisor(home, { op: 'status' }, STATUS_TIMEOUT_MS).then((s) => s.pid, () => null);
  const path = pidFilePath(home);
  const pid = Number(await readFile(path, 'utf8').catch(() => 'NaN'));
  const mtime = await stat(path).then((s) => s.mtimeMs, () => null);
  const pidFile = Number.isSafeInteger(pid) && pid > 0 && mtime !== null ? { pid, running: processRunning(pid), ageMs: Date.now() - mtime } : null;
  return { answered, pidFile, self: process.pid };
}

/**
 * The pid of the `ferry run` serving `home` for the agent to adopt, or null: start one. Waits,
 * bounded by SUPERVISOR_START_MS, for one that is starting.
 */
export async function findRunningSupervisor(home: string, sleep: SleepFn, stop: AbortSignal): Promise<number | null> {
  for (let i = 0; i * STARTING_POLL_MS <= SUPERVISOR_START_MS && !stop.aborted; i++) {
    const d = decideAdoption(await look(home));
    if (d.action === 'adopt') return d.pid;
    if (d.action === 'spawn') return null;
    await sleep(STARTING_POLL_MS, stop);
  }
  return null;
}

/** The SupervisorHandle of an adopted `ferry run`: watched by pid on the agent's sleep. */
export function adoptSupervisor(pid: number, sleep: SleepFn): SupervisorHandle {
  const watching = new AbortController();
  const gone = (async (): Promise<SupervisorGone> => {
    while (processRunning(pid)) {
      await sleep(ADOPTED_POLL_MS, watching.signal);
      if (watching.signal.aborted) return new Promise<never>(() => {}); // left or stopped: not watched any more
    }
    return { code: null, signal: null };
  })();
  return {
    pid,
    adopted: true,
    gone,
    stop: async (graceMs) => {
      watching.abort();
      if (!processRunning(pid)) return;
      signal(pid, 'SIGTERM');
      // Real time, as for a child (plugins/agent/app-child.ts stopApp): a safety net for a real process.
      if (await goneWithin(pid, graceMs)) return;
      signal(pid, 'SIGKILL');
      await goneWithin(pid, KILLED_WAIT_MS);
    },
    leave: () => watching.abort(),
  };
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // gone meanwhile
  }
}

/** Polls every 50 ms of real time until `pid` is gone; false if it is still there after `ms`. */
async function goneWithin(pid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (processRunning(pid)) {
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
  return true;
}
