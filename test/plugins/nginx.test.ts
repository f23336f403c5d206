// A repository needs nothing from its origin but static files: a device updates 1.0.0 → 1.1.0
// through the HTTP transport from a stock nginx (its own ETags, Range and 404s). nginx runs as a
// child process this test owns (own config, prefix and pid file in a temp folder; never the system
// service) and is stopped by its own pid. Without nginx on PATH the file registers no test.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeRepo, sampleApp, tempDir, type TempDir, type TestRepo } from '../helpers/repo.ts';
import { assertInstalled, makeDevice, type TestDevice } from '../helpers/device.ts';
import { Updater } from '../../core/update/updater.ts';
import { createBsdiffPatcher } from '../../plugins/bsdiff/patcher.ts';
import { createHttpTransport } from '../../plugins/http/transport.ts';
import { freePort } from '../helpers/net.ts';

const nginxPath = spawnSync('sh', ['-c', 'command -v nginx'], { encoding: 'utf8' }).stdout.trim();


function status(url: string): Promise<number> {
  return new Promise((resolve) => {
    const req = http.get(url, { agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.setTimeout(1000, () => req.destroy());
    req.on('error', () => resolve(0));
  });
}

/** Stops nginx by its own pid: SIGQUIT (graceful), SIGKILL after 5 s. */
async function stopNginx(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGQUIT');
  let timer: NodeJS.Timeout | undefined;
  const killed = new Promise<'timeout'>((resolve) => { timer = setTimeout(() => resolve('timeout'), 5000); });
  if ((await Promise.race([exited, killed])) === 'timeout') {
    child.kill('SIGKILL');
    await exited;
  }
  clearTimeout(timer);
}

if (!nginxPath) {
  console.log('SKIP: nginx is not on PATH (apt-get install -y nginx); the nginx origin test is not registered');
} else {
  interface Ctx {
    tmp: TempDir;
    repo: TestRepo;
    device: TestDevice;
    nginx: ChildProcess;
    url: string;
    log: string;
  }
  const s = suite<Ctx>('a device updates from a stock nginx serving the repository folder', {} as Ctx);

  s.before(async (ctx) => {
    ctx.tmp = await tempDir('ferry-nginx-');
    ctx.repo = await makeRepo();
    const port = await freePort();
    const t = ctx.tmp.path;
    // As root the workers would switch to "nobody", who cannot enter the 0700 temp folders.
    const user = process.getuid?.() === 0 ? 'user root;\n' : '';
    const conf = `${user}daemon off;
master_process on;
worker_processes 1;
pid ${t}/nginx.pid;
error_log ${t}/error.log;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path ${t}/body;
  proxy_temp_path ${t}/proxy;
  fastcgi_temp_path ${t}/fastcgi;
  uwsgi_temp_path ${t}/uwsgi;
  scgi_temp_path ${t}/scgi;
  server { listen 127.0.0.1:${port}; root ${ctx.repo.repo}; }
}
`;
    await writeFile(join(t, 'nginx.conf'), conf);
    ctx.log = '';
    ctx.nginx = spawn(nginxPath, ['-e', join(t, 'error.log'), '-p', t, '-c', join(t, 'nginx.conf')], { stdio: ['ignore', 'pipe', 'pipe'] });
    ctx.nginx.stdout!.on('data', (d) => { ctx.log += d; });
    ctx.nginx.stderr!.on('data', (d) => { ctx.log += d; });
    ctx.url = `http://127.0.0.1:${port}/`;
    // Wait (bounded) until it answers: root.json is there from makeRepo.
    for (let i = 0; i < 50; i++) {
      if ((await status(`${ctx.url}root.json`)) === 200) break;
      if (ctx.nginx.exitCode !== null) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    if ((await status(`${ctx.url}root.json`)) !== 200) {
      await stopNginx(ctx.nginx);
      throw new Error(`nginx did not come up on ${ctx.url}: ${ctx.log}`);
    }
    ctx.device = await makeDevice({ trust: await ctx.repo.trust(), sources: [ctx.url] });
  });

  s.after(async (ctx) => {
    try {
      if (ctx.nginx) await stopNginx(ctx.nginx);
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
