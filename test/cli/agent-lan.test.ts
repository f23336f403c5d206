// `ferry agent` shares its verified cache with LAN peers (README "The agent"; SECURITY.md row 8's
// malicious-mirror defences are in test/plugins/lan.test.ts): two devices on loopback, both
// through the real CLI. Device A runs `ferry agent` with a static `lan:` source, so it serves its
// cache on a fixed --share-port, and installs 1.1.0 from a repository folder. Device B lists
// `lan:127.0.0.1:<A's port>` first and an HTTP origin second, and `ferry update` takes every
// artifact byte from A: B ends on a complete 1.1.0, its history names the LAN as the source of
// the bytes, and the origin (counting what it serves) served signed metadata only. No multicast:
// static peer lists open no mDNS socket.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeRepo, pseudoRandomBytes, tempDir, type TempDir, type TestRepo } from '../helpers/repo.ts';
import { waitForEvent } from '../helpers/agent-log.ts';
import { describeRun, ferry, history, running, signedFiles, smallApp, startFerry, treeProblems, type Started } from '../helpers/crash.ts';
import { freePort } from '../helpers/net.ts';
import { startStaticServer, type StaticServer } from '../../plugins/http/server.ts';
import type { ArtifactRef, ManifestDoc } from '../../core/trust/metadata.ts';
import { wirePayload } from '../helpers/tamper.ts';

const TARGET = ['--platform', 'linux', '--arch', 'x64'];

/** Body bytes the origin served for artifacts (anything under releases/ but the manifests and their file lists, which are metadata). */
function artifactBytes(origin: StaticServer): number {
  return [...origin.stats.bytesByPath].filter(([p]) => p.startsWith('releases/') && !p.endsWith('manifest.json') && !/\/files-[^/]+\.json$/.test(p)).reduce((n, [, b]) => n + b, 0);
}

/** The signed full artifact of `version` for linux-x64, read straight from the repository. */
async function signedFullArtifact(repoDir: string, version: string): Promise<ArtifactRef> {
  const doc = await wirePayload<ManifestDoc>(join(repoDir, 'releases', version, 'manifest.json'));
  return doc.targets['linux-x64']!.full;
}

async function mustRun(args: string[], what: string): Promise<void> {
  const r = await ferry(args);
  assert.is(r.code, 0, `${what}: ${describeRun(r)}`);
}

let tmp: TempDir;
let repo: TestRepo;
const agents: Started[] = [];
const servers: StaticServer[] = [];

const lan = suite('ferry agent shares its verified cache with a LAN peer');

lan.before(async () => {
  tmp = await tempDir('ferry-agent-lan-');
  repo = await makeRepo({ dir: join(tmp.path, 'publisher') });
  await repo.release('1.0.0', smallApp('1.0.0'));
  // Big enough that the full artifact spans several signed 1 MiB chunks.
  await repo.release('1.1.0', { ...smallApp('1.1.0'), 'lib/big.bin': pseudoRandomBytes(2_500_000, 11) });
});

lan.after(async () => {
  for (const a of agents) if (running(a.child)) a.child.kill('SIGKILL');
  for (const s of servers) await s.close();
  await tmp.cleanup();
});

lan('B takes every artifact byte of 1.1.0 from agent A on lan:127.0.0.1:<share port>; the origin serves metadata only', async () => {
  const sharePortA = await freePort();
  // B runs no agent, so nothing listens on its port: A's own LAN lookup finds no peer and A falls
  // back to the folder, as a device whose neighbour is switched off does.
  const sharePortB = await freePort();
  const origin = await startStaticServer({ root: repo.repo, host: '127.0.0.1' });
  servers.push(origin);
  const homeA = join(tmp.path, 'device-a');
  const homeB = join(tmp.path, 'device-b');
  await mustRun(['init', homeA, '--trust', repo.trustPath, '--source', `lan:127.0.0.1:${sharePortB}`, '--source', repo.repo, ...TARGET], 'init A');
  await mustRun(['init', homeB, '--trust', repo.trustPath, '--source', `lan:127.0.0.1:${sharePortA}`, '--source', origin.url, ...TARGET], 'init B');

  const agent = startFerry(['agent', '--home', homeA, '--log-format', 'json', '--share-host', '127.0.0.1', '--share-port', String(sharePortA)]);
  agents.push(agent);
  try {
    const sharing = await waitForEvent(agent, (e) => e.event === 'sharing', 30_000, 'sharing line');
    assert.is(sharing.url, `http://127.0.0.1:${sharePortA}`);
    assert.is(sharing.announced, null, 'a static lan: list announces nothing over mDNS');
    const committedA = await waitForEvent(agent, (e) => e.event === 'committed', 60_000, 'A committed');
    assert.is(committedA.version, '1.1.0');

    const originBefore = artifactBytes(origin);
    assert.is(originBefore, 0, 'A did not use the origin');
    const update = await ferry(['update', '--home', homeB]);
    assert.is(update.code, 0, `B updates: ${describeRun(update)}`);
  } finally {
    agent.child.kill('SIGTERM');
    const run = await agent.done;
    assert.is(run.code, 0, `agent A exits 0 on SIGTERM: ${describeRun(run)}`);
  }

  // B is on a complete 1.1.0: every file hashes as signed.
  const files = await signedFiles(repo.repo, '1.1.0');
  assert.equal(await treeProblems(join(homeB, 'current'), files), []);
  // B's history: the bytes came from the LAN, and all of the full artifact moved.
  const h = await history(homeB);
  assert.ok(h.records, `history B: ${describeRun(h.run)}`);
  const record = h.records!.find((r) => r.to === '1.1.0' && r.outcome === 'committed');
  assert.ok(record, `a committed 1.1.0 record: ${JSON.stringify(h.records)}`);
  const full = await signedFullArtifact(repo.repo, '1.1.0');
  assert.ok(full.chunks.length >= 3, `the artifact spans ${full.chunks.length} chunks`);
  assert.is(record!.kind, 'full');
  assert.is(record!.source, 'lan', `bytes from the LAN peer: ${JSON.stringify(record)}`);
  assert.is(record!.bytesMoved, full.size);
  // The origin answered the metadata and served no artifact byte.
  const byPath = Object.fromEntries(origin.stats.bytesByPath);
  assert.ok((byPath['channels/stable.json'] ?? 0) > 0, `the origin served the channel pointer (served: ${JSON.stringify(byPath)})`);
  assert.ok((byPath['releases/1.1.0/manifest.json'] ?? 0) > 0, 'the origin served the manifest');
  assert.is(artifactBytes(origin), 0, `the origin served no artifact bytes (served: ${JSON.stringify(byPath)})`);
});

lan.run();
