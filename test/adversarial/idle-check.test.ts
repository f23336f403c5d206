// Issue 13 item 14, bytes on the wire: what an idle check costs a device whose origin is a stock
// nginx serving the repository folder. A device (opened as the `ferry` command opens it, so its
// HTTP source keeps cache/http) updates to 1.0.0, then checks while nothing changes. Every byte
// each way goes through a counting relay (test/helpers/nginx-origin.ts): request lines, headers and
// bodies, the TCP payload without TCP/IP headers. The limit is on the response bytes, the measure
// the 977 bytes used (main's code receives 976 here, and sends 603 more); the request
// bytes are printed beside it. The checks that follow show the savings keep the semantics: a
// security channel or a root that appears later is seen at the next check.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readdir, readFile, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { makeRepo, sampleApp, tempDir, type TempDir, type TestRepo } from '../helpers/repo.ts';
import { makeDevice, type TestDevice } from '../helpers/device.ts';
import { exchangesOf, nginxPath, startByteCounter, startNginx, type ByteCounter, type NginxOrigin, type WireExchange } from '../helpers/nginx-origin.ts';
import { withDevice } from '../../plugins/open-device.ts';
import { rotateRoot } from '../../core/publish/repository.ts';
import { verifyTrustedRoot } from '../../core/trust/root.ts';
import type { UpdateInfo } from '../../core/spec.ts';

/** The limit for an idle check, in response bytes. */
const IDLE_LIMIT = 600;

/**
 * Dates every file of the repository a minute back, as if published a while ago: nginx derives
 * ETags from whole-second mtimes, and the transport keeps no ETag minted within 2 s of the file's
 * change (plugins/http/etag-cache.ts keepableEtag), so a check right after publishing would be
 * unconditional by design.
 */
async function agePublished(dir: string): Promise<void> {
  const past = new Date(Date.now() - 60_000);
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    await utimes(join(entry.parentPath, entry.name), past, past);
  }
}

if (!nginxPath) {
  console.log('SKIP: nginx is not on PATH (apt-get install -y nginx); the idle-check tests are not registered');
} else {
  interface Ctx {
    tmp: TempDir;
    repo: TestRepo;
    nginx: NginxOrigin;
    counter: ByteCounter;
    device: TestDevice;
  }
  const s = suite<Ctx>('issue 13 item 14: idle checks against nginx', {} as Ctx);

  /** One `checkUpdate` through the device's own sources, and what it put on the wire. */
  async function check(ctx: Ctx): Promise<{ info: UpdateInfo; exchanges: WireExchange[]; sent: number; received: number }> {
    ctx.counter.reset();
    const info = await withDevice(ctx.device.home, (u) => u.checkUpdate());
    const exchanges = ctx.counter.conversations.flatMap(exchangesOf);
    return { info, exchanges, sent: ctx.counter.sent, received: ctx.counter.received };
  }

  const show = (exchanges: WireExchange[]) => exchanges.map((e) => `${e.request.method} ${e.request.path} -> ${e.response?.status ?? 'none'}`).join(', ');

  s.before(async (ctx) => {
    ctx.tmp = await tempDir('ferry-idle-');
    ctx.repo = await makeRepo();
    await ctx.repo.release('1.0.0', sampleApp('1.0.0'));
    await agePublished(ctx.repo.repo);
    ctx.nginx = await startNginx(ctx.repo.repo, ctx.tmp.path);
    ctx.counter = await startByteCounter(ctx.nginx.port);
    ctx.device = await makeDevice({ trust: await ctx.repo.trust(), sources: [ctx.counter.url] });
    const r = await withDevice(ctx.device.home, (u) => u.apply());
    assert.is(r.status, 'committed');
  });

  s.after(async (ctx) => {
    try {
      await ctx.counter?.close();
      await ctx.nginx?.stop();
    } finally {
      await ctx.device?.cleanup();
      await ctx.repo?.cleanup();
      await ctx.tmp?.cleanup();
    }
  });

  s('issue 13 item 14: the first check after an update sends If-None-Match for the pointer (ETag kept from the update)', async (ctx) => {
    const { info, exchanges } = await check(ctx);
    assert.is(info.updateAvailable, false);
    const pointer = exchanges.filter((e) => e.request.path === '/channels/stable.json');
    assert.is(pointer.length, 1, show(exchanges));
    assert.ok(pointer[0]!.request.headers.get('if-none-match'), `the pointer was asked unconditionally: ${show(exchanges)}`);
    assert.is(pointer[0]!.response?.status, 304);
  });

  s('issue 13 item 14: an idle check against nginx is conditional requests only, never fetches a cached manifest, under 600 bytes', async (ctx) => {
    const { info, exchanges, sent, received } = await check(ctx);
    assert.is(info.updateAvailable, false);
    assert.is(info.currentVersion, '1.0.0');
    const paths = exchanges.map((e) => e.request.path);
    assert.not.ok(paths.some((p) => p.startsWith('/releases/')), `a manifest the device holds was asked for: ${show(exchanges)}`);
    // The root probe (a rotation must be seen) and the security channel are still asked every time.
    assert.ok(paths.includes('/root/2.json'), show(exchanges));
    assert.ok(paths.includes('/channels/security.json'), show(exchanges));
    for (const e of exchanges) {
      const what = `${e.request.method} ${e.request.path}`;
      // Conditional requests only: a HEAD probe of what was absent, or a GET with If-None-Match.
      assert.ok(e.request.method === 'HEAD' || e.request.headers.has('if-none-match'), `${what} is not conditional`);
      if (e.request.method === 'HEAD') assert.equal([...e.request.headers.keys()].sort(), ['connection', 'host'], `${what} carries more than Host`);
      assert.ok(e.response && (e.response.status === 304 || e.response.status === 404), `${what} -> ${e.response?.status}`);
      assert.is(e.response!.body, 0, `${what} was answered with a body`);
    }
    console.log(`  idle check: ${exchanges.length} requests (${show(exchanges)}); ${received} response bytes, ${sent} request bytes, ${sent + received} both ways`);
    assert.ok(received < IDLE_LIMIT, `an idle check received ${received} bytes, the limit is ${IDLE_LIMIT}`);
  });

  s('a security channel that appears after idle checks is seen at the next check', async (ctx) => {
    await ctx.repo.release('1.0.1', sampleApp('1.0.1'), { channel: 'security', securityFix: true });
    await agePublished(ctx.repo.repo);
    const { info, exchanges } = await check(ctx);
    assert.is(info.updateAvailable, true, show(exchanges));
    assert.is(info.latestVersion, '1.0.1');
    const security = exchanges.filter((e) => e.request.path === '/channels/security.json').map((e) => `${e.request.method} ${e.response?.status}`);
    assert.equal(security, ['HEAD 200', 'GET 200']);
  });

  s('a root rotation published after idle checks is seen at the next check', async (ctx) => {
    await rotateRoot({ repo: ctx.repo.repo, signers: [ctx.repo.rootKey], now: new Date() });
    await agePublished(ctx.repo.repo);
    const { exchanges } = await check(ctx);
    const root = verifyTrustedRoot(await readFile(ctx.device.layout.trustRoot), 'trust/root.json');
    assert.is(root.version, 2, show(exchanges));
  });

  s.run();
}
