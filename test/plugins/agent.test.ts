// The library Agent (plugins/agent/agent.ts) on real device homes and real signed repositories,
// with fake time: its clock and sleep are a FakeTime the test moves by hand, so an hour-long
// interval, a maintenance window two hours away or the 30 s peer rate limit take no real time and
// every wake-up is asserted by what the agent asked to sleep and by what it then did. Attempts are
// real (real LevelDB, real files, real switches); `ferry run` is a fake child where the app matters.
// Every wait on the agent is bounded in real time.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { EventEmitter } from 'node:events';
import { mkdir, rename } from 'node:fs/promises';
import { join } from 'node:path';
import net from 'node:net';
import type { ChildProcess, StdioOptions } from 'node:child_process';
import { Agent, PEER_WAKE_MS, type AgentStopped, type SleepFn, type SpawnFn } from '../../plugins/agent/agent.ts';
import { inMaintenanceWindow } from '../../core/policy/policy.ts';
import { WINDOW_GRACE_MS, WINDOW_JITTER_CAP_MS } from '../../core/policy/agent-schedule.ts';
import { controlSocketPath, runDir, serveControl } from '../../plugins/run/control.ts';
import { assertInstalled, cleanupAll, makeDevice, type TestDevice } from '../helpers/device.ts';
import { makeRepo, sampleApp, tempDir, type TestRepo } from '../helpers/repo.ts';
import { writeBundle } from '../../core/publish/bundle.ts';
import { freePort } from '../helpers/net.ts';
import type { TimeWindow, UpdatePolicy } from '../../core/spec.ts';
import type { ManifestDoc } from '../../core/trust/metadata.ts';
import { within } from '../helpers/within.ts';

// ---------------------------------------------------------------------------------------------
// Fake time and the agent's log

interface PendingSleep {
  ms: number;
  due: number;
  resolve(): void;
}

/**
 * A clock that moves only when told (and 1 ms per reading, so history ids stay ordered), and sleeps
 * that end when it passes their due time or their signal aborts. Short sleeps (at most
 * SHORT_SLEEP_MS: the agent polling a starting `ferry run`) move the clock themselves after 10 ms of
 * real time, as the schedule's sleeps are all far longer.
 */
const SHORT_SLEEP_MS = 1000;
class FakeTime {
  t: number;
  pending: PendingSleep[] = [];
  constructor(start: Date) {
    this.t = start.getTime();
  }
  clock = (): Date => new Date(++this.t);
  sleep: SleepFn = (ms, signal) =>
    new Promise<void>((resolve) => {
      if (signal.aborted) return resolve();
      if (ms <= SHORT_SLEEP_MS) {
        setTimeout(() => { this.t += ms; resolve(); }, 10);
        return;
      }
      const p: PendingSleep = { ms, due: this.t + ms, resolve: () => { this.pending = this.pending.filter((q) => q !== p); resolve(); } };
      signal.addEventListener('abort', () => p.resolve(), { once: true });
      this.pending.push(p);
    });
  advance(ms: number): void {
    this.t += ms;
    for (const p of [...this.pending].sort((a, b) => a.due - b.due)) if (p.due <= this.t) p.resolve();
  }
}

interface Event {
  event: string;
  fields: Record<string, unknown>;
}

/** Polls `pred` every 10 ms of real time until it holds; fails after `timeoutMs`. */
async function until<T>(what: string | (() => string), pred: () => T | undefined | false, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = pred();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${typeof what === 'string' ? what : what()}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A little real time for anything the agent would do now to happen (used before asserting it did nothing). */
const settle = () => new Promise((r) => setTimeout(r, 300));

interface Harness {
  agent: Agent;
  time: FakeTime;
  events: Event[];
  checks(): Event[];
  /** Waits until the agent's loop sleeps for `ms` (the next wake-up it chose), after `n` checks. */
  sleepingAfter(n: number, what: string): Promise<PendingSleep>;
  stop: AbortController;
  done: Promise<AgentStopped>;
}

const JITTER_FREE = 0.5; // nextCheckDelay's jitter is 0 at rand 0.5

function start(home: string, time: FakeTime, extra: Partial<ConstructorParameters<typeof Agent>[0]> = {}): Harness {
  const events: Event[] = [];
  const agent = new Agent({ home, log: (event, fields) => events.push({ event, fields }), clock: time.clock, sleep: time.sleep, random: () => JITTER_FREE, ...extra });
  const stop = new AbortController();
  const checks = () => events.filter((e) => e.event === 'check');
  const done = agent.run(stop.signal);
  return {
    agent, time, events, checks, stop, done,
    sleepingAfter: (n, what) =>
      until(() => `${what} (after ${n} checks; events: ${events.map((e) => e.event).join(', ')}; sleeping ${time.pending.map((p) => p.ms).join(', ')})`, () => checks().length === n && events.at(-1)?.event !== 'check' && time.pending.find((p) => p.ms > PEER_WAKE_MS)),
  };
}

async function stopAgent(h: Harness): Promise<AgentStopped> {
  h.stop.abort('test');
  return h.done;
}

// ---------------------------------------------------------------------------------------------

const test = suite('Agent (library) with fake time');
const cleanups: { cleanup(): Promise<void> }[] = [];

/** Publishes `version` and returns its signed manifest. */
async function publish(repo: TestRepo, version: string): Promise<ManifestDoc> {
  return (await repo.release(version, sampleApp(version))).manifest;
}

async function setup(policy: Partial<UpdatePolicy>, versions: string[], sources?: (repo: TestRepo) => string[]): Promise<{ repo: TestRepo; device: TestDevice; manifests: ManifestDoc[] }> {
  const repo = await makeRepo();
  const manifests: ManifestDoc[] = [];
  for (const v of versions) manifests.push(await publish(repo, v));
  const device = await makeDevice({ trust: await repo.trust(), sources: sources ? sources(repo) : [repo.repo], policy });
  cleanups.push(device, repo);
  return { repo, device, manifests };
}

test.after(async () => {
  await cleanupAll(...cleanups);
});

test('checks on its interval: installs at start, sleeps checkInterval, and finds the new release only when that time has passed', async () => {
  const { repo, device } = await setup({ checkInterval: 600 }, ['1.0.0']);
  const h = start(device.home, new FakeTime(new Date()));
  try {
    const first = await h.sleepingAfter(1, 'the first sleep');
    assert.is(await device.current(), '1.0.0', 'installed at start');
    assert.is(first.ms, 600_000, 'sleeps exactly the interval (no jitter at rand 0.5)');
    assert.is(h.checks()[0]!.fields.trigger, 'start');

    const m = await publish(repo, '1.1.0');
    h.time.advance(599_000);
    await settle();
    assert.is(h.checks().length, 1, 'no check before the interval has passed');
    h.time.advance(1_000);
    await until('committed 1.1.0', () => h.events.some((e) => e.event === 'committed' && e.fields.version === '1.1.0'));
    assert.is(h.checks()[1]!.fields.trigger, 'interval');
    await assertInstalled(device, m);
  } finally {
    assert.equal(await stopAgent(h), { reason: 'aborted' });
  }
  assert.is(h.events.at(-1)!.event, 'stopped');
});

test('offline: the sleep doubles per failed attempt, and the interval comes back once the source answers', async () => {
  const closed = await freePort(); // nothing listens: connection refused, a retryable ERR_IO
  const { repo, device } = await setup({ checkInterval: 60 }, ['1.0.0'], () => [`http://127.0.0.1:${closed}/`]);
  const h = start(device.home, new FakeTime(new Date()));
  try {
    const s1 = await h.sleepingAfter(1, 'the first backoff');
    const err = h.events.find((e) => e.event === 'error');
    assert.ok(err, 'the failed attempt is logged');
    assert.is(err!.fields.retryInMs, s1.ms);
    assert.is(s1.ms, 120_000, 'one failure: twice the interval');
    h.time.advance(s1.ms);
    const s2 = await h.sleepingAfter(2, 'the second backoff');
    assert.is(s2.ms, 240_000, 'two failures: four times the interval');
    assert.is(h.checks()[1]!.fields.trigger, 'backoff');

    await device.setConfig({ sources: [repo.repo] }); // the network is back
    h.time.advance(s2.ms);
    const s3 = await h.sleepingAfter(3, 'the sleep after a good attempt');
    assert.is(await device.current(), '1.0.0');
    assert.is(s3.ms, 60_000, 'an answer resets the backoff');
  } finally {
    await stopAgent(h);
  }
});

/** A one-hour window (UTC) on the weekday of `opening`, starting at its hour. */
function windowAt(opening: Date): TimeWindow {
  return { days: [opening.getUTCDay()], startHour: opening.getUTCHours(), endHour: opening.getUTCHours() + 1, timezone: 'UTC' };
}

test('a release staged while the maintenance window is shut is applied when the window opens, not at the 6-hour interval', async () => {
  // The fake clock starts two hours before a whole UTC hour that is not 23:00 (endHour 24 is fine, but keep one day).
  let opening = new Date(Math.ceil(Date.now() / 3_600_000) * 3_600_000 + 3 * 3_600_000);
  if (opening.getUTCHours() === 23) opening = new Date(opening.getTime() + 3_600_000);
  const startAt = new Date(opening.getTime() - 2 * 3_600_000);
  const window = windowAt(opening);
  const { repo, device } = await setup({ checkInterval: 6 * 3600, maintenanceWindow: window }, ['1.0.0']);
  await device.with((u) => u.apply({ ignoreWindow: true }));
  const m = await publish(repo, '1.1.0');

  const h = start(device.home, new FakeTime(startAt));
  try {
    const s = await h.sleepingAfter(1, 'the sleep until the window');
    const waiting = h.events.find((e) => e.event === 'waiting');
    assert.is(waiting?.fields.reason, 'window', 'the first attempt stages 1.1.0 and waits for the window');
    assert.is(await device.current(), '1.0.0');
    assert.ok(h.events.some((e) => e.event === 'window-wait'), 'logs when it will try again');
    const wakeAt = h.time.t + s.ms;
    assert.ok(s.ms < 6 * 3_600_000, `wakes before its interval (${s.ms} ms)`);
    assert.ok(wakeAt >= opening.getTime() + WINDOW_GRACE_MS && wakeAt <= opening.getTime() + WINDOW_GRACE_MS + WINDOW_JITTER_CAP_MS, `wakes just after the window opens: ${new Date(wakeAt).toISOString()} vs ${opening.toISOString()}`);
    assert.ok(inMaintenanceWindow(window, new Date(wakeAt)));

    h.time.advance(s.ms);
    await until('committed 1.1.0', () => h.events.some((e) => e.event === 'committed' && e.fields.version === '1.1.0'));
    assert.is(h.checks()[1]!.fields.trigger, 'window');
    await assertInstalled(device, m);
  } finally {
    await stopAgent(h);
  }
});

test('peer announcements: a newer version wakes a check at once, then at most one more per 30 s however many arrive; an older one wakes nothing', async () => {
  const { device } = await setup({ checkInterval: 3600 }, ['1.0.0']);
  const h = start(device.home, new FakeTime(new Date()));
  try {
    await h.sleepingAfter(1, 'the interval sleep');
    assert.is(await device.current(), '1.0.0');

    h.agent.peerAnnounced({ url: 'http://192.0.2.1:7311', version: '1.0.0' });
    await settle();
    assert.is(h.checks().length, 1, 'a peer on our own version wakes nothing');
    assert.not.ok(h.events.some((e) => e.event === 'peer'));

    h.agent.peerAnnounced({ url: 'http://192.0.2.1:7311', version: '1.1.0' });
    await h.sleepingAfter(2, 'the sleep after the peer check');
    assert.is(h.checks()[1]!.fields.trigger, 'peer', 'the first newer announcement checks at once');

    // A flood right after: one deferred wake, due 30 s after the last peer wake.
    for (let i = 0; i < 5; i++) h.agent.peerAnnounced({ url: `http://192.0.2.${i + 2}:7311`, version: `1.${i + 1}.0` });
    await settle();
    assert.is(h.checks().length, 2, 'no check within 30 s of the last peer wake');
    const deferred = h.time.pending.filter((p) => p.ms <= PEER_WAKE_MS);
    assert.is(deferred.length, 1, 'one deferred wake, not one per announcement');
    const left = deferred[0]!.due - h.time.t;
    assert.ok(left > PEER_WAKE_MS - 1000 && left <= PEER_WAKE_MS, `deferred by what is left of 30 s (${left} ms)`);

    h.time.advance(left - 1);
    await settle();
    assert.is(h.checks().length, 2, 'still no check 1 ms before the 30 s are up');
    h.time.advance(1);
    await h.sleepingAfter(3, 'the sleep after the deferred peer check');
    assert.is(h.checks()[2]!.fields.trigger, 'peer');
    await settle();
    assert.is(h.checks().length, 3, 'the flood came to exactly one more check');
  } finally {
    await stopAgent(h);
  }
});

test('an abort during an attempt lets it finish (the switch is committed, not cut), then the agent stops without another check', async () => {
  const { device, manifests } = await setup({ checkInterval: 3600 }, ['1.0.0']);
  let abortedAt: string | null = null;
  const time = new FakeTime(new Date());
  const events: Event[] = [];
  const stop = new AbortController();
  const agent = new Agent({
    home: device.home,
    log: (event, fields) => events.push({ event, fields }),
    clock: time.clock,
    sleep: time.sleep,
    random: () => JITTER_FREE,
    // The test's SIGTERM arrives right after `current` was switched, before the commit.
    killPoint: (when, phase) => {
      if (when === 'after' && phase === 'switching' && !stop.signal.aborted) {
        abortedAt = `${when}:${phase}`;
        stop.abort('SIGTERM');
      }
    },
  });
  const how = await within(agent.run(stop.signal), 30_000, 'timeout' as const);
  assert.is(abortedAt, 'after:switching', 'the abort came mid-switch');
  assert.equal(how, { reason: 'aborted' }, 'run() returns once the attempt is over');
  const names = events.map((e) => e.event);
  assert.ok(names.indexOf('stopping') < names.indexOf('committed'), `stopping is logged during the attempt: ${names.join(', ')}`);
  assert.is(names.filter((n) => n === 'check').length, 1, 'no check after the abort');
  assert.is(names.at(-1), 'stopped');
  assert.is(time.pending.length, 0, 'nothing left sleeping');
  await assertInstalled(device, manifests[0]!);
  const status = await device.with((u) => u.status());
  assert.is(status.phase, 'idle', 'no update left half done');
});

test('a bundle landing on a usb: mount wakes a check at once (real watcher), with no fake time passing', async () => {
  const tmp = await tempDir('ferry-agent-stick-');
  cleanups.push(tmp);
  const stick = join(tmp.path, 'stick');
  await mkdir(stick);
  const { repo, device, manifests } = await setup({ checkInterval: 3600 }, ['1.0.0'], () => [`usb:${stick}`]);
  const h = start(device.home, new FakeTime(new Date()));
  try {
    await h.sleepingAfter(1, 'the sleep after finding an empty stick');
    assert.is(await device.current(), null);
    const out = join(tmp.path, 'drop.ferry');
    await writeBundle({ repo: repo.repo, version: '1.0.0', platform: 'linux', arch: 'x64', out });
    await rename(out, join(stick, 'update.ferry'));
    await until('committed 1.0.0 from the stick', () => h.events.some((e) => e.event === 'committed' && e.fields.version === '1.0.0'));
    assert.ok(h.events.some((e) => e.event === 'usb'), 'the drop is logged');
    assert.is(h.checks()[1]!.fields.trigger, 'usb');
    await assertInstalled(device, manifests[0]!);
  } finally {
    await stopAgent(h);
  }
});

// ---------------------------------------------------------------------------------------------
// The supervised app, with a fake `ferry run` that answers on the real control socket

interface FakeRun {
  command: string;
  args: readonly string[];
  stdio: StdioOptions;
  signals: string[];
  handovers: (string | undefined)[];
  /** The fake `ferry run` exits on its own. */
  exit(code: number): void;
}

function fakeSpawn(home: string): { spawn: SpawnFn; runs: FakeRun[] } {
  const runs: FakeRun[] = [];
  const spawn: SpawnFn = (command, args, options) => {
    const child = new EventEmitter() as EventEmitter & { pid: number; exitCode: number | null; signalCode: NodeJS.Signals | null; kill(sig?: NodeJS.Signals): boolean };
    child.pid = 424242 + runs.length;
    child.exitCode = null;
    child.signalCode = null;
    const server = net.createServer();
    const run: FakeRun = {
      command, args, stdio: options.stdio, signals: [], handovers: [],
      exit(code) {
        if (child.exitCode !== null || child.signalCode !== null) return;
        child.exitCode = code;
        server.close(() => child.emit('exit', code, null));
      },
    };
    child.kill = (sig: NodeJS.Signals = 'SIGTERM') => {
      run.signals.push(sig);
      if (child.exitCode === null && child.signalCode === null) {
        child.signalCode = sig;
        server.close(() => child.emit('exit', null, sig));
      }
      return true;
    };
    serveControl(server, {
      status: () => ({ pid: child.pid, home, listen: [], readiness: 'ready', active: null, candidate: null, draining: [], restarts: 0, handovers: { healthy: run.handovers.length, unhealthy: 0 } }),
      handover: async (version) => {
        run.handovers.push(version);
        return { healthy: true, detail: 'fake ferry run: handed over' };
      },
    }, () => {});
    void mkdir(runDir(home), { recursive: true, mode: 0o700 }).then(() => server.listen(controlSocketPath(home)));
    runs.push(run);
    return child as unknown as ChildProcess;
  };
  return { spawn, runs };
}

test('with an app: ferry run starts once something is installed, an update hands over to it, and an abort stops it', async () => {
  const { repo, device } = await setup({ checkInterval: 60 }, ['1.0.0']);
  const fake = fakeSpawn(device.home);
  const h = start(device.home, new FakeTime(new Date()), {
    spawn: fake.spawn,
    ferryBin: '/opt/ferry/dist/cli/ferry.js',
    app: { command: ['node', 'server.js', '--port', '0'], listen: ['127.0.0.1:8080'], health: 'http://127.0.0.1:8080/health', drainTimeoutMs: 2000 },
  });
  try {
    await h.sleepingAfter(1, 'the first sleep');
    assert.is(fake.runs.length, 1, 'one ferry run, started after the first install');
    const run = fake.runs[0]!;
    assert.is(run.command, process.execPath);
    assert.equal(run.args, ['/opt/ferry/dist/cli/ferry.js', 'run', '--home', device.home, '--listen', '127.0.0.1:8080', '--health', 'http://127.0.0.1:8080/health', '--drain-timeout', '2000ms', '--', 'node', 'server.js', '--port', '0']);
    assert.equal(run.stdio, ['ignore', 2, 2], 'stdin ignored, output to stderr, no inherited sockets');
    const names = h.events.map((e) => e.event);
    assert.ok(names.indexOf('committed') < names.indexOf('app'), `the app starts after the install: ${names.join(', ')}`);

    await publish(repo, '1.1.0');
    h.time.advance(60_000);
    await until('committed 1.1.0', () => h.events.some((e) => e.event === 'committed' && e.fields.version === '1.1.0'));
    assert.equal(run.handovers, ['1.1.0'], 'the update was confirmed by a handover to ferry run');
    assert.is(fake.runs.length, 1, 'ferry run is not started again');
  } finally {
    assert.equal(await stopAgent(h), { reason: 'aborted' });
  }
  assert.equal(fake.runs[0]!.signals, ['SIGTERM'], 'ferry run is told to stop');
});

test('with an app: ferry run exiting on its own stops the agent (app-exited); nothing installed means no ferry run', async () => {
  const { repo, device } = await setup({ checkInterval: 60 }, []);
  const fake = fakeSpawn(device.home);
  const h = start(device.home, new FakeTime(new Date()), { spawn: fake.spawn, app: { command: ['app'], listen: ['8080'], drainTimeoutMs: 1000 } });
  await h.sleepingAfter(1, 'the first sleep');
  assert.is(await device.current(), null);
  assert.is(fake.runs.length, 0, 'no ferry run without an installed release');
  h.agent.wake('test');
  await h.sleepingAfter(2, 'the second sleep');
  assert.is(fake.runs.length, 0);
  await h.agent.once().then(() => assert.unreachable('once() with an app'), (err: Error) => assert.match(err.message, /cannot supervise/));

  // Publish, wake, let it install and start the app; then the app dies.
  await publish(repo, '1.0.0');
  h.agent.wake('test');
  await h.sleepingAfter(3, 'the sleep after the install');
  assert.is(fake.runs.length, 1);
  fake.runs[0]!.exit(3);
  const how = await within(h.done, 10_000, 'timeout' as const);
  assert.equal(how, { reason: 'app-exited', code: 3, signal: null });
  assert.ok(h.events.some((e) => e.event === 'app-exited'));
  assert.equal(fake.runs[0]!.signals, [], 'an exited ferry run is not signalled');
});

test('once(): one attempt with its result, no loop', async () => {
  const { device } = await setup({ checkInterval: 60 }, ['1.0.0']);
  const time = new FakeTime(new Date());
  const events: string[] = [];
  const agent = new Agent({ home: device.home, log: (e) => events.push(e), clock: time.clock, sleep: time.sleep });
  const r = await agent.once();
  assert.is(r.error, null);
  assert.is(r.result?.status, 'committed');
  assert.is(r.outcome, 'done');
  assert.equal(events, ['check', 'committed']);
  const again = await agent.once();
  assert.is(again.result?.status, 'up-to-date');
  assert.is(time.pending.length, 0);
});

test.run();
