// The agent's container watchdog (ARCHITECTURE.md "Containers"): runc and podman have no restart
// policy of their own here, so an app container that exits or is killed would stay down until the
// next agent start. Every ferry.json `container.watchSeconds` the agent looks, without the home's
// lock, whether exactly the container of `current` runs; only when it does not does it take the
// lock and reconcile (reconcile.ts: recovery first, then the container of `current` started and any
// other stopped). An update under way holds the lock and owns the containers (its switch stops and
// starts them), so a look that finds the home busy waits for the next one; so does one while
// `ferry run --container` supervises the home (its generations are the app's containers).

import { readDeviceConfig } from '../../core/device/config.ts';
import { homeLayout } from '../../core/device/layout.ts';
import { readCurrent } from '../../core/device/switch.ts';
import { isFerryError } from '../../core/errors.ts';
import { withDevice } from '../open-device.ts';
import { supervisorRunning } from '../run/health.ts';
import { realSleep } from '../agent/sleep.ts';
import type { ContainerEngine } from './engine.ts';
import { reconcileContainers } from './reconcile.ts';
import { containerContext, containerId, hasContainer, ownContainers } from './start-container.ts';

/** What one look came to. */
export type WatchOutcome =
  | { kind: 'off' } // no container section, or watchSeconds 0
  | { kind: 'ok' } // exactly the container of current runs (or nothing is installed and none runs)
  | { kind: 'busy'; why: string } // an update or `ferry run --container` owns the containers now
  | { kind: 'reconciled'; version: string | null; started: boolean; stopped: string[] };

/**
 * Whether the containers found differ from "exactly `want` runs" (want null: nothing installed,
 * so none should). A pure decision, so the lock is taken only when something is wrong.
 */
export function needsReconcile(want: string | null, found: readonly { id: string; status: string }[]): boolean {
  if (found.some((c) => c.id !== want)) return true;
  return want !== null && !found.some((c) => c.id === want && c.status === 'running');
}

export interface WatchOptions {
  /** The engine (default: detected from ferry.json once, at the first look). */
  engine?: ContainerEngine;
  /**
   * Runs the locked part in the caller's turn: the agent serialises it with its own attempts, so
   * the two never race for the home's lock (default: at once).
   */
  inTurn?: <T>(fn: () => Promise<T>) => Promise<T>;
}

/** One look at `home` (see the file header). Errors other than a busy home are the caller's to note. */
export async function watchOnce(home: string, options: WatchOptions = {}): Promise<WatchOutcome & { engine?: ContainerEngine }> {
  const layout = homeLayout(home);
  const config = await readDeviceConfig(layout.config);
  if (!hasContainer(config) || config.container.watchSeconds === 0) return { kind: 'off' };
  if (await supervisorRunning(home)) return { kind: 'busy', why: 'ferry run --container supervises the home' };
  const ctx = await containerContext(home, config, options.engine ? { engine: options.engine } : {});
  const version = await readCurrent(layout);
  const want = version === null ? null : containerId(config.container.name, version);
  if (!needsReconcile(want, await ownContainers(ctx))) return { kind: 'ok', engine: ctx.engine };
  try {
    const inTurn = options.inTurn ?? (<T>(fn: () => Promise<T>) => fn());
    const r = await inTurn(() => withDevice(home, () => reconcileContainers(ctx)));
    return { kind: 'reconciled', version: r.version, started: r.started, stopped: r.stopped, engine: ctx.engine };
  } catch (err) {
    if (isFerryError(err, 'ERR_BUSY')) return { kind: 'busy', why: err.message, engine: ctx.engine };
    throw err;
  }
}

/**
 * Looks every ferry.json `container.watchSeconds` until `signal` aborts, reporting each look that
 * changed something or failed (a busy home is not news: the next look comes soon). Real time, not the agent's injected sleep: the container's process
 * dies in real time, whatever clock the agent's schedule is tested with.
 */
export async function watchContainers(home: string, signal: AbortSignal, report: (outcome: WatchOutcome | { kind: 'error'; error: unknown }) => void, options: Pick<WatchOptions, 'inTurn'> = {}): Promise<void> {
  let engine: ContainerEngine | undefined;
  while (!signal.aborted) {
    const config = await readDeviceConfig(homeLayout(home).config).catch(() => null);
    const seconds = config?.container?.watchSeconds ?? 0;
    // Off now (no section, or 0): look again at the default pace in case ferry.json changes.
    await realSleep((seconds > 0 ? seconds : 10) * 1000, signal);
    if (signal.aborted || seconds === 0) continue;
    try {
      const outcome = await watchOnce(home, { ...options, ...(engine ? { engine } : {}) });
      engine = outcome.engine ?? engine;
      if (outcome.kind === 'reconciled') report(outcome);
    } catch (error) {
      report({ kind: 'error', error });
    }
  }
}
