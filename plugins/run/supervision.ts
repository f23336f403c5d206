// The decisions `ferry run` makes, as pure functions with table tests (test/core/supervision.test.ts):
// how to read a --listen address, how a new generation proves it is ready, how long to wait before
// restarting a crashed app, and which lifecycle moves a generation may make. The effects (sockets,
// processes, the control socket) live in plugins/run/.

import { FerryError } from '../../core/errors.ts';

export interface ListenAddress {
  host: string;
  port: number;
  family: 4 | 6;
}

/** "8080" (every IPv4 address), "127.0.0.1:8443", "[::1]:8443", "0" (any free port). */
export function parseListen(spec: string): ListenAddress {
  const m = /^(?:(\[[0-9a-fA-F:.]+\]|[0-9.]+|localhost):)?(\d{1,5})$/.exec(spec.trim());
  const port = m ? Number(m[2]) : NaN;
  if (!m || !(port >= 0 && port <= 65535)) {
    throw new FerryError('ERR_USAGE', `--listen "${spec}" is not PORT, HOST:PORT or [IPV6]:PORT`);
  }
  const raw = m[1] ?? '0.0.0.0';
  if (raw.startsWith('[')) return { host: raw.slice(1, -1), port, family: 6 };
  if (raw === 'localhost') return { host: '127.0.0.1', port, family: 4 };
  const parts = raw.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p > 255)) {
    throw new FerryError('ERR_USAGE', `--listen "${spec}": "${raw}" is not an IPv4 address`);
  }
  return { host: raw, port, family: 4 };
}

/**
 * How a new generation shows it is ready to take traffic:
 *  - health: an HTTP GET of `path` on the generation's own private socket answers 2xx. Not on the
 *    shared port: there the old process answers too (both accept from one queue), so a probe could
 *    never tell which generation said yes.
 *  - notify: the app writes READY=1 (ferry/app: plugins/run/app.ts reportReady).
 *  - settle: the app stays up for `settleMs` (a READY=1 before then also counts).
 */
export type Readiness =
  | { mode: 'health'; path: string; timeoutMs: number }
  | { mode: 'notify'; timeoutMs: number }
  | { mode: 'settle'; settleMs: number; timeoutMs: number };

export function chooseReadiness(options: { health?: string | undefined; notify?: boolean | undefined; settleMs: number; readyTimeoutMs: number }): Readiness {
  if (options.health) {
    let path = options.health;
    if (/^https?:\/\//.test(path)) {
      const url = new URL(path);
      path = url.pathname + url.search;
    }
    if (!path.startsWith('/')) throw new FerryError('ERR_USAGE', `--health "${options.health}" is not a URL or an absolute path`);
    return { mode: 'health', path, timeoutMs: options.readyTimeoutMs };
  }
  if (options.notify) return { mode: 'notify', timeoutMs: options.readyTimeoutMs };
  if (options.settleMs > options.readyTimeoutMs) throw new FerryError('ERR_USAGE', '--settle must not be longer than --ready-timeout');
  return { mode: 'settle', settleMs: options.settleMs, timeoutMs: options.readyTimeoutMs };
}

export interface BackoffPolicy {
  /** Delay before the first restart. */
  baseMs: number;
  /** No delay is longer than this. */
  capMs: number;
  /** An app that ran this long before crashing is treated as a fresh crash, not a crash loop. */
  stableMs: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { baseMs: 100, capMs: 10_000, stableMs: 10_000 };

/**
 * After a crash: how many crashes in a row this makes and how long to wait before restarting.
 * Doubling up to a cap keeps a crash-looping app from eating the CPU the device needs; a crash
 * after a long stable run starts the count again so a rare crash is restarted at once.
 */
export function restartDelay(previousCrashesInARow: number, uptimeMs: number, policy: BackoffPolicy = DEFAULT_BACKOFF): { crashesInARow: number; delayMs: number } {
  const crashesInARow = uptimeMs >= policy.stableMs ? 1 : previousCrashesInARow + 1;
  const delayMs = Math.min(policy.capMs, policy.baseMs * 2 ** Math.min(30, crashesInARow - 1));
  return { crashesInARow, delayMs };
}

/**
 * A generation is one start of the app from one release folder.
 *   starting → active (it serves; the one crashes are restarted for)
 *   starting → failed (exited or not ready in time: a handover that did not happen)
 *   active → draining (a newer generation took over, or ferry is stopping) → exited
 *   active → exited (crashed: the supervisor starts a replacement generation)
 *   starting → draining (ferry stopped, or the handover was abandoned while it started)
 */
export type GenerationState = 'starting' | 'active' | 'draining' | 'failed' | 'exited';

const MOVES: Record<GenerationState, readonly GenerationState[]> = {
  starting: ['active', 'failed', 'draining'],
  active: ['draining', 'exited'],
  draining: ['exited'],
  failed: ['exited'],
  exited: [],
};

export function canMove(from: GenerationState, to: GenerationState): boolean {
  return MOVES[from].includes(to);
}

/** What the supervisor does when a generation's process exits, by the state it was in. */
export function onExit(state: GenerationState, stopping: boolean): 'restart' | 'unhealthy' | 'done' {
  switch (state) {
    case 'active':
      return stopping ? 'done' : 'restart';
    case 'starting':
      return 'unhealthy';
    case 'draining':
    case 'failed':
    case 'exited':
      return 'done';
    default: {
      const never: never = state;
      throw new FerryError('ERR_INTERNAL', `unknown generation state ${String(never)}`);
    }
  }
}
