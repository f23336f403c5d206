// SECURITY.md row 21, new release unhealthy: the real health checks (plugins/health) against a new
// release that answers 500, hangs, exits 1 or sleeps forever. The release itself decides how it
// behaves (a health.json the test server reads from `current`, a health.sh the command runs), so
// the same check that commits a healthy 1.0.0 must roll 1.1.0 back within its deadline: current
// back on 1.0.0 with every file as signed, a 'rolled-back' ERR_UNHEALTHY record saying why, and
// no process of the health command left behind.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createServer, type Server } from 'node:http';
import { readdirSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { randomInt } from 'node:crypto';
import { createHttpHealthCheck } from '../../plugins/health/http.ts';
import { createCommandHealthCheck } from '../../plugins/health/command.ts';
import type { HealthCheck } from '../../core/ports/health.ts';
import type { ManifestDoc } from '../../core/trust/metadata.ts';
import { assertInstalled, makeDevice, type TestDevice } from '../helpers/device.ts';
import { makeRepo, sampleApp, type TestRepo, type TreeSpec } from '../helpers/repo.ts';

interface Behaviour {
  /** What the release's HTTP endpoint does. */
  http: { status: number } | 'hang';
  /** The release's health.sh. */
  script: string;
}

function releaseTree(version: string, b: Behaviour): TreeSpec {
  return {
    ...sampleApp(version),
    'health.json': JSON.stringify(b.http) + '\n',
    'health.sh': { content: `#!/bin/sh\n${b.script}\n`, mode: 0o755 },
  };
}

const HEALTHY: Behaviour = { http: { status: 200 }, script: 'exit 0' };

/** A server on 127.0.0.1 that answers as `current/health.json` says: the running release controls it. */
async function releaseServer(currentDir: string): Promise<{ url: string; requests: () => number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  let requests = 0;
  const server: Server = createServer((req, res) => {
    requests++;
    let b: Behaviour['http'];
    try {
      b = JSON.parse(readFileSync(join(currentDir, 'health.json'), 'utf8')) as Behaviour['http'];
    } catch {
      b = { status: 503 };
    }
    if (b === 'hang') return; // accepted, never answered
    res.statusCode = b.status;
    res.end(`status ${b.status}\n`);
  });
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  if (!addr || typeof addr === 'string') throw new Error('test setup: no port');
  return {
    url: `http://127.0.0.1:${addr.port}/healthz`,
    requests: () => requests,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Wraps a check to time each call. */
function timed(inner: HealthCheck): HealthCheck & { durations: number[] } {
  const durations: number[] = [];
  return {
    durations,
    async check(target) {
      const t0 = performance.now();
      try {
        return await inner.check(target);
      } finally {
        durations.push(performance.now() - t0);
      }
    },
  };
}

/** Every process whose command line holds `marker` as one argument. */
function processesWith(marker: string): number[] {
  const found: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const args = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0');
      if (args.includes(marker)) found.push(Number(name));
    } catch { /* gone meanwhile */ }
  }
  return found;
}

interface Scene {
  repo: TestRepo;
  device: TestDevice;
  r1: ManifestDoc;
}

/** 1.0.0 (healthy) installed through `health`: the same check commits a healthy release. */
async function installHealthy(health: HealthCheck): Promise<Scene> {
  const repo = await makeRepo();
  const device = await makeDevice({ trust: await repo.trust(), sources: [repo.repo] });
  const r1 = await repo.release('1.0.0', releaseTree('1.0.0', HEALTHY));
  const first = await device.with((u) => u.apply(), { health });
  assert.is(first.status, 'committed', `the healthy 1.0.0 commits through the same check: ${JSON.stringify(first)}`);
  return { repo, device, r1: r1.manifest };
}

/** Publishes an unhealthy 1.1.0, applies it through `health`, and checks the rollback. */
async function expectRollback(s: Scene, b: Behaviour, health: HealthCheck & { durations: number[] }, why: RegExp, deadlineMs: number): Promise<void> {
  await s.repo.release('1.1.0', releaseTree('1.1.0', b));
  await s.device.with(async (u) => {
    const result = await u.apply();
    assert.is(result.status, 'rolled-back', `rolled back, got ${JSON.stringify(result)}`);
    const record = (await u.history()).find((h) => h.to === '1.1.0');
    assert.ok(record, 'a history record for 1.1.0');
    assert.is(record!.outcome, 'rolled-back');
    assert.is(record!.errorCode, 'ERR_UNHEALTHY');
    assert.is(record!.from, '1.0.0');
    assert.ok(record!.finishedAt, 'the record is finished');
    assert.match(record!.message ?? '', why, `the record says why: ${record!.message}`);
    assert.is((await u.status()).phase, 'idle');
  }, { health });
  const took = health.durations[health.durations.length - 1] ?? Infinity;
  assert.ok(took <= deadlineMs, `the check settled in ${took.toFixed(0)} ms (bound ${deadlineMs} ms)`);
  await assertInstalled(s.device, s.r1);
  // The failed release is kept aside, not current, and its own tree is still the signed one.
  assert.ok((await s.device.releases()).includes('1.1.0'));
  assert.is(JSON.parse(await readFile(join(s.device.layout.current, 'health.json'), 'utf8')).status, 200);
}

async function done(s: Scene | undefined): Promise<void> {
  if (!s) return;
  await s.device.cleanup();
  await s.repo.cleanup();
}

// ---------------------------------------------------------------------------------------------

const http = suite('row 21 new release unhealthy (HTTP check): a 500 or a hang is rolled back within the deadline');

http('the new release answers 500: rolled back within timeoutMs, record says "answered 500"', async () => {
  let s: Scene | undefined;
  let server: Awaited<ReturnType<typeof releaseServer>> | undefined;
  try {
    const repo = await makeRepo();
    const device = await makeDevice({ trust: await repo.trust(), sources: [repo.repo] });
    server = await releaseServer(device.layout.current);
    const timeoutMs = 1500;
    const health = timed(createHttpHealthCheck(server.url, timeoutMs, 100));
    const r1 = await repo.release('1.0.0', releaseTree('1.0.0', HEALTHY));
    assert.is((await device.with((u) => u.apply(), { health })).status, 'committed', 'healthy 1.0.0 commits');
    s = { repo, device, r1: r1.manifest };
    const before = server.requests();
    await expectRollback(s, { ...HEALTHY, http: { status: 500 } }, health, /answered 500/, timeoutMs + 500);
    assert.ok(server.requests() - before >= 2, `the check polled the new release (${server.requests() - before} requests)`);
  } finally {
    await server?.close();
    await done(s);
  }
});

http('the new release accepts and never answers: rolled back within timeoutMs + 500 ms', async () => {
  let s: Scene | undefined;
  let server: Awaited<ReturnType<typeof releaseServer>> | undefined;
  try {
    const repo = await makeRepo();
    const device = await makeDevice({ trust: await repo.trust(), sources: [repo.repo] });
    server = await releaseServer(device.layout.current);
    const timeoutMs = 1500;
    const health = timed(createHttpHealthCheck(server.url, timeoutMs, 100));
    const r1 = await repo.release('1.0.0', releaseTree('1.0.0', HEALTHY));
    assert.is((await device.with((u) => u.apply(), { health })).status, 'committed', 'healthy 1.0.0 commits');
    s = { repo, device, r1: r1.manifest };
    await expectRollback(s, { ...HEALTHY, http: 'hang' }, health, /not healthy within 1500 ms/, timeoutMs + 500);
    assert.ok((health.durations[health.durations.length - 1] ?? 0) >= timeoutMs - 50, 'it waited for the deadline, not less');
  } finally {
    await server?.close();
    await done(s);
  }
});

http.run();

// ---------------------------------------------------------------------------------------------

const command = suite('row 21 new release unhealthy (command check): exit 1 or a hang is rolled back, the hung process killed');

command('the new release\'s health.sh exits 1: rolled back, record says "exited 1"', async () => {
  let s: Scene | undefined;
  try {
    const health = timed(createCommandHealthCheck(['sh', 'health.sh'], 3000));
    s = await installHealthy(health);
    await expectRollback(s, { ...HEALTHY, script: 'echo "db migration missing" >&2\nexit 1' }, health, /exited 1.*db migration missing/, 3000);
  } finally {
    await done(s);
  }
});

command('the new release\'s health.sh sleeps 60 s: killed at the deadline (no sleep left), rolled back', async () => {
  let s: Scene | undefined;
  // sleep takes fractional seconds: a unique argument marks this test's sleep in /proc/*/cmdline.
  const marker = `60.${randomInt(1e9).toString().padStart(9, '0')}1`;
  try {
    const timeoutMs = 1000;
    const inner = createCommandHealthCheck(['sh', 'health.sh'], timeoutMs);
    let seenRunning: number[] = [];
    const health = timed({
      async check(target) {
        // Half-way to the deadline the sleep must be running (so the scan below can see it).
        const probe = setTimeout(() => { seenRunning = processesWith(marker); }, timeoutMs / 2);
        try {
          return await inner.check(target);
        } finally {
          clearTimeout(probe);
        }
      },
    });
    s = await installHealthy(health);
    await expectRollback(s, { ...HEALTHY, script: `sleep ${marker}\nexit 0` }, health, new RegExp(`did not finish within ${timeoutMs} ms`), timeoutMs + 500);
    assert.ok(seenRunning.length > 0, 'the health command\'s sleep was running before the deadline');
    // SIGKILL is delivered at once; give the kernel a moment to tear the process down.
    const until = Date.now() + 1000;
    let left = processesWith(marker);
    while (left.length > 0 && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 50));
      left = processesWith(marker);
    }
    assert.equal(left, [], `no sleep ${marker} left (pids ${left.join(', ')})`);
  } finally {
    for (const pid of processesWith(marker)) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
    await done(s);
  }
});

command.run();
