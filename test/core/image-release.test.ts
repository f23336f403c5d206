// Container image releases end to end in process (issue 15 items 1 and 3): real OCI layouts built
// with umoci (test/helpers/oci-image.ts), normalised by importImage, published by publishRelease,
// installed by a real device home. 1.0 → 1.1 changes one layer: the device downloads a delta much
// smaller than the image and holds exactly the signed blobs. Then hostile releases, each signed
// and published (the library path that skips the publish-time scan: publishRelease with
// `container` takes a layout as it is), refused while staging with `current` untouched: a blob
// that does not hash to its name, a layer with ../ traversal, a layer with a character device, an
// image asking for privileges ferry.json does not grant (accepted once it does).

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { importImage } from '../../core/image/import-image.ts';
import { publishRelease } from '../../core/publish/publish.ts';
import type { ContainerRef, ManifestDoc } from '../../core/trust/metadata.ts';
import { createBsdiffPatcher } from '../../plugins/bsdiff/patcher.ts';
import { containerToolsMissing, imageFamily, type ImageFamily } from '../helpers/oci-image.ts';
import { handLayout } from '../helpers/hand-image.ts';
import { tarBytes } from '../helpers/tar-writer.ts';
import { makeRepo, pseudoRandomBytes, tempDir, type TempDir, type TestRepo } from '../helpers/repo.ts';
import { makeDevice, type TestDevice } from '../helpers/device.ts';
import { assertCodeAsync } from '../helpers/assert-code.ts';

const TARGET = 'linux-x64';
const missing = (await containerToolsMissing()).filter((m) => m === 'umoci' || m === 'gcc' || m === 'busybox-static');
const test = suite('image release');

let tmp: TempDir;
let family: ImageFamily;
let repo: TestRepo;
let device: TestDevice;
/** The app layer's payload, the same in every version: what a one-layer change leaves alone. */
const APP_DATA = pseudoRandomBytes(96 * 1024, 15);

async function publish(version: string, layoutDir: string, container: ContainerRef): Promise<ManifestDoc> {
  const r = await publishRelease({
    repo: repo.repo, appDir: layoutDir, version, channel: 'stable', keys: [repo.releaseKey], platform: 'linux', arch: 'x64',
    mandatory: false, securityFix: false, deltas: 1, expiresIn: 30 * 86400, now: new Date(), patcher: createBsdiffPatcher(), compressionLevel: 1, container,
  });
  return r.manifest;
}

/** `ferry release --image` as the library runs it: import (normalise + scan), then publish. */
async function publishImage(version: string, from: string): Promise<{ manifest: ManifestDoc; container: ContainerRef; dir: string }> {
  const dir = join(tmp.path, `norm-${version}`);
  const img = await importImage({ from, outDir: dir, workDir: join(tmp.path, `w-${version}`), defaultRef: version });
  const container = { ref: img.ref, manifestDigest: img.manifestDigest, configDigest: img.configDigest };
  return { manifest: await publish(version, dir, container), container, dir };
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Every blob of an installed release, hashed here (not by the code under test). */
async function blobHashes(releaseDir: string): Promise<Map<string, string>> {
  const dir = join(releaseDir, 'blobs', 'sha256');
  const out = new Map<string, string>();
  for (const name of await readdir(dir)) out.set(name, sha(await readFile(join(dir, name))));
  return out;
}

async function apply() {
  return device.with((u) => u.apply());
}

async function lastRecord() {
  return device.with(async (u) => (await u.history()).at(-1)!);
}

if (missing.length > 0) {
  console.log(`SKIP: image release tests (${missing.join(', ')})`);
} else {
  test.before(async () => {
    tmp = await tempDir('ferry-image-release-');
    family = await imageFamily(join(tmp.path, 'family'));
    repo = await makeRepo({ app: 'demo' });
    device = await makeDevice({ trust: await repo.trust(), sources: [repo.repo] });
  });
  test.after(async () => {
    await device?.cleanup();
    await repo?.cleanup();
    await tmp?.cleanup();
  });

  test('issue 15 item 1: 1.0 → 1.1 with one layer changed travels as a delta much smaller than the image; the device holds exactly the signed blobs', async () => {
    const v10 = await family.build({ version: '1.0.0', app: { '/app/data.bin': APP_DATA } }, join(tmp.path, 'img-1.0.0'));
    const v11 = await family.build({ version: '1.1.0', app: { '/app/data.bin': APP_DATA } }, join(tmp.path, 'img-1.1.0'));
    const first = await publishImage('1.0.0', v10);
    const r10 = await apply();
    assert.is(r10.status, 'committed');
    const second = await publishImage('1.1.0', v11);
    const r11 = await apply();
    assert.is(r11.status, 'committed');
    assert.is(await device.current(), '1.1.0');

    // What moved: the delta artifact, not the image.
    const t11 = second.manifest.targets[TARGET]!;
    const delta = t11.deltas.find((d) => d.from === '1.0.0');
    assert.ok(delta, 'a delta from 1.0.0 is published');
    const record = await lastRecord();
    assert.is(record.kind, 'delta');
    assert.is(record.bytesMoved, delta!.artifact.size, 'the device downloaded exactly the delta artifact');
    const imageBytes = t11.files.reduce((n, f) => n + ('size' in f ? f.size : 0), 0);
    // The gzip blob of the app layer that changed, as umoci made it (the thing a registry would move).
    const gzManifest = JSON.parse(await readFile(join(v11, 'blobs/sha256', JSON.parse(await readFile(join(v11, 'index.json'), 'utf8')).manifests[0].digest.slice(7)), 'utf8'));
    const changedGzip = gzManifest.layers.at(-1).size as number;
    console.log(`  1.0→1.1: delta ${delta!.artifact.size} B, full artifact ${t11.full.size} B, image (uncompressed) ${imageBytes} B, changed gzip layer ${changedGzip} B`);
    assert.ok(delta!.artifact.size * 20 < t11.full.size, `delta ${delta!.artifact.size} B is under 5% of the full artifact ${t11.full.size} B`);
    assert.ok(delta!.artifact.size * 5 < changedGzip, `delta ${delta!.artifact.size} B is well under the changed gzip layer ${changedGzip} B`);
    // The changed layer was patched from the old layer at the same position (another path).
    const crossPath = delta!.ops.filter((op) => op.op === 'patch' && op.from !== op.path);
    assert.ok(crossPath.length >= 1, 'a patch op names a base at another path');
    const oldLayers = new Set(first.manifest.targets[TARGET]!.files.map((f) => f.path));
    for (const op of crossPath) if (op.op === 'patch') assert.ok(oldLayers.has(op.from), `${op.from} is a blob of 1.0.0`);

    // Exactly the signed blobs, each named by its sha256.
    const blobs = await blobHashes(device.layout.release('1.1.0'));
    const signed = t11.files.filter((f) => f.path.startsWith('blobs/sha256/')).map((f) => f.path.slice('blobs/sha256/'.length)).sort();
    assert.equal([...blobs.keys()].sort(), signed);
    for (const [name, hash] of blobs) assert.is(hash, name, `blob ${name} hashes to its name`);
    assert.ok(blobs.has(second.container.manifestDigest.slice(7)) && blobs.has(second.container.configDigest.slice(7)));
    const index = JSON.parse(await readFile(join(device.layout.release('1.1.0'), 'index.json'), 'utf8'));
    assert.is(index.manifests[0].digest, second.container.manifestDigest);
  });

  test('issue 15 item 3: a blob that does not hash to its name is refused while staging (ERR_HASH_MISMATCH), current unchanged', async () => {
    const src = await family.build({ version: '1.2.0', app: { '/app/data.bin': APP_DATA } }, join(tmp.path, 'img-1.2.0'));
    const dir = join(tmp.path, 'norm-1.2.0');
    const img = await importImage({ from: src, outDir: dir, workDir: join(tmp.path, 'w-1.2.0'), defaultRef: '1.2.0' });
    // Same size, other bytes: the app layer's /app/version text "1.2.0" becomes "6.6.6". The tree
    // is signed with these bytes, so only the image check can tell.
    const layer = join(dir, 'blobs/sha256', img.layers.at(-1)!.digest.slice(7));
    const bytes = await readFile(layer);
    const at = bytes.indexOf('1.2.0\n');
    assert.ok(at > 0);
    bytes.write('6.6.6\n', at);
    await writeFile(layer, bytes);
    await publish('1.2.0', dir, { ref: img.ref, manifestDigest: img.manifestDigest, configDigest: img.configDigest });
    const err = await assertCodeAsync(apply, 'ERR_HASH_MISMATCH');
    assert.match(err.message, /does not hash to its name/);
    assert.is(await device.current(), '1.1.0');
    assert.not.ok((await device.releases()).includes('1.2.0'), 'nothing staged into releases/');
    const record = await lastRecord();
    assert.is(record.to, '1.2.0');
    assert.is(record.errorCode, 'ERR_HASH_MISMATCH');
  });

  test('issue 15 item 3: a blob altered in the repository is refused (ERR_HASH_MISMATCH), current unchanged', async () => {
    const src = await family.build({ version: '1.3.0', app: { '/app/data.bin': APP_DATA } }, join(tmp.path, 'img-1.3.0'));
    const { manifest } = await publishImage('1.3.0', src);
    const t = manifest.targets[TARGET]!;
    const kept = new Map<string, Buffer>();
    for (const a of [t.full, ...t.deltas.map((d) => d.artifact)]) {
      const p = join(repo.repo, a.path);
      const b = await readFile(p);
      kept.set(p, Buffer.from(b));
      const mid = Math.floor(b.length / 2);
      b[mid] = b[mid]! ^ 0xff;
      await writeFile(p, b);
    }
    await assertCodeAsync(apply, 'ERR_HASH_MISMATCH');
    assert.is(await device.current(), '1.1.0');
    assert.not.ok((await device.releases()).includes('1.3.0'));
    // Put back: later releases of this file make their deltas from 1.3.0's full artifact.
    for (const [p, b] of kept) await writeFile(p, b);
  });

  for (const [version, what, layer, why] of [
    ['1.4.0', '../ traversal', tarBytes([{ name: 'app/', type: 'dir' }, { name: 'app/../../etc/cron.d/x', content: '* * * * * root sh\n' }]), /climbs above the layer root/],
    ['1.5.0', 'a character device', tarBytes([{ name: 'dev/', type: 'dir' }, { name: 'dev/mem', type: 'char', devmajor: 1, devminor: 1 }]), /character device/],
    ['1.6.0', 'a hard link out of the layer', tarBytes([{ name: 'etc/', type: 'dir' }, { name: 'etc/shadow-copy', type: 'hardlink', linkname: '../../etc/shadow' }]), /hard link/],
  ] as const) {
    test(`issue 15 item 3: a signed layer with ${what} is refused while staging (ERR_UNSAFE_ARCHIVE), current unchanged`, async () => {
      const dir = join(tmp.path, `hand-${version}`);
      const img = await handLayout(dir, { ref: version, layers: [layer] });
      // importImage (what `ferry release --image` runs) refuses it at the publisher already.
      await assertCodeAsync(() => importImage({ from: dir, outDir: join(tmp.path, `norm-${version}`), workDir: join(tmp.path, `w-${version}`), defaultRef: version }), 'ERR_UNSAFE_ARCHIVE');
      await publish(version, dir, img);
      const err = await assertCodeAsync(apply, 'ERR_UNSAFE_ARCHIVE');
      assert.match(err.message, why);
      assert.is(await device.current(), '1.1.0');
      assert.not.ok((await device.releases()).includes(version));
      assert.is((await lastRecord()).errorCode, 'ERR_UNSAFE_ARCHIVE');
    });
  }

  test('issue 15 item 3: an image asking privileged, host network, a capability and a mount is refused (ERR_NOT_GRANTED) until ferry.json grants them', async () => {
    const labels = { 'io.ferry.privileged': 'true', 'io.ferry.network': 'host', 'io.ferry.capabilities': 'CAP_NET_ADMIN', 'io.ferry.mounts': '/srv/data:/data:ro' };
    const src = await family.build({ version: '1.7.0', app: { '/app/data.bin': APP_DATA }, labels }, join(tmp.path, 'img-1.7.0'));
    await publishImage('1.7.0', src);
    const none = await assertCodeAsync(apply, 'ERR_NOT_GRANTED');
    for (const asked of ['privileged', 'host network', 'capability CAP_NET_ADMIN', 'mount of /srv/data']) assert.ok(none.message.includes(asked), `${asked} named in: ${none.message}`);
    assert.is(await device.current(), '1.1.0');
    const refused = await lastRecord();
    assert.is(refused.errorCode, 'ERR_NOT_GRANTED');
    assert.is(refused.outcome, 'refused');

    // Everything but the mount, whose source lies outside the granted folder (/srv/database is not /srv/data).
    await device.setConfig({ container: { allow: { privileged: true, hostNetwork: true, capabilities: ['CAP_NET_ADMIN'], mountSources: ['/srv/database'] } } as never });
    const mount = await assertCodeAsync(apply, 'ERR_NOT_GRANTED');
    assert.match(mount.message, /asks for mount of \/srv\/data, which/);
    assert.is(await device.current(), '1.1.0');

    await device.setConfig({ container: { allow: { privileged: true, hostNetwork: true, capabilities: ['CAP_NET_ADMIN'], mountSources: ['/srv'] } } as never });
    const ok = await apply();
    assert.is(ok.status, 'committed');
    assert.is(await device.current(), '1.7.0');
  });
}

test.run();
