// Importing an image for `ferry release --image` (issue 15 item 1): an OCI layout folder, an
// oci-archive and a `docker save` tar (legacy and blobs forms, made here by test/helpers/hand-image.ts,
// and skopeo's docker-archive/oci-archive where skopeo is installed) all become the same normalised
// layout — same manifest digest, same config bytes, uncompressed layers that verify as an image —
// and bad inputs are refused with their stable codes: a layer whose uncompressed hash is not its
// diff_id, a compressed blob that is not its digest, zstd where node:zlib has none, non-distributable
// layers, several images without --image-ref, a multi-platform index.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile as execFileCb } from 'node:child_process';
import { promisify } from 'node:util';
import { copyFile, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as zlib from 'node:zlib';
import { hasZstd, importImage } from '../../core/image/import-image.ts';
import { readLayoutImage } from '../../core/image/oci-layout.ts';
import { verifyImage } from '../../core/image/verify-image.ts';
import { NO_GRANTS } from '../../core/image/requests.ts';
import { containerToolsMissing, imageFamily } from '../helpers/oci-image.ts';
import { dockerSaveTar, handLayout, ociArchiveTar } from '../helpers/hand-image.ts';
import { tarBytes } from '../helpers/tar-writer.ts';
import { tempDir, type TempDir } from '../helpers/repo.ts';
import { assertCodeAsync } from '../helpers/assert-code.ts';

const execFile = promisify(execFileCb);
const missing = (await containerToolsMissing()).filter((m) => m === 'umoci' || m === 'gcc' || m === 'busybox-static');
const skopeo = await execFile('skopeo', ['--version']).then(() => true, () => false);
const test = suite('image import');

let tmp: TempDir;
let layout: string;
let n = 0;

async function importFrom(from: string, ref?: string) {
  const i = n++;
  const outDir = join(tmp.path, `out-${i}`);
  const image = await importImage({ from, outDir, workDir: join(tmp.path, `work-${i}`), defaultRef: '0.0.0', ...(ref !== undefined ? { ref } : {}) });
  return { image, outDir };
}

const smallLayer = (text: string) => tarBytes([{ name: 'app/', type: 'dir' }, { name: 'app/version', content: text }, { name: 'app/.wh.old', content: '' }]);

if (missing.length > 0) {
  console.log(`SKIP: image import tests (${missing.join(', ')})`);
} else {
  test.before(async () => {
    tmp = await tempDir('ferry-image-import-');
    const family = await imageFamily(join(tmp.path, 'family'));
    layout = await family.build({ version: '1.0.0', labels: { 'io.ferry.network': 'none' } }, join(tmp.path, 'layout'));
  });
  test.after(async () => {
    await tmp?.cleanup();
  });

  test('issue 15 item 1: a layout folder, an oci-archive and docker save tars (legacy and blobs) give one normalised image with the same digest', async () => {
    const folder = await importFrom(layout);
    assert.is(folder.image.form, 'oci-layout');
    assert.is(folder.image.ref, '1.0.0');
    const src = await readLayoutImage(layout);
    const out = await readLayoutImage(folder.outDir);
    // Same config bytes (the image id), layers now uncompressed with their diff_ids as digests.
    assert.is(out.manifest.config.digest, src.manifest.config.digest);
    assert.is(folder.image.configDigest, src.manifest.config.digest);
    assert.equal(out.manifest.layers.map((l) => l.digest), src.config.diffIds);
    assert.ok(out.manifest.layers.every((l) => l.mediaType === 'application/vnd.oci.image.layer.v1.tar'));
    assert.ok(src.manifest.layers.every((l) => l.mediaType.endsWith('+gzip')), 'the input was gzip (umoci)');
    assert.is.not(folder.image.manifestDigest, src.descriptor.digest, 'the manifest is rewritten');
    // Exactly the image's files, each blob named by its hash; and the layout verifies as the device will.
    assert.equal((await readdir(join(folder.outDir, 'blobs/sha256'))).length, 2 + out.manifest.layers.length);
    const verified = await verifyImage(folder.outDir, folder.image, NO_GRANTS);
    assert.is(verified.layers, out.manifest.layers.length);

    const inputs: [string, string][] = [];
    await ociArchiveTar(layout, join(tmp.path, 'oci.tar'));
    inputs.push(['oci-archive', join(tmp.path, 'oci.tar')]);
    await dockerSaveTar(layout, 'demo:1.0.0', join(tmp.path, 'docker-legacy.tar'), 'legacy');
    inputs.push(['docker-save', join(tmp.path, 'docker-legacy.tar')]);
    await dockerSaveTar(layout, 'demo:1.0.0', join(tmp.path, 'docker-blobs.tar'), 'blobs');
    inputs.push(['docker-save', join(tmp.path, 'docker-blobs.tar')]);
    if (skopeo) {
      // Real-world archives: skopeo's docker-archive links repeated layers (<id>/layer.tar → ../<hex>.tar).
      await execFile('skopeo', ['copy', '-q', `oci:${layout}:1.0.0`, `docker-archive:${join(tmp.path, 'skopeo-docker.tar')}:demo:1.0.0`]);
      await execFile('skopeo', ['copy', '-q', `oci:${layout}:1.0.0`, `oci-archive:${join(tmp.path, 'skopeo-oci.tar')}:1.0.0`]);
      inputs.push(['docker-save', join(tmp.path, 'skopeo-docker.tar')], ['oci-archive', join(tmp.path, 'skopeo-oci.tar')]);
    } else {
      console.log('SKIP: skopeo-made archives (skopeo)');
    }
    for (const [form, file] of inputs) {
      const got = await importFrom(file);
      assert.is(got.image.form, form, file);
      assert.is(got.image.manifestDigest, folder.image.manifestDigest, `${file} gives the folder's image digest`);
      assert.is(got.image.configDigest, folder.image.configDigest);
    }
    // docker save names images name:tag; --image-ref takes either.
    assert.is((await importFrom(join(tmp.path, 'docker-legacy.tar'), 'demo:1.0.0')).image.ref, 'demo:1.0.0');
    assert.is((await importFrom(join(tmp.path, 'docker-legacy.tar'), '1.0.0')).image.manifestDigest, folder.image.manifestDigest);
    await assertCodeAsync(() => importFrom(join(tmp.path, 'docker-legacy.tar'), '2.0.0'), 'ERR_USAGE');
  });

  test('issue 15 item 1: several images need --image-ref; a multi-platform index is refused with the reason', async () => {
    const two = join(tmp.path, 'two');
    const a = await handLayout(join(tmp.path, 'two-a'), { ref: 'a', layers: [smallLayer('a')] });
    const b = await handLayout(join(tmp.path, 'two-b'), { ref: 'b', layers: [smallLayer('b')] });
    await mkdir(join(two, 'blobs/sha256'), { recursive: true });
    const manifests = [];
    for (const dir of ['two-a', 'two-b']) {
      for (const name of await readdir(join(tmp.path, dir, 'blobs/sha256'))) await copyFile(join(tmp.path, dir, 'blobs/sha256', name), join(two, 'blobs/sha256', name));
      manifests.push(...JSON.parse(await readFile(join(tmp.path, dir, 'index.json'), 'utf8')).manifests);
    }
    await writeFile(join(two, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    await writeFile(join(two, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests }));
    const err = await assertCodeAsync(() => importFrom(two), 'ERR_USAGE');
    assert.match(err.message, /--image-ref/);
    assert.is((await importFrom(two, 'b')).image.manifestDigest, b.manifestDigest);
    assert.is((await importFrom(two, 'a')).image.manifestDigest, a.manifestDigest);

    await writeFile(join(two, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ ...manifests[0], mediaType: 'application/vnd.oci.image.index.v1+json' }] }));
    assert.match((await assertCodeAsync(() => importFrom(two), 'ERR_USAGE')).message, /multi-platform/);
  });

  test('issue 15 item 1: a layer whose uncompressed sha256 is not its diff_id is ERR_HASH_MISMATCH; a compressed blob not its digest too', async () => {
    const layer = smallLayer('x');
    const wrong = await handLayout(join(tmp.path, 'wrong-diff'), {
      ref: 'w', layers: [layer], diffIds: [`sha256:${'0'.repeat(64)}`],
      store: (t) => ({ bytes: zlib.gzipSync(t), mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' }),
    });
    assert.ok(wrong.manifestDigest);
    assert.match((await assertCodeAsync(() => importFrom(join(tmp.path, 'wrong-diff')), 'ERR_HASH_MISMATCH')).message, /diff_id/);

    // A gzip blob altered after its descriptor was written (same size, other bytes).
    const dir = join(tmp.path, 'altered');
    await handLayout(dir, { ref: 'x', layers: [layer], store: (t) => ({ bytes: zlib.gzipSync(t, { level: 1 }), mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' }) });
    const gz = zlib.gzipSync(layer, { level: 1 });
    let altered = 0;
    for (const n2 of await readdir(join(dir, 'blobs/sha256'))) {
      const b = await readFile(join(dir, 'blobs/sha256', n2));
      if (b.equals(gz)) {
        const alt = zlib.gzipSync(smallLayer('y'), { level: 1 });
        assert.is(alt.length, b.length);
        await writeFile(join(dir, 'blobs/sha256', n2), alt);
        altered++;
      }
    }
    assert.is(altered, 1);
    assert.match((await assertCodeAsync(() => importFrom(dir), 'ERR_HASH_MISMATCH')).message, /layer 0 blob does not hash/);
  });

  test('issue 15 item 1: zstd layers inflate where node:zlib has zstd, else ERR_USAGE naming why; non-distributable layers ERR_SCHEMA', async () => {
    const layer = smallLayer('z');
    const dir = join(tmp.path, 'zstd');
    const z = zlib as unknown as { zstdCompressSync?: (b: Buffer) => Buffer };
    if (hasZstd() && z.zstdCompressSync) {
      const img = await handLayout(dir, { ref: 'z', layers: [layer], store: (t) => ({ bytes: z.zstdCompressSync!(t), mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd' }) });
      const got = await importFrom(dir);
      assert.is(got.image.configDigest, img.configDigest);
      assert.equal(got.image.layers.map((l) => l.size), [layer.length]);
    } else {
      // The 4-byte zstd frame magic and nothing valid after it: never read, refused by media type first.
      await handLayout(dir, { ref: 'z', layers: [layer], store: () => ({ bytes: Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0, 0]), mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd' }) });
      const err = await assertCodeAsync(() => importFrom(dir), 'ERR_USAGE');
      assert.match(err.message, /zstd/);
      assert.match(err.message, new RegExp(process.version.replace(/\./g, '\\.')));
    }
    await handLayout(join(tmp.path, 'foreign'), { ref: 'f', layers: [layer], store: (t) => ({ bytes: zlib.gzipSync(t), mediaType: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip' }) });
    assert.match((await assertCodeAsync(() => importFrom(join(tmp.path, 'foreign')), 'ERR_SCHEMA')).message, /non-distributable/);
  });
}

test.run();
