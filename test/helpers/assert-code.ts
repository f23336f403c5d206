// Asserts that a call is refused with one specific FerryError code. A refusal with any other
// code, any other error type, or no refusal at all fails the test, so every "refused" test can
// tell "refused for the right reason" from "refused by accident".

import * as assert from 'uvu/assert';
import { FerryError, type ErrorCode } from '../../core/errors.ts';

function fail(message: string): never {
  assert.unreachable(message);
  throw new Error(message); // not reached: unreachable() always throws
}

function check(err: unknown, code: ErrorCode): FerryError {
  if (!(err instanceof FerryError)) {
    return fail(`expected FerryError ${code}, got ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`);
  }
  assert.is(err.code, code, `expected ${code}, got ${err.code}: ${err.message}`);
  return err;
}

/** Runs `fn`, expects it to throw a FerryError with `code`, and returns that error. */
export function assertCode(fn: () => unknown, code: ErrorCode): FerryError {
  let result: unknown;
  try {
    result = fn();
  } catch (err) {
    return check(err, code);
  }
  if (result instanceof Promise) return fail(`expected ${code}, but fn returned a promise: use assertCodeAsync`);
  return fail(`expected FerryError ${code}, but the call returned normally`);
}

/** Awaits `fn`, expects it to reject with a FerryError with `code`, and returns that error. */
export async function assertCodeAsync(fn: () => Promise<unknown>, code: ErrorCode): Promise<FerryError> {
  try {
    await fn();
  } catch (err) {
    return check(err, code);
  }
  return fail(`expected FerryError ${code}, but the call resolved normally`);
}
