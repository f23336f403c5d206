// The throughput watchdog of one response body (SECURITY.md row 7): no wait for the network longer
// than timeoutMs, and after a grace period at least minBytesPerSecond over a sliding window, so a
// trickling origin is abandoned and the core moves to the next source. judgeTransfer decides from
// samples; startWatchdog takes the samples on a timer.

export interface ThroughputLimits {
  /** Longest wait for the next body byte. */
  timeoutMs: number;
  minBytesPerSecond: number;
  windowMs: number;
  /** Time after the headers before throughput is judged. */
  graceMs: number;
}

/** Bytes received by time t (ms, performance.now()). */
export interface Sample {
  t: number;
  bytes: number;
}

export interface TransferState {
  started: number;
  /** When the reader last went back to waiting for the network; undefined while it is busy (sink, cap). */
  waitingSince: number | undefined;
  /** Oldest first; the last one is "now". */
  samples: readonly Sample[];
}

export type Verdict =
  | { kind: 'ok' }
  | { kind: 'stalled' }
  | { kind: 'slow'; bytesPerSecond: number; overMs: number };

/** How often the watchdog samples: often enough to act within a quarter window or timeout. */
export function tickMs(limits: ThroughputLimits): number {
  return Math.max(20, Math.min(250, limits.windowMs / 4, limits.timeoutMs / 4));
}

/** Appends `latest` and drops old samples, keeping one at or before the window's start so the rate covers the whole window. */
export function slideWindow(samples: readonly Sample[], latest: Sample, windowMs: number): Sample[] {
  const out = [...samples, latest];
  let first = 0;
  while (out.length - first > 2 && out[first + 1]!.t <= latest.t - windowMs) first++;
  return out.slice(first);
}

export function judgeTransfer(limits: ThroughputLimits, state: TransferState): Verdict {
  const now = state.samples.at(-1);
  const from = state.samples[0];
  if (!now || !from) return { kind: 'ok' };
  if (state.waitingSince !== undefined && now.t - state.waitingSince > limits.timeoutMs) return { kind: 'stalled' };
  if (now.t - state.started >= limits.graceMs && now.t > from.t) {
    const bytesPerSecond = ((now.bytes - from.bytes) * 1000) / (now.t - from.t);
    if (bytesPerSecond < limits.minBytesPerSecond) return { kind: 'slow', bytesPerSecond, overMs: now.t - from.t };
  }
  return { kind: 'ok' };
}

export function describeVerdict(verdict: Verdict, limits: ThroughputLimits): string {
  switch (verdict.kind) {
    case 'ok':
      return 'fast enough';
    case 'stalled':
      return `stalled, no data for ${limits.timeoutMs} ms`;
    case 'slow':
      return `${Math.round(verdict.bytesPerSecond)} B/s over the last ${Math.round(verdict.overMs)} ms, under the ${limits.minBytesPerSecond} B/s minimum`;
  }
}

export interface Watchdog {
  /** Bytes arrived: the reader is busy with them until waiting() is called. */
  arrived(bytes: number): void;
  /** The reader waits for the network again. */
  waiting(): void;
  stop(): void;
}

/** Samples the transfer every tick; calls `onFailure` once, with the first verdict that is not ok. */
export function startWatchdog(limits: ThroughputLimits, onFailure: (verdict: Verdict) => void): Watchdog {
  const started = performance.now();
  let received = 0;
  let waitingSince: number | undefined = started;
  let samples: readonly Sample[] = [{ t: started, bytes: 0 }];
  const timer = setInterval(() => {
    samples = slideWindow(samples, { t: performance.now(), bytes: received }, limits.windowMs);
    const verdict = judgeTransfer(limits, { started, waitingSince, samples });
    if (verdict.kind === 'ok') return;
    clearInterval(timer);
    onFailure(verdict);
  }, tickMs(limits));
  return {
    arrived(bytes) {
      received += bytes;
      waitingSince = undefined;
    },
    waiting() {
      waitingSince = performance.now();
    },
    stop() {
      clearInterval(timer);
    },
  };
}
