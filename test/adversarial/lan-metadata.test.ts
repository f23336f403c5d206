// Issue 13 item 6: an air-gapped LAN updates from one device that received a USB stick. LAN peers
// serve the signed metadata they verified and kept (root chain, channel pointers, installed
// manifests: core/update/kept-metadata.ts) besides their artifact cache, and a device whose only
// source is `lan:<peer>` verifies all of it as from any source. A peer that serves a tampered
// pointer, manifest or root is refused and the device stays as it was (SECURITY.md row 8).
// The repository rotates its root (with new release keys) before its first release, so a device
// pinned to root 1 can only verify the pointer after walking the chain the peer kept.
// Loopback only: A runs the real `ferry share` (dist/, rebuild first), liars are in-process peer
// servers over copies of A's kept files, and every device is a real home with real LevelDB.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { cp, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeRepo, sampleApp, tempDir, type TempDir, type TestRepo } from '../helpers/repo.ts';
import { assertTree } from '../helpers/device.ts';
import { flipByte, readPayload, resignChannel } from '../helpers/tamper.ts';
import { ROOT } from '../helpers/cli.ts';
import { assertRefused } from '../../plugins/testing/assert-refused.ts';
import { initDevice } from '../../core/device/init.ts';
import { writeBundle } from '../../core/publish/bundle.ts';
import { rotateRoot } from '../../core/publish/repository.ts';
import { generateKeyPair } from '../../core/trust/ed25519.ts';
import { keyIdOf, type SigningKey } from '../../core/trust/keys.ts';
import type { ManifestDoc } from '../../core/trust/metadata.ts';
import { Updater } from '../../core/update/updater.ts';
import type { ErrorCode } from '../../core/errors.ts';
import { withDevice } from '../../plugins/open-device.ts';
import { createBsdiffPatcher } from '../../plugins/bsdiff/patcher.ts';
import { startPeerServer, type PeerServer } from '../../plugins/lan/peer-server.ts';
import { createLanDiscovery } from '../../plugins/lan/discovery.ts';
import { createLanSource } from '../../plugins/lan/source.ts';

const FERRY = join(ROOT, 'dist', 'cli', 'ferry.js');
const TARGET = 'linux-x64';

function newKey(): SigningKey {
  const { publicKey, secretKey } = generateKeyPair();
  return { keyid: keyIdOf(publicKey), publicKey, secretKey };
}

interface World {
  tmp: TempDir;
  repo: TestRepo;
  /** root 1: what every device is initialised with. */
  trust1: Buffer;
  release2: SigningKey;
  stick: string;
  v1: ManifestDoc;
  homeA: string;
  homeB: string;
  share: ChildProcess | null;
  /** A's `ferry share` as a static peer spec. */
  spec: string;
  peers: PeerServer[];
}

let world: World | undefined;

async function init(home: string, sources: string[], trust: Buffer): Promise<void> {
  await initDevice({ home, trustBytes: trust, sources, platform: 'linux', arch: 'x64' });
}

/** A device home updated once through sources given here (not its ferry.json): LAN peers only. */
async function applyFromPeers(home: string, peers: string[]) {
  const lan = createLanSource({ discovery: createLanDiscovery({ app: 'sample-app', static: peers }), timeoutMs: 3000 });
  const u = await Updater.open({ home, sources: [lan], patcher: createBsdiffPatcher(), health: null });
  try {
    return { result: await u.apply(), version: await u.currentVersion(), last: (await u.history()).at(-1) };
  } finally {
    await u.close();
    lan.close();
  }
}

/** Starts `ferry share` on a free loopback port and returns it with its URL once it serves. */
async function startShare(home: string): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, [FERRY, 'share', '--home', home, '--host', '127.0.0.1', '--port', '0', '--no-announce', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stderr!.on('data', (d) => { stderr += d; });
  try {
    // It prints one JSON document (over several lines) once it serves.
    const printed = await new Promise<{ url: string }>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`ferry share printed no JSON in 10 s: ${stdout} ${stderr}`)), 10_000);
      child.stdout!.on('data', (d) => {
        stdout += d;
        try {
          resolve(JSON.parse(stdout) as { url: string });
          clearTimeout(timer);
        } catch { /* not complete yet */ }
      });
      child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`ferry share exited ${code}: ${stderr}`)); });
    });
    return { child, url: printed.url };
  } catch (err) {
    await stopShare(child);
    throw err;
  }
}

async function stopShare(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const done = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  process.kill(child.pid!, 'SIGTERM');
  await done;
}

/** Changes the `created` date in a signed document's payload and keeps its old signatures. */
async function alterPayloadKeepSignatures(file: string): Promise<void> {
  const env = JSON.parse(await readFile(file, 'utf8')) as { payload: string };
  const doc = JSON.parse(Buffer.from(env.payload, 'base64').toString('utf8')) as { created: string };
  doc.created = new Date(Date.parse(doc.created) + 1000).toISOString();
  env.payload = Buffer.from(JSON.stringify(doc)).toString('base64');
  await writeFile(file, JSON.stringify(env));
}

const test = suite('issue 13 item 6: an air-gapped LAN updates from one device that received a USB stick');

test.before(async () => {
  const tmp = await tempDir('ferry-lan-meta-');
  const repo = await makeRepo({ dir: join(tmp.path, 'publisher') });
  const trust1 = await repo.trust();
  // Root 2 replaces the release key before any release: only a device that walked to root 2
  // can verify what is published next.
  const release2 = newKey();
  await rotateRoot({ repo: repo.repo, signers: [repo.rootKey], releaseKeys: [release2], revoke: [repo.releaseKey.keyid], now: new Date() });
  const v1 = (await repo.release('1.0.0', sampleApp('1.0.0'), { keys: [release2] })).manifest;
  const stick = join(tmp.path, 'stick', 'sample-app.ferry');
  await writeBundle({ repo: repo.repo, version: '1.0.0', platform: 'linux', arch: 'x64', out: stick });
  world = { tmp, repo, trust1, release2, stick, v1, homeA: join(tmp.path, 'a'), homeB: join(tmp.path, 'b'), share: null, spec: '', peers: [] };
});

test.after(async () => {
  if (!world) return;
  if (world.share) await stopShare(world.share);
  for (const p of world.peers) await p.close();
  await world.tmp.cleanup();
});

test('issue 13 item 6: A updates from a USB bundle and runs `ferry share`; B with only lan:<A> walks the root chain from A, installs 1.0.0, and a later check is up to date', async () => {
  const w = world!;
  await init(w.homeA, [w.stick], w.trust1);
  const a = await withDevice(w.homeA, async (u) => ({ result: await u.apply(), version: await u.currentVersion() }));
  assert.is(a.result.status, 'committed');
  assert.is(a.version, '1.0.0');
  // What A keeps is exactly what it verified: the repository's envelopes, byte for byte.
  for (const [kept, published] of [['trust/roots/1.json', 'root/1.json'], ['trust/roots/2.json', 'root/2.json'], ['trust/channels/stable.json', 'channels/stable.json'], ['manifests/1.0.0.json', 'releases/1.0.0/manifest.json']]) {
    assert.ok((await readFile(join(w.homeA, kept!))).equals(await readFile(join(w.repo.repo, published!))), `A keeps ${kept} as published`);
  }
  const share = await startShare(w.homeA);
  w.share = share.child;
  w.spec = `lan:${share.url.replace(/^http:\/\//, '')}`;

  await init(w.homeB, [w.spec], w.trust1);
  const b = await withDevice(w.homeB, async (u) => ({ result: await u.apply(), version: await u.currentVersion(), last: (await u.history()).at(-1) }));
  assert.is(b.result.status, 'committed', `B: ${JSON.stringify(b.result)}`);
  assert.is(b.version, '1.0.0');
  assert.match(b.last?.source ?? '', /^lan/, 'B took the release from its LAN peer');
  await assertTree(join(w.homeB, 'current'), w.v1.targets[TARGET]!.files, 'B current');
  assert.ok((await readFile(join(w.homeB, 'trust', 'root.json'))).equals(await readFile(join(w.repo.repo, 'root', '2.json'))), 'B walked to root 2 through A');
  // B keeps what it verified too, so it can serve the next device in turn.
  assert.ok((await readFile(join(w.homeB, 'trust', 'channels', 'stable.json'))).equals(await readFile(join(w.repo.repo, 'channels', 'stable.json'))), 'B keeps the pointer');

  const later = await withDevice(w.homeB, (u) => u.checkUpdate());
  assert.is(later.updateAvailable, false);
  assert.is(later.currentVersion, '1.0.0');
});

test('issue 13 item 6: a peer serving a tampered pointer, manifest or root is refused and the device stays intact; beside a liar, the good peer still updates B to 1.1.0', async () => {
  const w = world!;
  assert.ok(w.share, 'the first test left A sharing');
  // A new stick: 1.1.0 (full artifact only), and A installs it; `ferry share` serves it live.
  await w.repo.release('1.1.0', sampleApp('1.1.0'), { keys: [w.release2], deltas: 0 });
  await rm(w.stick);
  await writeBundle({ repo: w.repo.repo, version: '1.1.0', platform: 'linux', arch: 'x64', out: w.stick });
  const a = await withDevice(w.homeA, async (u) => ({ result: await u.apply(), version: await u.currentVersion() }));
  assert.is(a.version, '1.1.0', `A: ${JSON.stringify(a.result)}`);
  // A's kept manifest, its separate file list inlined from beside it (readPayload).
  const v2 = await readPayload<ManifestDoc>(join(w.homeA, 'manifests', '1.1.0.json'));

  /** A peer serving copies of A's kept files and cache, with `tamper` applied to them. */
  const liar = async (name: string, tamper: (home: string) => Promise<void>): Promise<string> => {
    const home = join(w.tmp.path, `liar-${name}`);
    for (const dir of ['trust', 'manifests', 'cache']) await cp(join(w.homeA, dir), join(home, dir), { recursive: true });
    await tamper(home);
    const server = await startPeerServer({ cacheDir: join(home, 'cache'), metadataHome: home, host: '127.0.0.1' });
    w.peers.push(server);
    return server.url;
  };
  const stranger = newKey();
  const pointerLiar = await liar('pointer', async (home) => {
    await resignChannel(join(home, 'trust'), 'stable', [stranger], (d) => { d.sequence += 10; });
  });
  const manifestLiar = await liar('manifest', (home) => flipByte(join(home, 'manifests', '1.1.0.json')));
  // The forged root keeps a well-formed envelope (a flipped byte could break its base64 and be
  // refused earlier, as no root document): one payload field changed, the signatures left as they were.
  const rootLiar = await liar('root', (home) => alterPayloadKeepSignatures(join(home, 'trust', 'roots', '2.json')));

  const cases: [string, ErrorCode][] = [[pointerLiar, 'ERR_UNKNOWN_KEY'], [manifestLiar, 'ERR_HASH_MISMATCH']];
  for (const [url, code] of cases) {
    await assertRefused(() => applyFromPeers(w.homeB, [url]), code, `B from ${url}`);
    assert.is(await readlink(join(w.homeB, 'current')), join('releases', '1.0.0'), 'B is still on 1.0.0');
    await assertTree(join(w.homeB, 'current'), w.v1.targets[TARGET]!.files, 'B current after the refusal');
  }
  // A fresh device pinned to root 1 cannot be led past it by a forged root 2.
  const homeC = join(w.tmp.path, 'c');
  await init(homeC, [`lan:${rootLiar.slice(7)}`], w.trust1);
  await assertRefused(() => applyFromPeers(homeC, [rootLiar]), 'ERR_ROOT_CHAIN', 'C from the root liar');
  assert.is(await readlink(join(homeC, 'current')).catch(() => null), null, 'C installed nothing');

  // The liar first, the good peer second: the liar hides nothing.
  const b = await applyFromPeers(w.homeB, [pointerLiar, w.spec.slice(4)]);
  assert.is(b.result.status, 'committed', `B: ${JSON.stringify(b.result)}`);
  assert.is(b.version, '1.1.0');
  await assertTree(join(w.homeB, 'current'), v2.targets[TARGET]!.files, 'B current on 1.1.0');
  const later = await withDevice(w.homeB, (u) => u.checkUpdate());
  assert.is(later.updateAvailable, false);
  assert.is(later.currentVersion, '1.1.0');
});

test.run();
