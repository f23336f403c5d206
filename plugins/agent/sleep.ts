// The agent's sleep, injected like its clock so tests can drive its schedule with fake time: a
// sleep of `ms` that ends early, without an error, when `signal` aborts (a wake-up or a stop).

export type SleepFn = (ms: number, signal: AbortSignal) => Promise<void>;

/** The real sleep: a timer, cleared when the signal ends it first. */
export const realSleep: SleepFn = (ms, signal) =>
  new Promise<void>((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
