// One check+apply attempt of the agent: the device home opened for just this attempt (its lock
// taken, an interrupted update recovered), `apply({ trigger: 'auto' })` so the policy's autoUpdate,
// approval and window rules hold, the outcome logged, and the device closed again, so `ferry
// status`, `ferry approve` … work between attempts. Every attempt leaves a fresh signed report in
// <home>/device/report.json (the agent then carries it off: plugins/fleet/deliver-reports.ts).
// What the outcome means for the next wake-up is decided by core/policy/agent-schedule.ts.

import { classifyError, type AttemptOutcome } from '../../core/policy/agent-schedule.ts';
import type { ApplyResult } from '../../core/spec.ts';
import { withDevice, type OpenDeviceOptions } from '../open-device.ts';
import { logResult, type AgentLog } from './agent-log.ts';

/** What one attempt came to. */
export interface AttemptResult {
  /** As far as scheduling cares (done, busy, offline, refused). */
  outcome: AttemptOutcome;
  /** What apply returned, or null when it threw. */
  result: ApplyResult | null;
  /** What apply (or opening the device) threw, or null. */
  error: Error | null;
  /** A release is staged and waits for the maintenance window: the agent wakes when it opens. */
  waitingForWindow: boolean;
}

/**
 * The attempt the agent does not make while the policy is disabled (core/policy/agent-schedule.ts
 * attemptAllowed): the device home is not even opened, so nothing is checked, fetched or staged.
 */
export function skipDisabled(log: AgentLog, why: string): AttemptResult {
  log('disabled', { trigger: why }, `updates are disabled by policy (ferry.json policy.enabled): no check (${why})`);
  return { outcome: 'disabled', result: null, error: null, waitingForWindow: false };
}

/** Runs one attempt; never throws (a failure is the result's `error`). */
export async function attemptUpdate(home: string, log: AgentLog, why: string, device: OpenDeviceOptions): Promise<AttemptResult> {
  log('check', { trigger: why }, `checking for updates (${why})`);
  try {
    const result = await withDevice(home, async (u) => {
      const applied = await u.apply({ trigger: 'auto' });
      // An apply that ended an attempt wrote its report (core/update/updater.ts); a round that found
      // nothing to do writes one too, so the fleet hears from the device every checkInterval.
      if (applied.status === 'up-to-date' || applied.status === 'waiting') {
        await u.writeReport().catch((err: unknown) => {
          const message = `device report not written (${(err as { code?: string }).code ?? 'error'}: ${(err as Error).message})`;
          log('note', { message }, message);
        });
      }
      return applied;
    }, device);
    logResult(log, result);
    return { outcome: 'done', result, error: null, waitingForWindow: result.status === 'waiting' && result.reason === 'window' };
  } catch (err) {
    return { outcome: classifyError(err), result: null, error: err instanceof Error ? err : new Error(String(err)), waitingForWindow: false };
  }
}
