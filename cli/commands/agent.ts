// `ferry agent`: the device's long-running daemon.
//   ferry agent --home H [--log-format human|json] [--once] [--no-share] [--share-host A] [--share-port P]
//               [--interface-address A] [--listen PORT … [--health URL] [--drain-timeout 30s] -- <app command>]
// Checks and applies updates (trigger 'auto', so the policy's autoUpdate, approval and window rules
// hold) every checkInterval with jitter, backing off while offline (core/policy/agent-schedule.ts), and
// when a staged release waits for the maintenance window, when the window opens; tries at once
// when a bundle or repository lands on a `usb:` mount or a LAN peer announces a newer release
// (mDNS, `lan`); shares the verified cache with LAN peers and announces the release it runs when
// a source is `lan`; and with `-- <cmd>` runs `ferry run` as its own child, so updates
// hand over without dropping a request. The home's lock is taken only for an attempt, so
// `ferry status`, `ferry approve` … work in between. One log line per event on stdout (human or
// JSON); `ferry run`'s own output goes to stderr. SIGTERM/SIGINT: an attempt under way is finished
// (never cut mid-switch), then children are stopped and the agent exits 0.
// Socket activation (examples/systemd/ferry-agent.socket): the sockets systemd passes the agent are
// handed to its `ferry run` at the same fd numbers with `--listen fd:N` (LISTEN_PID cannot name a
// child before it exists), and the agent keeps its own copies open while it runs, so they outlive
// every app generation and every restart of `ferry run`.

import { spawn, type ChildProcess } from 'node:child_process';
import semver from 'semver';
import { readlink } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { CommandModule } from 'yargs';
import { afterAttempt, classifyError, type AttemptOutcome } from '../../core/policy/agent-schedule.ts';
import { formatLocalTime } from '../../core/policy/maintenance-window.ts';
import { readDeviceConfig } from '../../core/device/config.ts';
import { homeLayout } from '../../core/device/layout.ts';
import { FerryError, isFerryError } from '../../core/errors.ts';
import { resolveListen, takeSystemdListenFds, type ListenSocket } from '../../plugins/run/listen-fds.ts';
import type { ApplyResult, UpdatePolicy } from '../../core/spec.ts';
import { parseDurationMs } from '../../core/io/duration.ts';
const processClock = (): Date => new Date(); // was core/update/test-hooks.ts (removed); the agent helper reads seams().clock instead
import { supervisorRunning } from '../../plugins/run/health.ts';
import { readCurrent } from '../../core/device/switch.ts';
import { createLanDiscovery, parseLanSpec, type LanDiscovery } from '../../plugins/lan/discovery.ts';
import { startPeerServer, type PeerServer } from '../../plugins/lan/peer-server.ts';
import { parseUsbSpec } from '../../plugins/usb/source.ts';
import { watchMounts } from '../../plugins/usb/watcher.ts';
import { assertInheritedSocket } from '../../plugins/run/sockets.ts';
import { withDevice } from '../../plugins/open-device.ts';
import { EXIT, EXIT_CODE } from '../exit-codes.ts';
import { formatBytes } from '../format.ts';
import type { OutputFlags } from '../output.ts';

interface AgentArgs extends OutputFlags {
  home: string;
  logFormat: 'human' | 'json';
  once: boolean;
  share: boolean;
  shareHost: string;
  sharePort: number;
  interfaceAddress?: string;
  listen?: string[];
  health?: string;
  drainTimeout: string;
  _: (string | number)[];
  '--'?: (string | number)[];
}

// ---------------------------------------------------------------------------------------------
// Log lines

export type AgentLog = (event: string, fields: Record<string, unknown>, text: string) => void;

/** `2026-11-26T12:00:00Z ferry: committed 1.1.0 (delta, 6.0 KiB)`, or one JSON object per line. */
export function createAgentLog(format: 'human' | 'json', write: (line: string) => void, clock: () => Date = () => new Date()): AgentLog {
  return (event, fields, text) => {
    const time = clock().toISOString().replace(/\.\d{3}Z$/, 'Z');
    write(format === 'json' ? JSON.stringify({ time, event, ...fields }) : `${time} ferry: ${text}`);
  };
}

function logResult(log: AgentLog, result: ApplyResult): void {
  switch (result.status) {
    case 'up-to-date':
      log('up-to-date', { version: result.current }, `up to date (${result.current ?? 'nothing installed'})`);
      return;
    case 'waiting':
      log('waiting', { version: result.version, reason: result.reason, why: result.why }, `waiting: ${result.version} is staged (${result.reason}): ${result.why}`);
      return;
    case 'committed': {
      const r = result.record;
      log('committed', { version: r.to, from: r.from, kind: r.kind, bytes: r.bytesMoved, source: r.source }, `committed ${r.to} (${r.kind ?? 'full'}${r.fellBackToFull ? ' after a failed delta' : ''}, ${formatBytes(r.bytesMoved)})`);
      return;
    }
    case 'rolled-back': {
      const r = result.record;
      log('rolled-back', { version: r.to, from: r.from, code: r.errorCode, message: r.message ?? null }, `rolled back ${r.to}: ${r.errorCode ?? 'ERR_UNHEALTHY'} ${r.message ?? ''}; still on ${r.from ?? 'nothing'}`);
      return;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// One attempt

interface Attempt {
  outcome: AttemptOutcome;
  /** The exit code `ferry update` would have given. */
  exit: number;
  error: FerryError | Error | null;
  /** A release is staged and waits for the maintenance window: the agent wakes when it opens. */
  waitingForWindow: boolean;
}

async function attempt(home: string, log: AgentLog, why: string): Promise<Attempt> {
  log('check', { trigger: why }, `checking for updates (${why})`);
  try {
    const result = await withDevice(home, (u) => u.apply({ trigger: 'auto' }), { log: (m) => log('note', { message: m }, m) });
    logResult(log, result);
    return { outcome: 'done', exit: result.status === 'rolled-back' ? EXIT_CODE[result.record.errorCode ?? 'ERR_UNHEALTHY'] : EXIT.ok, error: null, waitingForWindow: result.status === 'waiting' && result.reason === 'window' };
  } catch (err) {
    const error = err instanceof Error ? err : new Error(String(err));
    return { outcome: classifyError(err), exit: isFerryError(err) ? EXIT_CODE[err.code] : EXIT.internal, error, waitingForWindow: false };
  }
}

function logError(log: AgentLog, error: Error, retryInMs: number | null): void {
  const code = isFerryError(error) ? error.code : 'ERR_INTERNAL';
  const retry = retryInMs === null ? '' : ` (next try in ${Math.round(retryInMs / 1000)} s)`;
  log('error', { code, message: error.message, ...(retryInMs === null ? {} : { retryInMs }) }, `error ${code}: ${error.message}${retry}`);
}

// ---------------------------------------------------------------------------------------------
// The supervised app: `ferry run` as a child process this agent owns

const FERRY_BIN = fileURLToPath(new URL('../ferry.js', import.meta.url));

/** The app command: everything after the first `--` as typed (as cli/commands/run.ts reads it). */
function appCommand(args: AgentArgs): string[] {
  if (args['--']) return args['--'].map(String);
  const i = process.argv.indexOf('--');
  if (i >= 0) return process.argv.slice(i + 1);
  return args._.slice(1).map(String);
}

function runArgs(args: AgentArgs, command: string[], sockets: ListenSocket[]): string[] {
  return [
    FERRY_BIN, 'run', '--home', args.home,
    ...sockets.flatMap((l) => ['--listen', l.kind === 'fd' ? `fd:${l.fd}` : l.spec]),
    ...(args.health ? ['--health', args.health] : []),
    '--drain-timeout', args.drainTimeout,
    '--', ...command,
  ];
}

/** The child's stdio: stdin ignored, output to our stderr, and each inherited socket at its own fd number. */
function runStdio(sockets: ListenSocket[]): ('ignore' | number)[] {
  const fds = sockets.flatMap((l) => (l.kind === 'fd' ? [l.fd] : []));
  const slots: ('ignore' | number)[] = ['ignore', 2, 2];
  for (let fd = 3; fd <= Math.max(2, ...fds); fd++) slots.push(fds.includes(fd) ? fd : 'ignore');
  return slots;
}

/** SIGTERM to the child's pid, then SIGKILL if it has not exited within `graceMs`. */
function stopChild(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

// ---------------------------------------------------------------------------------------------
// The command

/** At most one check woken by peer announcements per this long (a chatty or lying peer). */
const PEER_WAKE_MS = 30_000;
/** How long a new `ferry run` gets to take its control socket before the first attempt goes on. */
const SUPERVISOR_START_MS = 30_000;

export const agentCommand: CommandModule<object, AgentArgs> = {
  command: 'agent',
  describe: 'Run as the device daemon: check and apply updates on schedule, react to USB drops, share the cache, optionally supervise the app',
  builder: (y) =>
    y
      .usage('ferry agent --home H [options] [-- <app command>]')
      .option('home', { type: 'string', demandOption: true, describe: 'the device home folder' })
      .option('log-format', { choices: ['human', 'json'] as const, default: 'human' as const, describe: 'one line per event: text, or one JSON object' })
      .option('once', { type: 'boolean', default: false, describe: 'one attempt, then exit with the code `ferry update` would give' })
      .option('share', { type: 'boolean', default: true, describe: 'with a lan source, serve the verified cache to peers (--no-share disables)' })
      .option('share-host', { type: 'string', default: '0.0.0.0', describe: 'address the cache is served on' })
      .option('share-port', { type: 'number', default: 7311 })
      .option('interface-address', { type: 'string', describe: 'with a lan source: the LAN address mDNS uses and announces' })
      .option('listen', { type: 'string', array: true, describe: 'with -- <cmd>: passed to ferry run (PORT, HOST:PORT, fd:N or systemd; repeat); under socket activation the default is every socket systemd passed' })
      .option('health', { type: 'string', describe: 'with -- <cmd>: passed to ferry run' })
      .option('drain-timeout', { type: 'string', default: '30s', describe: 'with -- <cmd>: passed to ferry run' }) as never,
  handler: async (args) => {
    const command = appCommand(args);
    // Taken (and the LISTEN_* variables removed) first: no child of the agent (health commands,
    // bspatch workers, `ferry run`) may read variables that describe the agent's own fds.
    const passed = takeSystemdListenFds(process.env, process.pid);
    if (args.once && command.length > 0) throw new FerryError('ERR_USAGE', '--once makes one attempt and exits; it cannot supervise an app (drop the -- <cmd>)');
    const sockets = command.length > 0 ? resolveListen(args.listen, passed) : [];
    // Checked here too, so a wrong fd is a usage error at start, not an exit of `ferry run` later.
    for (const l of sockets) if (l.kind === 'fd') assertInheritedSocket(l.fd);
    const drainMs = parseDurationMs(args.drainTimeout);
    const layout = homeLayout(args.home);
    let config = await readDeviceConfig(layout.config); // a broken ferry.json is a usage error now, not a loop of errors
    const clock = processClock;
    const log = createAgentLog(args.json ? 'json' : args.logFormat, (line) => process.stdout.write(line + '\n'), clock);

    if (args.once) {
      const r = await attempt(args.home, log, 'once');
      if (r.error) logError(log, r.error, null);
      process.exitCode = r.exit;
      return;
    }

    // Stop requests and wake-ups. A signal never cuts an attempt: it ends the sleep, or is noticed
    // when the attempt returns.
    let stopping: string | null = null;
    let exitCode: number = EXIT.ok;
    /** Why the sleep was cut short ('usb', 'peer'), or null. */
    let triggered: string | null = null;
    let endSleep: (() => void) | null = null;
    const requestStop = (why: string, code: number = EXIT.ok) => {
      if (stopping !== null) {
        log('stopping', { reason: why, again: true }, `${why} again: still finishing the current step`);
        return;
      }
      stopping = why;
      exitCode = code;
      log('stopping', { reason: why }, `stopping (${why})`);
      endSleep?.();
    };
    const onSignal = (signal: NodeJS.Signals) => requestStop(signal);
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    const wake = (why: string) => {
      triggered ??= why;
      endSleep?.();
    };
    const sleep = (ms: number) =>
      new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          endSleep = null;
          resolve();
        };
        const timer = setTimeout(done, ms);
        endSleep = done;
      });

    const watchers: { close(): void }[] = [];
    let server: PeerServer | null = null;
    let discovery: LanDiscovery | null = null;
    let child: ChildProcess | null = null;
    let deferredPeerWake: NodeJS.Timeout | null = null;
    try {
      // Recovery first: opening the updater finishes or rolls back an update a kill interrupted.
      const status = await withDevice(args.home, (u) => u.status(), { log: (m) => log('note', { message: m }, m) }).catch((err: unknown) => {
        if (!isFerryError(err, 'ERR_BUSY')) throw err;
        log('note', { message: (err as Error).message }, `home busy at start (${(err as Error).message}); recovery happens on the first attempt`);
        return null;
      });
      log('started', { version: status?.currentVersion ?? null, pid: process.pid, sources: config.sources, checkInterval: config.policy.checkInterval },
        `started on ${status?.currentVersion ?? 'nothing installed'} (pid ${process.pid}; sources ${config.sources.join(', ')}; every ${config.policy.checkInterval} s)`);
      if (passed.length > 0 && command.length === 0) {
        const message = `systemd passed ${passed.length} socket(s) but no app command follows --: nothing serves them`;
        log('note', { message }, message);
      }

      for (const spec of config.sources.filter((s) => s.startsWith('usb:'))) {
        watchers.push(watchMounts(parseUsbSpec(spec), (e) => {
          log('usb', { mount: e.mount, path: e.path }, `usb drop: ${e.path}`);
          wake('usb');
        }));
      }

      // A peer announcing a newer release than ours (mDNS TXT `ver=`) is a reason to look now. The
      // claim is unverified, so it only wakes a check (at most one per PEER_WAKE_MS); what gets
      // installed is decided by signed metadata as always.
      let installed = status?.currentVersion ?? null;
      let lastPeerWake = -Infinity;
      // Each announcement is heard once, so one that comes too soon after the last wake is kept as
      // a single deferred wake, never dropped.
      const peerWake = () => {
        deferredPeerWake = null;
        lastPeerWake = Date.now();
        wake('peer');
      };
      const onPeerVersion = (peer: { url: string; version: string }) => {
        if (!semver.valid(peer.version) || (installed !== null && !semver.gt(peer.version, installed))) return;
        log('peer', { url: peer.url, version: peer.version }, `peer ${peer.url} announces ${peer.version}`);
        const wait = lastPeerWake + PEER_WAKE_MS - Date.now();
        if (wait <= 0) peerWake();
        else deferredPeerWake ??= setTimeout(peerWake, wait);
      };
      const lanSpecs = config.sources.map(parseLanSpec).filter((s) => s !== null);
      // Only an mDNS source (`lan`) means peers browse and announce; a static list has no announcements.
      const mdns = lanSpecs.some((s) => s.static === undefined);
      const pinned = args.interfaceAddress ? { interfaceAddress: args.interfaceAddress } : {};
      if (args.share && lanSpecs.length > 0) {
        server = await startPeerServer({ cacheDir: layout.cache, host: args.shareHost, port: args.sharePort }).catch((err: unknown) => {
          throw new FerryError('ERR_IO', `cannot share the cache on ${args.shareHost}:${args.sharePort}: ${(err as Error).message}`, { cause: err });
        });
        if (mdns) discovery = createLanDiscovery({ app: config.app, port: server.port, ...(installed ? { version: installed } : {}), onPeerVersion, ...pinned });
        log('sharing', { url: server.url, announced: discovery?.instance ?? null }, `sharing the cache at ${server.url}${discovery?.instance ? ` as ${discovery.instance}` : ''}`);
      } else if (mdns) {
        discovery = createLanDiscovery({ app: config.app, onPeerVersion, ...pinned }); // listens only
      }

      const startApp = async () => {
        if (command.length === 0 || child !== null || stopping !== null) return;
        // ferry run needs something installed; until then the agent only updates.
        if ((await readlink(layout.current).catch(() => null)) === null) return;
        const c = spawn(process.execPath, runArgs(args, command, sockets), { stdio: runStdio(sockets) });
        child = c;
        log('app', { pid: c.pid ?? null, command }, `supervising the app with ferry run (pid ${c.pid ?? '?'}): ${command.join(' ')}`);
        c.once('exit', (code, signal) => {
          if (stopping !== null) return;
          log('app-exited', { code, signal }, `ferry run exited (${signal ?? code}); the agent stops too`);
          requestStop('app exited', EXIT.internal);
        });
        // An update must not switch `current` under a ferry run that has not yet taken its control
        // socket: it would commit without a handover and leave the old version serving.
        const deadline = Date.now() + SUPERVISOR_START_MS;
        while (stopping === null && c.exitCode === null && c.signalCode === null && Date.now() < deadline && !(await supervisorRunning(args.home, 500))) {
          await new Promise((r) => setTimeout(r, 100));
        }
      };
      // The app serves from what is installed at once (after recovery, above), not after the first
      // check: under socket activation, connections wait in the kernel's queue until it does.
      await startApp();

      let failures = 0;
      let why = 'start';
      let policy: UpdatePolicy = config.policy;
      while (stopping === null) {
        triggered = null;
        const r = await attempt(args.home, log, why);
        await startApp();
        const now = clock();
        const version = await readCurrent(layout).catch(() => null);
        if (version !== installed && version !== null) discovery?.announceVersion(version);
        installed = version;
        // ferry.json is read again each round, so a changed checkInterval takes effect.
        config = await readDeviceConfig(layout.config).catch(() => config);
        policy = config.policy;
        const next = afterAttempt({ policy, failures, outcome: r.outcome, triggered: triggered !== null, rand: Math.random(), waitingForWindow: r.waitingForWindow, now });
        failures = next.failures;
        if (next.why === 'window' && stopping === null) {
          const at = new Date(now.getTime() + next.delayMs);
          const local = formatLocalTime(at, policy.maintenanceWindow?.timezone ?? 'UTC');
          log('window-wait', { at: at.toISOString(), local }, `waiting for the maintenance window; next attempt at ${at.toISOString()} (${local})`);
        }
        if (r.error) logError(log, r.error, stopping === null ? next.delayMs : null);
        if (stopping !== null) break;
        if (next.delayMs > 0 && triggered === null) await sleep(next.delayMs);
        why = triggered ?? next.why;
      }
    } finally {
      for (const w of watchers) w.close();
      if (deferredPeerWake) clearTimeout(deferredPeerWake);
      if (child) await stopChild(child, drainMs + 10_000);
      await discovery?.close().catch(() => {});
      await server?.close().catch(() => {});
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
    }
    log('stopped', { code: exitCode }, 'stopped');
    process.exitCode = exitCode;
  },
};
