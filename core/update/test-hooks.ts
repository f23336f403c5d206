// Test-only hooks, each off unless its environment variable is set. The crash tests run a
// real update in a child process with FERRY_TEST_KILL_AT=<when>:<phase> and expect it to die by
// SIGKILL exactly there, e.g. "after:switching" (journaled, side effect not yet done) or
// "before:committed" (health check passed, commit not yet journaled).

const KILL_AT = process.env.FERRY_TEST_KILL_AT ?? '';

export function killPoint(when: 'before' | 'after', phase: string): void {
  if (KILL_AT && KILL_AT === `${when}:${phase}`) process.kill(process.pid, 'SIGKILL');
}

// FERRY_TEST_CLOCK_START=<ISO instant>: the process's clock reads that instant when the process
// starts, then moves in real time. Tests of time-dependent behaviour in a child process (the
// agent waking when a maintenance window opens) use it instead of patching Date; timers, the disk
// and the network stay real. Unset, `processClock` is the real clock.
const CLOCK_START = process.env.FERRY_TEST_CLOCK_START ?? '';

function shiftedClock(start: string): () => Date {
  const at = Date.parse(start);
  if (!Number.isFinite(at)) throw new Error(`FERRY_TEST_CLOCK_START is not an instant: ${start}`);
  const loaded = Date.now();
  return () => new Date(at + (Date.now() - loaded));
}

/** The clock a process uses unless it is handed one: the real clock, or the test's shifted one. */
export const processClock: () => Date = CLOCK_START ? shiftedClock(CLOCK_START) : () => new Date();
