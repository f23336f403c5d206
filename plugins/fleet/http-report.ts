// Reports over HTTP: a device PUTs its newest report (and those it relays) to the report endpoint
// named in ferry.json, <endpoint>/<deviceId>.json. `ferry serve --reports DIR` accepts them into a
// report inbox (core/fleet/report-inbox.ts); any server that accepts a PUT could.
//
// STUB (session 21): the signature is fixed; the transports helper implements it.

import { FerryError } from '../../core/errors.ts';

/** PUTs one report envelope; resolves when the endpoint answered 2xx, else throws a FerryError. */
export async function putReport(endpoint: string, deviceId: string, report: Uint8Array, options: { timeoutMs?: number } = {}): Promise<void> {
  void endpoint; void deviceId; void report; void options;
  throw new FerryError('ERR_INTERNAL', 'internal: putReport is not implemented yet');
}
