// Carrying reports off the device (ARCHITECTURE.md "Fleet reports"): the device's own newest report
// (<home>/device/report.json) and every report it relays for other devices (<home>/reports/, kept
// there by its LAN peer server) go along every route this device has:
//   endpoint  PUT to ferry.json reports.url (plugins/fleet/http-report.ts), e.g. `ferry serve --reports`;
//   stick     the reports/ folder of each stick mounted on a `usb:` source, when reports.stick
//             (plugins/fleet/stick-reports.ts: bounded, a full stick loses nothing);
//   peers     the LAN peers the caller found (plugins/lan/report-relay.ts), which keep them and pass
//             them on to the stick or endpoint they reach.
// Every route is tried whatever the others did, and none throws: the result says per route what
// got through. A report is only ever copied; each receiver verifies it (core/fleet/report-inbox.ts).

import type { DeviceConfig } from '../../core/device/config.ts';
import { reportsOf } from '../../core/device/config.ts';
import type { HomeLayout } from '../../core/device/layout.ts';
import { isFerryError } from '../../core/errors.ts';
import { readDeviceReport } from '../../core/fleet/device-report.ts';
import { readInbox } from '../../core/fleet/report-inbox.ts';
import { parseReport } from '../../core/fleet/report.ts';
import type { LanPeer } from '../lan/discovery.ts';
import { putReport } from './http-report.ts';
import { stickPresent, writeReportsToStick, type StickResult } from './stick-reports.ts';

/** Relayed reports sent per delivery at most (the newest kept per device, by device id order). */
export const MAX_RELAYED = 1024;

/**
 * Default bound on the endpoint route as a whole, like the LAN relay's (plugins/lan/report-relay.ts
 * RELAY_TOTAL_TIMEOUT_MS): an endpoint answering each of 1,025 reports just inside the per-request
 * timeout would otherwise hold the delivery (and the agent's next round and its stop) for hours.
 */
export const ENDPOINT_TOTAL_TIMEOUT_MS = 30_000;

export interface DeliverInput {
  layout: HomeLayout;
  config: DeviceConfig;
  /** LAN peers to hand the reports to (none: no LAN route). */
  peers?: readonly LanPeer[];
  /** Per request, for the endpoint and peers (default 10 s). */
  timeoutMs?: number;
  /** For all the peers together (default: plugins/lan/report-relay.ts RELAY_TOTAL_TIMEOUT_MS). */
  peersTotalTimeoutMs?: number;
  /** For the endpoint route as a whole (default ENDPOINT_TOTAL_TIMEOUT_MS); reports left unsent count as failed. */
  endpointTotalTimeoutMs?: number;
}

export interface RouteCounts {
  delivered: number;
  failed: number;
  /** The first failure's code ("ERR_IO: …"), or null. */
  error: string | null;
}

export interface Delivery {
  /** Reports there were to send: the device's own (when written) plus the relayed ones. */
  reports: number;
  endpoint: (RouteCounts & { url: string }) | null;
  sticks: (StickResult & { mount: string })[];
  peers: RouteCounts | null;
}

interface Outgoing {
  deviceId: string;
  bytes: Uint8Array;
}

/** The reports this device carries: its own newest, then the relayed ones (not its own id again). */
export async function reportsToCarry(layout: HomeLayout): Promise<Outgoing[]> {
  const out: Outgoing[] = [];
  const own = await readDeviceReport(layout).catch(() => null);
  let ownId: string | null = null;
  if (own) {
    try {
      ownId = parseReport(own).report.deviceId;
      out.push({ deviceId: ownId, bytes: own });
    } catch {
      // A damaged own report is not carried; the next attempt or round writes a fresh one.
    }
  }
  const relayed = await readInbox(layout.reportsInbox).catch(() => []);
  for (const r of relayed.slice(0, MAX_RELAYED)) if (r.deviceId !== ownId) out.push(r);
  return out;
}

/** The mounts of the config's `usb:` sources that hold a stick now (stickPresent). */
export async function mountedSticks(config: DeviceConfig): Promise<string[]> {
  const specs = config.sources.filter((s) => s.startsWith('usb:'));
  if (specs.length === 0) return [];
  const { parseUsbSpec } = await import('../usb/source.ts');
  const mounts = [...new Set(specs.flatMap((s) => parseUsbSpec(s)))];
  const present: string[] = [];
  for (const m of mounts) if (await stickPresent(m)) present.push(m);
  return present;
}

/**
 * The LAN peers of the config's lan sources, found once (a static list, or one bounded mDNS browse)
 * for a one-off delivery (`ferry report --send`); the agent uses the discovery it keeps running.
 */
export async function lanPeersOf(config: DeviceConfig): Promise<LanPeer[]> {
  const specs = config.sources.filter((s) => s === 'lan' || s.startsWith('lan:'));
  if (specs.length === 0) return [];
  const { createLanDiscovery, parseLanSpec } = await import('../lan/discovery.ts');
  const found = new Map<string, LanPeer>();
  for (const spec of specs) {
    const parsed = parseLanSpec(spec);
    if (!parsed) continue;
    const discovery = createLanDiscovery({ app: config.app, ...parsed });
    try {
      for (const p of await discovery.peers().catch(() => [] as LanPeer[])) found.set(p.url, p);
    } finally {
      await discovery.close().catch(() => {});
    }
  }
  return [...found.values()];
}

function describe(err: unknown): string {
  return isFerryError(err) ? `${err.code}: ${err.message}` : `ERR_INTERNAL: ${(err as Error)?.message ?? String(err)}`;
}

/** An endpoint that cannot be reached is not asked again for every other report. */
const UNREACHABLE = new Set(['ERR_IO', 'ERR_NO_SOURCE', 'ERR_BUSY', 'ERR_NO_SPACE', 'ERR_INTERNAL']);

async function toEndpoint(url: string, reports: Outgoing[], timeoutMs: number, totalTimeoutMs: number): Promise<RouteCounts & { url: string }> {
  const counts = { url, delivered: 0, failed: 0, error: null as string | null };
  const deadline = Date.now() + totalTimeoutMs;
  for (let i = 0; i < reports.length; i++) {
    const r = reports[i]!;
    const left = deadline - Date.now();
    if (left <= 0) {
      counts.failed += reports.length - i;
      counts.error ??= `ERR_NO_SOURCE: report endpoint: the route's ${totalTimeoutMs} ms passed; ${reports.length - i} reports not sent`;
      break;
    }
    try {
      await putReport(url, r.deviceId, r.bytes, { timeoutMs: Math.min(timeoutMs, left) });
      counts.delivered += 1;
    } catch (err) {
      // The endpoint holds this device's newer report: nothing to carry there.
      if (isFerryError(err, 'ERR_DOWNGRADE')) { counts.delivered += 1; continue; }
      counts.failed += 1;
      counts.error ??= describe(err);
      if (!isFerryError(err) || UNREACHABLE.has(err.code)) {
        counts.failed += reports.length - i - 1;
        break;
      }
    }
  }
  return counts;
}

/** Sends the device's reports along every configured route; never throws for a route. */
export async function deliverReports(input: DeliverInput): Promise<Delivery> {
  const { layout, config } = input;
  const timeoutMs = input.timeoutMs ?? 10_000;
  const routes = reportsOf(config);
  const reports = await reportsToCarry(layout);
  const delivery: Delivery = { reports: reports.length, endpoint: null, sticks: [], peers: null };
  if (reports.length === 0) return delivery;
  const bytes = reports.map((r) => r.bytes);

  // The routes run side by side: a stalled endpoint does not hold the stick back, and the whole
  // delivery lasts about as long as its slowest route (the agent waits for it before stopping).
  const endpoint = async () => {
    if (!routes.url) return;
    delivery.endpoint = await toEndpoint(routes.url, reports, timeoutMs, input.endpointTotalTimeoutMs ?? ENDPOINT_TOTAL_TIMEOUT_MS).catch((err: unknown) => ({ url: routes.url!, delivered: 0, failed: reports.length, error: describe(err) }));
  };
  const sticks = async () => {
    if (!routes.stick) return;
    const mounts = await mountedSticks(config).catch(() => [] as string[]);
    for (const mount of mounts) {
      const result = await writeReportsToStick(mount, bytes, { app: config.app }).catch((err: unknown): StickResult => (
        { written: 0, unchanged: 0, overCap: 0, refused: 0, noSpace: false, error: describe(err) }));
      delivery.sticks.push({ mount, ...result });
    }
  };
  const peers = async () => {
    if (!input.peers || input.peers.length === 0) return;
    try {
      const { sendReportsToPeers } = await import('../lan/report-relay.ts');
      const sent = await sendReportsToPeers(input.peers, bytes, { timeoutMs, ...(input.peersTotalTimeoutMs ? { totalTimeoutMs: input.peersTotalTimeoutMs } : {}) });
      delivery.peers = { delivered: sent.delivered, failed: sent.failed, error: null };
    } catch (err) {
      delivery.peers = { delivered: 0, failed: reports.length * input.peers.length, error: describe(err) };
    }
  };
  await Promise.all([endpoint(), sticks(), peers()]);
  return delivery;
}

/** One line per route, for the CLI and the agent's log. */
export function describeDelivery(d: Delivery): string[] {
  const lines: string[] = [];
  if (d.endpoint) lines.push(`endpoint ${d.endpoint.url}: ${d.endpoint.delivered} delivered, ${d.endpoint.failed} failed${d.endpoint.error ? ` (${d.endpoint.error})` : ''}`);
  for (const s of d.sticks) {
    const how = s.noSpace ? ' (stick full: stopped, nothing lost)' : s.error ? ` (${s.error})` : '';
    lines.push(`stick ${s.mount}: ${s.written} written, ${s.unchanged} unchanged${s.overCap ? `, ${s.overCap} over the cap` : ''}${s.refused ? `, ${s.refused} refused` : ''}${how}`);
  }
  if (d.peers) lines.push(`LAN peers: ${d.peers.delivered} delivered, ${d.peers.failed} failed${d.peers.error ? ` (${d.peers.error})` : ''}`);
  return lines;
}
