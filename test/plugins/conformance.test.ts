// Every Source ferry ships runs the shared conformance suite: repository folders, .ferry bundles
// (written with the delta and the full artifact, so they hold everything the suite reads), a USB
// mount holding a bundle, and the HTTP transport against the static server. (LAN peers serve
// artifacts by chunk and metadata peer by peer: ChunkPeer and metadataPeers, tested in lan.test.ts.)

import { join } from 'node:path';
import { createDirSource } from '../../core/ports/dir-source.ts';
import { createBundleSource, writeBundle } from '../../core/publish/bundle.ts';
import { createHttpTransport } from '../../plugins/http/transport.ts';
import { createUsbSource } from '../../plugins/usb/source.ts';
import { mkdir } from 'node:fs/promises';
import { startStaticServer } from '../../plugins/http/server.ts';
import { tempDir } from '../helpers/repo.ts';
import { CONFORMANCE_VERSIONS, sourceConformance } from './source-conformance.ts';

sourceConformance('dir source', async (repoDir) => ({ source: createDirSource(repoDir), close: async () => {} }));

sourceConformance('bundle source (delta + full)', async (repoDir) => {
  const tmp = await tempDir('ferry-conformance-bundle-');
  const out = join(tmp.path, 'release.ferry');
  await writeBundle({ repo: repoDir, version: CONFORMANCE_VERSIONS[1], from: CONFORMANCE_VERSIONS[0], withFull: true, platform: 'linux', arch: 'x64', out });
  return { source: createBundleSource(out, join(tmp.path, 'unpacked')), close: tmp.cleanup };
});

sourceConformance('usb source: a stick holding a bundle', async (repoDir) => {
  const tmp = await tempDir('ferry-conformance-usb-');
  const stick = join(tmp.path, 'stick');
  await mkdir(stick);
  await writeBundle({ repo: repoDir, version: CONFORMANCE_VERSIONS[1], from: CONFORMANCE_VERSIONS[0], withFull: true, platform: 'linux', arch: 'x64', out: join(stick, 'update.ferry') });
  const source = createUsbSource({ mounts: [stick], privateDir: join(tmp.path, 'private') });
  return { source, close: async () => { await source.close(); await tmp.cleanup(); } };
});

sourceConformance('http transport over the static server', async (repoDir) => {
  const server = await startStaticServer({ root: repoDir });
  const source = createHttpTransport({ url: server.url, retries: 0 });
  return {
    source,
    async close() {
      source.close();
      await server.close();
    },
  };
});

sourceConformance('http transport with a conditional-GET cache, under a base path', async (repoDir) => {
  // The repository is served from a sub-folder, so the transport must resolve paths under the URL's path.
  const server = await startStaticServer({ root: join(repoDir, '..') });
  const cache = await tempDir('ferry-http-cache-');
  const source = createHttpTransport({ url: `${server.url}repo`, cacheDir: cache.path, retries: 0 });
  return {
    source,
    async close() {
      source.close();
      await server.close();
      await cache.cleanup();
    },
  };
});
