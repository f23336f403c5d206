// A repository needs nothing from its origin but static files: a device updates 1.0.0 → 1.1.0
// through the HTTP transport from a stock nginx (its own ETags, Range and 404s). nginx runs as a
// child process this test owns (own config, prefix and pid file in a temp folder; never the system
// service) and is stopped by its own pid. Without nginx on PATH the file registers no test.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { makeRepo, sampleApp, tempDir, type TempDir, type TestRepo } from '../helpers/repo.ts';
import { assertInstalled, makeDevice, type TestDevice } from '../helpers/device.ts';
import { nginxPath, startNginx, type NginxOrigin } from '../helpers/nginx-origin.ts';
import { Updater } from '../../core/update/updater.ts';
import { createBsdiffPatcher } from '../../plugins/bsdiff/patcher.ts';
import { createHttpTransport } from '../../plugins/http/transport.ts';

if (!nginxPath) {
  console.log('SKIP: nginx is not on PATH (apt-get install -y nginx); the nginx origin test is not registered');
} else {
  interface Ctx {
    tmp: TempDir;
    repo: TestRepo;
    device: TestDevice;
    nginx: NginxOrigin;
    url: string;
  }
  const s = suite<Ctx>('a device updates from a stock nginx serving the repository folder', {} as Ctx);

  s.before(async (ctx) => {
    ctx.tmp = await tempDir('ferry-nginx-');
    ctx.repo = await makeRepo();
    const prefix = join(ctx.tmp.path, 'nginx');
    await mkdir(prefix);
    ctx.nginx = await startNginx(ctx.repo.repo, prefix);
    ctx.url = ctx.nginx.url;
    ctx.device = await makeDevice({ trust: await ctx.repo.trust(), sources: [ctx.url] });
  });

  s.after(async (ctx) => {
    try {
      if (ctx.nginx) await ctx.nginx.stop();
    } finally {
      await ctx.device?.cleanup();
      await ctx.repo?.cleanup();
      await ctx.tmp?.cleanup();
    }
  });

  s('1.0.0 in full, then 1.1.0 as a delta, through createHttpTransport; then a conditional idle check', async (ctx) => {
    const cache = join(ctx.tmp.path, 'http-cache');
    const source = createHttpTransport({ url: ctx.url, cacheDir: cache });
    const run = async <T>(fn: (u: Updater) => Promise<T>) => {
      const u = await Updater.open({ home: ctx.device.home, sources: [source], patcher: createBsdiffPatcher(), health: null });
      try {
        return await fn(u);
      } finally {
        await u.close();
      }
    };
    try {
      const r1 = await ctx.repo.release('1.0.0', sampleApp('1.0.0'));
      const first = await run((u) => u.apply());
      assert.is(first.status, 'committed');
      await assertInstalled(ctx.device, r1.manifest);
      const r2 = await ctx.repo.release('1.1.0', sampleApp('1.1.0'));
      const second = await run((u) => u.apply());
      assert.is(second.status, 'committed');
      if (second.status === 'committed') {
        assert.is(second.record.kind, 'delta');
        assert.is(second.record.source, source.name);
      }
      await assertInstalled(ctx.device, r2.manifest);
      const idle = await run((u) => u.checkUpdate());
      assert.is(idle.updateAvailable, false);
      assert.is(idle.currentVersion, '1.1.0');
    } finally {
      source.close();
    }
  });

  s.run();
}
