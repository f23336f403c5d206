// What wakes the agent between its scheduled checks, and what it offers its LAN peers meanwhile:
//   usb:<mount>  a bundle or repository landing on a watched mount wakes a check at once;
//   lan          (mDNS) peers announcing the release they run may wake a check (the Agent decides
//                whether the claim is worth it, and rate-limits it: plugins/agent/peer-wake.ts);
//                this device announces the release it runs;
//   lan, lan:…   with sharing on, the verified cache and metadata are served to peers (plugins/lan/peer-server.ts).
// peers() lists the LAN peers found (mDNS and static lists) for the agent to hand its reports to.
// The usb and lan plugins are imported only when the home's sources name them, so an agent
// without them never loads the file watcher or the mDNS stack (an idle agent stays small).

import type { DeviceConfig } from '../../core/device/config.ts';
import { homeLayout } from '../../core/device/layout.ts';
import { FerryError } from '../../core/errors.ts';
import type { LanDiscovery, LanPeer } from '../lan/discovery.ts';
import type { PeerServer } from '../lan/peer-server.ts';
import type { AgentLog } from './agent-log.ts';

/** Where to serve the cache to LAN peers. */
export interface ShareOptions {
  host: string;
  port: number;
}

export interface WakeSourcesInput {
  home: string;
  config: DeviceConfig;
  log: AgentLog;
  /** A stick changed: check now. */
  usbDrop(): void;
  /** A peer announced the release it runs (unverified). */
  peerVersion(peer: { url: string; version: string }): void;
  /** The release installed now, announced to peers. */
  installed: string | null;
  /** Serve the cache to peers when a source is lan (null: do not). */
  share: ShareOptions | null;
  /** The LAN address mDNS uses and announces. */
  interfaceAddress?: string;
}

export interface WakeSources {
  /** This device now runs `version`: tells listening peers (mDNS). */
  announceVersion(version: string): void;
  /** The LAN peers of the home's lan sources (a bounded mDNS browse, cached), none without one. */
  peers(): Promise<LanPeer[]>;
  close(): Promise<void>;
}

const isUsb = (spec: string) => spec.startsWith('usb:');
const isLan = (spec: string) => spec === 'lan' || spec.startsWith('lan:');

export async function startWakeSources(input: WakeSourcesInput): Promise<WakeSources> {
  const watchers: { close(): void }[] = [];
  let server: PeerServer | null = null;
  let discovery: LanDiscovery | null = null;
  let listed: LanDiscovery | null = null; // the static lan:host:port lists
  const sources: WakeSources = {
    announceVersion: (version) => discovery?.announceVersion(version),
    async peers() {
      const found = [...((await listed?.peers().catch(() => [])) ?? []), ...((await discovery?.peers().catch(() => [])) ?? [])];
      const own = server?.url;
      const byUrl = new Map(found.filter((p) => p.url !== own).map((p) => [p.url, p]));
      return [...byUrl.values()];
    },
    async close() {
      for (const w of watchers) w.close();
      await discovery?.close().catch(() => {});
      await listed?.close().catch(() => {});
      await server?.close().catch(() => {});
    },
  };
  try {
    const usbSpecs = input.config.sources.filter(isUsb);
    if (usbSpecs.length > 0) {
      const [{ watchMounts }, { parseUsbSpec }] = await Promise.all([import('../usb/watcher.ts'), import('../usb/source.ts')]);
      for (const spec of usbSpecs) {
        watchers.push(watchMounts(parseUsbSpec(spec), (e) => {
          input.log('usb', { mount: e.mount, path: e.path }, `usb drop: ${e.path}`);
          input.usbDrop();
        }));
      }
    }

    const lanSources = input.config.sources.filter(isLan);
    if (lanSources.length === 0) return sources;
    const { createLanDiscovery, parseLanSpec } = await import('../lan/discovery.ts');
    const lanSpecs = lanSources.map(parseLanSpec).filter((s) => s !== null);
    // Only an mDNS source (`lan`) means peers browse and announce; a static list has no announcements.
    const mdns = lanSpecs.some((s) => s.static === undefined);
    const statics = lanSpecs.flatMap((s) => s.static ?? []);
    if (statics.length > 0) listed = createLanDiscovery({ app: input.config.app, static: statics });
    const pinned = input.interfaceAddress ? { interfaceAddress: input.interfaceAddress } : {};
    const onPeerVersion = (peer: { url: string; version: string }) => input.peerVersion({ url: peer.url, version: peer.version });
    if (input.share) {
      const { startPeerServer } = await import('../lan/peer-server.ts');
      const { host, port } = input.share;
      server = await startPeerServer({ cacheDir: homeLayout(input.home).cache, metadataHome: input.home, host, port }).catch((err: unknown) => {
        throw new FerryError('ERR_IO', `cannot share the cache on ${host}:${port}: ${(err as Error).message}`, { cause: err });
      });
      if (mdns) discovery = createLanDiscovery({ app: input.config.app, port: server.port, ...(input.installed ? { version: input.installed } : {}), onPeerVersion, ...pinned });
      input.log('sharing', { url: server.url, announced: discovery?.instance ?? null }, `sharing the cache at ${server.url}${discovery?.instance ? ` as ${discovery.instance}` : ''}`);
    } else if (mdns) {
      discovery = createLanDiscovery({ app: input.config.app, onPeerVersion, ...pinned }); // listens only
    }
    return sources;
  } catch (err) {
    await sources.close();
    throw err;
  }
}
