// issue 14 item 5: the file list leaves the signed manifest. A release publishes each target's
// list as releases/<v>/files-<target>.json, pinned (size, sha256) by the manifest; a device on the
// delta's base rebuilds the list from its own kept list and the pack delta's edit and reads no list,
// a device without a base reads it; a list that does not match its pin is refused and the device
// stays; a lying edit only costs a read of the real list. Old inline manifests still install, and
// the list travels wherever the manifest does (kept for LAN peers, bundles, `ferry verify`,
// re-signing). One small signed repository, copied per tampering test; real devices, real files.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { cp, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createDirSource } from '../../core/ports/dir-source.ts';
import type { Source } from '../../core/ports/source.ts';
import { Updater } from '../../core/update/updater.ts';
import { createBsdiffPatcher } from '../../plugins/bsdiff/patcher.ts';
import { fileListPayload } from '../../core/trust/file-list.ts';
import { fileListPath, manifestPath, parseSignedManifest, type ManifestDoc, type TreeEntry } from '../../core/trust/metadata.ts';
import { assertCode } from '../helpers/assert-code.ts';
import { sha256 } from '../../core/io/hash.ts';
import { writeBundle, createBundleSource } from '../../core/publish/bundle.ts';
import { verifyRepository } from '../../core/trust/verify-repo.ts';
import { resignReleaseMetadata } from '../../core/publish/resign.ts';
import { verifyTrustedRoot } from '../../core/trust/root.ts';
import { keptMetadataFile } from '../../core/update/kept-metadata.ts';
import { startPeerServer } from '../../plugins/lan/peer-server.ts';
import { makeDevice, assertTree, type TestDevice } from '../helpers/device.ts';
import { makeRepo, sampleApp, tempDir, type TempDir, type TestRepo, type TreeSpec } from '../helpers/repo.ts';
import { readPayload, resignManifest, wirePayload } from '../helpers/tamper.ts';

const T = 'linux-x64';
const OLD = '1.0.0';
const NEW = '1.1.0';
const LIST = fileListPath(NEW, T);

/** 1.1.0: one file changed, one new, one gone, one mode-only change (server.js 0755 -> 0700). */
function newTree(): TreeSpec {
  const tree = sampleApp(OLD);
  tree['lib/util.js'] = 'export const answer = 42;\n'.repeat(50);
  tree['lib/new.js'] = 'export const fresh = true;\n';
  delete tree['assets/logo.txt'];
  tree['server.js'] = { content: (tree['server.js'] as { content: string }).content, mode: 0o700 };
  return tree;
}

/** A Source over a repository folder that records every path read or fetched. */
function countingSource(dir: string): Source & { asked: string[] } {
  const inner = createDirSource(dir);
  const asked: string[] = [];
  return {
    name: inner.name,
    offline: true,
    asked,
    read: (path, max) => { asked.push(path); return inner.read(path, max); },
    fetch: (path, dest, max, offset) => { asked.push(path); return inner.fetch(path, dest, max, offset); },
  };
}

/** A device home trusting `repo`, updated through `source`; apply() and where it ended. */
async function applyVia(device: TestDevice, source: Source, log: string[] = []) {
  const u = await Updater.open({ home: device.home, sources: [source], patcher: createBsdiffPatcher(), health: null, log: (m) => log.push(m) });
  try {
    const result = await u.apply();
    return { result, current: await u.currentVersion() };
  } finally {
    await u.close();
  }
}

const rawPayload = async (repoDir: string, version: string) =>
  wirePayload<{
    targets: Record<string, { files?: TreeEntry[]; fileList?: { path: string; size: number; sha256: string }; deltaPacks?: { from: string; listEdit?: { removed: string[]; entries: TreeEntry[] } }[] }>;
  }>(join(repoDir, manifestPath(version)));

let tmp: TempDir;
let repo: TestRepo;
let newFiles: TreeEntry[];
const devices: TestDevice[] = [];

/** A device that trusts `repo` (optionally already on 1.0.0, installed from the repository itself). */
async function device(onOld: boolean): Promise<TestDevice> {
  const d = await makeDevice({ trust: await repo.trust(), sources: [repo.repo] });
  devices.push(d);
  if (onOld) {
    // 1.0.0 only: a copy of the repository as it was before 1.1.0.
    const r = await applyVia(d, createDirSource(join(tmp.path, 'repo-1.0.0')));
    assert.is(r.current, OLD, JSON.stringify(r.result));
  }
  return d;
}

/** A copy of the repository to tamper with. */
async function mirror(name: string): Promise<string> {
  const dir = join(tmp.path, `mirror-${name}`);
  await cp(repo.repo, dir, { recursive: true });
  return dir;
}

const list = suite('issue 14 item 5: the file list is a separate document pinned by the signed manifest');

list.before(async () => {
  tmp = await tempDir('ferry-file-list-');
  repo = await makeRepo({ dir: tmp.path });
  await repo.release(OLD, sampleApp(OLD));
  await cp(repo.repo, join(tmp.path, 'repo-1.0.0'), { recursive: true });
  newFiles = (await repo.release(NEW, newTree())).manifest.targets[T]!.files;
});

list.after(async () => {
  for (const d of devices) await d.cleanup();
  await tmp?.cleanup();
});

list('issue 14 item 5: a release publishes its list beside the manifest, pinned, and the pack delta carries the edit from its base\'s list', async () => {
  const payload = await rawPayload(repo.repo, NEW);
  const t = payload.targets[T]!;
  assert.is(t.files, undefined, 'no inline list');
  const bytes = await readFile(join(repo.repo, LIST));
  assert.equal(t.fileList, { path: LIST, size: bytes.length, sha256: sha256(bytes) });
  assert.ok(bytes.equals(fileListPayload(newFiles)), 'the list document is the canonical form of the signed list');
  const edit = t.deltaPacks!.find((d) => d.from === OLD)!.listEdit!;
  assert.equal(edit.removed, ['assets/logo.txt']);
  assert.equal(edit.entries.map((e) => e.path).sort(), ['lib/new.js', 'lib/util.js', 'server.js']);
});

list('issue 14 item 5: a delta device on the base rebuilds the list and never reads it; it keeps it for its peers', async () => {
  const d = await device(true);
  const source = countingSource(repo.repo);
  const r = await applyVia(d, source);
  assert.is(r.current, NEW, JSON.stringify(r.result));
  assert.is(r.result.status === 'committed' && r.result.record.kind, 'delta');
  assert.not.ok(source.asked.includes(LIST), `the list was read: ${source.asked.join(', ')}`);
  await assertTree(join(d.home, 'current'), newFiles);
  // Kept beside the manifest, byte for byte the published list, and what a LAN peer serves for it.
  const kept = keptMetadataFile(d.layout, LIST)!;
  assert.ok((await readFile(kept)).equals(await readFile(join(repo.repo, LIST))));
  const peer = await startPeerServer({ cacheDir: d.layout.cache, metadataHome: d.home, host: '127.0.0.1' });
  try {
    const res = await fetch(`${peer.url}/ferry/v1/metadata/${LIST}`);
    assert.is(res.status, 200);
    assert.ok(Buffer.from(await res.arrayBuffer()).equals(await readFile(join(repo.repo, LIST))), 'the peer serves the list');
  } finally {
    await peer.close();
  }
});

list('issue 14 item 5: a device with no base installs by the full artifact and reads the list once', async () => {
  const d = await device(false);
  const source = countingSource(repo.repo);
  const r = await applyVia(d, source);
  assert.is(r.current, NEW, JSON.stringify(r.result));
  assert.is(source.asked.filter((p) => p === LIST).length, 1, source.asked.join(', '));
  await assertTree(join(d.home, 'current'), newFiles);
});

list('issue 14 item 5: a tampered list is refused (ERR_HASH_MISMATCH) by a device that must read it, which stays; `ferry verify` says so', async () => {
  const dir = await mirror('tampered');
  const bytes = await readFile(join(dir, LIST));
  await writeFile(join(dir, LIST), Buffer.from(bytes.toString().replace('"mode":420', '"mode":384')));
  const d = await device(false);
  await applyVia(d, createDirSource(dir)).then(() => assert.unreachable('installed from a tampered list'), (err) => assert.is(err.code, 'ERR_HASH_MISMATCH', err.message));
  assert.is(await d.current(), null, 'nothing was installed');
  const report = await verifyRepository(createDirSource(dir), await repo.trust(), { now: new Date(), scratch: tmp.path, partial: false });
  assert.ok(report.problems.some((p) => p.code === 'ERR_HASH_MISMATCH' && p.message.includes(LIST)), JSON.stringify(report.problems));
  // A longer list: ERR_SIZE (the pin's size bounds the read).
  await writeFile(join(dir, LIST), Buffer.concat([bytes, Buffer.from(' ')]));
  await applyVia(d, createDirSource(dir)).then(() => assert.unreachable('installed from a longer list'), (err) => assert.is(err.code, 'ERR_SIZE', err.message));
  assert.is(await d.current(), null);
});

list('issue 14 item 5: a lying edit only makes a list that does not hash: the device reads the real list and installs', async () => {
  const dir = await mirror('lying-edit');
  await resignManifest(dir, NEW, [repo.releaseKey], (doc) => {
    const edit = (doc.targets[T] as unknown as { deltaPacks: { listEdit: { entries: TreeEntry[] } }[] }).deltaPacks[0]!.listEdit;
    edit.entries = edit.entries.map((e) => (e.path === 'server.js' ? { ...e, mode: 0o777 } : e));
  }, { wire: true });
  const d = await device(true);
  const source = countingSource(dir);
  const log: string[] = [];
  const r = await applyVia(d, source, log);
  assert.is(r.current, NEW, JSON.stringify(r.result));
  assert.is(source.asked.filter((p) => p === LIST).length, 1, 'the real list was read');
  assert.ok(log.some((m) => m.includes('does not match its signed pin')), log.join('\n'));
  await assertTree(join(d.home, 'current'), newFiles);
});

list('issue 14 item 5: a pin the list does not match (signed wrongly) is ERR_HASH_MISMATCH even for a device on the base; it stays on 1.0.0', async () => {
  const dir = await mirror('wrong-pin');
  await resignManifest(dir, NEW, [repo.releaseKey], (doc) => {
    const t = doc.targets[T] as unknown as { fileList: { sha256: string } };
    t.fileList.sha256 = sha256('another list');
  }, { wire: true });
  const d = await device(true);
  await applyVia(d, createDirSource(dir)).then(() => assert.unreachable('installed under a wrong pin'), (err) => assert.is(err.code, 'ERR_HASH_MISMATCH', err.message));
  assert.is(await d.current(), OLD, 'the device stays on its version');
});

list('issue 14 item 5: a bundle carries the list; a device installs from it; re-signing keeps the pin valid', async () => {
  const out = join(tmp.path, 'full.ferry');
  const b = await writeBundle({ repo: repo.repo, version: NEW, platform: 'linux', arch: 'x64', out });
  assert.ok(b.files.includes(LIST), b.files.join(', '));
  const d = await device(false);
  const r = await applyVia(d, createBundleSource(out, join(d.layout.staging, 'bundle')));
  assert.is(r.current, NEW, JSON.stringify(r.result));
  await assertTree(join(d.home, 'current'), newFiles);
  // Re-signed with the same key (as `ferry repo rotate` does with new ones): the list is unchanged, and verifies.
  const dir = await mirror('resigned');
  const listBefore = await readFile(join(dir, LIST));
  await resignReleaseMetadata(dir, verifyTrustedRoot(await repo.trust()), [repo.releaseKey], new Date(), 86400);
  assert.ok((await readFile(join(dir, LIST))).equals(listBefore));
  const report = await verifyRepository(createDirSource(dir), await repo.trust(), { now: new Date(), scratch: tmp.path, partial: false });
  assert.equal(report.problems, []);
});

list('issue 14 item 5: an inline (old) base: a device on it rebuilds the next release\'s separate list from its inline list; --inline-file-list keeps today\'s shape', async () => {
  const dir = join(tmp.path, 'mixed');
  const mixed = await makeRepo({ dir });
  const oldDoc: ManifestDoc = (await mixed.release(OLD, sampleApp(OLD), { inlineFileList: true })).manifest;
  const payload = await rawPayload(mixed.repo, OLD);
  assert.equal(payload.targets[T]!.files, oldDoc.targets[T]!.files, 'inline: files in the manifest');
  assert.is(payload.targets[T]!.fileList, undefined);
  const d = await makeDevice({ trust: await mixed.trust(), sources: [mixed.repo] });
  devices.push(d);
  assert.is((await applyVia(d, createDirSource(mixed.repo))).current, OLD);
  await mixed.release(NEW, newTree());
  const source = countingSource(mixed.repo);
  const r = await applyVia(d, source);
  assert.is(r.current, NEW, JSON.stringify(r.result));
  assert.not.ok(source.asked.includes(LIST), source.asked.join(', '));
  // The inlined view of the new manifest is the list the device installed.
  assert.ok((await readFile(join(mixed.repo, LIST))).equals(fileListPayload((await readPayload<ManifestDoc>(join(mixed.repo, manifestPath(NEW)))).targets[T]!.files)));
});

list('issue 14 item 5: a manifest naming its list elsewhere, carrying both forms, or a list edit on an inline target is ERR_SCHEMA', async () => {
  const good = await rawPayload(repo.repo, NEW);
  const parse = (mutate: (t: Record<string, unknown>) => void) => {
    const doc = JSON.parse(JSON.stringify(good)) as { targets: Record<string, Record<string, unknown>> };
    mutate(doc.targets[T]!);
    return () => parseSignedManifest(Buffer.from(JSON.stringify(doc)));
  };
  assert.is(parseSignedManifest(Buffer.from(JSON.stringify(good))).targets[T]!.kind, 'list');
  assertCode(parse((t) => { (t.fileList as { path: string }).path = 'releases/1.1.0/manifest.json'; }), 'ERR_SCHEMA');
  assertCode(parse((t) => { (t.fileList as { path: string }).path = fileListPath(OLD, T); }), 'ERR_SCHEMA');
  assertCode(parse((t) => { t.files = newFiles; }), 'ERR_SCHEMA');
  assertCode(parse((t) => { t.files = newFiles; delete t.fileList; }), 'ERR_SCHEMA');
});

list.run();
