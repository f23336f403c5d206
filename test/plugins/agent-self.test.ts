// The Agent's own update (plugins/agent/self-round.ts) through the library SelfUpdate
// (plugins/self/self-update.ts), without a keeper: a real self home (a ferry home installed from a
// real signed repository of two tiny "ferry" versions), a real app home beside it, real attempts,
// and the agent's injected clock and sleep as fake time. An agent on 1.0.0 stages 1.1.0, switches
// (the boot record's tentative switch) and returns { reason: 'self-update' } without moving
// `current`; an agent started as 1.1.0 on trial confirms after its first attempt (`current`
// moves, the record is cleared, the self home's history commits), also when that attempt found
// its source offline (an air-gapped device must be able to confirm); an attempt that fails with a
// bug (ERR_INTERNAL) confirms nothing. Every wait is bounded in real time.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Agent, type AgentStopped, type SleepFn } from '../../plugins/agent/agent.ts';
import { attemptProvesCode } from '../../plugins/agent/self-round.ts';
import { SelfUpdate } from '../../plugins/self/self-update.ts';
import { readBootRecord } from '../../core/self/boot-record.ts';
import { FerryError } from '../../core/errors.ts';
import { cleanupAll, makeDevice, type TestDevice } from '../helpers/device.ts';
import { freePort } from '../helpers/net.ts';
import { makeRepo, sampleApp, type TestRepo, type TreeSpec } from '../helpers/repo.ts';

// ---------------------------------------------------------------------------------------------
// Fake time (as test/plugins/agent.test.ts): the clock moves only when a long sleep is reached

interface PendingSleep {
  ms: number;
  resolve(): void;
}

class FakeTime {
  t: number;
  pending: PendingSleep[] = [];
  constructor(start: Date) {
    this.t = start.getTime();
  }
  clock = (): Date => new Date(++this.t);
  /** Short sleeps (polls) pass after 10 ms of real time; long ones (the schedule) wait for the test. */
  sleep: SleepFn = (ms, signal) =>
    new Promise<void>((resolve) => {
      if (signal.aborted) return resolve();
      if (ms <= 1000) {
        setTimeout(() => { this.t += ms; resolve(); }, 10);
        return;
      }
      const p: PendingSleep = { ms, resolve: () => { this.pending = this.pending.filter((q) => q !== p); resolve(); } };
      signal.addEventListener('abort', () => p.resolve(), { once: true });
      this.pending.push(p);
    });
}

interface Event {
  event: string;
  fields: Record<string, unknown>;
}

async function until<T>(what: () => string, pred: () => T | undefined | false, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = pred();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what()}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function within<T>(p: Promise<T>, ms: number): Promise<T | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<'timeout'>((r) => { timer = setTimeout(() => r('timeout'), ms); })]).finally(() => clearTimeout(timer));
}

// ---------------------------------------------------------------------------------------------
// Homes

/** A tiny ferry release: what matters here is only that it is a signed tree of its own version. */
function ferryTree(version: string): TreeSpec {
  return {
    'package.json': JSON.stringify({ name: 'ferry', version, type: 'module' }) + '\n',
    'dist/cli/ferry.js': `console.log('ferry ${version}');\n`,
  };
}

const cleanups: { cleanup(): Promise<void> }[] = [];

interface Homes {
  selfRepo: TestRepo;
  /** The self home S: 1.0.0 installed (`ferry update` as a first install), 1.1.0 published. */
  self: TestDevice;
  /** The app home the agent updates, from `appSources` (default: a repo with 1.0.0). */
  app: TestDevice;
}

async function homes(appSources?: string[]): Promise<Homes> {
  const selfRepo = await makeRepo();
  await selfRepo.release('1.0.0', ferryTree('1.0.0'));
  const self = await makeDevice({ trust: await selfRepo.trust(), sources: [selfRepo.repo] });
  cleanups.push(self, selfRepo);
  assert.is((await self.with((u) => u.apply())).status, 'committed', 'first install of the self home');
  await selfRepo.release('1.1.0', ferryTree('1.1.0'));

  const appRepo = await makeRepo();
  await appRepo.release('1.0.0', sampleApp('1.0.0'));
  const app = await makeDevice({ trust: await appRepo.trust(), sources: appSources ?? [appRepo.repo], policy: { checkInterval: 600 } });
  cleanups.push(app, appRepo);
  return { selfRepo, self, app };
}

/** The self home after 1.0.0 switched to 1.1.0 (what the agent on 1.0.0 does, through the library alone). */
async function switched(h: Homes): Promise<void> {
  const old = new SelfUpdate({ home: h.self.home, version: '1.0.0' });
  const prepared = await old.prepare();
  assert.is(prepared.status, 'staged');
  await old.switch('1.1.0');
  assert.ok(await new SelfUpdate({ home: h.self.home, version: '1.1.0' }).onTrial(), '1.1.0 is on trial');
}

interface Running {
  events: Event[];
  time: FakeTime;
  stop: AbortController;
  done: Promise<AgentStopped>;
  /** Waits for the schedule's sleep after the first attempt (the self round has run by then). */
  sleeping(): Promise<void>;
}

function runAgent(h: Homes, version: string, extra: Partial<ConstructorParameters<typeof Agent>[0]> = {}): Running {
  const time = new FakeTime(new Date());
  const events: Event[] = [];
  const self = new SelfUpdate({ home: h.self.home, version, clock: time.clock });
  const agent = new Agent({ home: h.app.home, log: (event, fields) => events.push({ event, fields }), clock: time.clock, sleep: time.sleep, random: () => 0.5, self, ...extra });
  const stop = new AbortController();
  const done = agent.run(stop.signal);
  return {
    events, time, stop, done,
    sleeping: () => until(() => `the first sleep; events: ${events.map((e) => e.event).join(', ')}`, () => time.pending.length > 0 && events.some((e) => e.event === 'check')).then(() => {}),
  };
}

async function stopped(r: Running): Promise<AgentStopped | 'timeout'> {
  r.stop.abort('test');
  return within(r.done, 30_000);
}

// ---------------------------------------------------------------------------------------------

const test = suite('Agent: its own update through SelfUpdate');

test.after(async () => {
  await cleanupAll(...cleanups);
});

test('attemptProvesCode: no error or a FerryError proves the code; ERR_INTERNAL or a non-FerryError does not', () => {
  assert.ok(attemptProvesCode(null));
  assert.ok(attemptProvesCode(new FerryError('ERR_IO', 'offline')));
  assert.ok(attemptProvesCode(new FerryError('ERR_BUSY', 'busy')));
  assert.not.ok(attemptProvesCode(new FerryError('ERR_INTERNAL', 'a bug')));
  assert.not.ok(attemptProvesCode(new TypeError('x is undefined')));
});

test('an agent on 1.0.0 stages and switches to 1.1.0, returns self-update, and current stays on the confirmed 1.0.0', async () => {
  const h = await homes();
  const r = runAgent(h, '1.0.0');
  const how = await within(r.done, 30_000);
  assert.equal(how, { reason: 'self-update', version: '1.1.0' }, `events: ${JSON.stringify(r.events)}`);
  const names = r.events.map((e) => e.event);
  assert.equal(r.events.find((e) => e.event === 'self')?.fields, { version: '1.0.0', trial: false });
  assert.ok(names.indexOf('committed') < names.indexOf('self-update'), `the app attempt comes first: ${names.join(', ')}`);
  assert.equal(r.events.find((e) => e.event === 'self-update')?.fields, { version: '1.1.0', from: '1.0.0' });
  assert.equal(r.events.at(-1), { event: 'stopped', fields: { reason: 'self-update', version: '1.1.0' } });
  assert.is(r.time.pending.length, 0, 'nothing left sleeping');

  const read = await readBootRecord(h.self.home);
  assert.is(read.state, 'ok');
  const tentative = read.state === 'ok' ? read.record.tentative : null;
  assert.is(tentative?.version, '1.1.0', 'the boot record names 1.1.0 on trial');
  assert.is(tentative?.previous, '1.0.0');
  assert.is(await h.self.current(), '1.0.0', 'current still names the confirmed version');
  assert.is(await h.app.current(), '1.0.0', 'the app was updated as always');
});

test('an agent started as 1.1.0 on trial confirms after its first attempt: current moves, the record is cleared, history commits', async () => {
  const h = await homes();
  await switched(h);
  const r = runAgent(h, '1.1.0');
  try {
    await r.sleeping();
    assert.equal(r.events.find((e) => e.event === 'self')?.fields, { version: '1.1.0', trial: true });
    const confirmed = r.events.find((e) => e.event === 'self-confirmed');
    assert.equal(confirmed?.fields, { version: '1.1.0', from: '1.0.0' }, `events: ${r.events.map((e) => e.event).join(', ')}`);
    const names = r.events.map((e) => e.event);
    assert.ok(names.indexOf('committed') < names.indexOf('self-confirmed'), 'confirmed after the attempt');
  } finally {
    assert.equal(await stopped(r), { reason: 'aborted' });
  }
  assert.is(await h.self.current(), '1.1.0');
  const read = await readBootRecord(h.self.home);
  assert.ok(read.state === 'ok' && read.record.tentative === null, 'the tentative switch is cleared');
  const history = await h.self.with((u) => u.history());
  assert.ok(history.some((x) => x.from === '1.0.0' && x.to === '1.1.0' && x.outcome === 'committed'), `history: ${JSON.stringify(history.map((x) => [x.from, x.to, x.outcome]))}`);
  const status = await h.self.with((u) => u.status());
  assert.is(status.phase, 'idle', 'the staged attempt is closed');
});

test('on trial, an attempt that finds its source offline still confirms (an air-gapped device must be able to)', async () => {
  const closed = await freePort();
  const h = await homes([`http://127.0.0.1:${closed}/`]);
  await switched(h);
  const r = runAgent(h, '1.1.0');
  try {
    await r.sleeping();
    assert.is(r.events.find((e) => e.event === 'error')?.fields.code, 'ERR_NO_SOURCE', 'the attempt failed: no source answered (offline)');
    assert.ok(r.events.some((e) => e.event === 'self-confirmed'), `events: ${r.events.map((e) => e.event).join(', ')}`);
  } finally {
    await stopped(r);
  }
  assert.is(await h.self.current(), '1.1.0');
});

test('on trial, an attempt that fails with ERR_INTERNAL confirms nothing: still tentative, current on 1.0.0', async () => {
  const h = await homes();
  await switched(h);
  let bugs = 0;
  const r = runAgent(h, '1.1.0', {
    // A bug in the new code, met during the app attempt.
    killPoint: () => {
      if (bugs++ === 0) throw new FerryError('ERR_INTERNAL', 'internal: a bug in 1.1.0');
    },
  });
  try {
    await r.sleeping();
    assert.is(bugs > 0, true, 'the attempt met the bug');
    assert.is(r.events.find((e) => e.event === 'error')?.fields.code, 'ERR_INTERNAL');
    assert.not.ok(r.events.some((e) => e.event === 'self-confirmed'), `events: ${r.events.map((e) => e.event).join(', ')}`);
    assert.ok(r.events.some((e) => e.event === 'self-trial'), 'says why it does not confirm');
  } finally {
    assert.equal(await stopped(r), { reason: 'aborted' });
  }
  assert.is(await h.self.current(), '1.0.0', 'current still names the confirmed version');
  const read = await readBootRecord(h.self.home);
  assert.is(read.state === 'ok' ? read.record.tentative?.version : null, '1.1.0', 'still on trial: the keeper decides at the deadline');
});

test.run();
