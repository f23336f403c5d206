// The health check `ferry update` uses while `ferry run` supervises the app: "is the new release
// healthy?" becomes "supervisor, hand over to it". The answer comes after the new generation is
// ready and serving (healthy: the updater commits) or after it failed and was stopped while the old
// one kept serving (unhealthy: the updater switches `current` back). The updater is unchanged.

import type { HealthCheck } from '../../core/ports/health.ts';
import { requestSupervisor } from './control.ts';

/**
 * A HealthCheck that asks the supervisor of `home` to hand over to the switched version. The
 * supervisor is told `timeoutMs` and gives up (stopping the new generation) a second before it, so
 * a late "healthy" never arrives after the updater has already rolled back.
 */
export function createSupervisorHealthCheck(home: string, timeoutMs: number): HealthCheck {
  return {
    async check({ version }) {
      try {
        return await requestSupervisor(home, { op: 'handover', version, timeoutMs }, timeoutMs + 2000);
      } catch (err) {
        return { healthy: false, detail: `supervisor handover: ${(err as Error).message}` };
      }
    },
  };
}

/** True when a `ferry run` supervisor answers on `home`'s control socket. */
export function supervisorRunning(home: string, timeoutMs = 1000): Promise<boolean> {
  return requestSupervisor(home, { op: 'status' }, timeoutMs).then(() => true, () => false);
}
