// Small shape checks for parsed metadata. Each returns the value typed, or throws ERR_SCHEMA
// naming the field, so a malformed document is refused with a message that says where.

import { FerryError } from '../errors.ts';
import type { Json } from './strict-json.ts';

export type JsonObject = { [key: string]: Json };

function bad(what: string, expected: string): never {
  throw new FerryError('ERR_SCHEMA', `${what} must be ${expected}`);
}

/** An object that is not null and not an array (what JSON calls an object). */
export function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function obj(value: Json | undefined, what: string): JsonObject {
  if (!isObject(value)) bad(what, 'an object');
  return value;
}

export function arr(value: Json | undefined, what: string): Json[] {
  if (!Array.isArray(value)) bad(what, 'an array');
  return value;
}

export function str(value: Json | undefined, what: string, pattern?: RegExp): string {
  if (typeof value !== 'string' || (pattern && !pattern.test(value))) bad(what, pattern ? `a string matching ${pattern}` : 'a string');
  return value;
}

/** A safe integer >= min and, when `max` is given, <= max. */
export function int(value: Json | undefined, what: string, min = 0, max?: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || (max !== undefined && value > max)) {
    bad(what, max === undefined ? `an integer >= ${min}` : `an integer from ${min} to ${max}`);
  }
  return value;
}

export function bool(value: Json | undefined, what: string): boolean {
  if (typeof value !== 'boolean') bad(what, 'true or false');
  return value;
}

export function optStr(value: Json | undefined, what: string): string | undefined {
  return value === undefined ? undefined : str(value, what);
}

export const HEX64 = /^[0-9a-f]{64}$/;
export const NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;
/** An ISO-8601 UTC timestamp as Date.toISOString writes it. */
export const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3})?Z$/;

export function time(value: Json | undefined, what: string): string {
  const s = str(value, what, ISO_TIME);
  if (Number.isNaN(Date.parse(s))) bad(what, 'a valid time');
  return s;
}
