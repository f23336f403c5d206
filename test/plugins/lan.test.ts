// plugins/lan: the peer server, the LAN source, discovery, and SECURITY.md row 8 on a LAN — a
// device takes every artifact byte from peers (the origin serves metadata only), a peer serving
// corrupt chunks and a peer that hangs are dropped, and the installed tree hashes as signed.
// Runs twice: on loopback with a static peer list (always), and across network namespaces with
// mDNS discovery (root with `ip netns` only; otherwise a `SKIP:` line says why).

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeRepo, pseudoRandomBytes, sampleApp, tempDir, type TestRepo, type TempDir } from '../helpers/repo.ts';
import { assertTree } from '../helpers/device.ts';
import { createTestLan, netnsUnavailable, type Child, type TestLan } from '../helpers/netns.ts';
import { writeBundle, createBundleSource } from '../../core/publish/bundle.ts';
import { fetchChunked } from '../../core/update/chunked-fetch.ts';
import { digestFile } from '../../core/io/hash.ts';
import type { ArtifactRef, ManifestDoc } from '../../core/trust/metadata.ts';
import { startStaticServer } from '../../plugins/http/server.ts';
import { homeLayout } from '../../core/device/layout.ts';
import { startPeerServer, type PeerServer } from '../../plugins/lan/peer-server.ts';
import { createLanSource, type RangeEvent } from '../../plugins/lan/source.ts';
import { createLanDiscovery, parseLanSpec } from '../../plugins/lan/discovery.ts';
import { corruptCopy, originSource, startHangServer, updateDevice } from './lan-roles.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const ROLES = 'test/plugins/lan-roles.ts';
const APP = 'sample-app';
// Probed before any suite is registered: uvu starts running suites at the first tick.
const unavailable = await netnsUnavailable();

interface Fixture {
  tmp: TempDir;
  repo: TestRepo;
  manifest: ManifestDoc;
  full: ArtifactRef;
  bundle: string;
  cleanup(): Promise<void>;
}

/** One release whose full artifact spans several signed chunks, and a bundle of it. */
async function fixture(): Promise<Fixture> {
  const tmp = await tempDir('ferry-lan-');
  const repo = await makeRepo();
  const tree = { ...sampleApp('1.0.0'), 'lib/big.bin': pseudoRandomBytes(4_500_000, 99) };
  const r = await repo.release('1.0.0', tree);
  const full = r.manifest.targets['linux-x64']!.full;
  const bundle = join(tmp.path, 'usb', 'release.ferry');
  await writeBundle({ repo: repo.repo, version: '1.0.0', platform: 'linux', arch: 'x64', out: bundle });
  return { tmp, repo, manifest: r.manifest, full, bundle, cleanup: async () => { await repo.cleanup(); await tmp.cleanup(); } };
}

let shared: Promise<Fixture> | undefined;
const getFixture = () => (shared ??= fixture());

function get(url: string, headers: Record<string, string> = {}, method = 'GET'): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Bytes the origin served for artifacts (anything under releases/ that is not a manifest). */
function artifactBytes(byPath: Record<string, number>): number {
  // A manifest's separate file list (releases/<v>/files-<target>.json) is metadata too.
  return Object.entries(byPath).filter(([p]) => p.startsWith('releases/') && !p.endsWith('manifest.json') && !/\/files-[^/]+\.json$/.test(p)).reduce((n, [, b]) => n + b, 0);
}

// ---------------------------------------------------------------------------------------------

const server = suite('peer server: serves complete cache entries by sha256, with ranges, and nothing else');

server('whole file, a range, a suffix range, HEAD; 416 past the end; bytes counted', async () => {
  const f = await getFixture();
  const cache = join(f.tmp.path, 'srv-cache');
  await mkdir(cache, { recursive: true });
  const bytes = await readFile(join(f.repo.repo, f.full.path));
  await writeFile(join(cache, f.full.sha256), bytes);
  const s = await startPeerServer({ cacheDir: cache, host: '127.0.0.1' });
  try {
    const url = `${s.url}/ferry/v1/artifacts/${f.full.sha256}`;
    const whole = await get(url);
    assert.is(whole.status, 200);
    assert.ok(whole.body.equals(bytes), 'whole body');
    const part = await get(url, { range: 'bytes=100-1099' });
    assert.is(part.status, 206);
    assert.is(part.headers['content-range'], `bytes 100-1099/${bytes.length}`);
    assert.ok(part.body.equals(bytes.subarray(100, 1100)), 'range body');
    const tail = await get(url, { range: 'bytes=-10' });
    assert.ok(tail.body.equals(bytes.subarray(bytes.length - 10)), 'suffix range');
    const head = await get(url, {}, 'HEAD');
    assert.is(head.status, 200);
    assert.is(head.headers['content-length'], String(bytes.length));
    assert.is(head.body.length, 0);
    assert.is((await get(url, { range: `bytes=${bytes.length}-` })).status, 416);
    assert.is(s.stats.bytesServed, bytes.length + 1000 + 10);
    assert.is(s.stats.bySha[f.full.sha256], bytes.length + 1010);
  } finally {
    await s.close();
  }
});

server('refuses .part files, other names, other paths, traversal and other methods', async () => {
  const f = await getFixture();
  const cache = join(f.tmp.path, 'srv-cache2');
  await mkdir(join(cache, 'sub'), { recursive: true });
  const sha = 'ab'.repeat(32);
  await writeFile(join(cache, `${sha}.part`), 'partial');
  await writeFile(join(cache, 'notes.txt'), 'x');
  await writeFile(join(cache, sha.toUpperCase()), 'upper');
  const s = await startPeerServer({ cacheDir: cache, host: '127.0.0.1' });
  try {
    for (const path of [`${sha}.part`, sha, sha.toUpperCase(), 'notes.txt', `..%2F${sha}`, `../${sha}`, 'sub']) {
      const r = await get(`${s.url}/ferry/v1/artifacts/${path}`);
      assert.is(r.status, 404, path);
    }
    assert.is((await get(`${s.url}/notes.txt`)).status, 404);
    assert.is((await get(`${s.url}/ferry/v1/artifacts/${sha}`, {}, 'DELETE')).status, 405);
    assert.is(s.stats.bytesServed, 0);
  } finally {
    await s.close();
  }
});

server('metadata: serves exactly the files the home keeps after verifying them, and nothing else of the home', async () => {
  const f = await getFixture();
  const home = join(f.tmp.path, 'srv-home');
  const layout = homeLayout(home);
  const root1 = await readFile(join(f.repo.repo, 'root', '1.json'));
  const pointer = await readFile(join(f.repo.repo, 'channels', 'stable.json'));
  const manifest = await readFile(join(f.repo.repo, 'releases', '1.0.0', 'manifest.json'));
  await mkdir(layout.trustRoots, { recursive: true });
  await mkdir(layout.trustChannels, { recursive: true });
  await mkdir(layout.manifests, { recursive: true });
  await mkdir(layout.cache, { recursive: true });
  await writeFile(layout.keptRoot(1), root1);
  await writeFile(layout.keptPointer('stable'), pointer);
  await writeFile(layout.manifest('1.0.0'), manifest);
  // Files a peer must never get: the config, the marks, an unkept pointer, a link out of the home.
  await writeFile(layout.config, '{"secret":true}');
  await writeFile(layout.marks, '{}');
  await writeFile(join(layout.trustDir, 'beta.json'), 'x');
  await symlink(layout.config, layout.keptPointer('beta'));
  const s = await startPeerServer({ cacheDir: layout.cache, metadataHome: home, host: '127.0.0.1' });
  const bare = await startPeerServer({ cacheDir: layout.cache, host: '127.0.0.1' });
  try {
    const meta = (path: string, base = s.url) => get(`${base}/ferry/v1/metadata/${path}`);
    assert.ok((await meta('root/1.json')).body.equals(root1), 'root 1');
    assert.ok((await meta('channels/stable.json')).body.equals(pointer), 'the kept pointer');
    assert.ok((await meta('releases/1.0.0/manifest.json')).body.equals(manifest), 'the installed manifest');
    for (const path of ['root/2.json', 'root/01.json', 'channels/beta.json', 'channels/other.json', 'releases/1.1.0/manifest.json', 'releases/v1.0.0/manifest.json',
      '../ferry.json', 'ferry.json', 'trust/marks.json', 'marks.json', 'channels/..%2Fmarks.json', 'releases/..%2F..%2Fferry.json/manifest.json', 'releases/../manifest.json', 'root/1.json?x=1']) {
      assert.is((await meta(path)).status, 404, path);
    }
    assert.is((await meta('channels/stable.json', bare.url)).status, 404, 'without a home, artifacts only');
    assert.equal(Object.keys(s.stats.byMetadataPath).sort(), ['channels/stable.json', 'releases/1.0.0/manifest.json', 'root/1.json']);
  } finally {
    await s.close();
    await bare.close();
  }
});

server.run();

// ---------------------------------------------------------------------------------------------

const source = suite('lan source: artifacts in capped ranges, metadata peer by peer, within a deadline');

source('reads no metadata as a whole (peer by peer instead), names itself lan, and lists peers but itself', async () => {
  const lan = createLanSource({ discovery: { peers: async () => [{ name: 'a', url: 'http://127.0.0.1:1' }, { name: 'me', url: 'http://127.0.0.1:2/' }, { name: 'a2', url: 'http://127.0.0.1:1' }] }, selfUrl: 'http://127.0.0.1:2', timeoutMs: 500 });
  try {
    assert.is(lan.name, 'lan');
    assert.is(lan.offline, true);
    assert.is(await lan.read('channels/stable.json', 1000), undefined);
    assert.is(await lan.fetch('releases/1.0.0/x.tar.gz', '/nonexistent', 10), false);
    assert.equal((await lan.chunkPeers()).map((p) => p.name), ['lan:a@http://127.0.0.1:1']);
    const [peer] = await lan.metadataPeers();
    assert.is(peer?.name, 'lan:a@http://127.0.0.1:1');
    assert.is(peer?.offline, true, 'peers relay what they got offline: offlineGraceDays applies');
    assert.is(await peer!.read('ferry.json', 1000), undefined, 'only repository metadata paths are asked for');
    await peer!.read('channels/stable.json', 1000).then(() => assert.unreachable('a peer nobody answers for'), (err: Error) => assert.match(err.message, /127\.0\.0\.1:1/));
  } finally {
    lan.close();
  }
});

source('a peer that sends more than asked is cut at end-start; one that hangs fails at the deadline; abort is honoured', async () => {
  // A liar that ignores Range and answers 206 with far too many bytes.
  const liar = await new Promise<{ url: string; close(): void }>((resolve) => {
    const srv = createServer((sock) => {
      sock.on('error', () => {});
      sock.once('data', () => {
        sock.write('HTTP/1.1 206 Partial Content\r\ncontent-type: application/octet-stream\r\n\r\n');
        sock.end(Buffer.alloc(200_000, 1));
      });
    });
    srv.listen(0, '127.0.0.1', () => resolve({ url: `http://127.0.0.1:${(srv.address() as { port: number }).port}`, close: () => srv.close() }));
  });
  const hang = await startHangServer('127.0.0.1');
  const events: RangeEvent[] = [];
  const lan = createLanSource({ discovery: { peers: async () => [{ name: 'liar', url: liar.url }, { name: 'hang', url: hang.url }] }, timeoutMs: 700, onRange: (e) => events.push(e) });
  const sha = 'cd'.repeat(32);
  try {
    const [liarPeer, hangPeer] = await lan.chunkPeers();
    await liarPeer!.fetchRange(sha, 0, 1000, new AbortController().signal).then(() => assert.unreachable('liar accepted'), (err: Error) => assert.match(err.message, /more than the 1000 bytes/));
    const t0 = Date.now();
    await hangPeer!.fetchRange(sha, 0, 1000, new AbortController().signal).then(() => assert.unreachable('hang accepted'), (err: Error) => assert.match(err.message, /within 700 ms/));
    assert.ok(Date.now() - t0 < 5000, 'deadline kept');
    const c = new AbortController();
    setTimeout(() => c.abort(), 100);
    const t1 = Date.now();
    await hangPeer!.fetchRange(sha, 0, 1000, c.signal).then(() => assert.unreachable(), (err: Error) => assert.match(err.message, /aborted/));
    assert.ok(Date.now() - t1 < 3000, 'abort is prompt (the 700 ms deadline would say "within 700 ms", not "aborted")');
    assert.equal(events.map((e) => e.outcome), ['error', 'error', 'error']);
  } finally {
    lan.close();
    liar.close();
    await hang.close();
  }
});

source('a metadata peer sending more than the document cap is cut there; one that hangs fails at its deadline', async () => {
  const flood = await new Promise<{ url: string; close(): void }>((resolve) => {
    const srv = createServer((sock) => {
      sock.on('error', () => {});
      sock.once('data', () => {
        sock.write('HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n');
        sock.end(Buffer.alloc(300_000, 0x20));
      });
    });
    srv.listen(0, '127.0.0.1', () => resolve({ url: `http://127.0.0.1:${(srv.address() as { port: number }).port}`, close: () => srv.close() }));
  });
  const hang = await startHangServer('127.0.0.1');
  const lan = createLanSource({ discovery: { peers: async () => [{ name: 'flood', url: flood.url }, { name: 'hang', url: hang.url }] }, timeoutMs: 700 });
  try {
    const [floodPeer, hangPeer] = await lan.metadataPeers();
    await floodPeer!.read('channels/stable.json', 1000).then(() => assert.unreachable('flood accepted'), (err: Error) => assert.match(err.message, /over its 1000-byte cap/));
    const t0 = Date.now();
    await hangPeer!.read('root/2.json', 1000).then(() => assert.unreachable('hang accepted'), (err: Error) => assert.match(err.message, /within 700 ms/));
    assert.ok(Date.now() - t0 < 2000, 'deadline kept');
  } finally {
    lan.close();
    flood.close();
    await hang.close();
  }
});

source('source specs: `lan` is mDNS, `lan:h:p,h:p` a static list, anything else refused', () => {
  assert.equal(parseLanSpec('lan'), {});
  assert.equal(parseLanSpec('lan:10.0.0.2:7070,peer.local:7070'), { static: ['10.0.0.2:7070', 'peer.local:7070'] });
  assert.is(parseLanSpec('http://x'), null);
  assert.throws(() => parseLanSpec('lan:'), /host:port/);
  assert.throws(() => parseLanSpec('lan:nohost'), /host:port/);
});

source('a static list is returned as URLs, with no multicast socket opened', async () => {
  const d = createLanDiscovery({ app: APP, static: ['127.0.0.1:7001', 'http://127.0.0.1:7002'] });
  assert.equal(await d.peers(), [{ name: '127.0.0.1:7001', url: 'http://127.0.0.1:7001' }, { name: 'http://127.0.0.1:7002', url: 'http://127.0.0.1:7002' }]);
  assert.is(d.instance, null);
  await d.close();
});

source.run();

// ---------------------------------------------------------------------------------------------

const chunks = suite('row 8 on loopback: chunked fetch keeps the good peer and drops the corrupt and the hanging one');

chunks('fetchChunked over [good, corrupt, hanging]: the file verifies; both bad peers are in `dropped`', async () => {
  const f = await getFixture();
  assert.ok(f.full.chunks.length >= 4, `the artifact spans ${f.full.chunks.length} chunks`);
  const good = join(f.tmp.path, 'c-good');
  await mkdir(good, { recursive: true });
  await writeFile(join(good, f.full.sha256), await readFile(join(f.repo.repo, f.full.path)));
  await corruptCopy(good, join(f.tmp.path, 'c-bad'));
  const g = await startPeerServer({ cacheDir: good, host: '127.0.0.1' });
  const b = await startPeerServer({ cacheDir: join(f.tmp.path, 'c-bad'), host: '127.0.0.1' });
  const h = await startHangServer('127.0.0.1');
  const lan = createLanSource({ discovery: createLanDiscovery({ app: APP, static: [g.url, b.url, h.url] }), timeoutMs: 800 });
  try {
    const dest = join(f.tmp.path, 'chunked.out');
    const got = await fetchChunked(f.full, await lan.chunkPeers(), dest);
    const d = await digestFile(dest);
    assert.is(d.sha256, f.full.sha256, 'the fetched file is the signed artifact');
    const reasons = Object.fromEntries(got.dropped.map((x) => [x.peer, x.reason]));
    assert.match(reasons[`lan:http://${b.url.slice(7)}`] ?? '', /does not match its signed hash/);
    assert.match(reasons[`lan:http://${h.url.slice(7)}`] ?? '', /within 800 ms/);
    assert.is(got.served[`lan:${g.url}`], f.full.chunks.length, 'every chunk from the good peer');
  } finally {
    lan.close();
    await g.close();
    await b.close();
    await h.close();
  }
});

chunks.run();

// ---------------------------------------------------------------------------------------------

/** Checks what B and C must show: installed as signed, nothing from the origin, bad peers dropped. */
function assertPeerUpdate(who: string, r: { version: string | null; status: string; ranges: RangeEvent[] }, f: Fixture, urls: { good: string; bad: string; hang: string }): void {
  assert.is(r.status, 'committed', `${who} committed`);
  assert.is(r.version, '1.0.0', `${who} on 1.0.0`);
  const of = (url: string) => r.ranges.filter((e) => e.peer === url);
  // The good peer served every chunk; the corrupt one was asked at most once per worker before
  // its first bad chunk dropped it; the hanging one only ever failed on the deadline.
  assert.is(of(urls.good).filter((e) => e.outcome === 'ok').length, f.full.chunks.length, `${who}: every chunk from the good peer`);
  assert.ok(of(urls.bad).length >= 1 && of(urls.bad).length <= 4, `${who}: the corrupt peer was asked ${of(urls.bad).length} times (1..4), then dropped`);
  assert.ok(of(urls.hang).length >= 1 && of(urls.hang).every((e) => e.outcome === 'error' && /within/.test(e.detail ?? '')), `${who}: the hanging peer failed on the deadline`);
  assert.ok(of(urls.hang).length <= 4, `${who}: the hanging peer was dropped`);
}

const loop = suite('LAN update on loopback (static peer list): every artifact byte from peers, bad peers dropped');

loop('A installs from a bundle and serves; B and C install from [lan, origin] with the origin serving only metadata', async () => {
  const f = await getFixture();
  const origin = await startStaticServer({ root: f.repo.repo, host: '127.0.0.1' });
  const servers: { close(): Promise<void> }[] = [origin];
  try {
    const trust = await f.repo.trust();
    const homeA = join(f.tmp.path, 'loop-a');
    const a = await updateDevice({ home: homeA, trust, sources: [createBundleSource(f.bundle, join(homeA, 'staging', 'bundle'))], specs: [f.bundle] });
    assert.is(a.version, '1.0.0');
    assert.ok(a.cache.includes(f.full.sha256), 'A keeps the artifact in its cache for peers');
    const good = await startPeerServer({ cacheDir: join(homeA, 'cache'), host: '127.0.0.1' });
    servers.push(good);
    await corruptCopy(join(homeA, 'cache'), join(f.tmp.path, 'loop-bad'));
    const bad = await startPeerServer({ cacheDir: join(f.tmp.path, 'loop-bad'), host: '127.0.0.1' });
    servers.push(bad);
    const hang = await startHangServer('127.0.0.1');
    servers.push(hang);

    const device = async (name: string) => {
      const ranges: RangeEvent[] = [];
      const lan = createLanSource({ discovery: createLanDiscovery({ app: APP, static: [good.url, bad.url, hang.url] }), timeoutMs: 1000, onRange: (e) => ranges.push(e) });
      try {
        const home = join(f.tmp.path, `loop-${name}`);
        const r = await updateDevice({ home, trust, sources: [lan, originSource(origin.url)] });
        return { ...r, ranges, home };
      } finally {
        lan.close();
      }
    };
    const [b, c] = await Promise.all([device('b'), device('c')]);
    const byPath = Object.fromEntries(origin.stats.bytesByPath);
    assert.ok((byPath['channels/stable.json'] ?? 0) > 0, 'the origin served the channel pointer');
    assert.is(artifactBytes(byPath), 0, `the origin served no artifact bytes (served: ${JSON.stringify(byPath)})`);
    for (const [who, r] of [['B', b], ['C', c]] as const) {
      assertPeerUpdate(who, r, f, { good: good.url, bad: bad.url, hang: hang.url });
      await assertTree(join(r.home, 'current'), f.manifest.targets['linux-x64']!.files, `${who} current`);
    }
    assert.ok(bad.stats.bytesServed > 0, 'the corrupt peer did serve (and was caught)');
  } finally {
    for (const s of servers) await s.close();
  }
});

loop.run();

// ---------------------------------------------------------------------------------------------

if (unavailable) {
  console.log(`SKIP: LAN tests across network namespaces (mDNS discovery, 6 hosts): ${unavailable}; the loopback variant above ran`);
} else {
  const ns = suite('LAN update across network namespaces: mDNS discovery, origin serves metadata only, bad peers dropped');

  ns('mDNS: a browse finds announced peers of the same app only, not itself', async () => {
    const lan: TestLan = await createTestLan(3);
    const kids: Child[] = [];
    try {
      const [h0, h1, h2] = lan.hosts as [typeof lan.hosts[0], typeof lan.hosts[0], typeof lan.hosts[0]];
      const mine = lan.spawnNode(h0, ROLES, ['hang', JSON.stringify({ host: h0.address, port: 7070, app: APP, announce: true })], ROOT);
      const other = lan.spawnNode(h1, ROLES, ['hang', JSON.stringify({ host: h1.address, port: 7071, app: 'other-app', announce: true })], ROOT);
      kids.push(mine, other);
      await mine.next('ready');
      await other.next('ready');
      const browser = lan.spawnNode(h2, ROLES, ['browse', JSON.stringify({ host: h2.address, port: 7072, app: APP })], ROOT);
      kids.push(browser);
      const found = (await browser.next('done', 20_000)).peers as { name: string; url: string }[];
      assert.equal(found.map((p) => p.url), [`http://${h0.address}:7070`]);
    } finally {
      for (const k of kids) await k.stop();
      await lan.destroy();
    }
  });

  ns('origin, A (bundle, then serves), a corrupt peer, a hanging peer; B and C install over mDNS-found peers', async () => {
    const f = await getFixture();
    const lan: TestLan = await createTestLan(6);
    try {
      const [hOrigin, hA, hBad, hHang, hB, hC] = lan.hosts as [typeof lan.hosts[0], typeof lan.hosts[0], typeof lan.hosts[0], typeof lan.hosts[0], typeof lan.hosts[0], typeof lan.hosts[0]];
      const trustPath = join(f.tmp.path, 'trust.json');
      await writeFile(trustPath, await f.repo.trust());
      const spawn = (h: typeof hA, role: string, cfg: object) => lan.spawnNode(h, ROLES, [role, JSON.stringify({ host: h.address, app: APP, lifetimeMs: 80_000, ...cfg })], ROOT);

      const origin = spawn(hOrigin, 'origin', { repo: f.repo.repo, port: 8080 });
      const homeA = join(f.tmp.path, 'ns-a');
      const a = spawn(hA, 'peer', { home: homeA, trust: trustPath, bundle: f.bundle, port: 7070, announce: true });
      const originUrl = String((await origin.next('ready')).url);
      const aReady = await a.next('ready', 40_000);
      const bad = spawn(hBad, 'bad', { corruptFrom: join(homeA, 'cache'), cacheDir: join(f.tmp.path, 'ns-bad'), port: 7070, announce: true });
      const hang = spawn(hHang, 'hang', { port: 7070, announce: true });
      await bad.next('ready');
      await hang.next('ready');

      const b = spawn(hB, 'device', { home: join(f.tmp.path, 'ns-b'), trust: trustPath, origin: originUrl, timeoutMs: 1500 });
      const c = spawn(hC, 'device', { home: join(f.tmp.path, 'ns-c'), trust: trustPath, origin: originUrl, timeoutMs: 1500 });
      const [rb, rc] = await Promise.all([b.next('done', 60_000), c.next('done', 60_000)]);

      origin.send('stats');
      const byPath = (await origin.next('stats')).bytesByPath as Record<string, number>;
      bad.send('stats');
      const badStats = (await bad.next('stats')) as unknown as PeerServer['stats'];
      assert.is(String(aReady.url), `http://${hA.address}:7070`);
      assert.ok((byPath['channels/stable.json'] ?? 0) > 0, 'the origin served the channel pointer');
      assert.is(artifactBytes(byPath), 0, `the origin served no artifact bytes (served: ${JSON.stringify(byPath)})`);
      assert.ok(badStats.bytesServed > 0, 'the corrupt peer was found over mDNS and served (and was caught)');
      const urls = { good: `http://${hA.address}:7070`, bad: `http://${hBad.address}:7070`, hang: `http://${hHang.address}:7070` };
      for (const [who, r, home] of [['B', rb, 'ns-b'], ['C', rc, 'ns-c']] as const) {
        assertPeerUpdate(who, r.result as { version: string | null; status: string; ranges: RangeEvent[] }, f, urls);
        await assertTree(join(f.tmp.path, home, 'current'), f.manifest.targets['linux-x64']!.files, `${who} current`);
      }
    } finally {
      await lan.destroy();
    }
  });

  ns.run();
}

const last = suite('fixture cleanup');
last('removes the temp repository and homes', async () => {
  if (shared) await (await shared).cleanup();
});
last.run();
