// Peers announce the release they run (mDNS TXT `ver=`), so a listening agent can look at once
// instead of at its next interval. In network namespaces only: multicast never leaves them.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { fileURLToPath } from 'node:url';
import { createTestLan, netnsUnavailable, type Child, type TestLan } from '../helpers/netns.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const ROLE = fileURLToPath(new URL('./lan-announce-role.ts', import.meta.url));
const APP = 'sample-app';

const unavailable = await netnsUnavailable();
if (unavailable) {
  console.log(`SKIP: mDNS version announcements across network namespaces: ${unavailable}`);
} else {
  const test = suite('mDNS announcements of the release a peer runs');

  test('a listener hears a peer of its app announce 1.0.0, then 1.1.0 at once when it changes; each version once; another app never', async () => {
    const lan: TestLan = await createTestLan(3);
    const kids: Child[] = [];
    try {
      const [h0, h1, h2] = lan.hosts as [TestLan['hosts'][0], TestLan['hosts'][0], TestLan['hosts'][0]];
      const listener = lan.spawnNode(h0, ROLE, [JSON.stringify({ host: h0.address, app: APP })], ROOT);
      kids.push(listener);
      await listener.next('ready', 20_000);
      const peer = lan.spawnNode(h1, ROLE, [JSON.stringify({ host: h1.address, app: APP, port: 7311, version: '1.0.0' })], ROOT);
      const other = lan.spawnNode(h2, ROLE, [JSON.stringify({ host: h2.address, app: 'other-app', port: 7311, version: '9.9.9' })], ROOT);
      kids.push(peer, other);

      const first = await listener.next('peer-version', 20_000);
      assert.equal(first, { event: 'peer-version', url: `http://${h1.address}:7311`, version: '1.0.0' });

      // The peer commits 1.1.0 and says so; the listener hears it from the unsolicited answer
      // (it does not ask again), well within the 1 s repeat.
      peer.send('ver 1.1.0');
      const second = await listener.next('peer-version', 10_000);
      assert.equal(second, { event: 'peer-version', url: `http://${h1.address}:7311`, version: '1.1.0' });

      // The announcement is sent twice; it is reported once. Nothing from the other app.
      await new Promise((r) => setTimeout(r, 2500));
      const extra = await listener.next('peer-version', 500).then((e) => e, () => null);
      assert.is(extra, null, `no repeated or foreign report, got ${JSON.stringify(extra)}`);
    } finally {
      for (const k of kids) await k.stop();
      await lan.destroy();
    }
  });

  test.run();
}
