// issue 14 item 5: the signed manifest travels compressed over HTTP (the device asks for brotli or
// gzip; `ferry serve` sends brotli), and the compressed form is trusted for nothing: an origin
// whose compressed body decodes past the channel's pinned size is cut off there (ERR_TOO_LARGE),
// one that decodes to other bytes fails the pin (ERR_HASH_MISMATCH), one that answers in a coding
// the device did not ask for is refused (ERR_IO). Real loopback servers, one small signed repo.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import http from 'node:http';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { brotliCompressSync, gzipSync, constants as zlib } from 'node:zlib';
import { createHttpTransport } from '../../plugins/http/transport.ts';
import { startStaticServer, type StaticServer } from '../../plugins/http/server.ts';
import { listenHttp } from '../../plugins/http/listen.ts';
import { readChannel, readManifest } from '../../core/trust/trusted-metadata.ts';
import { verifyTrustedRoot } from '../../core/trust/root.ts';
import { manifestPath } from '../../core/trust/metadata.ts';
import { assertCodeAsync } from '../helpers/assert-code.ts';
import { makeRepo, sampleApp, tempDir, type TempDir, type TestRepo } from '../helpers/repo.ts';

let repo: TestRepo;
let tmp: TempDir;
const closers: (() => Promise<void>)[] = [];

/** A loopback origin that serves the repository but answers the manifest with `answer(genuine)`. */
async function origin(answer: (genuine: Buffer, req: http.IncomingMessage) => { body: Buffer; encoding?: string }): Promise<{ url: string; asked: string[] }> {
  const asked: string[] = [];
  const server = http.createServer((req, res) => {
    void (async () => {
      const path = decodeURIComponent((req.url ?? '/').slice(1));
      const bytes = await readFile(join(repo.repo, path)).catch(() => undefined);
      if (!bytes) return res.writeHead(404, { 'Content-Length': 0 }).end();
      if (path === manifestPath('1.1.0')) {
        asked.push(String(req.headers['accept-encoding']));
        const a = answer(bytes, req);
        return res.writeHead(200, { 'Content-Length': a.body.length, ...(a.encoding ? { 'Content-Encoding': a.encoding } : {}) }).end(a.body);
      }
      res.writeHead(200, { 'Content-Length': bytes.length }).end(bytes);
    })();
  });
  const l = await listenHttp(server, '127.0.0.1', 0);
  closers.push(l.close);
  return { url: `${l.url}/`, asked };
}

/** Reads the stable channel and its pinned 1.1.0 manifest from `url` as a device does. */
async function readPinned(url: string) {
  const source = createHttpTransport({ url, retries: 0, timeoutMs: 5000 });
  try {
    const root = verifyTrustedRoot(await readFile(repo.trustPath));
    const channel = await readChannel(source, root, 'stable', new Date());
    const pin = channel!.doc.targets['linux-x64']!.manifest;
    return { pin, manifest: await readManifest(source, root, '1.1.0', pin) };
  } finally {
    source.close?.();
  }
}

const item5 = suite('issue 14 item 5: the manifest travels compressed, trusted only as far as the signed pin');

item5.before(async () => {
  tmp = await tempDir('ferry-item5-');
  repo = await makeRepo({ dir: tmp.path });
  await repo.release('1.0.0', sampleApp('1.0.0'));
  await repo.release('1.1.0', sampleApp('1.1.0'));
});

item5.after(async () => {
  for (const c of closers) await c();
  await repo?.cleanup?.();
  await tmp?.cleanup();
});

item5('issue 14 item 5: `ferry serve` sends the manifest brotli-compressed to a device, which verifies the decoded bytes against the pin', async () => {
  const server: StaticServer = await startStaticServer({ root: repo.repo });
  closers.push(() => server.close());
  const { pin, manifest } = await readPinned(server.url);
  assert.ok(manifest?.doc.targets['linux-x64'], 'the pinned manifest verifies');
  const sent = server.stats.bytesByPath.get(manifestPath('1.1.0'))!;
  // Its payload is compressed JSON already (issue 14 item 5, core/trust/manifest-envelope.ts); the
  // base64 of it still shrinks by about a quarter when sent as brotli.
  assert.ok(sent < pin.size * 0.85, `the manifest took ${sent} bytes on the wire for ${pin.size} signed bytes`);
});

item5('issue 14 item 5: a genuine gzip body is accepted; the device asked for brotli or gzip', async () => {
  const o = await origin((g) => ({ body: gzipSync(g), encoding: 'gzip' }));
  const { manifest } = await readPinned(o.url);
  assert.ok(manifest);
  assert.equal(o.asked, ['br, gzip']);
});

item5('issue 14 item 5: a brotli body that decodes past the pinned size is cut off at it (ERR_TOO_LARGE)', async () => {
  const genuine = await readFile(join(repo.repo, manifestPath('1.1.0')));
  const bomb = brotliCompressSync(Buffer.concat([genuine, Buffer.alloc(32 * 1024 * 1024, 0x20)]), { params: { [zlib.BROTLI_PARAM_QUALITY]: 5 } });
  // Smaller than the pinned manifest itself: only the cap on the decoded bytes can stop it.
  assert.ok(bomb.length < genuine.length, `a ${bomb.length}-byte bomb`);
  const o = await origin(() => ({ body: bomb, encoding: 'br' }));
  const rss0 = process.memoryUsage().rss;
  await assertCodeAsync(() => readPinned(o.url), 'ERR_TOO_LARGE');
  assert.ok(process.memoryUsage().rss - rss0 < 48 * 1024 * 1024, 'the 32 MiB bomb was never decoded whole');
});

item5('issue 14 item 5: a compressed body that decodes to other bytes fails the pin (ERR_HASH_MISMATCH)', async () => {
  const o = await origin((g) => {
    const other = Buffer.from(g);
    other[other.length - 3]! ^= 1;
    return { body: brotliCompressSync(other), encoding: 'br' };
  });
  await assertCodeAsync(() => readPinned(o.url), 'ERR_HASH_MISMATCH');
});

item5('issue 14 item 5: a coding the device did not ask for, or bytes that do not decode, are refused (ERR_IO)', async () => {
  const zstd = await origin((g) => ({ body: g, encoding: 'zstd' }));
  await assertCodeAsync(() => readPinned(zstd.url), 'ERR_IO');
  const junk = await origin(() => ({ body: Buffer.from('not brotli at all, just text'), encoding: 'br' }));
  await assertCodeAsync(() => readPinned(junk.url), 'ERR_IO');
});

item5.run();
