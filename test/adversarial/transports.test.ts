// SECURITY.md rows 6-8 through the device: a real home on 1.0.0 runs the real `ferry update` (a
// child process) against hostile network endpoints on 127.0.0.1 (test/helpers/adversarial-origin.ts).
//   row 6  an origin that streams an endless channel pointer, manifest or artifact, or claims one
//          byte more than signed: ERR_TOO_LARGE at the cap, exit 3, 1.0.0 complete, a refused
//          record, and no partial download left in cache/
//   row 7  an origin that trickles the artifact at 1 byte/s, then a good origin: abandoned, the
//          update installs from the good one
//   row 8  LAN peers that lie and that hang, then a good origin: both dropped, installed from the
//          origin, and the history record names it

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { assertCompleteVersion, assertRefusedByCli } from '../helpers/refusal.ts';
import { describeRun, ferry, history, smallApp, TARGET } from '../helpers/crash.ts';
import { makeAdversarialFixture, makeScene, namesIn, NEW, OLD, type AdversarialFixture, type Scene } from '../helpers/adversarial-device.ts';
import { startAdversarialOrigin, startBadPeer, type AdversarialOrigin, type BadPeer } from '../helpers/adversarial-origin.ts';
import { pseudoRandomBytes } from '../helpers/repo.ts';

const CHANNEL = 'channels/stable.json';
const MANIFEST = `releases/${NEW}/manifest.json`;
const ARTIFACT = `releases/${NEW}/${TARGET}.full.tar.br`;

let fx: AdversarialFixture;
const cleanups: (() => Promise<void>)[] = [];

/** A scene whose only source is an adversarial origin serving the scene's repository copy. */
async function overOrigin(): Promise<{ s: Scene; origin: AdversarialOrigin }> {
  const s = await makeScene(fx);
  const origin = await startAdversarialOrigin(s.repoDir);
  cleanups.push(() => origin.close(), () => s.cleanup());
  await s.setSources([origin.url]);
  return { s, origin };
}

const update = (s: Scene) => ['update', '--home', s.home];

/** The request the device made for `path` (the last one). */
function lastRequest(origin: AdversarialOrigin, path: string) {
  const r = origin.requests.filter((q) => q.path === path).pop();
  assert.ok(r, `the device asked for ${path} (asked: ${origin.requests.map((q) => q.path).join(', ')})`);
  return r!;
}

async function assertNoPartial(s: Scene): Promise<void> {
  const cache = await namesIn(join(s.home, 'cache'));
  assert.equal(cache.filter((n) => n.endsWith('.part')), [], `no partial download left in cache/ (${cache.join(', ')})`);
  assert.equal(await namesIn(join(s.home, 'staging')), [], 'staging/ is empty');
  assert.equal(await namesIn(join(s.home, 'releases')), [OLD], 'no 1.1.0 release folder');
}

const setup = suite('transports fixture');
setup('a repository with 1.0.0 and a 1.1.0 of about 1.6 MB (full artifacts only), a home on 1.0.0', async () => {
  // Two signed 1 MiB chunks, so LAN peers are asked for more than one.
  fx = await makeAdversarialFixture(smallApp(OLD), { ...smallApp(NEW), 'lib/big.bin': pseudoRandomBytes(1_500_000, 61) }, { deltas: 0 });
});
setup.run();

// ---------------------------------------------------------------------------------------------

const row6 = suite('row 6 endless data from an HTTP origin, through `ferry update`: cut at the cap with ERR_TOO_LARGE, no partial file left');

row6('an endless channel pointer: ERR_TOO_LARGE, exit 3, 1.0.0 complete, a refused record; the origin was cut off', async () => {
  const { s, origin } = await overOrigin();
  origin.behave = (p) => (p === CHANNEL ? { kind: 'endless' } : { kind: 'normal' });
  const { record } = await assertRefusedByCli({ home: s.home, args: update(s), code: 'ERR_TOO_LARGE', version: OLD, files: fx.files.get(OLD)! });
  assert.is(record.source, origin.url, 'the record names the origin');
  const r = lastRequest(origin, CHANNEL);
  assert.ok(r.cutByClient, `the device closed the connection (origin sent ${r.sent} bytes)`);
  await assertNoPartial(s);
});

row6('an endless manifest (pinned at its signed size): ERR_TOO_LARGE, exit 3, 1.0.0 complete, a refused record; the origin was cut off', async () => {
  const { s, origin } = await overOrigin();
  origin.behave = (p) => (p === MANIFEST ? { kind: 'endless' } : { kind: 'normal' });
  const { record } = await assertRefusedByCli({ home: s.home, args: update(s), code: 'ERR_TOO_LARGE', version: OLD, files: fx.files.get(OLD)! });
  assert.is(record.to, null, 'refused before a target was chosen');
  const r = lastRequest(origin, MANIFEST);
  assert.ok(r.cutByClient, `the device closed the connection (origin sent ${r.sent} bytes)`);
  assert.equal(await namesIn(join(s.home, 'manifests')), [`${OLD}.files-linux-x64.json`, `${OLD}.json`], 'no 1.1.0 manifest kept (nor list)');
  await assertNoPartial(s);
});

row6('an endless artifact (no Content-Length): cut at its signed length with ERR_TOO_LARGE, the partial file removed, a refused record', async () => {
  const { s, origin } = await overOrigin();
  origin.behave = (p) => (p === ARTIFACT ? { kind: 'endless' } : { kind: 'normal' });
  const { record } = await assertRefusedByCli({ home: s.home, args: update(s), code: 'ERR_TOO_LARGE', version: OLD, files: fx.files.get(OLD)! });
  assert.is(record.outcome, 'refused');
  assert.is(record.to, NEW);
  const r = lastRequest(origin, ARTIFACT);
  const size = (await stat(join(s.repoDir, ARTIFACT))).size;
  // The device took the whole signed length into cache/<sha256>.part before it was cut.
  assert.ok(r.sent > size, `the origin sent past the signed length (${r.sent} bytes) before it was cut`);
  assert.ok(r.cutByClient, 'the device closed the connection');
  await assertNoPartial(s);
});

row6('an artifact whose Content-Length is its signed length + 1: ERR_TOO_LARGE before the body, no partial file, a refused record', async () => {
  const { s, origin } = await overOrigin();
  origin.behave = (p) => (p === ARTIFACT ? { kind: 'longer', extra: 1 } : { kind: 'normal' });
  const { record } = await assertRefusedByCli({ home: s.home, args: update(s), code: 'ERR_TOO_LARGE', version: OLD, files: fx.files.get(OLD)! });
  assert.match(record.message ?? '', /over its \d+-byte cap/);
  await assertNoPartial(s);
});

row6.run();

// ---------------------------------------------------------------------------------------------

const row7 = suite('row 7 slow retrieval through `ferry update`: a trickling origin is abandoned and a good one used');

row7('an origin trickling the artifact at 1 byte/s, then a good origin: 1.1.0 installed complete, the record names the good origin', async () => {
  const { s, origin: good } = await overOrigin();
  const slow = await startAdversarialOrigin(s.repoDir, (p) => (p === ARTIFACT ? { kind: 'trickle' } : { kind: 'normal' }));
  cleanups.push(() => slow.close());
  await s.setSources([slow.url, good.url]);
  const run = await ferry(update(s));
  assert.is(run.code, 0, `ferry update: ${describeRun(run)}`);
  await assertCompleteVersion(s.home, NEW, fx.files.get(NEW)!);
  const record = (await history(s.home)).records!.find((h) => h.to === NEW);
  assert.is(record?.outcome, 'committed');
  assert.is(record?.source, good.url, 'installed from the good origin');
  const r = lastRequest(slow, ARTIFACT);
  assert.ok(r.cutByClient && r.sent < 60, `the trickling origin was abandoned after ${r.sent} bytes`);
  assert.ok(good.sentFor(ARTIFACT) > 0, 'the good origin served the artifact');
});

row7.run();

// ---------------------------------------------------------------------------------------------

const row8 = suite('row 8 malicious peers through `ferry update`: a lying peer and a hanging peer cannot block a good origin');

row8('lan:[a peer serving wrong bytes, a peer that never answers] then a good origin: both peers dropped, 1.1.0 installed from the origin', async () => {
  const { s, origin } = await overOrigin();
  const peers: BadPeer[] = [await startBadPeer('corrupt'), await startBadPeer('hang')];
  for (const p of peers) cleanups.push(() => p.close());
  await s.setSources([`lan:${peers.map((p) => p.address).join(',')}`, origin.url]);
  const run = await ferry(update(s));
  assert.is(run.code, 0, `ferry update: ${describeRun(run)}`);
  await assertCompleteVersion(s.home, NEW, fx.files.get(NEW)!);
  const record = (await history(s.home)).records!.find((h) => h.to === NEW);
  assert.is(record?.outcome, 'committed');
  assert.is(record?.source, origin.url, 'the history record names the origin as the source');
  for (const p of peers) assert.ok(p.requests > 0, `peer ${p.address} was asked first`);
  // The LAN source gave up with both peers dropped, each for its own reason, before the origin was asked.
  assert.match(run.stderr, new RegExp(`lan:${peers[0]!.address}[^;]*does not match its signed hash`), `the lying peer was caught by the chunk hash: ${run.stderr}`);
  assert.match(run.stderr, new RegExp(`lan:${peers[1]!.address}[^;]*no complete answer within`), `the hanging peer was given up on: ${run.stderr}`);
  assert.ok(origin.sentFor(ARTIFACT) > 0, 'the origin served the artifact');
  assert.equal(await namesIn(join(s.home, 'staging')), [], 'staging/ is empty');
});

row8.run();

const teardown = suite('transports teardown');
teardown('stop every server and remove every scene', async () => {
  for (const c of cleanups.reverse()) await c();
  await fx?.cleanup();
});
teardown.run();
