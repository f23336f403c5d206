// `ferry agent` reacts at once to a LAN peer announcing a newer release (issue: "reacts at once to
// a USB drop or a peer announcing a newer release"). Two agents in their own network namespaces
// (mDNS never leaves them), both with a `lan` source and a check interval of 3 hours, share one
// signed repository folder. B starts on 1.0.0 and finds nothing new. Then 1.1.0 is published and
// A starts: A installs it and announces `ver=1.1.0`; B hears it, checks at once (trigger "peer")
// and installs 1.1.0, hours before its interval. Needs root and `ip netns`; SKIP otherwise.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createTestLan, netnsUnavailable, type Child, type TestLan } from '../helpers/netns.ts';
import { makeRepo, tempDir, type TempDir, type TestRepo } from '../helpers/repo.ts';
import { describeRun, ferry, history, signedFiles, smallApp, treeProblems } from '../helpers/crash.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const FERRY = join(ROOT, 'dist', 'cli', 'ferry.js');
const TARGET = ['--platform', 'linux', '--arch', 'x64'];
const CHECK_INTERVAL_S = 3 * 3600;

const unavailable = await netnsUnavailable();
if (unavailable) {
  console.log(`SKIP: ferry agent reacting to a LAN peer's announcement (network namespaces): ${unavailable}`);
} else {
  const test = suite('ferry agent and LAN announcements');

  test('a peer that installs 1.1.0 announces it; an agent on 1.0.0 with a 3-hour interval checks at once (trigger "peer") and installs a complete 1.1.0', async () => {
    const tmp: TempDir = await tempDir('ferry-agent-peer-');
    const repo: TestRepo = await makeRepo({ dir: join(tmp.path, 'publisher') });
    const lan: TestLan = await createTestLan(2);
    const agents: Child[] = [];
    try {
      await repo.release('1.0.0', smallApp('1.0.0'));
      const homes = { a: join(tmp.path, 'a'), b: join(tmp.path, 'b') };
      for (const home of Object.values(homes)) {
        const init = await ferry(['init', home, '--trust', repo.trustPath, '--source', 'lan', '--source', repo.repo, ...TARGET]);
        assert.is(init.code, 0, describeRun(init));
        const install = await ferry(['update', '--home', home]);
        assert.is(install.code, 0, `1.0.0 on ${home}: ${describeRun(install)}`);
      }
      for (const home of Object.values(homes)) {
        const cfgPath = join(home, 'ferry.json');
        const cfg = JSON.parse(await readFile(cfgPath, 'utf8')) as { policy: { checkInterval: number } };
        cfg.policy.checkInterval = CHECK_INTERVAL_S;
        await writeFile(cfgPath, JSON.stringify(cfg, null, 2));
      }
      const [hA, hB] = lan.hosts as [TestLan['hosts'][0], TestLan['hosts'][0]];
      const agent = (host: typeof hA, home: string) =>
        lan.spawnNode(host, FERRY, ['agent', '--home', home, '--log-format', 'json', '--interface-address', host.address, '--share-host', host.address], ROOT);

      const b = agent(hB, homes.b);
      agents.push(b);
      const bFirst = await b.next('up-to-date', 30_000);
      assert.is(bFirst.version, '1.0.0');

      await repo.release('1.1.0', smallApp('1.1.0'));
      const a = agent(hA, homes.a);
      agents.push(a);
      assert.is((await a.next('committed', 60_000)).version, '1.1.0', 'A installs 1.1.0 at its start');

      const heard = await b.next('peer', 20_000);
      assert.is(heard.version, '1.1.0');
      assert.is(heard.url, `http://${hA.address}:7311`);
      const check = await b.next('check', 20_000); // the start check was read above with up-to-date's line before it
      const woken = check.trigger === 'peer' ? check : await b.next('check', 20_000);
      assert.is(woken.trigger, 'peer', `B's next check is woken by the peer, not its 3-hour interval: ${JSON.stringify(woken)}`);
      assert.is((await b.next('committed', 60_000)).version, '1.1.0');
    } finally {
      for (const c of agents) {
        try { process.kill(c.pid, 'SIGTERM'); } catch { /* already gone */ }
      }
      for (const c of agents) await c.stop(15_000);
      await lan.destroy();
    }
    try {
      const files = await signedFiles(repo.repo, '1.1.0');
      assert.equal(await treeProblems(join(tmp.path, 'b', 'current'), files), [], 'B is on a complete 1.1.0');
      const h = await history(join(tmp.path, 'b'));
      assert.ok(h.records?.some((r) => r.to === '1.1.0' && r.outcome === 'committed'), `B's history: ${describeRun(h.run)}`);
    } finally {
      await tmp.cleanup();
    }
  });

  test.run();
}
