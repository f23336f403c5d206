// A bounded wait that leaves no timer behind. `Promise.race([p, sleep(ms)])` keeps its timer
// pending after `p` won, and a pending timer keeps the test process alive: test/run.mjs waits for
// each file's process to exit, so one such race near the end of a file kept it running up to `ms`
// after its last test (15-30 s for each of ten slow files in the CI log of session 20).

/** `p`'s value, or `onTimeout` once `ms` passed, whichever comes first; the timer is cleared either way. */
export async function within<T, U>(p: Promise<T>, ms: number, onTimeout: U): Promise<T | U> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<U>((resolve) => {
    timer = setTimeout(() => resolve(onTimeout), ms);
  });
  try {
    return await Promise.race([p, timedOut]);
  } finally {
    clearTimeout(timer);
  }
}
