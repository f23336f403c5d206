// Fleet bench: N devices on one LAN update to one release, without peers (every device from the
// origin) and with peers (plugins/lan: a device that has the release serves it to the others).
// Reports origin bytes, total time and per-device bytes, and the target "with peers the origin
// serves each artifact once per LAN" as PASS/MISS. Devices live in network namespaces when run as
// root with `ip netns` (mDNS discovery, as on a real LAN), else on loopback with a static list.
// Then bench/fleet-reports.ts (report bytes per device per day, `ferry fleet` over 10,000
// reports), which also runs alone as `fleet-reports`.
//   node --import tsx bench/fleet.ts [N]        (or registered in bench/run.ts as `fleet`)

import { join } from 'node:path';
import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { makeRepo, pseudoRandomBytes, sampleApp, tempDir } from '../test/helpers/repo.ts';
import { createTestLan, netnsUnavailable, type Child } from '../test/helpers/netns.ts';
import { originSource, updateDevice, type UpdateResult } from '../test/plugins/lan-roles.ts';
import { startStaticServer } from '../plugins/http/server.ts';
import { startPeerServer, type PeerServer } from '../plugins/lan/peer-server.ts';
import { createLanDiscovery } from '../plugins/lan/discovery.ts';
import { createLanSource } from '../plugins/lan/source.ts';
import { formatTable, fmt } from './lib/table.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const ROLES = 'test/plugins/lan-roles.ts';
const APP = 'sample-app';

interface Device { name: string; source: string | null; bytesMoved: number; ms: number; version: string | null }
interface Round { mode: string; peers: boolean; originArtifactBytes: number; originMetaBytes: number; totalMs: number; devices: Device[] }

function split(byPath: Record<string, number>): { artifact: number; meta: number } {
  let artifact = 0, meta = 0;
  for (const [p, b] of Object.entries(byPath)) {
    if (p.startsWith('releases/') && !p.endsWith('manifest.json')) artifact += b;
    else meta += b;
  }
  return { artifact, meta };
}

const device = (name: string, r: UpdateResult): Device => ({ name, source: r.source, bytesMoved: r.bytesMoved, ms: r.ms, version: r.version });

/**
 * The seed device updates first (the LAN has no peer yet, so from the origin), then the others
 * together, each finding the devices that already serve.
 */
async function loopbackRound(n: number, repo: string, trust: Uint8Array, dir: string, peers: boolean): Promise<Round> {
  const origin = await startStaticServer({ root: repo, host: '127.0.0.1' });
  const servers: PeerServer[] = [];
  const t0 = Date.now();
  try {
    const one = async (i: number) => {
      const home = join(dir, `${peers ? 'p' : 'o'}-${i}`);
      const lan = peers && servers.length > 0 ? createLanSource({ discovery: createLanDiscovery({ app: APP, static: servers.map((s) => s.url) }), timeoutMs: 3000 }) : null;
      try {
        const r = await updateDevice({ home, trust, sources: [...(lan ? [lan] : []), originSource(origin.url)] });
        return device(`dev-${i}`, r);
      } finally {
        lan?.close();
      }
    };
    const seed = await one(0);
    if (peers) servers.push(await startPeerServer({ cacheDir: join(dir, 'p-0', 'cache'), host: '127.0.0.1' }));
    const rest = await Promise.all(Array.from({ length: n - 1 }, (_, i) => one(i + 1)));
    const { artifact, meta } = split(Object.fromEntries(origin.stats.bytesByPath));
    return { mode: 'loopback', peers, originArtifactBytes: artifact, originMetaBytes: meta, totalMs: Date.now() - t0, devices: [seed, ...rest] };
  } finally {
    for (const s of servers) await s.close();
    await origin.close();
  }
}

async function netnsRound(n: number, repo: string, trustPath: string, dir: string, peers: boolean): Promise<Round> {
  const lan = await createTestLan(n + 1);
  const kids: Child[] = [];
  try {
    const [hOrigin, ...hosts] = lan.hosts;
    const spawn = (h: typeof hOrigin, role: string, cfg: object) => {
      const c = lan.spawnNode(h!, ROLES, [role, JSON.stringify({ host: h!.address, app: APP, lifetimeMs: 240_000, ...cfg })], ROOT);
      kids.push(c);
      return c;
    };
    const origin = spawn(hOrigin, 'origin', { repo, port: 8080 });
    const originUrl = String((await origin.next('ready')).url);
    const t0 = Date.now();
    const member = async (i: number) => {
      const c = spawn(hosts[i], 'member', { home: join(dir, `${peers ? 'p' : 'o'}-${i}`), trust: trustPath, origin: originUrl, announce: peers, port: 7070 });
      const e = await c.next('ready', 200_000);
      return device(`dev-${i}`, e.result as UpdateResult);
    };
    const seed = await member(0);
    const rest = await Promise.all(Array.from({ length: n - 1 }, (_, i) => member(i + 1)));
    const totalMs = Date.now() - t0;
    origin.send('stats');
    const { artifact, meta } = split((await origin.next('stats')).bytesByPath as Record<string, number>);
    return { mode: 'netns+mDNS', peers, originArtifactBytes: artifact, originMetaBytes: meta, totalMs, devices: [seed, ...rest] };
  } finally {
    for (const k of kids) await k.stop(2000);
    await lan.destroy();
  }
}

export async function run({ log }: { log: (line: string) => void }, n = Number(process.env.FLEET_N ?? 6)): Promise<void> {
  if (!Number.isInteger(n) || n < 2 || n > 40) throw new Error('N must be 2..40');
  const repo = await makeRepo();
  const tmp = await tempDir('ferry-fleet-');
  try {
    const r = await repo.release('1.0.0', { ...sampleApp('1.0.0'), 'lib/big.bin': pseudoRandomBytes(8_000_000, 5) });
    const full = r.manifest.targets['linux-x64']!.full;
    const why = await netnsUnavailable();
    log(why ? `fleet: loopback (namespaces unavailable: ${why})` : `fleet: ${n} devices in network namespaces, mDNS discovery`);
    log(`release 1.0.0: full artifact ${fmt.bytes(full.size)} bytes in ${full.chunks.length} signed chunks; ${n} devices`);
    const trustPath = join(tmp.path, 'trust.json');
    await writeFile(trustPath, await repo.trust());
    const rounds: Round[] = [];
    for (const peers of [false, true]) {
      rounds.push(why ? await loopbackRound(n, repo.repo, await repo.trust(), tmp.path, peers) : await netnsRound(n, repo.repo, trustPath, tmp.path, peers));
    }
    log(formatTable(
      [{ title: 'mode' }, { title: 'peers' }, { title: 'origin artifact bytes', align: 'right' }, { title: 'x artifact', align: 'right' }, { title: 'origin metadata bytes', align: 'right' }, { title: 'total s', align: 'right' }],
      rounds.map((x) => [x.mode, x.peers ? 'yes' : 'no', fmt.bytes(x.originArtifactBytes), fmt.ratio(x.originArtifactBytes / full.size), fmt.bytes(x.originMetaBytes), fmt.seconds(x.totalMs / 1000)]),
    ));
    log('');
    log(formatTable(
      [{ title: 'peers' }, { title: 'device' }, { title: 'version' }, { title: 'source' }, { title: 'bytes moved', align: 'right' }, { title: 's', align: 'right' }],
      rounds.flatMap((x) => x.devices.map((d) => [x.peers ? 'yes' : 'no', d.name, d.version ?? '-', d.source ?? '-', fmt.bytes(d.bytesMoved), fmt.seconds(d.ms / 1000)])),
    ));
    const withPeers = rounds.find((x) => x.peers)!;
    const ok = withPeers.originArtifactBytes === full.size && withPeers.devices.every((d) => d.version === '1.0.0');
    log(`${ok ? 'PASS' : 'MISS'}: with peers the origin serves each artifact once per LAN (served ${fmt.ratio(withPeers.originArtifactBytes / full.size)} of the artifact for ${n} devices)`);
  } finally {
    await tmp.cleanup();
    await repo.cleanup();
  }
  // The reports that come back from the fleet (issue 16); also runnable alone as `fleet-reports`.
  log('');
  await (await import('./fleet-reports.ts')).run({ log });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const n = process.argv[2] ? Number(process.argv[2]) : undefined;
  run({ log: (line) => process.stdout.write(`${line}\n`) }, n).then(() => process.exit(0), (err: Error) => { process.stderr.write(`${err.stack ?? err.message}\n`); process.exit(1); });
}
