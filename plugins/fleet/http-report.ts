// Reports over HTTP: a device PUTs its newest report (and those it relays) to the report endpoint
// named in ferry.json, <endpoint>/<deviceId>.json. `ferry serve --reports DIR` accepts them into a
// report inbox (core/fleet/report-inbox.ts); any server that accepts a PUT could. The LAN relay
// (plugins/lan/report-relay.ts) sends through putReportAt too.
//
// One request, bounded in time as a whole (connect, send, answer: a stalled endpoint costs at most
// timeoutMs), no redirects followed (a PUT is not replayed somewhere else), and a refusal comes
// back with the server's stable code (plugins/fleet/report-refusal.ts). A report is at most
// REPORT_MAX_BYTES, so it is sent from memory with its Content-Length.

import http from 'node:http';
import https from 'node:https';
import { FerryError } from '../../core/errors.ts';
import { DEVICE_ID } from '../../core/fleet/device-identity.ts';
import { REPORT_MAX_BYTES } from '../../core/fleet/report.ts';
import { REFUSAL_MAX_BYTES, refusalError } from './report-refusal.ts';

/** Default bound on one report exchange. */
export const REPORT_PUT_TIMEOUT_MS = 10_000;

/** <endpoint>/<deviceId>.json, with or without a trailing slash on the endpoint. */
export function reportUrl(endpoint: string, deviceId: string): URL {
  if (!DEVICE_ID.test(deviceId)) throw new FerryError('ERR_USAGE', `"${deviceId}" is not a device id`);
  let base: URL;
  try {
    base = new URL(endpoint);
  } catch {
    throw new FerryError('ERR_USAGE', `report endpoint "${endpoint}" is not a URL`);
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:') throw new FerryError('ERR_USAGE', `report endpoint "${endpoint}" is not http(s)`);
  if (base.search || base.hash) throw new FerryError('ERR_USAGE', `report endpoint "${endpoint}" must not carry a query or fragment`);
  if (!base.pathname.endsWith('/')) base.pathname += '/';
  return new URL(`${deviceId}.json`, base);
}

/** PUTs one report envelope; resolves when the endpoint answered 2xx, else throws a FerryError. */
export async function putReport(endpoint: string, deviceId: string, report: Uint8Array, options: { timeoutMs?: number } = {}): Promise<void> {
  return putReportAt(reportUrl(endpoint, deviceId), report, options);
}

/**
 * PUTs `report` to exactly `url`. Resolves on 2xx. Throws ERR_NO_SOURCE when no answer came (no
 * connection, reset, timeout: nobody took the report), the server's code for a refusal, ERR_IO for
 * any other answer (a redirect, a 404 from a server that takes no reports).
 */
export function putReportAt(url: URL, report: Uint8Array, options: { timeoutMs?: number } = {}): Promise<void> {
  const timeoutMs = options.timeoutMs ?? REPORT_PUT_TIMEOUT_MS;
  const where = url.origin;
  // Every report route refuses these; not sending them saves the link (often metered) the bytes.
  if (report.byteLength > REPORT_MAX_BYTES) {
    return Promise.reject(new FerryError('ERR_TOO_LARGE', `a report of ${report.byteLength} bytes is over the ${REPORT_MAX_BYTES}-byte cap; not sent to ${where}`));
  }
  return new Promise<void>((resolve, reject) => {
    let settled = false;
    const settle = (err?: FerryError) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err) reject(err);
      else resolve();
    };
    const mod = url.protocol === 'https:' ? https : http;
    // agent: false: one connection per report, closed after it; nothing lingers in a pool.
    const req = mod.request(url, {
      method: 'PUT',
      agent: false,
      headers: { 'content-type': 'application/json', 'content-length': String(report.byteLength), connection: 'close' },
    });
    const timer = setTimeout(() => {
      settle(new FerryError('ERR_NO_SOURCE', `report endpoint ${where}: no answer within ${timeoutMs} ms`));
      req.destroy();
    }, timeoutMs);
    req.on('error', (err) => settle(new FerryError('ERR_NO_SOURCE', `report endpoint ${where}: ${err.message}`, { cause: err })));
    req.on('response', (res) => {
      const status = res.statusCode ?? 0;
      res.on('error', () => {});
      if (status >= 200 && status < 300) {
        // The answer is all we need: the connection closes now, so a server that answers 201 and
        // keeps streaming a body cannot hold it (and the delivery) open.
        settle();
        res.destroy();
        req.destroy();
        return;
      }
      // Read a short error body; past REFUSAL_MAX_BYTES the rest is not ours to read.
      const parts: Buffer[] = [];
      let size = 0;
      const done = () => {
        settle(refusalError(status, Buffer.concat(parts), `report endpoint ${where}`));
        req.destroy();
      };
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > REFUSAL_MAX_BYTES) return done();
        parts.push(chunk);
      });
      res.on('end', done);
      res.on('close', done);
    });
    req.end(report);
  });
}
