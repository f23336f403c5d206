// Reports over the LAN: a device hands its newest report (and the ones it relays) to the peers it
// found, and a peer keeps the newest per device in <home>/reports/ (core/fleet/report-inbox.ts)
// to pass on to the stick or endpoint it reaches.
//
// STUB (session 21): the signatures are fixed; the LAN helper implements them.

import { FerryError } from '../../core/errors.ts';
import type { LanPeer } from './discovery.ts';

/** PUT <peer>/ferry/v1/reports/<deviceId> with the envelope as body. */
export const REPORTS_PREFIX = '/ferry/v1/reports/';

export interface RelayResult {
  /** Reports a peer took (stored or already had). */
  delivered: number;
  /** Reports a peer refused or that could not be sent. */
  failed: number;
}

export async function sendReportsToPeers(peers: readonly LanPeer[], reports: readonly Uint8Array[], options: { timeoutMs?: number } = {}): Promise<RelayResult> {
  void peers; void reports; void options;
  throw new FerryError('ERR_INTERNAL', 'internal: sendReportsToPeers is not implemented yet');
}
