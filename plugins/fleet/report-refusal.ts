// How a report route says no, on the wire: the HTTP status for each refusal code and a small JSON
// body `{"code":"ERR_…","message":"…"}`, written by the servers that take reports (`ferry serve
// --reports`, plugins/http/report-route.ts; a LAN peer, plugins/lan/peer-server.ts) and read back
// by the client (plugins/fleet/http-report.ts), so a device's log says why its report was refused
// with the same stable code a local check would have given. Pure functions, table-tested.

import { FerryError, type ErrorCode } from '../../core/errors.ts';

/** The codes a report route may answer with, and the status each travels under. */
const STATUS_OF: Partial<Record<ErrorCode, number>> = {
  ERR_JSON: 400,
  ERR_SCHEMA: 400,
  ERR_SIGNATURE: 403,
  ERR_UNKNOWN_KEY: 403,
  ERR_WRONG_TARGET: 403,
  ERR_DOWNGRADE: 409,
  ERR_TOO_LARGE: 413,
  ERR_IO: 500,
  ERR_NO_SPACE: 507,
};

/** Error bodies are read up to this size; a refusal is a line of JSON. */
export const REFUSAL_MAX_BYTES = 4096;
const MESSAGE_MAX = 300;

/** The status a server answers a refused report with (500 for anything that is not a refusal). */
export function refusalStatus(code: ErrorCode): number {
  return STATUS_OF[code] ?? 500;
}

/** The JSON body of a refusal. An unexpected failure is sent as ERR_IO, never with its internals. */
export function refusalBody(err: unknown): { status: number; body: string } {
  const known = err instanceof FerryError && STATUS_OF[err.code] !== undefined;
  const code: ErrorCode = known ? (err as FerryError).code : 'ERR_IO';
  const message = known ? (err as FerryError).message : 'the server could not store the report';
  return { status: refusalStatus(code), body: `${JSON.stringify({ code, message: message.slice(0, MESSAGE_MAX) })}\n` };
}

/**
 * The FerryError for a non-2xx answer: the body's code when it is one a report route sends (the
 * server's message kept, stripped of control characters: it is the server's text, not ours),
 * else a code from the status alone (any server that accepts a PUT may answer with a plain page).
 */
export function refusalError(status: number, body: Buffer, where: string): FerryError {
  let code: ErrorCode | undefined;
  let message = '';
  try {
    const parsed = JSON.parse(body.toString('utf8')) as { code?: unknown; message?: unknown };
    if (typeof parsed.code === 'string' && STATUS_OF[parsed.code as ErrorCode] !== undefined) code = parsed.code as ErrorCode;
    if (typeof parsed.message === 'string') message = parsed.message.replace(/[\u0000-\u001f\u007f-\u009f]/g, ' ').slice(0, MESSAGE_MAX);
  } catch {
    // Not our JSON: the status decides.
  }
  code ??= status === 413 ? 'ERR_TOO_LARGE' : status === 409 ? 'ERR_DOWNGRADE' : status === 507 ? 'ERR_NO_SPACE' : 'ERR_IO';
  return new FerryError(code, `${where} refused the report: HTTP ${status}${message ? `: ${message}` : ''}`);
}
