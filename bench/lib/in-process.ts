// Runs bench/lib/in-process-update.mjs in a child: one update inside a process that has already
// loaded ferry (the way `ferry agent` runs updates), timed from `go` to the result, so node's
// start-up and ferry's module loading are not in the figure. Its memory figures are the child's own
// VmHWM (peak resident set): after the load, and at the end of the update.

import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { UpdateJson } from './ferry-cli.ts';

const DRIVER = fileURLToPath(new URL('./in-process-update.mjs', import.meta.url));

export interface InProcessUpdate {
  /** The update's wall time (open, apply, close), seconds. */
  seconds: number;
  /** The process's peak resident set at the end, KiB: load and update together. */
  maxRssKiB: number;
  /** The peak resident set once the code was loaded, before the update, KiB. */
  loadedRssKiB: number;
  /** What apply returned, in the shape `ferry update --json` prints. */
  json: UpdateJson;
}

/**
 * Starts the driver on `home`, waits until it has loaded the code, runs `beforeGo` (untimed: e.g.
 * settle the disk), then lets it run the update. Throws on a crash, a missing line, or past `timeoutMs`.
 */
export function updateInProcess(home: string, beforeGo: () => Promise<void>, timeoutMs: number): Promise<InProcessUpdate> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [DRIVER, home], { stdio: ['pipe', 'pipe', 'pipe'], timeout: timeoutMs, killSignal: 'SIGKILL' });
    let stderr = '';
    let result: InProcessUpdate | null = null;
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr = (stderr + d).slice(-8192); });
    child.on('error', reject);
    const lines = createInterface({ input: child.stdout });
    lines.on('line', (line) => {
      if (line.startsWith('ready ')) {
        beforeGo().then(() => child.stdin.end('go\n'), (err: unknown) => { child.kill('SIGKILL'); reject(err); });
      } else if (line.startsWith('result ')) {
        const r = JSON.parse(line.slice('result '.length)) as { ms: number; hwmKiB: number; loadedHwmKiB: number; result: UpdateJson };
        result = { seconds: r.ms / 1000, maxRssKiB: r.hwmKiB, loadedRssKiB: r.loadedHwmKiB, json: r.result };
      }
    });
    child.on('close', (code, signal) => {
      if (code === 0 && result) resolve(result);
      else reject(new Error(`in-process update of ${home} ${signal === 'SIGKILL' ? `was killed (over its ${timeoutMs / 1000} s deadline?)` : `exited ${code ?? signal}`}${result ? '' : ' without a result'}\n${stderr.trim()}`));
    });
  });
}
