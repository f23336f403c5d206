// Test-only fault injection, off unless its environment variable is set. The crash tests run a
// real update in a child process with FERRY_TEST_KILL_AT=<when>:<phase> and expect it to die by
// SIGKILL exactly there, e.g. "after:switching" (journaled, side effect not yet done) or
// "before:committed" (health check passed, commit not yet journaled).

const KILL_AT = process.env.FERRY_TEST_KILL_AT ?? '';

export function killPoint(when: 'before' | 'after', phase: string): void {
  if (KILL_AT && KILL_AT === `${when}:${phase}`) process.kill(process.pid, 'SIGKILL');
}
