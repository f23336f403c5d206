// A child process for test/plugins/lan-announce.test.ts, run inside a network namespace:
//   node --import tsx test/plugins/lan-announce-role.ts '<json config>'
// It announces `_ferry._tcp` with `ver=<version>` when given a port, and prints one JSON line per
// peer version it hears ({"event":"peer-version",…}). A stdin line `ver X` re-announces as X;
// closing stdin (or `lifetimeMs`) stops it, saying goodbye on mDNS.

import { createInterface } from 'node:readline';
import { createLanDiscovery } from '../../plugins/lan/discovery.ts';

const cfg = JSON.parse(process.argv[2] ?? '{}') as { host: string; app: string; port?: number; version?: string; lifetimeMs?: number };
const print = (e: object) => process.stdout.write(`${JSON.stringify(e)}\n`);

const discovery = createLanDiscovery({
  app: cfg.app,
  interfaceAddress: cfg.host,
  ...(cfg.port !== undefined ? { port: cfg.port } : {}),
  ...(cfg.version ? { version: cfg.version } : {}),
  onPeerVersion: (peer) => print({ event: 'peer-version', url: peer.url, version: peer.version }),
});

let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  clearTimeout(lifetime);
  await discovery.close().catch(() => {});
  process.exit(0);
};
const lifetime = setTimeout(stop, cfg.lifetimeMs ?? 60_000);
createInterface({ input: process.stdin })
  .on('line', (line) => {
    const m = /^ver (\S+)$/.exec(line.trim());
    if (m) discovery.announceVersion(m[1]!);
  })
  .on('close', () => void stop());
// A browse makes the listener ask once, as an agent does on start; answers arrive as responses.
void discovery.peers().then(() => print({ event: 'ready' }));
