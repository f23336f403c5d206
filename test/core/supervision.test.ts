// `ferry run`'s decisions as tables: --listen addresses, the readiness mode, crash-restart backoff,
// the moves a generation may make and what its exit means; and the app helper's reading of the
// systemd LISTEN_FDS variables (plugins/run/listen-fds.ts).

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { canMove, chooseReadiness, onExit, parseListen, restartDelay, type GenerationState, type ListenAddress, type Readiness } from '../../plugins/run/supervision.ts';
import { listenTargets } from '../../plugins/run/app-sockets.ts';
import { assertCode } from '../helpers/assert-code.ts';

const listen = suite('reads --listen as PORT, HOST:PORT or [IPV6]:PORT');

const addresses: [string, ListenAddress | 'ERR_USAGE'][] = [
  ['8080', { host: '0.0.0.0', port: 8080, family: 4 }],
  ['127.0.0.1:8443', { host: '127.0.0.1', port: 8443, family: 4 }],
  ['localhost:80', { host: '127.0.0.1', port: 80, family: 4 }],
  ['[::1]:8443', { host: '::1', port: 8443, family: 6 }],
  ['[::]:0', { host: '::', port: 0, family: 6 }],
  ['0', { host: '0.0.0.0', port: 0, family: 4 }],
  ['65536', 'ERR_USAGE'],
  ['300.1.1.1:80', 'ERR_USAGE'],
  ['example.com:80', 'ERR_USAGE'],
  ['127.0.0.1:', 'ERR_USAGE'],
  ['', 'ERR_USAGE'],
];
for (const [spec, expected] of addresses) {
  listen(`"${spec}" → ${typeof expected === 'string' ? expected : JSON.stringify(expected)}`, () => {
    if (typeof expected === 'string') assertCode(() => parseListen(spec), expected);
    else assert.equal(parseListen(spec), expected);
  });
}
listen.run();

const readiness = suite('chooses how a new generation proves it is ready: --health, then --notify, then settle');

const modes: [string, Parameters<typeof chooseReadiness>[0], Readiness | 'ERR_USAGE'][] = [
  ['a health URL is probed by its path (on the private socket)', { health: 'http://127.0.0.1:8080/healthz?deep=1', settleMs: 2000, readyTimeoutMs: 60_000 }, { mode: 'health', path: '/healthz?deep=1', timeoutMs: 60_000 }],
  ['a bare path works too', { health: '/ready', notify: true, settleMs: 2000, readyTimeoutMs: 5000 }, { mode: 'health', path: '/ready', timeoutMs: 5000 }],
  ['--notify waits for READY=1', { notify: true, settleMs: 2000, readyTimeoutMs: 5000 }, { mode: 'notify', timeoutMs: 5000 }],
  ['else the app must stay up for --settle', { settleMs: 2000, readyTimeoutMs: 60_000 }, { mode: 'settle', settleMs: 2000, timeoutMs: 60_000 }],
  ['a settle longer than the ready timeout can never pass', { settleMs: 10_000, readyTimeoutMs: 5000 }, 'ERR_USAGE'],
  ['a health that is neither URL nor path is refused', { health: 'healthz', settleMs: 2000, readyTimeoutMs: 5000 }, 'ERR_USAGE'],
];
for (const [name, input, expected] of modes) {
  readiness(name, () => {
    if (typeof expected === 'string') assertCode(() => chooseReadiness(input), expected);
    else assert.equal(chooseReadiness(input), expected);
  });
}
readiness.run();

const backoff = suite('restarts a crashed app after a delay that doubles up to a cap, and forgives a long run');

const policy = { baseMs: 100, capMs: 10_000, stableMs: 10_000 };
const delays: [string, number, number, { crashesInARow: number; delayMs: number }][] = [
  ['the first crash is restarted after the base delay', 0, 50, { crashesInARow: 1, delayMs: 100 }],
  ['the second in a row waits twice as long', 1, 50, { crashesInARow: 2, delayMs: 200 }],
  ['the fifth waits 1.6 s', 4, 50, { crashesInARow: 5, delayMs: 1600 }],
  ['a crash loop is capped', 9, 50, { crashesInARow: 10, delayMs: 10_000 }],
  ['the cap holds for very long loops (no overflow)', 5000, 50, { crashesInARow: 5001, delayMs: 10_000 }],
  ['a crash after a stable run starts the count again', 9, 10_000, { crashesInARow: 1, delayMs: 100 }],
];
for (const [name, previous, uptime, expected] of delays) {
  backoff(name, () => assert.equal(restartDelay(previous, uptime, policy), expected));
}
backoff.run();

const generations = suite('a generation moves only along its lifecycle, and its exit means what its state says');

const moves: [GenerationState, GenerationState, boolean][] = [
  ['starting', 'active', true],
  ['starting', 'failed', true],
  ['starting', 'draining', true],
  ['active', 'draining', true],
  ['active', 'exited', true],
  ['draining', 'exited', true],
  ['failed', 'exited', true],
  ['active', 'starting', false],
  ['draining', 'active', false],
  ['failed', 'active', false],
  ['exited', 'active', false],
];
for (const [from, to, ok] of moves) generations(`${from} → ${to}: ${ok ? 'allowed' : 'refused'}`, () => assert.is(canMove(from, to), ok));

const exits: [GenerationState, boolean, ReturnType<typeof onExit>][] = [
  ['active', false, 'restart'],
  ['active', true, 'done'],
  ['starting', false, 'unhealthy'],
  ['starting', true, 'unhealthy'],
  ['draining', false, 'done'],
  ['failed', false, 'done'],
];
for (const [state, stopping, action] of exits) {
  generations(`an exit while ${state}${stopping ? ' (stopping)' : ''} → ${action}`, () => assert.is(onExit(state, stopping), action));
}
generations.run();

const fds = suite('ferry/app reads LISTEN_FDS the systemd way');

const pid = process.pid;
const envs: [string, NodeJS.ProcessEnv, number[], string[]][] = [
  ['nothing passed', {}, [], []],
  ['two sockets for this pid', { LISTEN_FDS: '2', LISTEN_PID: String(pid), LISTEN_FDNAMES: 'listen-0:ferry-health' }, [3, 4], ['listen-0', 'ferry-health']],
  ['sockets meant for another process are not taken', { LISTEN_FDS: '1', LISTEN_PID: '1' }, [], []],
  ['FERRY_RUN vouches for sockets passed through a wrapper', { LISTEN_FDS: '1', LISTEN_PID: '1', FERRY_RUN: '1' }, [3], ['fd-3']],
  ['no LISTEN_PID at all is accepted', { LISTEN_FDS: '1' }, [3], ['fd-3']],
];
for (const [name, env, expectedFds, names] of envs) {
  fds(name, () => {
    const passed = listenTargets(env, pid).flatMap((t) => (t.kind === 'fd' ? [t] : []));
    assert.equal(passed.map((t) => t.fd), expectedFds);
    assert.equal(passed.map((t) => t.name), names);
  });
}
fds('a malformed LISTEN_FDS is an error, not silently nothing', () => {
  assert.throws(() => listenTargets({ LISTEN_FDS: 'x', LISTEN_PID: String(pid) }, pid), /LISTEN_FDS "x"/);
});
fds.run();
