// The one delta-to-full fallback: a delta or chain plan that fails in a way the full artifact
// does not depend on (its artifacts missing or wrong, a base file that does not check out, a patch
// that does not apply) is carried out once more with the full artifact (SECURITY.md row 9).

import { FerryError, type ErrorCode } from '../errors.ts';
import type { Plan } from './plan.ts';

export const DELTA_FAILURES: ReadonlySet<ErrorCode> = new Set(['ERR_HASH_MISMATCH', 'ERR_PATCH', 'ERR_SIZE', 'ERR_UNSAFE_ARCHIVE', 'ERR_NOT_FOUND', 'ERR_SCHEMA', 'ERR_TOO_LARGE', 'ERR_NO_PATCHER']);

/**
 * Runs `run` with `plan`; if a delta plan fails with one of DELTA_FAILURES, tells `onFallback`
 * and runs it again with the full artifact. Returns the plan that succeeded and its result.
 */
export async function withFullFallback<T>(
  plan: Plan,
  run: (plan: Plan) => Promise<T>,
  onFallback: (err: FerryError) => void = () => {},
): Promise<{ plan: Plan; result: T; fellBack: boolean }> {
  try {
    return { plan, result: await run(plan), fellBack: false };
  } catch (err) {
    if (plan.kind === 'full' || !(err instanceof FerryError) || !DELTA_FAILURES.has(err.code)) throw err;
    onFallback(err);
    const full: Plan = { kind: 'full', to: plan.to, artifact: plan.fallback, bytes: plan.fallback.size };
    return { plan: full, result: await run(full), fellBack: true };
  }
}
