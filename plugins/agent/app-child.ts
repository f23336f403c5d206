// The app the agent supervises: `ferry run` started by the agent, so updates hand over from the
// old version to the new one without dropping a request (plugins/run). The agent starts it once
// something is installed, waits until it answers on its control socket before an attempt may
// switch `current` (a switch under a ferry run that is not yet listening would commit without a
// handover and leave the old version serving), and stops it when the agent stops.
//
// `ferry run` is started DETACHED (its own process group and session): killing the agent, or its
// whole process group (the self-update keeper kills a hung agent's group), leaves the app
// supervisor and the app serving. The next agent adopts it (plugins/agent/adopt-supervisor.ts)
// instead of starting a second one; an agent that hands over to a new version of itself leaves it
// running on purpose (ARCHITECTURE.md "Self-update"). Either way the agent holds a
// SupervisorHandle: the same watch and stop for a child and for an adopted pid.
//
// Socket activation (examples/systemd/ferry-agent.socket): the sockets systemd passes the agent
// are handed to its `ferry run` at the same fd numbers with `--listen fd:N` (LISTEN_PID cannot
// name a child before it exists), and the agent keeps its own copies open while it runs, so they
// outlive every app generation and every restart of `ferry run`.

import type { ChildProcess, StdioOptions } from 'node:child_process';
import { readlink } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { homeLayout } from '../../core/device/layout.ts';
import { FerryError } from '../../core/errors.ts';
import { supervisorRunning } from '../run/health.ts';
import { resolveListen, type InheritedFd, type ListenSocket } from '../run/listen-fds.ts';
import { assertInheritedSocket } from '../run/sockets.ts';
import type { SleepFn } from './sleep.ts';

/** The app to supervise, as `ferry run` takes it. */
export interface AppOptions {
  /** The app command and its arguments (what follows `--` on `ferry run`). */
  command: string[];
  /** `--listen` values: PORT, HOST:PORT, fd:N or systemd; default: every socket systemd passed. */
  listen?: string[];
  /** `--health` URL for ferry run. */
  health?: string;
  /** How long an old generation may drain after a handover. */
  drainTimeoutMs: number;
}

/** How the agent starts a process: node's child_process.spawn fits. */
export type SpawnFn = (command: string, args: readonly string[], options: { stdio: StdioOptions; detached?: boolean }) => ChildProcess;

/** How a `ferry run` the agent watches ended: code and signal are known only for its own child. */
export interface SupervisorGone {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** The `ferry run` the agent supervises the app through: its own child, or one it adopted. */
export interface SupervisorHandle {
  readonly pid: number | null;
  readonly adopted: boolean;
  /** Resolves once that `ferry run` has gone (never, after leave()). */
  readonly gone: Promise<SupervisorGone>;
  /** SIGTERM to its pid, SIGKILL if it is still there after `graceMs`; resolves once it has gone (bounded). */
  stop(graceMs: number): Promise<void>;
  /** Leaves it serving past the agent (a self-update): no more watching, and it keeps no agent process alive. */
  leave(): void;
}

/**
 * The built `ferry` executable, dist/cli/ferry.js, found from this file: next to it in dist/, or,
 * when this file runs from source (tsx), in the checkout's dist/.
 */
export const DEFAULT_FERRY_BIN = fileURLToPath(new URL(import.meta.url.endsWith('.ts') ? '../../dist/cli/ferry.js' : '../../cli/ferry.js', import.meta.url));

/** How long a new `ferry run` gets to take its control socket before the first attempt goes on. */
export const SUPERVISOR_START_MS = 30_000;
/** How often the agent asks whether the new `ferry run` answers yet. */
const SUPERVISOR_POLL_MS = 100;
/** How long `ferry run` gets beyond its drain timeout to exit on SIGTERM before SIGKILL. */
export const STOP_GRACE_MS = 10_000;

/**
 * The sockets `ferry run` will serve on, checked now, so a wrong fd is a usage error when the
 * agent is built, not an exit of `ferry run` later. ERR_USAGE for an empty command.
 */
export function appSockets(app: AppOptions, passed: readonly InheritedFd[]): ListenSocket[] {
  if (app.command.length === 0) throw new FerryError('ERR_USAGE', 'the app command is empty');
  if (!(Number.isSafeInteger(app.drainTimeoutMs) && app.drainTimeoutMs >= 0)) throw new FerryError('ERR_USAGE', `drain timeout ${app.drainTimeoutMs} ms is not a whole number of milliseconds`);
  const sockets = resolveListen(app.listen, passed);
  for (const l of sockets) if (l.kind === 'fd') assertInheritedSocket(l.fd);
  return sockets;
}

/** The `ferry run` command line (after node). */
export function runArgs(ferryBin: string, home: string, app: AppOptions, sockets: readonly ListenSocket[]): string[] {
  return [
    ferryBin, 'run', '--home', home,
    ...sockets.flatMap((l) => ['--listen', l.kind === 'fd' ? `fd:${l.fd}` : l.spec]),
    ...(app.health ? ['--health', app.health] : []),
    '--drain-timeout', `${app.drainTimeoutMs}ms`,
    '--', ...app.command,
  ];
}

/** The child's stdio: stdin ignored, output to our stderr, and each inherited socket at its own fd number. */
export function runStdio(sockets: readonly ListenSocket[]): ('ignore' | number)[] {
  const fds = sockets.flatMap((l) => (l.kind === 'fd' ? [l.fd] : []));
  const slots: ('ignore' | number)[] = ['ignore', 2, 2];
  for (let fd = 3; fd <= Math.max(2, ...fds); fd++) slots.push(fds.includes(fd) ? fd : 'ignore');
  return slots;
}

function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

export interface StartAppInput {
  home: string;
  app: AppOptions;
  sockets: readonly ListenSocket[];
  ferryBin: string;
  spawn: SpawnFn;
  clock: () => Date;
  sleep: SleepFn;
  /** The agent is stopping: no new child, and no more waiting for one. */
  stop: AbortSignal;
}

/** True once something is installed: `ferry run` needs a `current`; until then the agent only updates. */
export async function appInstalled(home: string): Promise<boolean> {
  return (await readlink(homeLayout(home).current).catch(() => null)) !== null;
}

/**
 * Starts `ferry run` (detached) when something is installed. Returns the child, or null when
 * nothing is installed yet or the agent is stopping. waitForSupervisor waits until it answers.
 */
export async function startApp(input: StartAppInput): Promise<ChildProcess | null> {
  if (input.stop.aborted) return null;
  if (!(await appInstalled(input.home))) return null;
  // detached: its own process group, so a signal to the agent's group does not reach it.
  const child = input.spawn(process.execPath, runArgs(input.ferryBin, input.home, input.app, input.sockets), { stdio: runStdio(input.sockets), detached: true });
  // A child that could not start (ENOENT …) reports it as 'error' and then 'exit'; the agent
  // notices the exit. Without a listener the error would be thrown out of the event loop.
  child.on('error', () => {});
  return child;
}

/** Waits until the started `ferry run` answers on its control socket, exits, the agent stops, or SUPERVISOR_START_MS pass. */
export async function waitForSupervisor(child: ChildProcess, input: StartAppInput): Promise<void> {
  const deadline = input.clock().getTime() + SUPERVISOR_START_MS;
  while (!input.stop.aborted && !exited(child) && input.clock().getTime() < deadline && !(await supervisorRunning(input.home, 500))) {
    await input.sleep(SUPERVISOR_POLL_MS, input.stop);
  }
}

/** The SupervisorHandle of a `ferry run` the agent started itself. */
export function childSupervisor(child: ChildProcess): SupervisorHandle {
  const gone = exited(child)
    ? Promise.resolve({ code: child.exitCode, signal: child.signalCode })
    : new Promise<SupervisorGone>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  return {
    pid: child.pid ?? null,
    adopted: false,
    gone,
    stop: (graceMs) => stopApp(child, graceMs),
    // Its stdio are our own fds (no pipes), so unref() is all it takes for this process to exit without it.
    leave: () => child.unref?.(),
  };
}

/**
 * SIGTERM to the child's pid, then SIGKILL if it has not exited within `graceMs`. The grace is
 * real time (a safety net for a real process), not the agent's injected sleep.
 */
export function stopApp(child: ChildProcess, graceMs: number): Promise<void> {
  if (exited(child)) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}
