// Retrying one call to the origin. Two questions get two answers here:
// - FerryError.retryable (core/errors.ts) says whether trying again *later or elsewhere* can help:
//   every ERR_IO is, so the core moves to the next source and the agent counts the check as offline.
// - AttemptFailure.retry says whether *this transport* should ask the same origin again, now,
//   after a backoff. A reset connection or a 503 should; a stalled, slow, oversized or hostile
//   answer should not (SECURITY.md row 7: a slow origin is left to the core, not hammered), nor a
//   disk failure, which is not the origin's fault.
// Every failure inside one attempt is thrown as an AttemptFailure carrying that verdict; withRetries
// reads it and lets only the FerryError out. Its message may quote what the origin or the network
// stack said, so it passes printable() here, where every HTTP failure is made (SECURITY.md row 14).

import { FerryError, fromFsError, type ErrorCode } from '../../core/errors.ts';
import { printable } from '../../core/io/printable.ts';

/** A failed attempt: the error the caller will see, and whether to ask the origin again. */
export class AttemptFailure extends Error {
  override readonly name = 'AttemptFailure';

  constructor(
    readonly error: FerryError,
    readonly retry: boolean,
  ) {
    super(error.message, { cause: error });
  }
}

/** A network hiccup (refused, reset, cut short): worth another attempt. */
export function transientIo(message: string, cause?: unknown): AttemptFailure {
  return new AttemptFailure(new FerryError('ERR_IO', printable(message), { cause }), true);
}

/** The origin is slow, hostile or wrong: asking it again now will not help. */
export function finalFailure(code: ErrorCode, message: string, cause?: unknown): AttemptFailure {
  return new AttemptFailure(new FerryError(code, printable(message), { cause }), false);
}

/** A local disk failure (ENOSPC stays ERR_NO_SPACE): never retried against the origin. */
export function finalFsFailure(err: unknown, what: string): AttemptFailure {
  return new AttemptFailure(fromFsError(err, what), false);
}

/** Server trouble and throttling may pass; any other status is the origin's answer. */
export function statusIsRetryable(status: number): boolean {
  return status >= 500 || status === 408 || status === 429;
}

export function statusFailure(what: string, status: number): AttemptFailure {
  const message = `${what}: HTTP ${status}`;
  return statusIsRetryable(status) ? transientIo(message) : finalFailure('ERR_IO', message);
}

/** The wait before retry number `n` (0-based): base·2ⁿ, jittered into its upper half. */
export function backoffMs(n: number, baseMs: number, random01: number): number {
  const backoff = baseMs * 2 ** n;
  return Math.round(backoff / 2 + (random01 * backoff) / 2);
}

export interface RetryPolicy {
  retries: number;
  retryBaseMs: number;
  sleep: (ms: number) => Promise<void>;
  random: () => number;
}

/**
 * Runs `attempt` until it succeeds, fails for good, or has been retried `policy.retries` times.
 * An error that is not an AttemptFailure was not classified by the attempt (a bug, a disk error
 * on close): it is not retried.
 */
export async function withRetries<T>(policy: RetryPolicy, name: string, attempt: () => Promise<T>): Promise<T> {
  for (let n = 0; ; n++) {
    try {
      return await attempt();
    } catch (err) {
      if (!(err instanceof AttemptFailure)) throw err instanceof FerryError ? err : fromFsError(err, `using ${name}`);
      if (!err.retry || n >= policy.retries) throw err.error;
      await policy.sleep(backoffMs(n, policy.retryBaseMs, policy.random()));
    }
  }
}
