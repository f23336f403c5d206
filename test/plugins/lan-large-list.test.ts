// A LAN peer serves a kept file list of any size. A file list grows with the tree (~130 bytes a
// file), so a tree of ~130,000 files has one past the 16 MiB a manifest may hold; the peer used to
// refuse such a file (404) and the device had to find another source. The reading device caps the
// list at its signed pin, so the peer needs no cap of its own. Loopback only, a real peer server.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Agent } from 'node:http';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { randomBytes } from 'node:crypto';
import { tempDir } from '../helpers/repo.ts';
import { homeLayout } from '../../core/device/layout.ts';
import { MANIFEST_MAX_BYTES } from '../../core/trust/metadata.ts';
import { startPeerServer } from '../../plugins/lan/peer-server.ts';
import { fetchPeerFile } from '../../plugins/lan/source.ts';

test('a peer serves a kept file list larger than a manifest may be, whole and streamed', async () => {
  const tmp = await tempDir();
  const home = tmp.path;
  const listFile = homeLayout(home).keptFileList('1.0.0', 'linux-x64');
  await mkdir(dirname(listFile), { recursive: true });
  const bytes = randomBytes(MANIFEST_MAX_BYTES + 4096);
  await writeFile(listFile, bytes);
  const peer = await startPeerServer({ cacheDir: home, host: '127.0.0.1', metadataHome: home });
  const agent = new Agent({ keepAlive: false });
  try {
    const got = await fetchPeerFile(agent, peer.url, 'releases/1.0.0/files-linux-x64.json', bytes.length, 30_000);
    assert.ok(got, 'the peer answered 404 for a kept list over 16 MiB');
    assert.is(got!.length, bytes.length);
    assert.ok(Buffer.from(got!).equals(bytes), 'the bytes served are the kept file');
    assert.is(peer.stats.byMetadataPath['releases/1.0.0/files-linux-x64.json'], bytes.length);
  } finally {
    agent.destroy();
    await peer.close();
    await tmp.cleanup();
  }
});

test.run();
