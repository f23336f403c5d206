// Health check by command: runs it in the new release's folder (FERRY_VERSION set); exit 0 within
// the deadline is healthy; a non-zero exit, a signal, or the deadline (process group killed) is not.

import { spawn } from 'node:child_process';
import type { HealthCheck } from '../../core/ports/health.ts';

export function createCommandHealthCheck(command: string[], timeoutMs: number): HealthCheck {
  return {
    check({ version, dir }) {
      return new Promise((resolve) => {
        const [cmd, ...args] = command;
        const child = spawn(cmd!, args, { cwd: dir, env: { ...process.env, FERRY_VERSION: version }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
        let output = '';
        const keep = (d: Buffer) => { output = (output + d.toString()).slice(-2000); };
        child.stdout.on('data', keep);
        child.stderr.on('data', keep);
        const timer = setTimeout(() => {
          try { process.kill(-child.pid!, 'SIGKILL'); } catch { /* already gone */ }
          resolve({ healthy: false, detail: `health command did not finish within ${timeoutMs} ms` });
        }, timeoutMs);
        child.on('error', (err) => { clearTimeout(timer); resolve({ healthy: false, detail: `health command failed to start: ${err.message}` }); });
        child.on('close', (code, signal) => {
          clearTimeout(timer);
          if (code === 0) return resolve({ healthy: true, detail: 'health command exited 0' });
          const tail = output.trim().split('\n').slice(-3).join(' | ');
          if (code !== 0) resolve({ healthy: false, detail: `health command ${signal ? `killed by ${signal}` : `exited ${code}`}${tail ? `: ${tail}` : ''}` });
        });
      });
    },
  };
}
