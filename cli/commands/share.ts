// ferry share --home <home>: serve this device's verified cache to LAN peers (by sha256, with
// Range) and the signed metadata it verified and kept (root chain, channel pointers, installed
// manifests: core/update/kept-metadata.ts), and announce it over DNS-SD/mDNS, until SIGINT or
// SIGTERM. Peers verify every document and every chunk themselves; this device only offers what it
// verified itself (SECURITY.md row 8).

import type { CommandModule } from 'yargs';
import { FerryError } from '../../core/errors.ts';
import { homeLayout } from '../../core/device/layout.ts';
import { readDeviceConfig } from '../../core/device/config.ts';
import { startPeerServer } from '../../plugins/lan/peer-server.ts';
import { createLanDiscovery } from '../../plugins/lan/discovery.ts';
import { printResult, type OutputFlags } from '../output.ts';
import { untilStopSignal } from '../wait-signal.ts';
import { pinRunningRelease } from '../../plugins/running-release-pin.ts';

interface Args extends OutputFlags {
  home: string;
  host: string;
  port: number;
  announce: boolean;
  interfaceAddress?: string;
}

export const shareCommand: CommandModule<object, Args> = {
  command: 'share',
  describe: 'Serve this device\'s verified cache to LAN peers and announce it (mDNS) until stopped',
  builder: (y) =>
    y
      .option('home', { type: 'string', demandOption: true, describe: 'the device home folder' })
      .option('host', { type: 'string', default: '0.0.0.0', describe: 'address to listen on' })
      .option('port', { type: 'number', default: 7311 })
      .option('announce', { type: 'boolean', default: true, describe: 'announce over mDNS (--no-announce for static peer lists)' })
      .option('interface-address', { type: 'string', describe: 'the LAN address mDNS uses and announces' }) as never,
  handler: async (args) => {
    const layout = homeLayout(args.home);
    const config = await readDeviceConfig(layout.config);
    // Long-running: the release ferry runs from must outlive cleanup (plugins/running-release-pin.ts).
    await pinRunningRelease('share', (m) => process.stderr.write(`ferry share: ${m}\n`));
    const server = await startPeerServer({ cacheDir: layout.cache, metadataHome: args.home, host: args.host, port: args.port }).catch((err) => {
      throw new FerryError('ERR_IO', `cannot listen on ${args.host}:${args.port}: ${(err as Error).message}`, { cause: err });
    });
    const discovery = args.announce
      ? createLanDiscovery({ app: config.app, port: server.port, ...(args.interfaceAddress ? { interfaceAddress: args.interfaceAddress } : {}) })
      : null;
    printResult(args, { url: server.url, port: server.port, announced: discovery?.instance ?? null }, () => [
      `sharing ${layout.cache} at ${server.url}${discovery ? ` as ${discovery.instance}` : ''} (Ctrl-C stops)`,
    ]);
    await untilStopSignal();
    await discovery?.close();
    await server.close();
  },
};
