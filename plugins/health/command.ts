// Health check by command: runs it in the new release's folder (FERRY_VERSION set); exit 0 within
// the deadline is healthy; a non-zero exit, a signal, or the deadline (process group killed) is not.

import type { HealthCheck } from '../../core/ports/health.ts';
import { outputTail, runCommand } from '../run-command.ts';

export function createCommandHealthCheck(command: string[], timeoutMs: number): HealthCheck {
  return {
    async check({ version, dir }) {
      const [cmd, ...args] = command;
      const r = await runCommand(cmd!, args, { cwd: dir, env: { ...process.env, FERRY_VERSION: version }, timeoutMs, keepBytes: 2000 });
      switch (r.kind) {
        case 'timed-out':
          return { healthy: false, detail: `health command did not finish within ${timeoutMs} ms` };
        case 'not-started':
          return { healthy: false, detail: `health command failed to start: ${r.error.message}` };
        case 'exited': {
          if (r.code === 0) return { healthy: true, detail: 'health command exited 0' };
          const tail = outputTail(r.output, 3, ' | ');
          return { healthy: false, detail: `health command ${r.signal ? `killed by ${r.signal}` : `exited ${r.code}`}${tail ? `: ${tail}` : ''}` };
        }
        default: {
          const never: never = r;
          return never;
        }
      }
    },
  };
}
