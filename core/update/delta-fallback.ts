// The one delta-to-full fallback (SECURITY.md row 9): a delta or chain plan that fails is carried
// out once more with the full artifact, whatever went wrong while fetching or building from the
// delta (its artifacts missing or wrong, a base file that does not check out or cannot be read, a
// patch or compressed entry that does not decode, a filesystem error on the way), except for the
// few failures the full artifact cannot get past (NO_FALLBACK). The reason goes into history.

import { FerryError, type ErrorCode } from '../errors.ts';
import type { Plan } from './plan.ts';

/**
 * Failures that end the attempt instead of falling back:
 *   - ERR_NO_SPACE: the disk is full; building the full tree needs that room too, and the right
 *     move is to stop and report (exit 8), leaving the attempt retryable once space is freed.
 *   - ERR_INTERNAL: a bug in ferry, an impossible state; a second build on top of it would hide
 *     the bug and may compound the damage.
 *   - ERR_BUSY: the home belongs to another ferry process now; the full artifact would meet it too.
 *   - ERR_NOT_GRANTED: the image asks for a privilege this device does not grant (core/image/requests.ts);
 *     the same signed config is in the full artifact, so downloading it would only refuse again.
 * Anything that is not a FerryError is a bug as well (every expected failure is wrapped in one).
 */
export const NO_FALLBACK: ReadonlySet<ErrorCode> = new Set(['ERR_NO_SPACE', 'ERR_INTERNAL', 'ERR_BUSY', 'ERR_NOT_GRANTED']);

/** Whether a delta plan that threw `err` is tried again with the full artifact. */
export function fallsBackToFull(err: unknown): err is FerryError {
  return err instanceof FerryError && !NO_FALLBACK.has(err.code);
}

/** The reason a delta failed, as history keeps it: "CODE: message". */
export function fallbackReason(err: FerryError): string {
  return `${err.code}: ${err.message}`;
}

/**
 * Runs `run` with `plan`; if a delta plan fails in a way fallsBackToFull admits, tells
 * `onFallback` and runs it again with the full artifact. Returns the plan that succeeded, its
 * result and, after a fallback, the reason the delta failed.
 */
export async function withFullFallback<T>(
  plan: Plan,
  run: (plan: Plan) => Promise<T>,
  onFallback: (err: FerryError) => void = () => {},
): Promise<{ plan: Plan; result: T; fellBack: boolean; reason?: string }> {
  try {
    return { plan, result: await run(plan), fellBack: false };
  } catch (err) {
    if (plan.kind === 'full' || !fallsBackToFull(err)) throw err;
    onFallback(err);
    const full: Plan = { kind: 'full', to: plan.to, artifact: plan.fallback, bytes: plan.fallback.size };
    return { plan: full, result: await run(full), fellBack: true, reason: fallbackReason(err) };
  }
}
