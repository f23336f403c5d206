// Whether a process exists, as kill(pid, 0) tells: the lock, the supervisor's pid file and the
// running-release pins all judge a recorded pid stale this one way.

/** True when a process with this pid exists (EPERM: it does, owned by someone else). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
