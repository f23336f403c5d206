// Issue 16 item 3, reports over the LAN: a device hands its report to a LAN peer
// (plugins/lan/report-relay.ts sendReportsToPeers → the peer server's PUT /ferry/v1/reports/<id>),
// the peer keeps the newest per device in <home>/reports/ — bounded, so a neighbour cannot fill its
// disk (core/fleet/bounded-report-inbox.ts) — and passes it on (readInbox → putReport) to a
// `ferry serve --reports` endpoint, whose folder then holds the first device's report, verified.
// Runs on loopback in-process (always), and across network namespaces with the built CLI as the
// endpoint (root with `ip netns` only; otherwise a `SKIP:` line says why).

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { createServer, type Socket } from 'node:net';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeRepo, tempDir, type TempDir, type TestRepo } from '../helpers/repo.ts';
import { assertCodeAsync } from '../helpers/assert-code.ts';
import { ROOT } from '../helpers/cli.ts';
import { createTestLan, netnsUnavailable, type TestLan } from '../helpers/netns.ts';
import { initDevice } from '../../core/device/init.ts';
import { homeLayout } from '../../core/device/layout.ts';
import { parseReport } from '../../core/fleet/report.ts';
import { putReportAt } from '../../plugins/fleet/http-report.ts';
import { startStaticServer } from '../../plugins/http/server.ts';
import { admitReport, createBoundedInbox, heardAt } from '../../core/fleet/bounded-report-inbox.ts';
import { startPeerServer } from '../../plugins/lan/peer-server.ts';
import { REPORTS_PREFIX, relayOutcome, sendReportsToPeers } from '../../plugins/lan/report-relay.ts';
import { FerryError } from '../../core/errors.ts';
import { forge, makeDevice, snapshot } from './report-fixtures.ts';
import { forwardInbox } from './report-lan-roles.ts';

const ROLES = 'test/plugins/report-lan-roles.ts';
// Probed before any suite is registered: uvu starts running suites at the first tick.
const unavailable = await netnsUnavailable();

interface Fixture {
  tmp: TempDir;
  repo: TestRepo;
  /** A device home that shares on the LAN (ferry.json names the repository's app). */
  newPeerHome(name: string): Promise<string>;
}
let shared: Promise<Fixture> | undefined;
const fixture = () =>
  (shared ??= (async () => {
    const tmp = await tempDir('ferry-report-lan-');
    const repo = await makeRepo();
    const trust = await repo.trust();
    return {
      tmp,
      repo,
      async newPeerHome(name: string) {
        const home = join(tmp.path, name);
        await initDevice({ home, trustBytes: trust, sources: ['lan'], platform: 'linux', arch: 'x64' });
        return home;
      },
    };
  })());

const minutes = (n: number) => Date.parse('2026-12-05T20:00:00.000Z') + n * 60_000;
const iso = (ms: number) => new Date(ms).toISOString();

// ---------------------------------------------------------------------------------------------

const bound = suite('issue 16 item 3: a LAN peer keeps reports of a bounded number of devices');

bound('admitReport: room → admit; full → the longest unheard leaves, unless the newcomer is older; a known device always', () => {
  const kept = new Map([['a', 10], ['b', 30], ['c', 20]]);
  assert.equal(admitReport(kept, 'd', 5, 4), { admit: true, evict: [] });
  assert.equal(admitReport(kept, 'd', 25, 3), { admit: true, evict: ['a'] });
  assert.equal(admitReport(kept, 'd', 10, 3), { admit: false }, 'no newer than the oldest kept: refused');
  assert.equal(admitReport(kept, 'd', 5, 3), { admit: false });
  assert.equal(admitReport(kept, 'a', 1, 3), { admit: true, evict: [] }, 'a known device never needs room');
  assert.equal(admitReport(kept, 'd', 40, 2), { admit: true, evict: ['a', 'c'] }, 'over the bound (it was lowered): back to it');
  assert.equal(admitReport(new Map([['x', 10], ['w', 10]]), 'd', 11, 2), { admit: true, evict: ['w'] }, 'ties by id');
  assert.is(heardAt('2099-01-01T00:00:00Z', 1000), 1000, 'a future time counts as the arrival');
  assert.is(heardAt('1970-01-01T00:00:00.500Z', 1000), 500);
});

bound('flooding with new devices keeps at most N reports, the newest; a known device is still taken; the future is clamped', async () => {
  const f = await fixture();
  const dir = join(f.tmp.path, 'bounded');
  let clock = minutes(100);
  const inbox = createBoundedInbox({ dir, app: 'sample-app', maxDevices: 3, now: () => clock });
  const accept = (bytes: Buffer) => inbox.accept(bytes, parseReport(bytes));
  const known = await makeDevice(f.tmp.path);
  await accept(known.report({ sequence: 1, time: iso(minutes(1)) }));
  const flood = await Promise.all(Array.from({ length: 6 }, () => makeDevice(f.tmp.path)));
  for (let i = 0; i < flood.length; i++) await accept(flood[i]!.report({ time: iso(minutes(10 + i)) }));
  const names = async () => (await readdir(dir)).filter((n) => n.endsWith('.json')).sort();
  assert.equal(await names(), flood.slice(3).map((d) => `${d.identity.id}.json`).sort(), 'the three newest are kept');
  // A known device's newer report replaces its own and evicts nobody.
  await accept(flood[3]!.report({ sequence: 2, time: iso(minutes(50)) }));
  assert.is((await names()).length, 3);
  // A new device older than everything kept is refused, the inbox unchanged.
  const before = await snapshot(dir);
  const late = await makeDevice(f.tmp.path);
  await assertCodeAsync(() => accept(late.report({ time: iso(minutes(2)) })), 'ERR_NO_SPACE');
  assert.equal(await snapshot(dir), before);
  // A report dated far in the future counts as heard on arrival (minute 100), so later arrivals
  // evict it in its turn instead of it staying for ever.
  const liar = await makeDevice(f.tmp.path);
  await accept(liar.report({ time: '2099-01-01T00:00:00.000Z' }));
  assert.ok((await names()).includes(`${liar.identity.id}.json`));
  for (let i = 0; i < 3; i++) {
    clock = minutes(200 + i);
    await accept((await makeDevice(f.tmp.path)).report({ time: iso(minutes(200 + i)) }));
  }
  assert.not.ok((await names()).includes(`${liar.identity.id}.json`), 'the future-dated report was evicted');
  // A fresh inbox over the same folder (a restarted peer) finds the same three and keeps the bound.
  const again = createBoundedInbox({ dir, app: 'sample-app', maxDevices: 3, now: () => minutes(300) });
  const extra = (await makeDevice(f.tmp.path)).report({ time: iso(minutes(299)) });
  await again.accept(extra, parseReport(extra));
  assert.is((await names()).length, 3);
});

bound.run();

// ---------------------------------------------------------------------------------------------

const loop = suite('issue 16 item 3: reports over a LAN peer on loopback');

loop('a device hands its report to a peer; the peer keeps the newest and passes it on to `ferry serve --reports`', async () => {
  const f = await fixture();
  const peerHome = await f.newPeerHome('loop-peer');
  const peer = await startPeerServer({ cacheDir: homeLayout(peerHome).cache, metadataHome: peerHome, host: '127.0.0.1' });
  const endpointDir = join(f.tmp.path, 'loop-endpoint');
  const endpoint = await startStaticServer({ root: f.repo.repo, reports: { dir: endpointDir, app: 'sample-app' } });
  try {
    const device = await makeDevice(f.tmp.path);
    const newest = device.report({ sequence: 2, time: '2026-12-05T21:00:00.000Z' });
    const peers = [{ name: 'p', url: peer.url }];
    assert.equal(await sendReportsToPeers(peers, [newest]), { delivered: 1, failed: 0 });
    // An older one counts as delivered (the peer has newer: 409); a forged one and another app's fail.
    const stranger = await makeDevice(f.tmp.path, 'other-app');
    assert.equal(await sendReportsToPeers(peers, [device.report({ sequence: 1 }), forge(device.report({ sequence: 3 })), stranger.report()]), { delivered: 1, failed: 2 });
    assert.equal(peer.stats.reportsByStatus, { 201: 1, 409: 1, 403: 1 }, 'the forged report never reached the peer (the relay checks first); the other app was refused 403');
    const kept = join(homeLayout(peerHome).reportsInbox, `${device.identity.id}.json`);
    assert.ok((await readFile(kept)).equals(newest), 'the peer keeps the newest report');
    assert.equal(Object.keys(await snapshot(homeLayout(peerHome).reportsInbox)), [`${device.identity.id}.json`]);

    // The forged report sent straight to the peer is refused with its code.
    await assertCodeAsync(() => putReportAt(new URL(`${REPORTS_PREFIX}${device.identity.id}`, peer.url), forge(device.report({ sequence: 3 }))), 'ERR_SIGNATURE');

    const passed = await forwardInbox(peerHome, `${endpoint.url}reports`);
    assert.equal(passed, { sent: [device.identity.id], failed: [] });
    const arrived = await readFile(join(endpointDir, `${device.identity.id}.json`));
    assert.ok(arrived.equals(newest), 'the endpoint holds the device\'s report as it signed it');
    const { report } = parseReport(arrived);
    assert.is(report.deviceId, device.identity.id);
    assert.is(report.sequence, 2);
  } finally {
    await peer.close();
    await endpoint.close();
  }
});

loop('relaying costs bounded time: a dead peer and a hanging peer fail, the good one gets every report', async () => {
  const f = await fixture();
  const peerHome = await f.newPeerHome('loop-peer-2');
  const good = await startPeerServer({ cacheDir: homeLayout(peerHome).cache, metadataHome: peerHome, host: '127.0.0.1' });
  const dead = createServer();
  await new Promise<void>((r) => dead.listen(0, '127.0.0.1', () => r()));
  const deadUrl = `http://127.0.0.1:${(dead.address() as { port: number }).port}`;
  await new Promise<void>((r) => dead.close(() => r()));
  const sockets = new Set<Socket>();
  let accepted = 0;
  const hang = createServer((s) => { accepted++; sockets.add(s); s.on('error', () => {}); });
  await new Promise<void>((r) => hang.listen(0, '127.0.0.1', () => r()));
  try {
    const devices = await Promise.all([0, 1, 2].map(() => makeDevice(f.tmp.path)));
    const reports = devices.map((d) => d.report());
    const t0 = Date.now();
    const result = await sendReportsToPeers(
      [{ name: 'dead', url: deadUrl }, { name: 'hang', url: `http://127.0.0.1:${(hang.address() as { port: number }).port}` }, { name: 'good', url: good.url }],
      reports,
      { timeoutMs: 1500, totalTimeoutMs: 20_000 },
    );
    const ms = Date.now() - t0;
    assert.equal(result, { delivered: 3, failed: 6 });
    // Unreachable peers are given up after their first failure, not tried once per report: the
    // hanging peer saw one connection and cost one timeout, not three.
    assert.is(accepted, 1, 'the hanging peer was asked once');
    assert.ok(ms >= 1400 && ms < 3 * 1500, `the relay took ${ms} ms`);
    assert.is((await readdir(homeLayout(peerHome).reportsInbox)).length, 3);
  } finally {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => hang.close(() => r()));
    await good.close();
  }
});

loop('a peer without a device home takes no reports (405, as before); relay outcomes', async () => {
  const f = await fixture();
  const peer = await startPeerServer({ cacheDir: join(f.tmp.path, 'no-home-cache'), host: '127.0.0.1' });
  try {
    const device = await makeDevice(f.tmp.path);
    const err = await assertCodeAsync(() => putReportAt(new URL(`${REPORTS_PREFIX}${device.identity.id}`, peer.url), device.report()), 'ERR_IO');
    assert.match(err.message, /HTTP 405/);
  } finally {
    await peer.close();
  }
  assert.is(relayOutcome(new FerryError('ERR_DOWNGRADE', 'x')), 'delivered');
  assert.is(relayOutcome(new FerryError('ERR_NO_SOURCE', 'x')), 'unreachable');
  assert.is(relayOutcome(new FerryError('ERR_SIGNATURE', 'x')), 'failed');
});

loop.run();

// ---------------------------------------------------------------------------------------------

if (unavailable) {
  console.log(`SKIP: LAN report path across network namespaces (3 hosts): ${unavailable}; the loopback variant above ran`);
} else {
  const ns = suite('issue 16 item 3: reports across network namespaces: device → peer → `ferry serve --reports`');

  ns('a device in one namespace hands its report to a peer in another, which passes it to the endpoint in a third', async () => {
    const f = await fixture();
    const lan: TestLan = await createTestLan(3);
    let serve: ReturnType<typeof spawn> | undefined;
    try {
      const [hDevice, hPeer, hEndpoint] = lan.hosts as [typeof lan.hosts[0], typeof lan.hosts[0], typeof lan.hosts[0]];
      const peerHome = await f.newPeerHome('ns-peer');
      const peer = lan.spawnNode(hPeer, ROLES, ['peer', JSON.stringify({ host: hPeer.address, port: 7311, home: peerHome })], ROOT);
      // The endpoint: the built CLI, inside its namespace (`ip netns exec` execs, so the pid is node's).
      const endpointDir = join(f.tmp.path, 'ns-endpoint');
      serve = spawn('ip', ['netns', 'exec', hEndpoint.ns, process.execPath, 'dist/cli/ferry.js', 'serve', f.repo.repo, '--reports', endpointDir, '--host', hEndpoint.address, '--port', '8080', '--json'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      serve.stdout!.on('data', (d) => { out += d; });
      const device = await makeDevice(f.tmp.path);
      const report = device.report({ sequence: 4 });
      const reportFile = join(f.tmp.path, 'ns-report.json');
      await writeFile(reportFile, report);

      // Started together with the peer (it sends on "go"), so the two start-ups overlap.
      const peerUrl = `http://${hPeer.address}:7311`;
      const sender = lan.spawnNode(hDevice, ROLES, ['device', JSON.stringify({ host: hDevice.address, peers: [peerUrl], reportFiles: [reportFile] })], ROOT);
      assert.is(String((await peer.next('ready')).url), peerUrl);
      await sender.next('ready');
      sender.send('go');
      assert.equal((await sender.next('sent')).result, { delivered: 1, failed: 0 });
      assert.ok((await readFile(join(homeLayout(peerHome).reportsInbox, `${device.identity.id}.json`))).equals(report), 'the peer\'s inbox holds the report');

      for (let i = 0; i < 200 && !out.includes('}'); i++) await new Promise((r) => setTimeout(r, 25));
      const printed = JSON.parse(out) as { reportsUrl: string };
      assert.is(printed.reportsUrl, `http://${hEndpoint.address}:8080/reports/`);
      peer.send(`forward ${printed.reportsUrl}`);
      assert.equal(await peer.next('forwarded'), { event: 'forwarded', sent: [device.identity.id], failed: [] });
      const arrived = await readFile(join(endpointDir, `${device.identity.id}.json`));
      assert.ok(arrived.equals(report), 'the endpoint\'s folder holds the first device\'s report');
      assert.is(parseReport(arrived).report.deviceId, device.identity.id, 'and it verifies');
    } finally {
      if (serve?.pid && serve.exitCode === null) {
        const exited = new Promise((r) => serve!.once('exit', r));
        process.kill(serve.pid, 'SIGTERM');
        const killer = setTimeout(() => process.kill(serve!.pid!, 'SIGKILL'), 5000);
        await exited;
        clearTimeout(killer);
      }
      await lan.destroy();
    }
  });

  ns.run();
}

const last = suite('fixture cleanup');
last('removes the temp repository and homes', async () => {
  if (shared) {
    const f = await shared;
    await f.repo.cleanup();
    await f.tmp.cleanup();
  }
});
last.run();
