// The container switch, as the health-check port (core/ports/health.ts), the way `ferry run`'s
// handover is: the updater has moved `current` to the new release; this stops the old version's
// container, starts the new one, and checks it. Unhealthy, it stops the new container and starts
// the old one again BEFORE answering, so when the updater rolls `current` back the old image is
// already serving (ARCHITECTURE.md "Containers"). A kill or power cut anywhere in here is repaired
// by reconcile.ts when the agent starts or `ferry container up` runs: the updater's recovery rolls
// an unconfirmed switch back, and reconcile then starts exactly the container of `current`.
//
// Healthy means, each within ferry.json health.timeoutMs: the container is still running after the
// settle time; container.exec (if set) exits 0 inside it; ferry.json health (URL or command) passes;
// and it is still running at the end (an app that dies during its checks is not healthy).

import type { HealthCheck, HealthResult } from '../../core/ports/health.ts';
import { containerId } from './bundle.ts';
import { ownContainers, startVersion, stopContainer, type ContainerContext } from './start-container.ts';

export interface ContainerSwitchOptions {
  /** The device's container context, or how to make it when the first switch happens. */
  context: () => Promise<ContainerContext>;
  /** ferry.json health (URL, command) run against the new container; null: none. */
  health: HealthCheck | null;
  /** Deadline of the whole check after the start (ferry.json health.timeoutMs). */
  timeoutMs: number;
  /**
   * How long the new container must stay up before it counts: default 1 s when staying up is the
   * only check, 250 ms when container.exec or ferry.json health checks it as well.
   */
  settleMs?: number;
}

const SETTLE_ALONE_MS = 1000;
const SETTLE_BEFORE_CHECKS_MS = 250;
const EXEC_RETRY_MS = 250;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Checks a started container; resolves with the verdict, never throws for an unhealthy app. */
export async function checkContainer(ctx: ContainerContext, id: string, target: { version: string; dir: string }, options: Pick<ContainerSwitchOptions, 'health' | 'timeoutMs' | 'settleMs'>): Promise<HealthResult> {
  const deadline = Date.now() + options.timeoutMs;
  const exec = ctx.config.container.exec;
  const settle = options.settleMs ?? (exec || options.health ? SETTLE_BEFORE_CHECKS_MS : SETTLE_ALONE_MS);
  await sleep(Math.min(settle, options.timeoutMs));
  const running = async () => (await ctx.engine.status(id)) === 'running';
  if (!(await running())) return { healthy: false, detail: `container ${id} exited at start (see ${id}.log under containers/)` };
  if (exec) {
    let last = '';
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) return { healthy: false, detail: `container.exec ${exec.join(' ')} did not pass within ${options.timeoutMs} ms (last: ${last})` };
      const r = await ctx.engine.exec(id, exec, left);
      if (r.code === 0) break;
      last = r.code === null ? 'timed out' : `exit ${r.code}: ${r.output.trim().split('\n').pop() ?? ''}`;
      if (!(await running())) return { healthy: false, detail: `container ${id} exited during its health command (last: ${last})` };
      await sleep(EXEC_RETRY_MS);
    }
  }
  if (options.health) {
    const r = await options.health.check(target);
    if (!r.healthy) return r;
  }
  if (!(await running())) return { healthy: false, detail: `container ${id} exited during its health check` };
  return { healthy: true, detail: `container ${id} running${exec ? ', container.exec passed' : ''}${options.health ? ', health check passed' : ''}` };
}

/** The HealthCheck that switches containers (see the file header). */
export function createContainerSwitch(options: ContainerSwitchOptions): HealthCheck {
  return {
    async check(target) {
      const ctx = await options.context();
      const newId = containerId(ctx.config.container.name, target.version);
      const before = await ownContainers(ctx);
      // The version to go back to: the one serving now (normally exactly one).
      // (one under an earlier container.name has no version to start again: version "").
      const old = before.find((c) => c.status === 'running' && c.id !== newId && c.version !== '') ?? null;
      for (const c of before) await stopContainer(ctx, c.id);
      let verdict: HealthResult;
      try {
        await startVersion(ctx, target.version);
        verdict = await checkContainer(ctx, newId, target, options);
      } catch (err) {
        verdict = { healthy: false, detail: `container ${newId} did not start: ${(err as Error).message}` };
      }
      if (verdict.healthy) return verdict;
      await stopContainer(ctx, newId).catch((err) => ctx.log(`stopping ${newId}: ${(err as Error).message}`));
      if (!old) return { healthy: false, detail: `${verdict.detail}; no earlier container was running` };
      try {
        await startVersion(ctx, old.version);
        return { healthy: false, detail: `${verdict.detail}; ${old.id} started again` };
      } catch (err) {
        // The updater still rolls `current` back; reconcile retries the start at the next agent start.
        return { healthy: false, detail: `${verdict.detail}; starting ${old.id} again failed: ${(err as Error).message}` };
      }
    },
  };
}
