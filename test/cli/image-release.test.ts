// `ferry release --image` through the built CLI (issue 15 item 1), as a publisher and a device
// run it: 1.0.0 published from an OCI layout folder (umoci's, gzip layers), 1.1.0 from a
// `docker save` tar of the next version (one layer changed) selected by --image-ref; a device made
// by `ferry init` installs 1.0.0 whole, then 1.1.0 by the delta the release printed, and holds
// the normalised layout whose image digest the release printed.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import { readdir, readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { containerToolsMissing, imageFamily } from '../helpers/oci-image.ts';
import { dockerSaveTar } from '../helpers/hand-image.ts';
import { pseudoRandomBytes, tempDir, type TempDir } from '../helpers/repo.ts';
import { ferry, json, ok } from '../helpers/cli.ts';

const missing = (await containerToolsMissing()).filter((m) => m === 'umoci' || m === 'gcc' || m === 'busybox-static');
const test = suite('ferry release --image');

interface Released {
  version: string;
  full: { size: number };
  deltas: { from: string; size: number }[];
  image: { ref: string; digest: string; config: string; layers: number; form: string };
}

let tmp: TempDir;

if (missing.length > 0) {
  console.log(`SKIP: ferry release --image (${missing.join(', ')})`);
} else {
  test.before(async () => {
    tmp = await tempDir('ferry-image-cli-');
  });
  test.after(async () => {
    await tmp?.cleanup();
  });

  test('issue 15 item 1: ferry release --image (a layout folder, then a docker save tar with --image-ref) and a device that installs both, the second as a delta', async () => {
    const p = (name: string) => join(tmp.path, name);
    const family = await imageFamily(p('family'));
    const data = pseudoRandomBytes(64 * 1024, 7);
    await family.build({ version: '1.0.0', app: { '/app/data.bin': data } }, p('img-1.0.0'));
    await family.build({ version: '1.1.0', app: { '/app/data.bin': data } }, p('img-1.1.0'));
    await dockerSaveTar(p('img-1.1.0'), 'demo:1.1.0', p('demo-1.1.0.tar'), 'legacy');

    ok(ferry('keygen', '--out', p('root')), 'keygen root');
    ok(ferry('keygen', '--out', p('release')), 'keygen release');
    ok(ferry('repo', 'init', p('repo'), '--app', 'demo', '--root-key', p('root.key'), '--release-key', p('release.pub')), 'repo init');
    const common = ['--repo', p('repo'), '--key', p('release.key'), '--platform', 'linux', '--arch', 'x64', '--compression-level', '5', '--json'];

    const both = ferry('release', p('img-1.0.0'), '--image', p('img-1.0.0'), '--version', '1.0.0', ...common);
    assert.is(both.status, 2, 'an app folder and --image together is a usage error');
    assert.match(both.stderr, /one of an <app-dir>, --self or --image/);

    const r10 = json<Released>(ok(ferry('release', '--image', p('img-1.0.0'), '--version', '1.0.0', ...common), 'release --image folder'));
    assert.equal([r10.image.ref, r10.image.form, r10.image.layers], ['1.0.0', 'oci-layout', 2]);
    ok(ferry('init', p('home'), '--trust', p('repo/root.json'), '--source', p('repo')), 'init');
    ok(ferry('update', '--home', p('home')), 'update to 1.0.0');

    const r11 = json<Released>(ok(ferry('release', '--image', p('demo-1.1.0.tar'), '--image-ref', 'demo:1.1.0', '--version', '1.1.0', ...common), 'release --image docker save'));
    assert.equal([r11.image.ref, r11.image.form], ['demo:1.1.0', 'docker-save']);
    const delta = r11.deltas.find((d) => d.from === '1.0.0');
    assert.ok(delta && delta.size * 20 < r11.full.size, `the delta (${delta?.size} B) is under 5% of the full artifact (${r11.full.size} B)`);

    const update = json<{ status: string; record: { kind: string; bytesMoved: number } }>(ok(ferry('update', '--home', p('home'), '--json'), 'update to 1.1.0'));
    assert.is(update.status, 'committed');
    assert.is(update.record.kind, 'delta');
    assert.is(update.record.bytesMoved, delta!.size);

    // The device holds the normalised layout: the printed image digest, every blob named by its hash.
    assert.is(await readlink(p('home/current')), 'releases/1.1.0');
    const index = JSON.parse(await readFile(p('home/current/index.json'), 'utf8'));
    assert.is(index.manifests[0].digest, r11.image.digest);
    assert.is(index.manifests[0].annotations['org.opencontainers.image.ref.name'], 'demo:1.1.0');
    const blobs = p('home/current/blobs/sha256');
    for (const name of await readdir(blobs)) assert.is(createHash('sha256').update(await readFile(join(blobs, name))).digest('hex'), name);
  });
}

test.run();
