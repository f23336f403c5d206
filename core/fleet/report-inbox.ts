// A report inbox: a folder holding the newest verified report of each device, <deviceId>.json.
// The same shape wherever reports gather: `ferry serve --reports DIR`, a LAN peer's <home>/reports/,
// the `reports/` folder of a USB stick, and the folder `ferry fleet` reads. Writes are atomic (a
// temp file renamed over), so a reader or a power cut never sees half a report, and a full disk
// leaves what was there.
//
// STUB (session 21): the signatures are fixed; the reports helper implements them.

import { FerryError } from '../errors.ts';

export interface AcceptedReport {
  deviceId: string;
  sequence: number;
  /** false when the inbox already held this very report (same sequence, same payload). */
  stored: boolean;
}

/**
 * Verifies `bytes` (core/fleet/report.ts parseReport) and keeps it as the device's newest.
 * Refused, with the inbox unchanged: ERR_TOO_LARGE, ERR_JSON/ERR_SCHEMA, ERR_SIGNATURE, a report
 * for another app when `app` is given (ERR_WRONG_TARGET), one older than the kept one or with its
 * sequence but other bytes (ERR_DOWNGRADE), ERR_NO_SPACE.
 */
export async function acceptReport(dir: string, bytes: Uint8Array, options: { app?: string } = {}): Promise<AcceptedReport> {
  void dir; void bytes; void options;
  throw new FerryError('ERR_INTERNAL', 'internal: acceptReport is not implemented yet');
}

/** The envelope bytes of every report kept in `dir` (none when it does not exist). */
export async function readInbox(dir: string): Promise<{ deviceId: string; bytes: Buffer }[]> {
  void dir;
  throw new FerryError('ERR_INTERNAL', 'internal: readInbox is not implemented yet');
}
