// The bandwidth cap (maxBytesPerSecond) as a token bucket, one per transport, shared by all its
// requests: the cap is per origin. takeTokens is the arithmetic; TokenBucket adds the clock and
// the wait.

import { setTimeout as delay } from 'node:timers/promises';

export interface BucketState {
  tokens: number;
  /** When tokens was last brought up to date (ms). */
  at: number;
}

/** A quarter second of burst: enough to keep the socket busy, small enough to hold the cap. */
export function bucketCapacity(bytesPerSecond: number): number {
  return Math.max(16 * 1024, bytesPerSecond / 4);
}

/**
 * Refills the bucket for the time since `state.at` (never past `capacity`), takes `n` tokens (the
 * bucket may go into debt) and says how long to wait until the debt is paid.
 */
export function takeTokens(state: BucketState, n: number, now: number, bytesPerSecond: number, capacity: number): { state: BucketState; waitMs: number } {
  const refilled = Math.min(capacity, state.tokens + ((now - state.at) * bytesPerSecond) / 1000);
  const tokens = refilled - n;
  return { state: { tokens, at: now }, waitMs: tokens < 0 ? Math.ceil((-tokens * 1000) / bytesPerSecond) : 0 };
}

export class TokenBucket {
  private readonly capacity: number;
  private state: BucketState;

  constructor(
    private readonly bytesPerSecond: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.capacity = bucketCapacity(bytesPerSecond);
    this.state = { tokens: this.capacity, at: now() };
  }

  /** Takes `n` bytes' worth of tokens, waiting while the bucket is in debt. */
  async take(n: number): Promise<void> {
    const { state, waitMs } = takeTokens(this.state, n, this.now(), this.bytesPerSecond, this.capacity);
    this.state = state;
    if (waitMs > 0) await delay(waitMs);
  }
}
