// The server side of a report PUT, shared by `ferry serve --reports DIR` (plugins/http/server.ts,
// PUT /reports/<deviceId>.json) and the LAN peer server (plugins/lan/peer-server.ts, PUT
// /ferry/v1/reports/<deviceId>): the body read under REPORT_MAX_BYTES (request-body.ts), the
// report verified on its own (core/fleet/report.ts parseReport: size, shape, the key matching the
// id, the signature), the URL's id held to the report's, then handed to `store` (an inbox:
// core/fleet/report-inbox.ts acceptReport, which keeps only a newer report). Answers:
//   201 stored, 200 already held (same report); refusals as plugins/fleet/report-refusal.ts says,
//   with {code, message}: 413 ERR_TOO_LARGE, 400 ERR_JSON/ERR_SCHEMA (also a URL id that is not
//   the report's), 403 ERR_SIGNATURE/ERR_WRONG_TARGET, 409 ERR_DOWNGRADE, 507 ERR_NO_SPACE;
//   408 when the body does not arrive in time.
// Nothing here trusts the device: `ferry fleet` verifies every kept report again against the key
// it first saw (SECURITY.md, fleet rows). The route only keeps a carrier from holding junk.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { FerryError } from '../../core/errors.ts';
import type { AcceptedReport } from '../../core/fleet/report-inbox.ts';
import { parseReport, REPORT_MAX_BYTES, type VerifiedReport } from '../../core/fleet/report.ts';
import { refusalBody } from '../fleet/report-refusal.ts';
import { closeAfterRefusal, readCappedBody } from './request-body.ts';

/** A report body must arrive within this (it is at most 64 KiB). */
export const REPORT_BODY_DEADLINE_MS = 15_000;

/** Keeps one verified report; throws a FerryError to refuse it. */
export type ReportStore = (bytes: Buffer, verified: VerifiedReport) => Promise<AcceptedReport>;

export interface ReportRouteResult {
  status: number;
  code?: string;
}

/** Answers one PUT of a report for device `urlDeviceId` (already matched from the path). */
export async function handleReportPut(req: IncomingMessage, res: ServerResponse, urlDeviceId: string, store: ReportStore): Promise<ReportRouteResult> {
  const body = await readCappedBody(req, REPORT_MAX_BYTES, REPORT_BODY_DEADLINE_MS);
  if (body.kind === 'aborted') {
    res.destroy();
    return { status: 0 };
  }
  if (body.kind === 'too-large') {
    const { status, body: json } = refusalBody(new FerryError('ERR_TOO_LARGE', `a report is at most ${REPORT_MAX_BYTES} bytes`));
    closeAfterRefusal(req, res, status, json);
    return { status, code: 'ERR_TOO_LARGE' };
  }
  if (body.kind === 'timeout') {
    closeAfterRefusal(req, res, 408, `${JSON.stringify({ code: 'ERR_IO', message: `the report did not arrive within ${REPORT_BODY_DEADLINE_MS} ms` })}\n`);
    return { status: 408, code: 'ERR_IO' };
  }
  try {
    const verified = parseReport(body.bytes, 'report');
    if (verified.report.deviceId !== urlDeviceId) {
      throw new FerryError('ERR_SCHEMA', `the report is device ${verified.report.deviceId}'s, sent as device ${urlDeviceId}'s`);
    }
    const accepted = await store(body.bytes, verified);
    const status = accepted.stored ? 201 : 200;
    const json = `${JSON.stringify(accepted)}\n`;
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(json)) }).end(json);
    return { status };
  } catch (err) {
    const { status, body: json } = refusalBody(err);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(json)) }).end(json);
    return { status, code: err instanceof FerryError ? err.code : 'ERR_IO' };
  }
}
