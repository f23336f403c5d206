// Agent: the device's long-running daemon as a library (ARCHITECTURE.md "The agent"; `ferry agent`
// is a thin command around it, cli/commands/agent.ts). It checks and applies updates (trigger 'auto', so the policy's
// autoUpdate, approval and window rules hold; none at all while the policy is disabled) every checkInterval with jitter, backing off while
// offline, and, when a staged release waits for the maintenance window, when the window opens
// (the decisions: core/policy/agent-schedule.ts, core/policy/maintenance-window.ts). It checks at
// once when a bundle or repository lands on a `usb:` mount or a LAN peer announces a newer
// release (at most one peer wake per PEER_WAKE_MS), shares the verified cache with LAN peers and
// announces the release it runs when a source is `lan` (plugins/agent/wake-sources.ts), carries
// the device's signed reports off after every round (the endpoint, the stick, LAN peers:
// plugins/fleet/deliver-reports.ts; each round writes one, plugins/agent/attempt.ts), and can
// supervise the app with `ferry run`: started detached (plugins/agent/app-child.ts), or adopted
// when one already serves the home (plugins/agent/adopt-supervisor.ts). For an app shipped as an
// image it reconciles the containers at start and then watches that the container of `current`
// runs (plugins/container/watchdog.ts). The home's lock is taken only for an attempt
// (plugins/agent/attempt.ts) or a watchdog restart, one at a time (inTurn), so `ferry status`,
// `ferry approve` … work in between.
//
//   const agent = new Agent({ home, log, app: { command: ['node', 'server.js'], listen: ['8080'], drainTimeoutMs: 30_000 } });
//   const stop = new AbortController();
//   process.once('SIGTERM', () => stop.abort('SIGTERM'));
//   const how = await agent.run(stop.signal); // { reason: 'aborted' } or { reason: 'app-exited', … }
//
// Options (all but `home` optional):
//   home             the device home (made by `ferry init`)
//   log              AgentLog, one call per event (default: none); createAgentLog prints lines
//   clock            the time the schedule, the window and the device read (default: the real clock)
//   sleep            SleepFn the agent waits with (default: real timers); with `clock`, fake time
//   random           jitter source in [0, 1] (default Math.random)
//   spawn            starts `ferry run` (default node's child_process.spawn)
//   share            { host, port }: serve the cache to LAN peers when a source is lan (default: no)
//   interfaceAddress the LAN address mDNS uses and announces
//   app              { command, listen?, health?, drainTimeoutMs }: supervise the app (ferry run)
//   ferryBin         the ferry executable run as `node <ferryBin> run …` (default dist/cli/ferry.js)
//   killPoint        a test seam handed to the Updater unchanged (UpdaterDeps.killPoint)
//   self             SelfUpdate on the agent's own self home (SelfUpdate.fromEnv; default none):
//                    after each attempt the agent confirms itself when on trial, or prepares and
//                    switches to its next version and returns { reason: 'self-update', version },
//                    leaving `ferry run` serving for the next agent to adopt (plugins/agent/self-round.ts)
// Methods:
//   run(signal)      the loop until `signal` aborts (or the supervised app exits, or a self-update
//                    was switched to: then restart, RESTART_EXIT_CODE for `ferry agent`). An attempt under
//                    way is finished, never cut mid-switch; then `ferry run` (child or adopted) and
//                    servers are stopped.
//                    Rejects only when it cannot start (a broken ferry.json, the share port taken).
//   once()           one attempt, for `ferry agent --once`: what it came to (its failure is the
//                    result's `error`; outcome 'disabled', no attempt, when the policy is disabled);
//                    rejects only for a broken ferry.json or an app given
//   wake(why)        check now (what a USB drop does)
//   peerAnnounced(p) a peer says it runs p.version: a check soon, if newer than ours (rate-limited)
// Socket activation: the Agent takes the sockets systemd passed this process (LISTEN_PID = this
// pid) when it is built, removing the LISTEN_* variables first so no child (health commands,
// bspatch workers, `ferry run`) reads variables that describe the agent's own fds, and hands them
// to its `ferry run` (plugins/agent/app-child.ts).

import { spawn as nodeSpawn, type ChildProcess } from 'node:child_process';
import * as semver from '../../core/semver.ts';
import { afterAttempt, attemptAllowed } from '../../core/policy/agent-schedule.ts';
import { formatLocalTime } from '../../core/policy/maintenance-window.ts';
import { readDeviceConfig, type DeviceConfig } from '../../core/device/config.ts';
import { homeLayout, type HomeLayout } from '../../core/device/layout.ts';
import { readCurrent } from '../../core/device/switch.ts';
import { FerryError, isFerryError } from '../../core/errors.ts';
import type { UpdaterDeps } from '../../core/update/updater.ts';
import { withDevice, type OpenDeviceOptions } from '../open-device.ts';
import { ensureCurrentContainer } from '../container/reconcile.ts';
import { watchContainers } from '../container/watchdog.ts';
import { takeSystemdListenFds, type InheritedFd, type ListenSocket } from '../run/listen-fds.ts';
import { logError, type AgentLog } from './agent-log.ts';
import { adoptSupervisor, findRunningSupervisor } from './adopt-supervisor.ts';
import { appInstalled, appSockets, childSupervisor, DEFAULT_FERRY_BIN, startApp, STOP_GRACE_MS, waitForSupervisor, type AppOptions, type SpawnFn, type StartAppInput, type SupervisorHandle } from './app-child.ts';
import { attemptUpdate, skipDisabled, type AttemptResult } from './attempt.ts';
import { createPeerWake, type PeerWake } from './peer-wake.ts';
import { realSleep, type SleepFn } from './sleep.ts';
import { startWakeSources, type ShareOptions, type WakeSources } from './wake-sources.ts';
import { pinRunningRelease } from '../running-release-pin.ts';
import type { SelfUpdate } from '../self/self-update.ts';
import { SelfRound, type SelfUpdater } from './self-round.ts';

export { createAgentLog, type AgentLog } from './agent-log.ts';
export type { AppOptions, SpawnFn } from './app-child.ts';
export type { AttemptResult } from './attempt.ts';
export { PEER_WAKE_MS } from './peer-wake.ts';
export type { SleepFn } from './sleep.ts';
export type { ShareOptions } from './wake-sources.ts';

export interface AgentOptions {
  home: string;
  log?: AgentLog;
  clock?: () => Date;
  sleep?: SleepFn;
  random?: () => number;
  spawn?: SpawnFn;
  share?: ShareOptions | null;
  interfaceAddress?: string;
  app?: AppOptions;
  ferryBin?: string;
  killPoint?: UpdaterDeps['killPoint'];
  self?: SelfUpdate | null;
}

/** Why run() returned. */
export type AgentStopped =
  | { reason: 'aborted' }
  /** The supervised `ferry run` exited on its own: the agent stops too (its supervisor restarts both). */
  | { reason: 'app-exited'; code: number | null; signal: NodeJS.Signals | null }
  /** The agent switched to a new version of itself: start it (the keeper does, on RESTART_EXIT_CODE). `ferry run` was left serving. */
  | { reason: 'self-update'; version: string };

const quiet: AgentLog = () => {};

/** One report request of the agent's delivery, and all of them to LAN peers together. */
const CARRY_REQUEST_MS = 5_000;
const CARRY_PEERS_MS = 10_000;

export class Agent {
  readonly home: string;
  private readonly log: AgentLog;
  private readonly clock: () => Date;
  private readonly sleep: SleepFn;
  private readonly random: () => number;
  private readonly spawn: SpawnFn;
  private readonly share: ShareOptions | null;
  private readonly interfaceAddress: string | undefined;
  private readonly app: AppOptions | null;
  private readonly ferryBin: string;
  private readonly self: SelfUpdater | null;
  private readonly device: OpenDeviceOptions;
  /** The sockets systemd passed, and those `ferry run` serves on. */
  private readonly passed: InheritedFd[];
  private readonly sockets: ListenSocket[];

  // State of the running loop.
  private running = false;
  /** Why the current or next sleep is cut short ('usb', 'peer' …), or null. */
  private triggered: string | null = null;
  private napping: AbortController | null = null;
  /** The tail of what runs under the home's lock, one at a time (inTurn). */
  private turn: Promise<unknown> = Promise.resolve();
  private installed: string | null = null;
  private peerWake: PeerWake | null = null;

  /** ERR_USAGE for an app that cannot be run (an empty command, a --listen fd that is no socket). */
  constructor(options: AgentOptions) {
    this.home = options.home;
    this.log = options.log ?? quiet;
    this.clock = options.clock ?? (() => new Date());
    this.sleep = options.sleep ?? realSleep;
    this.random = options.random ?? Math.random;
    this.spawn = options.spawn ?? nodeSpawn;
    this.share = options.share ?? null;
    this.interfaceAddress = options.interfaceAddress;
    this.app = options.app ?? null;
    this.ferryBin = options.ferryBin ?? DEFAULT_FERRY_BIN;
    this.self = options.self ?? null;
    this.device = {
      log: (m) => this.log('note', { message: m }, m),
      clock: this.clock,
      ...(options.killPoint ? { killPoint: options.killPoint } : {}),
    };
    this.passed = takeSystemdListenFds(process.env, process.pid);
    this.sockets = this.app ? appSockets(this.app, this.passed) : [];
  }

  /** Check now: ends the current sleep, or runs again right after the attempt under way. */
  wake(why: string): void {
    this.triggered ??= why;
    this.napping?.abort();
  }

  /**
   * A LAN peer says it runs `version` (unverified). When that is newer than what is installed, a
   * check follows, at most one per PEER_WAKE_MS (plugins/agent/peer-wake.ts). Ignored unless run()
   * is running.
   */
  peerAnnounced(peer: { url: string; version: string }): void {
    if (!this.peerWake) return;
    if (!semver.valid(peer.version) || (this.installed !== null && !semver.gt(peer.version, this.installed))) return;
    this.log('peer', { url: peer.url, version: peer.version }, `peer ${peer.url} announces ${peer.version}`);
    this.peerWake.heard();
  }

  /** One attempt (`ferry agent --once`). ERR_USAGE with an app: one attempt cannot supervise it. */
  async once(): Promise<AttemptResult> {
    if (this.app) throw new FerryError('ERR_USAGE', 'once makes one attempt and returns; it cannot supervise an app (drop the app command)');
    const config = await readDeviceConfig(homeLayout(this.home).config); // a broken ferry.json is an error of its own, not a failed attempt
    if (!attemptAllowed(config.policy)) return skipDisabled(this.log, 'once');
    const r = await attemptUpdate(this.home, this.log, 'once', this.device);
    if (r.error) logError(this.log, r.error, null);
    await this.carryReports(homeLayout(this.home), config, null);
    return r;
  }

  /** The daemon loop until `signal` aborts; see the file header. */
  async run(signal: AbortSignal): Promise<AgentStopped> {
    if (this.running) throw new FerryError('ERR_USAGE', `an agent already runs on ${this.home} in this process`);
    this.running = true;
    const log = this.log;
    const layout = homeLayout(this.home);
    // A stop never cuts an attempt: it ends a sleep or a wait, or is noticed when the attempt returns.
    const stop = new AbortController();
    let stopped: AgentStopped = { reason: 'aborted' };
    const requestStop = (why: string, how: AgentStopped) => {
      if (stop.signal.aborted) return;
      stopped = how;
      log('stopping', { reason: why }, `stopping (${why})`);
      stop.abort();
    };
    const onAbort = () => requestStop(typeof signal.reason === 'string' ? signal.reason : 'aborted', { reason: 'aborted' });
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });

    let sources: WakeSources | null = null;
    let supervisor: SupervisorHandle | null = null;
    // The container watchdog (plugins/container/watchdog.ts), for an app shipped as an image.
    let watching: Promise<void> = Promise.resolve();
    // The last round's reports on their way: carried while the agent sleeps, awaited before the next round.
    let carrying: Promise<void> = Promise.resolve();
    try {
      // Long-running: the release ferry runs from must outlive cleanup (plugins/running-release-pin.ts).
      await pinRunningRelease('agent', (m) => log('note', { message: m }, m));
      let config = await readDeviceConfig(layout.config); // a broken ferry.json is an error now, not a loop of errors
      // Recovery first: opening the updater finishes or rolls back an update a kill interrupted.
      const status = await withDevice(this.home, async (u) => {
        // An app shipped as an image (ferry.json container): after recovery, exactly the container
        // of `current` runs (plugins/container/reconcile.ts); a failure is noted, not fatal.
        const note = (m: string) => log('note', { message: m }, m);
        if (!this.app) await ensureCurrentContainer(this.home, { log: note, ...(this.device.container?.engine ? { engine: this.device.container.engine } : {}) }).catch((err: unknown) => log('note', { message: (err as Error).message }, `containers: ${(err as Error).message}`));
        return u.status();
      }, this.device).catch((err: unknown) => {
        if (!isFerryError(err, 'ERR_BUSY')) throw err;
        log('note', { message: err.message }, `home busy at start (${err.message}); recovery happens on the first attempt`);
        return null;
      });
      log('started', { version: status?.currentVersion ?? null, pid: process.pid, sources: config.sources, checkInterval: config.policy.checkInterval },
        `started on ${status?.currentVersion ?? 'nothing installed'} (pid ${process.pid}; sources ${config.sources.join(', ')}; every ${config.policy.checkInterval} s)`);
      if (this.passed.length > 0 && !this.app) {
        const message = `systemd passed ${this.passed.length} socket(s) but no app command is given: nothing serves them`;
        log('note', { message }, message);
      }

      if (!this.app) watching = watchContainers(this.home, stop.signal, (o) => logWatch(log, o), { inTurn: (fn) => this.inTurn(fn) });

      const selfRound = this.self && new SelfRound(this.self, log);
      await selfRound?.start();

      this.installed = status?.currentVersion ?? null;
      this.peerWake = createPeerWake({ clock: this.clock, sleep: this.sleep, wake: () => this.wake('peer') });
      sources = await startWakeSources({
        home: this.home,
        config,
        log,
        usbDrop: () => this.wake('usb'),
        peerVersion: (peer) => this.peerAnnounced(peer),
        installed: this.installed,
        share: this.share,
        ...(this.interfaceAddress ? { interfaceAddress: this.interfaceAddress } : {}),
      });

      const app = this.app;
      const appInput: StartAppInput | null = app && { home: this.home, app, sockets: this.sockets, ferryBin: this.ferryBin, spawn: this.spawn, clock: this.clock, sleep: this.sleep, stop: stop.signal };
      const ensureApp = async () => {
        if (!appInput || supervisor !== null || stop.signal.aborted || !(await appInstalled(this.home))) return;
        // A `ferry run` that outlived the last agent (a crash, a kill, a self-update) is adopted:
        // a second one would fail with ERR_BUSY.
        const running = await findRunningSupervisor(this.home, this.sleep, stop.signal);
        let started: ChildProcess | null = null;
        if (running !== null) {
          supervisor = adoptSupervisor(running, this.sleep);
          log('app', { pid: running, adopted: true, command: appInput.app.command }, `adopted the ferry run already supervising the app (pid ${running})`);
        } else {
          started = await startApp(appInput);
          if (!started) return;
          supervisor = childSupervisor(started);
          log('app', { pid: started.pid ?? null, adopted: false, command: appInput.app.command }, `supervising the app with ferry run (pid ${started.pid ?? '?'}): ${appInput.app.command.join(' ')}`);
        }
        void supervisor.gone.then(({ code, signal: sig }) => {
          if (stop.signal.aborted) return;
          const how = sig ?? code ?? 'gone';
          log('app-exited', { code, signal: sig }, `ferry run exited (${how}); the agent stops too`);
          requestStop('app exited', { reason: 'app-exited', code, signal: sig });
        });
        if (started) await waitForSupervisor(started, appInput);
      };
      // The app serves from what is installed at once (after recovery, above), not after the first
      // check: under socket activation, connections wait in the kernel's queue until it does.
      await ensureApp();

      let failures = 0;
      let why = 'start';
      while (!stop.signal.aborted) {
        await carrying;
        this.triggered = null;
        // Disabled: no attempt at all (core/policy/agent-schedule.ts), judged on ferry.json as it
        // is now, so `enabled: true` written during a sleep counts at the next wake-up.
        config = await readDeviceConfig(layout.config).catch(() => config);
        const r = attemptAllowed(config.policy) ? await this.inTurn(() => attemptUpdate(this.home, log, why, this.device)) : skipDisabled(log, why);
        await ensureApp();
        const restartInto = await selfRound?.after(r.error, stop.signal.aborted);
        if (restartInto) requestStop('self-update', { reason: 'self-update', version: restartInto });
        const now = this.clock();
        const version = await readCurrent(layout).catch(() => null);
        if (version !== this.installed && version !== null) sources.announceVersion(version);
        this.installed = version;
        // ferry.json is read again each round, so a changed checkInterval takes effect.
        config = await readDeviceConfig(layout.config).catch(() => config);
        const policy = config.policy;
        const next = afterAttempt({ policy, failures, outcome: r.outcome, triggered: this.triggered !== null, rand: this.random(), waitingForWindow: r.waitingForWindow, now });
        failures = next.failures;
        carrying = this.carryReports(layout, config, sources);
        if (next.why === 'window' && !stop.signal.aborted) {
          const at = new Date(now.getTime() + next.delayMs);
          const local = formatLocalTime(at, policy.maintenanceWindow?.timezone ?? 'UTC');
          log('window-wait', { at: at.toISOString(), local }, `waiting for the maintenance window; next attempt at ${at.toISOString()} (${local})`);
        }
        if (r.error) logError(log, r.error, stop.signal.aborted ? null : next.delayMs);
        if (stop.signal.aborted) break;
        if (next.delayMs > 0 && this.triggered === null) await this.nap(next.delayMs, stop.signal);
        why = this.triggered ?? next.why;
      }
    } finally {
      signal.removeEventListener('abort', onAbort);
      stop.abort(); // ends a deferred peer wake's sleep, whatever ended the loop
      await carrying;
      await watching;
      this.peerWake?.close();
      this.peerWake = null;
      const ending = stopped as AgentStopped; // set by requestStop, which TypeScript cannot follow into the closure
      if (ending.reason === 'self-update' && signal.aborted) {
        // Told to stop while switching: a stop, not a restart. The switch is written, so the next start tries the new version.
        const message = `told to stop (${String(signal.reason)}) during the self-update: stopping everything; the next start tries ${ending.version}`;
        log('note', { message }, message);
        stopped = { reason: 'aborted' };
      }
      const handle = supervisor as SupervisorHandle | null; // set in ensureApp, as above
      // A self-update leaves `ferry run` serving: the next agent adopts it (plugins/agent/adopt-supervisor.ts).
      if (handle && (stopped as AgentStopped).reason === 'self-update') handle.leave();
      else if (handle) await handle.stop((this.app?.drainTimeoutMs ?? 0) + STOP_GRACE_MS);
      await sources?.close();
      this.running = false;
    }
    const how = stopped as AgentStopped; // set by requestStop, which TypeScript cannot follow into the closure
    log('stopped', { ...how }, how.reason === 'self-update' ? `stopped to restart as ${how.version}` : 'stopped');
    return how;
  }

  /**
   * Carries the device's reports along its routes (plugins/fleet/deliver-reports.ts): logged as one
   * `reports` event when there was a route; never rejects (a report never stops the agent).
   */
  private async carryReports(layout: HomeLayout, config: DeviceConfig, sources: WakeSources | null): Promise<void> {
    try {
      const { deliverReports, describeDelivery } = await import('../fleet/deliver-reports.ts');
      const peers = sources ? await sources.peers() : [];
      // Bounded so a stalled endpoint or peer delays a stop by seconds, not minutes.
      const d = await deliverReports({ layout, config, peers, timeoutMs: CARRY_REQUEST_MS, peersTotalTimeoutMs: CARRY_PEERS_MS });
      const lines = describeDelivery(d);
      if (lines.length > 0) this.log('reports', { reports: d.reports, endpoint: d.endpoint, sticks: d.sticks, peers: d.peers }, `reports (${d.reports}): ${lines.join('; ')}`);
    } catch (err) {
      const message = `reports not carried: ${(err as Error).message}`;
      this.log('note', { message }, message);
    }
  }

  /**
   * Runs `fn` after whatever this agent runs under the home's lock now (an attempt, a watchdog
   * reconcile), so its own two users never race for the lock and fail with ERR_BUSY.
   */
  private inTurn<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.turn.then(fn);
    this.turn = run.catch(() => {});
    return run;
  }

  /** Sleeps until `ms` pass, wake() is called or the agent stops. */
  private async nap(ms: number, stop: AbortSignal): Promise<void> {
    // One controller ended by either, held by `this.napping` for as long as the sleep lasts (a
    // signal from AbortSignal.any that nothing references could be collected with its listeners).
    const woken = new AbortController();
    const onStop = () => woken.abort();
    stop.addEventListener('abort', onStop, { once: true });
    this.napping = woken;
    try {
      if (!stop.aborted) await this.sleep(ms, woken.signal);
    } finally {
      stop.removeEventListener('abort', onStop);
      this.napping = null;
    }
  }
}

/** The agent's line for a container watchdog look that changed something or failed. */
function logWatch(log: AgentLog, o: Parameters<Parameters<typeof watchContainers>[2]>[0]): void {
  if (o.kind === 'reconciled') {
    const what = o.started ? `the container of ${o.version} was not running: started it again` : `stopped ${o.stopped.join(', ')}`;
    log('container', { action: o.started ? 'restarted' : 'stopped', version: o.version, stopped: o.stopped }, `containers: ${what}`);
  } else if (o.kind === 'error') {
    const message = `containers: ${(o.error as Error).message}`;
    log('note', { message }, message);
  }
}
