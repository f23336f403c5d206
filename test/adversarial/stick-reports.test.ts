// issue 16 item 3: reports carried off on the USB stick (plugins/fleet/stick-reports.ts, through the
// agent: plugins/fleet/deliver-reports.ts). A stick that fills up never loses the update bundle on
// it: a real tmpfs (mounted here, needs root) holding a real .ferry bundle, filled to the last page,
// then an agent round that installs from it and tries to write its report. Also the folder's cap,
// the endpoint and LAN routes failing without stopping the stick, and which folders count as a stick.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFile, mkdir, open, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeRepo, sampleApp, tempDir, type TempDir, type TestRepo } from '../helpers/repo.ts';
import { cleanupAll, makeDevice, type TestDevice } from '../helpers/device.ts';
import { snapshotDir } from '../helpers/tamper.ts';
import { writeBundle } from '../../core/publish/bundle.ts';
import { sha256 } from '../../core/io/hash.ts';
import { parseReport } from '../../core/fleet/report.ts';
import { readInbox } from '../../core/fleet/report-inbox.ts';
import { loadDeviceIdentity } from '../../core/fleet/device-identity.ts';
import { Agent } from '../../plugins/agent/agent.ts';
import { STICK_REPORTS_MAX_BYTES, stickPresent, writeReportsToStick } from '../../plugins/fleet/stick-reports.ts';
import { deliverReports } from '../../plugins/fleet/deliver-reports.ts';
import { startStaticServer } from '../../plugins/http/server.ts';
import { startPeerServer } from '../../plugins/lan/peer-server.ts';
import { acceptReport } from '../../core/fleet/report-inbox.ts';
import { createDeviceIdentity } from '../../core/fleet/device-identity.ts';
import { signReport } from '../../core/fleet/report.ts';
import { homeLayout } from '../../core/device/layout.ts';
import { ferry, json, ok } from '../helpers/cli.ts';
import { canMountTmpfs } from '../helpers/tmpfs.ts';
import http from 'node:http';
import type { DeviceConfig } from '../../core/device/config.ts';

/** Writes `path` until the filesystem says ENOSPC (bounded): the stick has no page left. */
async function fillUp(path: string, limit: number): Promise<void> {
  const handle = await open(path, 'a');
  const chunk = Buffer.alloc(4096, 0x5a);
  try {
    for (let written = 0; written < limit; written += chunk.length) {
      try {
        await handle.write(chunk);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOSPC') return;
        throw err;
      }
    }
    throw new Error(`${path}: no ENOSPC after ${limit} bytes`);
  } finally {
    await handle.close();
  }
}

let repo: TestRepo;
let bundle: string;
let scratch: TempDir;

const why = canMountTmpfs();

const stick = suite('issue 16 item 3: a stick that fills up never loses the bundle on it');

stick.before(async () => {
  repo = await makeRepo();
  await repo.release('1.0.0', sampleApp('1.0.0'));
  scratch = await tempDir('ferry-stick-reports-');
  bundle = join(scratch.path, '1.0.0.ferry');
  await writeBundle({ repo: repo.repo, version: '1.0.0', platform: 'linux', arch: 'x64', out: bundle });
});
stick.after(async () => {
  await cleanupAll(repo, scratch);
});

if (why) {
  console.log(`SKIP: the full-stick test (tmpfs): ${why}`);
} else {
  stick('full stick: the agent installs from it, its report write hits ENOSPC, the bundle verifies byte for byte and another device installs from it', async () => {
    const mnt = mkdtempSync(join(tmpdir(), 'ferry-stick-full-'));
    const bundleBytes = await readFile(bundle);
    const size = Math.ceil((bundleBytes.length + 256 * 1024) / 4096) * 4096;
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0755`, 'tmpfs', mnt], { stdio: 'pipe' });
    const devices: TestDevice[] = [];
    try {
      const onStick = join(mnt, 'update.ferry');
      await copyFile(bundle, onStick);
      const bundleSha = sha256(bundleBytes);
      const filler = join(mnt, 'photos.bin');
      await fillUp(filler, size);
      const before = await snapshotDir(mnt);

      // An agent whose source is the stick, with the endpoint and a LAN peer unreachable too.
      const device = await makeDevice({ trust: await repo.trust(), sources: [`usb:${mnt}`] });
      devices.push(device);
      await device.setConfig({ reports: { url: 'http://127.0.0.1:9/reports', stick: true } });
      const events: { event: string; fields: Record<string, unknown> }[] = [];
      const agent = new Agent({ home: device.home, log: (event, fields) => events.push({ event, fields }) });
      const r = await agent.once();
      assert.is(r.result?.status, 'committed', `installed from the full stick (${r.error?.message ?? ''})`);
      const carried = events.find((e) => e.event === 'reports');
      assert.ok(carried, `a reports event: ${events.map((e) => e.event).join(', ')}`);
      const sticks = carried!.fields.sticks as { mount: string; noSpace: boolean; written: number }[];
      assert.equal(sticks.map((s) => [s.mount, s.noSpace, s.written]), [[mnt, true, 0]], 'the stick said "no space"');
      assert.is((carried!.fields.endpoint as { failed: number }).failed, 1, 'the unreachable endpoint failed without stopping the stick');

      assert.equal(await snapshotDir(mnt), before, 'nothing on the stick changed: no reports/ folder, no temp file');
      assert.is(sha256(await readFile(onStick)), bundleSha, 'the bundle is byte for byte what was copied');

      // Room for one report: it lands as <deviceId>.json, a valid signed report of this device.
      await rm(filler);
      await fillUp(filler, size); // full again...
      const fillerBytes = (await readFile(filler)).length;
      await writeFile(filler, Buffer.alloc(Math.max(0, fillerBytes - 64 * 1024), 0x5a)); // ...then 64 KiB freed
      assert.is((await agent.once()).result?.status, 'up-to-date');
      const kept = await readInbox(join(mnt, 'reports'));
      const id = (await loadDeviceIdentity(device.layout))!.id;
      assert.equal(kept.map((k) => k.deviceId), [id]);
      const first = parseReport(kept[0]!.bytes).report;
      assert.is(first.currentVersion, '1.0.0');

      // Full again: a newer report cannot be written; the older one stays, byte for byte.
      await fillUp(filler, size);
      const full = await snapshotDir(mnt);
      assert.is((await agent.once()).result?.status, 'up-to-date');
      const written = parseReport(await readFile(device.layout.deviceReport)).report;
      assert.ok(written.sequence > first.sequence, 'the device wrote a newer report at home');
      assert.equal(await snapshotDir(mnt), full, 'the stick is unchanged: the old report kept, the temp file removed');
      const result = await writeReportsToStick(mnt, [await readFile(device.layout.deviceReport)]);
      assert.equal([result.noSpace, result.written, result.error], [true, 0, null], 'the library says "no space" rather than throwing');

      // The bundle still serves: a fresh device installs 1.0.0 from it.
      assert.is(sha256(await readFile(onStick)), bundleSha);
      const other = await makeDevice({ trust: await repo.trust(), sources: [onStick] });
      devices.push(other);
      assert.is((await other.with((u) => u.apply())).status, 'committed');
      assert.is(await other.current(), '1.0.0');
    } finally {
      spawnSync('umount', [mnt], { stdio: 'pipe' });
      rmSync(mnt, { recursive: true, force: true });
      for (const d of devices) await d.cleanup();
    }
  });
}

stick('the reports/ folder never grows past its cap; other files there count too', async () => {
  const dir = join(scratch.path, 'capped');
  const device = await makeDevice({ trust: await repo.trust(), sources: [bundle] });
  try {
    assert.is((await device.with((u) => u.apply())).status, 'committed');
    const report = await readFile(device.layout.deviceReport);
    await mkdir(join(dir, 'reports'), { recursive: true });
    await writeFile(join(dir, 'reports', 'notes.bin'), Buffer.alloc(STICK_REPORTS_MAX_BYTES - 100));
    const before = await snapshotDir(dir);
    const r = await writeReportsToStick(dir, [report]);
    assert.equal([r.overCap, r.written, r.noSpace, r.error], [1, 0, false, null]);
    assert.equal(await snapshotDir(dir), before);
    await rm(join(dir, 'reports', 'notes.bin'));
    assert.is((await writeReportsToStick(dir, [report])).written, 1);
    assert.is((await writeReportsToStick(dir, [report])).unchanged, 1, 'the same report again writes nothing');
  } finally {
    await device.cleanup();
  }
});

stick('issue 16 review item 2: a stick whose reports/ is a link to a folder elsewhere gets nothing written, and says why', async () => {
  const mount = join(scratch.path, 'linked-reports-stick');
  const outside = join(scratch.path, 'device-own-disk');
  await mkdir(mount);
  await mkdir(outside);
  await copyFile(bundle, join(mount, 'update.ferry'));
  await symlink(outside, join(mount, 'reports'));
  const identity = await createDeviceIdentity(homeLayout(join(scratch.path, 'linked-reports-device')));
  const report = signReport({
    type: 'ferry/report', deviceId: identity.id, publicKey: Buffer.from(identity.key.publicKey).toString('hex'), app: 'demo',
    target: 'linux-x64', channel: 'stable', sequence: 1, time: '2026-12-05T20:00:00.000Z', currentVersion: '1.0.0',
    lastAttempt: null, freeDiskBytes: 1000, versions: [],
  }, identity);
  const before = await snapshotDir(mount);
  const r = await writeReportsToStick(mount, [report]);
  assert.is(r.written, 0);
  assert.match(r.error ?? '', /^ERR_UNSUPPORTED_FILE: .*not a folder/);
  assert.equal(await readdir(outside), [], 'nothing written where the link points');
  assert.equal(await snapshotDir(mount), before);
});

stick('issue 16 review item 5: the endpoint route stops at its total deadline; the reports left count as failed', async () => {
  // Six relayed reports (no own report) and an endpoint that takes 200 ms over each answer, well
  // inside the per-request timeout: without a bound on the route they take 1.2 s; with 500 ms the
  // route stops after the third.
  const layout = homeLayout(join(scratch.path, 'slow-endpoint-device'));
  for (let i = 0; i < 6; i++) {
    const identity = await createDeviceIdentity(homeLayout(join(scratch.path, `slow-endpoint-${i}`)));
    await acceptReport(layout.reportsInbox, signReport({
      type: 'ferry/report', deviceId: identity.id, publicKey: Buffer.from(identity.key.publicKey).toString('hex'), app: 'demo',
      target: 'linux-x64', channel: 'stable', sequence: 1, time: '2026-12-05T20:00:00.000Z', currentVersion: '1.0.0',
      lastAttempt: null, freeDiskBytes: 1000, versions: [],
    }, identity));
  }
  let answered = 0;
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => setTimeout(() => { answered++; res.writeHead(201).end(); }, 200));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  try {
    const config = { app: 'demo', sources: [], reports: { url: `http://127.0.0.1:${(server.address() as { port: number }).port}/reports/`, stick: false } } as unknown as DeviceConfig;
    const t0 = Date.now();
    const d = await deliverReports({ layout, config, timeoutMs: 1000, endpointTotalTimeoutMs: 500 });
    const ms = Date.now() - t0;
    assert.is(d.reports, 6);
    assert.ok(d.endpoint!.failed > 0 && d.endpoint!.delivered + d.endpoint!.failed === 6, JSON.stringify(d.endpoint));
    assert.ok(d.endpoint!.delivered < 6 && answered < 6, `stopped before the last report (${answered} answered)`);
    assert.match(d.endpoint!.error ?? '', /^ERR_NO_SOURCE/);
    assert.ok(ms < 1000, `the route stopped near its deadline (${ms} ms)`);
  } finally {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  }
});

stick('a stick is a mount point or a folder already carrying an offer or reports: an empty mount folder gets nothing', async () => {
  const empty = join(scratch.path, 'media-stick');
  await mkdir(empty);
  assert.is(await stickPresent(empty), false);
  assert.is(await stickPresent(join(scratch.path, 'missing')), false);
  const withBundle = join(scratch.path, 'with-bundle');
  await mkdir(withBundle);
  await copyFile(bundle, join(withBundle, 'u.ferry'));
  assert.is(await stickPresent(withBundle), true);

  // deliverReports leaves the empty folder alone and writes onto the one with a bundle.
  const device = await makeDevice({ trust: await repo.trust(), sources: [bundle] });
  try {
    assert.is((await device.with((u) => u.apply())).status, 'committed');
    const config = { ...(await device.config()), sources: [`usb:${empty},${withBundle}`] };
    const d = await deliverReports({ layout: device.layout, config, peers: [{ name: 'gone', url: 'http://127.0.0.1:9' }], timeoutMs: 2000 });
    assert.equal(d.sticks.map((s) => [s.mount, s.written]), [[withBundle, 1]]);
    assert.equal(await readdir(empty), []);
    assert.ok(d.peers && d.peers.delivered === 0, 'the unreachable peer took nothing, and did not throw');
  } finally {
    await device.cleanup();
  }
});

stick('deliverReports: the own report and a relayed one reach the endpoint (ferry serve --reports), the stick and a LAN peer', async () => {
  const mount = join(scratch.path, 'deliver-stick');
  await mkdir(mount);
  await copyFile(bundle, join(mount, 'update.ferry'));
  const endpointDir = join(scratch.path, 'endpoint-inbox');
  const device = await makeDevice({ trust: await repo.trust(), sources: [bundle] });
  const peerDevice = await makeDevice({ trust: await repo.trust(), sources: [bundle] });
  const server = await startStaticServer({ root: repo.repo, reports: { dir: endpointDir, app: (await device.config()).app } });
  const peer = await startPeerServer({ cacheDir: peerDevice.layout.cache, metadataHome: peerDevice.home, host: '127.0.0.1', port: 0 });
  try {
    assert.is((await device.with((u) => u.apply())).status, 'committed');
    const own = parseReport(await readFile(device.layout.deviceReport)).report;
    // A report this device relays for a third one (its LAN peer server would have kept it).
    const third = await createDeviceIdentity(homeLayout(join(scratch.path, 'third')));
    const relayed = signReport({ ...own, deviceId: third.id, publicKey: Buffer.from(third.key.publicKey).toString('hex'), sequence: 3 }, third);
    await acceptReport(device.layout.reportsInbox, relayed);

    const config = { ...(await device.config()), sources: [`usb:${mount}`], reports: { url: new URL('reports', server.url).href, stick: true } };
    const d = await deliverReports({ layout: device.layout, config, peers: [{ name: 'peer', url: peer.url }], timeoutMs: 5000 });
    assert.is(d.reports, 2);
    assert.equal([d.endpoint?.delivered, d.endpoint?.failed], [2, 0], JSON.stringify(d.endpoint));
    assert.equal(d.sticks.map((s) => [s.mount, s.written]), [[mount, 2]]);
    assert.equal([d.peers?.delivered, d.peers?.failed], [2, 0], JSON.stringify(d.peers));
    const ids = [own.deviceId, third.id].sort();
    for (const [where, dir] of [['endpoint', endpointDir], ['stick', join(mount, 'reports')], ['peer', peerDevice.layout.reportsInbox]] as const) {
      const kept = await readInbox(dir);
      assert.equal(kept.map((k) => k.deviceId), ids, where);
      assert.ok(kept.find((k) => k.deviceId === third.id)!.bytes.equals(relayed), `${where}: the relayed report as signed`);
    }
    // Again: everything is already there; nothing fails.
    const again = await deliverReports({ layout: device.layout, config, peers: [{ name: 'peer', url: peer.url }], timeoutMs: 5000 });
    assert.equal([again.endpoint?.failed, again.sticks[0]?.unchanged, again.peers?.failed], [0, 2, 0]);

    // The three routes gathered into one folder and read by `ferry fleet` (the built CLI): both
    // devices, each once, the copies from the other routes "already seen", nothing refused.
    const gathered = join(scratch.path, 'gathered');
    for (const [where, dir] of [['endpoint', endpointDir], ['stick', join(mount, 'reports')], ['peer', peerDevice.layout.reportsInbox]] as const) {
      await mkdir(join(gathered, where), { recursive: true });
      for (const name of await readdir(dir)) await copyFile(join(dir, name), join(gathered, where, name));
    }
    const fleet = ok(ferry('fleet', gathered, '--app', own.app, '--json'), 'ferry fleet');
    const summary = json<{ devices: number; reports: { files: number; accepted: number; alreadySeen: number; refused: number }; versions: { version: string; devices: number }[] }>(fleet);
    assert.is(summary.devices, 2);
    assert.equal(summary.reports, { files: 6, accepted: 2, alreadySeen: 4, refused: 0 });
    assert.equal(summary.versions.map((v) => [v.version, v.devices]), [['1.0.0', 2]]);
  } finally {
    await server.close();
    await peer.close();
    await cleanupAll(device, peerDevice);
  }
});

stick('the agent loop carries its report onto the stick after each round, an up-to-date round included', async () => {
  const mount = join(scratch.path, 'agent-stick');
  await mkdir(mount);
  await copyFile(bundle, join(mount, 'update.ferry'));
  const device = await makeDevice({ trust: await repo.trust(), sources: [`usb:${mount}`] });
  const events: { event: string; fields: Record<string, unknown> }[] = [];
  const agent = new Agent({ home: device.home, log: (event, fields) => events.push({ event, fields }) });
  const stop = new AbortController();
  const running = agent.run(stop.signal);
  try {
    const deadline = Date.now() + 20_000;
    while (!events.some((e) => e.event === 'reports') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.ok(events.some((e) => e.event === 'committed'), events.map((e) => e.event).join(', '));
    const carried = events.find((e) => e.event === 'reports');
    assert.ok(carried, `a reports event within 20 s: ${events.map((e) => e.event).join(', ')}`);
    const kept = await readInbox(join(mount, 'reports'));
    assert.is(kept.length, 1);
    assert.is(parseReport(kept[0]!.bytes).report.currentVersion, '1.0.0');
    // A round that finds nothing to do still writes a fresh report, and it reaches the stick.
    agent.wake('test');
    const before = parseReport(kept[0]!.bytes).report.sequence;
    const until = Date.now() + 20_000;
    let latest = before;
    while (latest === before && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 50));
      const now = await readInbox(join(mount, 'reports'));
      latest = now.length === 1 ? parseReport(now[0]!.bytes).report.sequence : before;
    }
    assert.ok(latest > before, `a newer report on the stick after the up-to-date round (${latest} > ${before})`);
    assert.ok(events.some((e) => e.event === 'up-to-date'));
  } finally {
    stop.abort('test');
    await running;
    await device.cleanup();
  }
});

stick.run();
