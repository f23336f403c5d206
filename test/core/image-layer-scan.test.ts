// The layer scan (issue 15 item 3): hostile layer tars written byte by byte
// (test/helpers/tar-writer.ts) are refused at their first bad entry with ERR_UNSAFE_ARCHIVE, and
// what real layers hold — whiteouts, "./" names, ".." that stays inside, hard links inside,
// symlinks anywhere (they resolve inside the container's root) — passes, hashed in the same read.
// Also the signed `container` field of a manifest, parsed strictly.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { layerPathProblem, scanLayerFile } from '../../core/image/layer-scan.ts';
import { manifestPayload, parseManifestPayload, type ManifestDoc } from '../../core/trust/metadata.ts';
import { TAR_END, tarBytes, tarEntryBytes, tarHeader, type TarEntry } from '../helpers/tar-writer.ts';
import { tempDir, type TempDir } from '../helpers/repo.ts';
import { assertCode, assertCodeAsync } from '../helpers/assert-code.ts';

const test = suite('image layer scan');
let tmp: TempDir;
let n = 0;

async function layerFile(bytes: Buffer): Promise<string> {
  const p = join(tmp.path, `layer-${n++}.tar`);
  await writeFile(p, bytes);
  return p;
}

test.before(async () => {
  tmp = await tempDir('ferry-layer-scan-');
});
test.after(async () => {
  await tmp?.cleanup();
});

test('issue 15 item 3: layer paths that are absolute or climb above the root are problems; others are not', () => {
  for (const p of ['a', './a', 'a/', 'a/../b', './a/./b/../c', '.wh..wh..opq', 'etc/.wh.passwd']) assert.is(layerPathProblem(p), null, p);
  for (const p of ['/etc/passwd', '../x', 'a/../../x', './..', 'a/\0b']) assert.ok(layerPathProblem(p), p);
});

test('issue 15 item 3: what real layers hold passes, hashed in the same read', async () => {
  const bytes = tarBytes([
    { name: './', type: 'dir' },
    { name: './app/', type: 'dir' },
    { name: './app/server', content: 'binary', mode: 0o755 },
    { name: './app/.wh.old-config', content: '' },
    { name: './app/.wh..wh..opq', content: '' },
    { name: './app/same', type: 'hardlink', linkname: './app/server' },
    { name: './app/sub/../other', content: 'x' },
    { name: './etc/localtime', type: 'symlink', linkname: '/usr/share/zoneinfo/UTC' },
    { name: './run/fifo', type: 'fifo' },
  ]);
  const got = await scanLayerFile(await layerFile(bytes), 'layer');
  assert.is(got.sha256, createHash('sha256').update(bytes).digest('hex'));
  assert.is(got.size, bytes.length);
  assert.is(got.entries, 9);
});

const hostile: [string, TarEntry[], RegExp][] = [
  ['an absolute path', [{ name: '/etc/cron.d/evil', content: 'x' }], /is absolute/],
  ['a .. escaping', [{ name: 'app/', type: 'dir' }, { name: 'app/../../root/.ssh/authorized_keys', content: 'k' }], /climbs above/],
  ['a character device', [{ name: 'dev/kmem', type: 'char', devmajor: 1, devminor: 2 }], /character device/],
  ['a block device', [{ name: 'dev/sda', type: 'block', devmajor: 8, devminor: 0 }], /block device/],
  ['a hard link to an absolute path', [{ name: 'x', type: 'hardlink', linkname: '/etc/shadow' }], /hard link/],
  ['a hard link climbing out', [{ name: 'a/x', type: 'hardlink', linkname: 'a/../../etc/shadow' }], /hard link/],
];
for (const [what, entries, why] of hostile) {
  test(`issue 15 item 3: a layer with ${what} is ERR_UNSAFE_ARCHIVE`, async () => {
    // The bad entry after a good one: the scan reads on to it.
    const file = await layerFile(tarBytes([{ name: 'ok', content: 'fine' }, ...entries]));
    const err = await assertCodeAsync(() => scanLayerFile(file, 'layer 1'), 'ERR_UNSAFE_ARCHIVE');
    assert.match(err.message, why);
    assert.match(err.message, /^layer 1/);
  });
}

test('issue 15 item 3: a truncated or compressed layer is ERR_UNSAFE_ARCHIVE', async () => {
  const whole = tarBytes([{ name: 'a', content: Buffer.alloc(4096, 1) }]);
  await assertCodeAsync(async () => scanLayerFile(await layerFile(whole.subarray(0, 1024)), 'layer'), 'ERR_UNSAFE_ARCHIVE');
  const err = await assertCodeAsync(async () => scanLayerFile(await layerFile(gzipSync(whole)), 'layer'), 'ERR_UNSAFE_ARCHIVE');
  assert.match(err.message, /compressed/);
});

/** A pax extended header block (type 'g' global, 'x' local) holding `records`. */
function paxHeader(type: 'g' | 'x', records: Record<string, string>): Buffer {
  let body = '';
  for (const [k, v] of Object.entries(records)) {
    const rest = ` ${k}=${v}\n`;
    let len = rest.length + 1;
    while (String(len).length + rest.length !== len) len = String(len).length + rest.length;
    body += `${len}${rest}`;
  }
  const data = Buffer.from(body);
  const h = tarHeader({ name: 'pax_global_header' }, data.length);
  h.write(type, 156, 1, 'ascii');
  h.write('        ', 148, 8, 'ascii');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'ascii');
  return Buffer.concat([h, data, Buffer.alloc((512 - (data.length % 512)) % 512)]);
}

test('review: a pax global header that hides an entry (size) or masks a hard link (linkpath) from the scan is ERR_UNSAFE_ARCHIVE', async () => {
  // node-tar applies a global size/linkpath to later entries; Go's archive/tar (umoci) does not, so
  // umoci would unpack the char device / the hard link out that the scan never saw.
  const hidesDevice = Buffer.concat([
    paxHeader('g', { size: '512' }),
    tarEntryBytes({ name: 'a', content: '' }),
    tarHeader({ name: 'dev/mem', type: 'char', devmajor: 1, devminor: 1 }, 0),
    tarEntryBytes({ name: 'b', content: 'x' }),
    TAR_END,
  ]);
  const masksLink = Buffer.concat([
    paxHeader('g', { linkpath: 'b' }),
    tarEntryBytes({ name: 'b', content: 'x' }),
    tarEntryBytes({ name: 'x', type: 'hardlink', linkname: '../../../../etc/shadow' }),
    TAR_END,
  ]);
  const a = await layerFile(hidesDevice);
  const b = await layerFile(masksLink);
  assert.match((await assertCodeAsync(() => scanLayerFile(a, 'layer'), 'ERR_UNSAFE_ARCHIVE')).message, /global header sets size/);
  assert.match((await assertCodeAsync(() => scanLayerFile(b, 'layer'), 'ERR_UNSAFE_ARCHIVE')).message, /global header sets linkpath/);
  // A local pax header is read the same by both, and a global one with only a comment is harmless.
  const fine = Buffer.concat([paxHeader('g', { comment: 'made by git archive' }), paxHeader('x', { path: 'long/'.repeat(30) + 'name' }), tarEntryBytes({ name: 'short', content: 'x' }), TAR_END]);
  assert.is((await scanLayerFile(await layerFile(fine), 'layer')).entries, 1);
});

test('review: a whiteout of the folder itself or its parent (.wh.., CVE-2021-29136 in umoci < 0.4.7) is ERR_UNSAFE_ARCHIVE; the opaque marker is not', async () => {
  for (const name of ['.wh..', './.wh..', 'etc/.wh..', 'etc/.wh...', 'etc/.wh.']) {
    const f = await layerFile(tarBytes([{ name: './etc/', type: 'dir' }, { name, content: '' }]));
    assert.match((await assertCodeAsync(() => scanLayerFile(f, 'layer'), 'ERR_UNSAFE_ARCHIVE')).message, /whiteout of the folder itself/, name);
  }
  const ok = await layerFile(tarBytes([{ name: './.wh..wh..opq', content: '' }, { name: 'etc/.wh..wh..opq', content: '' }, { name: 'etc/.wh..hidden', content: '' }]));
  assert.is((await scanLayerFile(ok, 'layer')).entries, 3);
});

test('issue 15 item 1: the signed container field is parsed strictly and round-trips', () => {
  const blob = (c: string) => createHash('sha256').update(c).digest('hex');
  const [m, c] = [blob('manifest'), blob('config')];
  const file = (hex: string) => ({ path: `blobs/sha256/${hex}`, size: 1, sha256: hex, mode: 0o644 });
  const full = { path: 'releases/1.0.0/linux-x64.full.tar.br', size: 1, sha256: 'a'.repeat(64), chunkSize: 1048576, chunks: ['a'.repeat(64)] };
  const doc = (container: unknown): ManifestDoc => ({
    type: 'ferry/manifest', app: 'demo', version: '1.0.0', releaseDate: '2026-01-01T00:00:00.000Z', releaseNotes: '', mandatory: false, securityFix: false,
    targets: { 'linux-x64': { files: [file(m), file(c)], full, deltas: [], ...(container === undefined ? {} : { container }) } as never },
  });
  const good = { ref: 'demo:1.0.0', manifestDigest: `sha256:${m}`, configDigest: `sha256:${c}` };
  assert.equal(parseManifestPayload(manifestPayload(doc(good))).targets['linux-x64']!.container, good);
  assert.is(parseManifestPayload(manifestPayload(doc(undefined))).targets['linux-x64']!.container, undefined);
  for (const bad of [
    { ...good, extra: 1 },
    { ...good, manifestDigest: `sha512:${m}` },
    { ...good, ref: '../x' },
    { ...good, configDigest: `sha256:${'b'.repeat(64)}` }, // not a file of the tree
    { ref: good.ref, manifestDigest: good.manifestDigest },
  ]) assertCode(() => parseManifestPayload(manifestPayload(doc(bad))), 'ERR_SCHEMA');
});

test.run();
