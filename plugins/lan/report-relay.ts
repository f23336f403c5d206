// Reports over the LAN: a device hands its newest report (and the ones it relays) to the peers it
// found, and a peer keeps the newest per device in <home>/reports/ (core/fleet/report-inbox.ts,
// bounded: core/fleet/bounded-report-inbox.ts) to pass on to the stick or endpoint it reaches.
//
// Each report goes to each peer as its own PUT (plugins/fleet/http-report.ts putReportAt), bounded
// in time per request and in total: peers are tried side by side, one report at a time per peer,
// and whatever is not sent by the total deadline counts as failed. A peer that cannot be reached is
// not tried again for the rest of the call. A peer answering ERR_DOWNGRADE already holds a report
// of that device at least as new, so the report counts as delivered.

import { FerryError } from '../../core/errors.ts';
import { parseReport } from '../../core/fleet/report.ts';
import { putReportAt } from '../fleet/http-report.ts';
import type { LanPeer } from './discovery.ts';

/** PUT <peer>/ferry/v1/reports/<deviceId> with the envelope as body. */
export const REPORTS_PREFIX = '/ferry/v1/reports/';

/** Default bound on one PUT to a peer. */
export const RELAY_REQUEST_TIMEOUT_MS = 5_000;
/** Default bound on a whole relay call. */
export const RELAY_TOTAL_TIMEOUT_MS = 30_000;

export interface RelayResult {
  /** Reports a peer took (stored or already had). */
  delivered: number;
  /** Reports a peer refused or that could not be sent. */
  failed: number;
}

/** What one peer's answer to one report counts as. */
export function relayOutcome(err: unknown): 'delivered' | 'failed' | 'unreachable' {
  if (err === undefined) return 'delivered';
  if (err instanceof FerryError && err.code === 'ERR_DOWNGRADE') return 'delivered';
  if (err instanceof FerryError && err.code === 'ERR_NO_SOURCE') return 'unreachable';
  return 'failed';
}

/** <peer url>/ferry/v1/reports/<deviceId> */
function peerReportUrl(peer: LanPeer, deviceId: string): URL {
  return new URL(`${REPORTS_PREFIX}${deviceId}`, peer.url);
}

/**
 * Sends every report to every peer; counts are per (peer, report). Reports that do not verify on
 * their own (parseReport) are not sent and count once per peer as failed: a peer would refuse them.
 */
export async function sendReportsToPeers(
  peers: readonly LanPeer[],
  reports: readonly Uint8Array[],
  options: { timeoutMs?: number; totalTimeoutMs?: number } = {},
): Promise<RelayResult> {
  const timeoutMs = options.timeoutMs ?? RELAY_REQUEST_TIMEOUT_MS;
  const deadline = Date.now() + (options.totalTimeoutMs ?? RELAY_TOTAL_TIMEOUT_MS);
  const sendable: { deviceId: string; bytes: Uint8Array }[] = [];
  let unsendable = 0;
  for (const bytes of reports) {
    try {
      sendable.push({ deviceId: parseReport(bytes).report.deviceId, bytes });
    } catch {
      unsendable++;
    }
  }
  const result: RelayResult = { delivered: 0, failed: unsendable * peers.length };
  await Promise.all(peers.map(async (peer) => {
    for (let i = 0; i < sendable.length; i++) {
      const left = deadline - Date.now();
      if (left <= 0) {
        result.failed += sendable.length - i;
        return;
      }
      const { deviceId, bytes } = sendable[i]!;
      let outcome: ReturnType<typeof relayOutcome>;
      try {
        await putReportAt(peerReportUrl(peer, deviceId), bytes, { timeoutMs: Math.min(timeoutMs, left) });
        outcome = 'delivered';
      } catch (err) {
        outcome = relayOutcome(err);
      }
      if (outcome === 'delivered') result.delivered++;
      else result.failed++;
      if (outcome === 'unreachable') {
        result.failed += sendable.length - i - 1;
        return;
      }
    }
  }));
  return result;
}
