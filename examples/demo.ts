// The end-to-end demo behind `npm run demo`: ferry's main job on this machine, with the real
// `ferry` command, in a temporary folder, talking only to 127.0.0.1. Each step prints the command
// it runs, so the output doubles as a tutorial. `npm run demo -- --keep` keeps the folder.
//
//   publisher: keys, a repository, three releases (the second as a delta, the third broken)
//   origin:    `ferry serve` over HTTP on loopback
//   device A:  runs the app under `ferry run`, answering requests, and updates with zero downtime
//   device B:  air-gapped, updates from a bundle dropped on a "USB stick" folder
//   device C:  installs 1.0.0 from the origin, then takes the 1.1.0 delta from its LAN peer A
//              (`ferry share`), the origin serving signed metadata only
//   then the broken release is rolled back on its own;
//   ferry itself: device A's agent, run from ferry's own self home through the launcher script,
//              adopts the running `ferry run`, updates ITSELF to ferry 1.1.0 and confirms, the
//              app serving throughout; then restore points are cleaned and history shown.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import { mkdtemp, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pseudoRandomBytes, writeTree, type TreeSpec } from '../test/helpers/repo.ts';
import { EXAMPLE_APP_SERVER, exampleAppTree } from '../test/helpers/example-app.ts';
import { freePort } from '../test/helpers/net.ts';
import { baseSelfTree, makeVariant } from '../test/helpers/self-home.ts';
import type { UpdateRecord } from '../core/spec.ts';

const FERRY = fileURLToPath(new URL('../dist/cli/ferry.js', import.meta.url));
const keep = process.argv.includes('--keep');
const work = await mkdtemp(join(tmpdir(), 'ferry-demo-'));
const children: ChildProcess[] = [];

/** Runs one ferry command to its end. Asynchronous, so the load on device A keeps flowing meanwhile. */
async function ferry(args: string[], expectExit = 0): Promise<string> {
  process.stdout.write(`\n$ ferry ${args.join(' ')}\n`);
  const child = spawn(process.execPath, [FERRY, ...args], { cwd: work, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => { out += d; });
  child.stderr!.on('data', (d: Buffer) => { err += d; });
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
  clearTimeout(timer);
  process.stdout.write(out);
  process.stderr.write(err);
  if (code !== expectExit) throw new Error(`ferry ${args[0]} exited ${code}, expected ${expectExit}`);
  return out;
}

/** Waits until the app answers on its port (ferry run refuses connections until the first version listens). */
async function answering(url: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      http.get(url, { agent: false }, (res) => { res.resume(); resolve(res.statusCode === 200); }).on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} did not answer`);
}

/** Starts a long-running ferry command; resolves once it printed `ready` on stdout. */
async function ferryInBackground(args: string[], ready: RegExp): Promise<{ child: ChildProcess; line: string }> {
  process.stdout.write(`\n$ ferry ${args.join(' ')} &\n`);
  const child = spawn(process.execPath, [FERRY, ...args], { cwd: work, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  child.stderr!.on('data', (d: Buffer) => process.stderr.write(`  [${args[0]}] ${d}`));
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`ferry ${args[0]} did not start: ${out}`)), 30_000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d;
      const line = out.split('\n').find((l) => ready.test(l));
      if (line) {
        clearTimeout(timer);
        process.stdout.write(`${line}\n`);
        resolve({ child, line });
      }
    });
    child.on('exit', (code) => reject(new Error(`ferry ${args[0]} exited ${code}: ${out}`)));
  });
}

/** The example app (examples/app/server.js) at a version; `healthy: false` answers /healthz with 500. */
function appVersion(version: string, healthy = true): TreeSpec {
  const server = healthy ? EXAMPLE_APP_SERVER : EXAMPLE_APP_SERVER.replace('const HEALTHZ_STATUS = 200;', 'const HEALTHZ_STATUS = 500;');
  return {
    ...exampleAppTree(version, { server, name: 'demo-app' }),
    'assets/logo.txt': 'ferry\n',
    // A "binary" that changes a little between versions, so the delta is small and the full is not.
    'assets/engine.bin': patchedBinary(version),
  };
}

function patchedBinary(version: string): Buffer {
  const bytes = pseudoRandomBytes(400_000, 7);
  const minor = Number(version.split('.')[1] ?? 0);
  for (let i = 0; i < minor; i++) bytes.writeUInt32LE(0xfe77e000 + i, 4096 * (i + 1));
  return bytes;
}

/**
 * A bounded load on the app: keep-alive requests until stopped (at most 240 s or 5M requests; it
 * spans steps 3 to 8, and `capped` says when a bound, not the demo, stopped it).
 */
function startLoad(url: string) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  const counts = { ok: 0, failed: 0, capped: false, versions: new Map<string, number>(), why: new Map<string, number>() };
  const fail = (why: string) => { counts.failed++; counts.why.set(why, (counts.why.get(why) ?? 0) + 1); };
  let stopped = false;
  const deadline = Date.now() + 240_000;
  const loop = async () => {
    while (!stopped) {
      if (Date.now() >= deadline || counts.ok + counts.failed >= 5_000_000) {
        counts.capped = true;
        return;
      }
      await new Promise<void>((resolve) => {
        const req = http.get(url, { agent }, (res) => {
          let body = '';
          res.on('data', (d: Buffer) => { body += d; });
          res.on('end', () => {
            if (res.statusCode === 200) {
              counts.ok++;
              const v = body.trim();
              counts.versions.set(v, (counts.versions.get(v) ?? 0) + 1);
            } else fail(`HTTP ${res.statusCode}`);
            resolve();
          });
        });
        req.on('error', (err: NodeJS.ErrnoException) => { fail(err.code ?? err.message); resolve(); });
      });
    }
  };
  const loops = Promise.all([loop(), loop(), loop(), loop()]);
  return {
    counts,
    async stop() {
      stopped = true;
      await loops;
      agent.destroy();
      return counts;
    },
  };
}

/**
 * Starts `sh <launcher> <args>` (ferry's own launcher script) in its own process group; prints the
 * keeper's lines and the agent's events worth seeing, and remembers every event.
 */
function startLauncher(launcher: string, args: string[]): { child: ChildProcess; events: { event: string; [k: string]: unknown }[] } {
  process.stdout.write(`\n$ sh ${launcher} ${args.join(' ')} &\n`);
  const child = spawn('sh', [launcher, ...args], { cwd: work, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  children.push(child);
  const events: { event: string; [k: string]: unknown }[] = [];
  const shown = new Set(['self', 'app', 'self-update', 'self-confirmed', 'self-error', 'stopped']);
  let partial = '';
  child.stdout!.on('data', (d: Buffer) => {
    const lines = (partial + d.toString()).split('\n');
    partial = lines.pop()!;
    for (const line of lines) {
      if (!line.startsWith('{')) continue;
      const e = JSON.parse(line) as { event: string };
      events.push(e);
      if (shown.has(e.event)) process.stdout.write(`  [agent] ${line}\n`);
    }
  });
  child.stderr!.on('data', (d: Buffer) => {
    for (const line of d.toString().split('\n')) if (line.startsWith('ferry self:')) process.stdout.write(`  [launcher] ${line}\n`);
  });
  return { child, events };
}

/** Waits (bounded) until `probe` is true. */
async function until(probe: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await probe()) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${what} did not happen within ${timeoutMs / 1000} s`);
}

/** Sends SIGTERM to a background child and waits (bounded) for it to exit. */
async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || !child.pid) return;
  child.kill('SIGTERM');
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => { child.kill('SIGKILL'); resolve(); }, 20_000);
    child.once('exit', () => { clearTimeout(timer); resolve(); });
  });
}

function history(home: string): UpdateRecord[] {
  const r = spawnSync(process.execPath, [FERRY, 'history', '--home', home, '--json'], { cwd: work, encoding: 'utf8' });
  return JSON.parse(r.stdout) as UpdateRecord[];
}

const target = ['--platform', 'linux', '--arch', 'x64'];
const started = Date.now();
try {
  console.log(`ferry demo in ${work}`);

  console.log('\n# 1. The publisher makes a root key (kept offline), a release key and a repository, and publishes 1.0.0.');
  await ferry(['keygen', '--out', 'keys/root']);
  await ferry(['keygen', '--out', 'keys/release']);
  await ferry(['repo', 'init', 'repo', '--app', 'demo-app', '--root-key', 'keys/root.key', '--release-key', 'keys/release.pub']);
  await writeTree(join(work, 'app-1.0.0'), appVersion('1.0.0'));
  await ferry(['release', 'app-1.0.0', '--repo', 'repo', '--version', '1.0.0', '--key', 'keys/release.key', '--notes', 'first release', ...target]);

  console.log('\n# 2. The repository is plain static files; `ferry serve` puts it on HTTP (nginx or a CDN would do too).');
  const originPort = await freePort();
  await ferryInBackground(['serve', 'repo', '--port', String(originPort)], /serving/);
  const origin = `http://127.0.0.1:${originPort}`;

  console.log('\n# 3. Devices A and C trust root.json and install 1.0.0 from the origin; C will look for LAN peers first.');
  const sharePort = await freePort();
  await ferry(['init', 'device-a', '--trust', 'repo/root.json', '--source', origin, ...target]);
  await ferry(['update', '--home', 'device-a']);
  await ferry(['init', 'device-c', '--trust', 'repo/root.json', '--source', `lan:127.0.0.1:${sharePort}`, '--source', origin, ...target]);
  await ferry(['update', '--home', 'device-c']);

  console.log('\n   Device A runs the app under `ferry run`; from here on it answers a steady stream of requests.');
  const appPort = await freePort();
  await ferryInBackground(['run', '--home', 'device-a', '--listen', `127.0.0.1:${appPort}`, '--health', '/healthz', '--ready-timeout', '5s', '--drain-timeout', '5s', '--', process.execPath, 'server.js'], /supervising/);
  await answering(`http://127.0.0.1:${appPort}/`);
  const load = startLoad(`http://127.0.0.1:${appPort}/`);

  console.log('\n# 4. Version 1.1.0 is published (a small delta) and device A updates while it serves requests.');
  await writeTree(join(work, 'app-1.1.0'), appVersion('1.1.0'));
  await ferry(['release', 'app-1.1.0', '--repo', 'repo', '--version', '1.1.0', '--key', 'keys/release.key', '--notes', 'faster engine', ...target]);
  await ferry(['check', '--home', 'device-a']);
  await ferry(['update', '--home', 'device-a']);

  console.log('\n# 5. Device B is air-gapped: a bundle is dropped on its "USB stick" and it installs from that alone.');
  await ferry(['bundle', '--repo', 'repo', '--version', '1.1.0', '--out', 'stick/update-1.1.0.ferry', ...target]);
  await ferry(['init', 'device-b', '--trust', 'repo/root.json', '--source', 'usb:stick', ...target]);
  await ferry(['update', '--home', 'device-b']);

  console.log('\n# 6. Device A shares its verified cache on the LAN; device C takes the 1.1.0 delta from it, the origin serving only signed metadata.');
  await ferryInBackground(['share', '--home', 'device-a', '--host', '127.0.0.1', '--port', String(sharePort), '--no-announce'], /sharing/);
  await ferry(['update', '--home', 'device-c']);

  console.log('\n# 7. A broken 1.2.0 (its /healthz answers 500) never takes over: ferry run keeps 1.1.0 serving and the update is rolled back.');
  await writeTree(join(work, 'app-1.2.0'), appVersion('1.2.0', false));
  await ferry(['release', 'app-1.2.0', '--repo', 'repo', '--version', '1.2.0', '--key', 'keys/release.key', ...target]);
  await ferry(['update', '--home', 'device-a'], 10);
  console.log(`device-a/current -> ${await readlink(join(work, 'device-a', 'current'))}`);

  console.log('\n# 8. ferry updates ITSELF while device A keeps serving. ferry\'s own installation is a home like any other');
  console.log('   (releases of ferry, `current`), run by a launcher script that never changes. The agent it starts adopts');
  console.log('   device A\'s running `ferry run`; when ferry 1.1.0 is published it stages it, switches, restarts into it');
  console.log('   through the launcher, and 1.1.0 confirms itself (a version that never confirms is rolled back).');
  const step8 = Date.now();
  const tree = await baseSelfTree();
  console.log(`   ferry's release trees: this checkout's dist/ and production node_modules, the tree \`ferry release --self\` builds (${tree.how}, ${(tree.ms / 1000).toFixed(1)} s; --self runs npm ci instead).`);
  for (const v of ['1.0.0', '1.1.0']) await makeVariant(join(work, 'ferry-tree'), v, { plain: true });
  await ferry(['repo', 'init', 'ferry-repo', '--app', 'ferry', '--root-key', 'keys/root.key', '--release-key', 'keys/release.pub']);
  await ferry(['release', 'ferry-tree/1.0.0', '--repo', 'ferry-repo', '--version', '1.0.0', '--key', 'keys/release.key']);
  await ferry(['init', 'ferry-home', '--trust', 'ferry-repo/root.json', '--source', 'ferry-repo']);
  await ferry(['update', '--home', 'ferry-home']);
  await ferry(['self', 'launcher', '--home', 'ferry-home', '--out', 'ferry-agent.sh']);
  // The agent checks every 2 s here; device A's app updates stay in the hands of the commands above
  // (autoUpdate off), so the agent's rounds only update ferry itself.
  const configPath = join(work, 'device-a', 'ferry.json');
  const config = JSON.parse(await readFile(configPath, 'utf8')) as { policy: Record<string, unknown> };
  await writeFile(configPath, JSON.stringify({ ...config, policy: { ...config.policy, checkInterval: 2, autoUpdate: false } }, null, 2) + '\n');
  console.log('\n   (device-a/ferry.json: policy.checkInterval 2, policy.autoUpdate false)');
  const agent = startLauncher('ferry-agent.sh', ['agent', '--home', 'device-a', '--log-format', 'json', '--listen', `127.0.0.1:${appPort}`, '--health', '/healthz', '--', process.execPath, 'server.js']);
  await until(async () => agent.events.some((e) => e.event === 'app'), 30_000, 'the agent adopting ferry run');
  const selfStart = Date.now();
  const before = { ok: load.counts.ok, failed: load.counts.failed };
  // A full artifact only: the devices above showed deltas, and a bsdiff of a whole ferry tree
  // (7 MB compressed) costs seconds to make and more to apply (test/crash/self-update.test.ts
  // updates ferry by delta).
  await ferry(['release', 'ferry-tree/1.1.0', '--repo', 'ferry-repo', '--version', '1.1.0', '--key', 'keys/release.key', '--deltas', '0']);
  await until(async () => agent.events.some((e) => e.event === 'self-confirmed' && e.version === '1.1.0'), 90_000, 'ferry 1.1.0 confirming itself');
  const selfMs = Date.now() - selfStart;
  const during = { ok: load.counts.ok - before.ok, failed: load.counts.failed - before.failed };

  const counts = await load.stop();
  // The agent stops its adopted `ferry run` with it: the app is done serving. Stopped before the
  // commands below, which open ferry-home's store (the agent's rounds open it too).
  await stopChild(agent.child);
  await ferry(['self', 'status', '--home', 'ferry-home']);
  await ferry(['history', '--home', 'ferry-home']);
  const running = spawnSync(process.execPath, [join(work, 'ferry-home', 'current', 'dist', 'cli', 'ferry.js'), '--version'], { encoding: 'utf8' }).stdout.trim();
  console.log(`ferry-home/current -> ${await readlink(join(work, 'ferry-home', 'current'))}; it says it is ferry ${running}`);
  console.log(`ferry updated itself in ${(selfMs / 1000).toFixed(1)} s from publishing 1.1.0; requests to device A meanwhile: ${during.ok} answered, ${during.failed} failed (step 8 took ${((Date.now() - step8) / 1000).toFixed(1)} s)`);
  if (counts.capped) console.log('(the load reached its bound before the demo stopped it: the figures cover less than all of this)');
  console.log(`\nrequests to device A during all of this: ${counts.ok} answered, ${counts.failed} failed${counts.failed ? ` (${[...counts.why].map(([w, n]) => `${w} x${n}`).join(', ')})` : ''}; versions seen: ${[...counts.versions].map(([v, n]) => `${v} x${n}`).join(', ')}`);

  console.log('\n# 9. Restore points are cleaned up, and the history says what happened on each device');
  console.log('   (device A\'s 1.2.0 "in-progress": its agent staged it again, where it waits for a manual `ferry apply`, autoUpdate being off).');
  await ferry(['restore-points', 'cleanup', '--keep', '1', '--home', 'device-a']);
  for (const d of ['device-a', 'device-b', 'device-c']) await ferry(['history', '--home', d]);
  console.log('\nbytes each device moved:');
  for (const d of ['device-a', 'device-b', 'device-c']) {
    const records = history(d);
    const bytes = records.reduce((n, r) => n + r.bytesMoved, 0);
    console.log(`  ${d}: ${bytes.toLocaleString('en')} bytes over ${records.length} attempt(s), from ${[...new Set(records.map((r) => r.source))].join(', ')}`);
  }
  console.log(`\ndemo finished in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  if (counts.failed > 0) process.exitCode = 1;
} finally {
  for (const child of children.reverse()) {
    if (child.exitCode === null && child.pid) {
      child.kill('SIGTERM');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => { child.kill('SIGKILL'); resolve(); }, 10_000);
        child.once('exit', () => { clearTimeout(timer); resolve(); });
      });
    }
  }
  if (keep) console.log(`kept ${work}`);
  else await rm(work, { recursive: true, force: true });
}
