// Asserts (with node:assert) that a call is refused with one specific FerryError code, so a test
// tells "refused for the right reason" from "refused by accident": any other code, any other
// error type, or no refusal at all fails.

import assert from 'node:assert/strict';
import { FerryError, type ErrorCode } from '../../core/errors.ts';

/** Awaits `fn`, expects it to reject with a FerryError with `code`, and returns that error. */
export async function assertRefused(fn: () => Promise<unknown>, code: ErrorCode, what = 'the call'): Promise<FerryError> {
  let outcome: { resolved: unknown } | { rejected: unknown };
  try {
    outcome = { resolved: await fn() };
  } catch (err) {
    outcome = { rejected: err };
  }
  if (!('rejected' in outcome)) assert.fail(`${what}: expected FerryError ${code}, but it resolved normally`);
  const err = outcome.rejected;
  if (!(err instanceof FerryError)) {
    assert.fail(`${what}: expected FerryError ${code}, got ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`);
  }
  assert.equal(err.code, code, `${what}: expected ${code}, got ${err.code}: ${err.message}`);
  return err;
}
