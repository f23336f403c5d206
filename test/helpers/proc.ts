// Whether a process still runs, asked of the kernel rather than of whoever started it: the tests
// of `ferry run` and the agent use it to show that no app or supervisor outlives what should end it.

import { readFileSync } from 'node:fs';

/** True while `pid` runs: a zombie (exited, not yet reaped) still answers kill(0) but does not count. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}
