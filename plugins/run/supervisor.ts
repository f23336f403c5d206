// `ferry run`: the zero-downtime supervisor (ARCHITECTURE.md "ferry run") and ferry's
// GracefulUpdater. It holds the listening sockets (sockets.ts: bound by ferry, or inherited from
// systemd under socket activation), starts the app from the real release folder behind `current`
// with those sockets at fds 3…, restarts it when it crashes, and hands over to a new version:
// start the new generation on the same sockets → wait until it is ready → SIGTERM the old one (it
// stops accepting and finishes what it has) → SIGKILL after the drain timeout. A new generation
// that is not ready in time is stopped and the old one never stopped serving. Decisions (backoff,
// readiness mode, generation moves) are plugins/run/supervision.ts.
//
// No orphans: each generation is its own process group (killed as a group), started under
// `setpriv --pdeathsig TERM` where util-linux has it (Node cannot set PR_SET_PDEATHSIG itself), so
// a SIGKILLed supervisor still gets its apps drained; apps may also watch FERRY_NOTIFY_FD for EOF
// (ferry/app: plugins/run/app.ts onSupervisorGone), which works without setpriv.
//
// With a GenerationRunner (`ferry run --container`: plugins/container/handover-runner.ts) each
// generation is whatever the runner says to start for it (runc running the version's image with
// the held sockets); the runner also removes what a generation leaves once its process is gone.

import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants as fsConstants } from 'node:fs';
import { chmod, mkdir, readFile, realpath, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import * as semver from '../../core/semver.ts';
import { FerryError } from '../../core/errors.ts';
import { pidAlive } from '../../core/io/pid-alive.ts';
import { homeLayout, type HomeLayout } from '../../core/device/layout.ts';
import { readCurrent } from '../../core/device/switch.ts';
import type { HealthResult } from '../../core/ports/health.ts';
import type { GracefulUpdater } from '../../core/spec.ts';
import { canMove, DEFAULT_BACKOFF, onExit, restartDelay, type BackoffPolicy, type GenerationState, type ListenAddress, type Readiness } from './supervision.ts';
import { adoptInherited, bindUnpolled, listenHeld, type HeldSocket } from './sockets.ts';
import type { InheritedFd } from './listen-fds.ts';
import { controlSocketPath, pidFilePath, requestSupervisor, runDir, serveControl, type GenerationInfo, type SupervisorStatus } from './control.ts';

export interface SupervisorOptions {
  home: string;
  /** In the apps' fd order (3, 4, …): addresses to bind, or inherited sockets to hold (socket activation). */
  listen: (ListenAddress | InheritedFd)[];
  /** The app command, run in the release folder: e.g. ["node", "server.js"]. */
  command: string[];
  readiness: Readiness;
  /**
   * After a new generation is ready, how long it serves beside the old one before the handover
   * counts (SECURITY.md row 21 "trial, then commit"): an exit in that time, or with a health path
   * two failed probes in a row, makes it unhealthy and the old one, never stopped, keeps serving.
   * Default 0 (no trial).
   */
  trialMs?: number;
  drainTimeoutMs: number;
  backoff?: BackoffPolicy;
  log?: (message: string) => void;
  /** Extra environment for the app. */
  env?: NodeJS.ProcessEnv;
  /** Starts each generation in its own way (a container); `command` is then unused. */
  runner?: GenerationRunner;
}

/** What a generation is started with: the variables the app needs, and its fds from 3 on. */
export interface GenerationLaunchInput {
  /** The generation number (unique for this supervisor's life). */
  id: number;
  version: string;
  /** The version's real release folder. */
  dir: string;
  /** LISTEN_FDS, LISTEN_FDNAMES, FERRY_NOTIFY_FD, FERRY_VERSION, FERRY_GENERATION, FERRY_RUN (LISTEN_PID is the runner's: it knows the app's pid). */
  env: Record<string, string>;
  /** How many fds (3, 4, …) the process gets: the sockets, then the notify channel. */
  fdCount: number;
}

export interface GenerationLaunch {
  /** The process that is the generation: signals to its group reach the app (SIGTERM: drain). */
  command: string[];
  cwd: string;
  /** A name for logs (e.g. the container id). */
  label: string;
}

export interface GenerationRunner {
  /** Once, before the first generation: removes what a previous, killed supervisor left behind. */
  startup(): Promise<void>;
  /** Readies generation `input` and says what to start. */
  launch(input: GenerationLaunchInput): Promise<GenerationLaunch>;
  /** After the generation's process exited (also after SIGKILL): removes what is left of it. */
  cleanup(id: number, launch: GenerationLaunch): Promise<void>;
  /** The last resort (killAll, just before exiting): kill what the generation started, synchronously. */
  killNow(launch: GenerationLaunch): void;
}

interface Generation {
  id: number;
  version: string;
  dir: string;
  child: ChildProcess;
  pid: number;
  /** The container id (with a runner), or the pid, for logs. */
  label: string;
  /** What the runner said to start (with a runner). */
  launch: GenerationLaunch | null;
  state: GenerationState;
  startedAt: number;
  exited: Promise<void>;
  exitDetail: string | null;
  /** Resolves on the first READY=1 the app writes. */
  notified: Promise<void>;
  /** Where --health is probed: this generation's own socket, not the shared one. */
  healthPort: number | null;
  ready: Promise<HealthResult> | null;
  retiring: Promise<void> | null;
}

const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => {
  try {
    accessSync(p, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
});

/** How often a candidate on trial is probed (with a health path). */
const TRIAL_PROBE_MS = 500;

/** Waits `ms`, or less if `signal` aborts; the abort listener goes with the wait (polls sleep often). */
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const onAbort = () => { clearTimeout(timer); resolve(); };
    const timer = setTimeout(() => { signal?.removeEventListener('abort', onAbort); resolve(); }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // ESRCH: the group is gone already.
  }
}

/** One GET with its own connection (no keep-alive: the probe must not hold the app open). */
function probe(port: number, path: string, timeoutMs: number): Promise<{ ok: boolean; detail: string }> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent: false, headers: { connection: 'close' }, timeout: timeoutMs }, (res) => {
      res.resume();
      res.on('end', () => resolve({ ok: (res.statusCode ?? 0) >= 200 && (res.statusCode ?? 0) < 300, detail: `${path} answered ${res.statusCode}` }));
      res.on('error', (err) => resolve({ ok: false, detail: `${path}: ${err.message}` }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (err: NodeJS.ErrnoException) => resolve({ ok: false, detail: `${path}: ${err.code === 'ECONNREFUSED' ? 'not listening yet' : err.message}` }));
  });
}

export class Supervisor implements GracefulUpdater {
  private readonly layout: HomeLayout;
  private readonly backoff: BackoffPolicy;
  private sockets: HeldSocket[] = [];
  private control: net.Server | null = null;
  private generations: Generation[] = [];
  private active: Generation | null = null;
  private candidate: Generation | null = null;
  private nextId = 1;
  private restarts = 0;
  private crashesInARow = 0;
  private restartTimer: NodeJS.Timeout | null = null;
  private handovers = { healthy: 0, unhealthy: 0 };
  private queue: Promise<unknown> = Promise.resolve();
  private stopping: Promise<void> | null = null;
  /** A candidate is being launched (prepare awaits the runner): a second prepare is refused. */
  private launching = false;
  /** Runner cleanups in flight: stop() waits for them. */
  private cleanups = new Set<Promise<void>>();

  constructor(private readonly options: SupervisorOptions) {
    this.layout = homeLayout(options.home);
    this.backoff = options.backoff ?? DEFAULT_BACKOFF;
    if (options.command.length === 0 && !options.runner) throw new FerryError('ERR_USAGE', 'ferry run needs the app command after --');
    if (options.listen.length === 0) throw new FerryError('ERR_USAGE', 'ferry run needs at least one --listen');
  }

  private log(message: string): void {
    this.options.log?.(message);
  }

  /** The addresses served on (after start), as HOST:PORT (fd:N for an inherited non-IP socket). */
  get addresses(): string[] {
    return this.sockets.map((s) => s.label);
  }

  // -------------------------------------------------------------------------------------------
  // Start and stop

  /** Claims the home's run/ folder, binds (or adopts) the sockets, starts the app from `current`, opens the control socket. */
  async start(): Promise<void> {
    const version = await readCurrent(this.layout);
    if (!version) throw new FerryError('ERR_NOT_INSTALLED', `nothing is installed in ${this.layout.home} (no current); run ferry update first`);
    await this.claimRunDir();
    try {
      for (const l of this.options.listen) this.sockets.push('fd' in l ? adoptInherited(l.fd, l.name) : bindUnpolled(l));
      await this.openControl();
      await this.options.runner?.startup();
      const gen = await this.spawnGeneration(version, await realpath(this.layout.current), 'active');
      this.active = gen;
      const where = this.sockets.map((s) => (s.inherited ? `${s.label} (inherited fd ${s.inherited.fd}, ${s.inherited.name})` : s.label));
      this.log(`listening on ${where.join(', ')}; started ${version} (${gen.label})`);
    } catch (err) {
      await this.release();
      throw err;
    }
  }

  private async claimRunDir(): Promise<void> {
    const dir = runDir(this.layout.home);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await chmod(dir, 0o700);
    const owner = Number(await readFile(pidFilePath(this.layout.home), 'utf8').catch(() => 'NaN'));
    if (Number.isInteger(owner) && owner > 0 && owner !== process.pid) {
      // A pid file alone can be stale and its pid reused: only an answering control socket is busy.
      if (pidAlive(owner) && (await requestSupervisor(this.layout.home, { op: 'status' }, 1000).then(() => true, () => false))) {
        throw new FerryError('ERR_BUSY', `a supervisor (pid ${owner}) already runs ${this.layout.home}`);
      }
    }
    await rm(controlSocketPath(this.layout.home), { force: true });
    await writeFile(pidFilePath(this.layout.home), `${process.pid}\n`, { mode: 0o644 });
  }

  private async openControl(): Promise<void> {
    const server = net.createServer();
    serveControl(server, {
      handover: (version, timeoutMs, signal) => this.handover(version, { ...(timeoutMs !== undefined ? { timeoutMs } : {}), signal }),
      status: () => this.status(),
    }, (m) => this.log(m));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(controlSocketPath(this.layout.home), () => { server.off('error', reject); resolve(); });
    });
    await chmod(controlSocketPath(this.layout.home), 0o600);
    this.control = server;
  }

  /** Drains every generation (SIGTERM, then SIGKILL after the drain timeout) and lets go of everything. */
  stop(): Promise<void> {
    if (this.stopping) return this.stopping;
    this.stopping = (async () => {
      if (this.restartTimer) clearTimeout(this.restartTimer);
      this.control?.close();
      // Stop taking connections into the shared queue only once no app accepts from it any more:
      // our copy of each socket is closed last.
      await Promise.all(this.generations.map((g) => this.retire(g, this.options.drainTimeoutMs)));
      this.active = null;
      this.candidate = null;
      await Promise.all([...this.cleanups]);
      await this.release();
    })();
    return this.stopping;
  }

  private async release(): Promise<void> {
    for (const s of this.sockets) s.close();
    this.sockets = [];
    this.control?.close();
    await rm(controlSocketPath(this.layout.home), { force: true });
    const owner = Number(await readFile(pidFilePath(this.layout.home), 'utf8').catch(() => 'NaN'));
    if (owner === process.pid) await rm(pidFilePath(this.layout.home), { force: true });
  }

  /** Last resort (a second SIGINT): SIGKILL every app process group now. */
  killAll(): void {
    for (const g of this.generations) {
      killGroup(g.pid, 'SIGKILL');
      if (g.launch) this.options.runner?.killNow(g.launch);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Generations

  private move(gen: Generation, to: GenerationState): void {
    if (gen.state === to) return;
    if (!canMove(gen.state, to)) throw new FerryError('ERR_INTERNAL', `generation ${gen.id} cannot go ${gen.state} -> ${to}`);
    gen.state = to;
  }

  private async spawnGeneration(version: string, dir: string, state: 'active' | 'starting'): Promise<Generation> {
    const id = this.nextId++;
    const fds = this.sockets.map((s) => s.fd);
    const names = this.sockets.map((_, i) => `listen-${i}`);
    let healthSocket: HeldSocket | null = null;
    if (this.options.readiness.mode === 'health') {
      healthSocket = bindUnpolled({ host: '127.0.0.1', port: 0, family: 4 });
      fds.push(healthSocket.fd);
      names.push('ferry-health');
    }
    const notifyFd = 3 + fds.length;
    const appEnv: Record<string, string> = {
      LISTEN_FDS: String(fds.length),
      LISTEN_FDNAMES: names.join(':'),
      FERRY_RUN: '1',
      FERRY_VERSION: version,
      FERRY_GENERATION: String(id),
      FERRY_NOTIFY_FD: String(notifyFd),
    };
    let child: ChildProcess;
    let launch: GenerationLaunch | null = null;
    try {
      // A container's app takes its sockets listening, as systemd hands them (sockets.ts listenHeld).
      if (this.options.runner) await listenHeld(fds);
      // `exec` keeps the pid, so LISTEN_PID names the app itself, as the systemd convention wants.
      // A runner's command (runc) gets the same wrapper: setpriv's pdeathsig lands on it.
      launch = this.options.runner ? await this.options.runner.launch({ id, version, dir, env: appEnv, fdCount: fds.length + 1 }) : null;
      const command = launch?.command ?? this.options.command;
      const wrapper = ['/bin/sh', '-c', 'LISTEN_PID=$$; export LISTEN_PID; exec "$@"', 'ferry-run', ...command];
      const argv = SETPRIV ? [SETPRIV, '--pdeathsig', 'TERM', '--', ...wrapper] : wrapper;
      child = spawn(argv[0]!, argv.slice(1), {
        cwd: launch?.cwd ?? dir,
        detached: true, // its own process group (and session): killed as a group, deaf to our terminal's ^C
        stdio: ['ignore', 'inherit', 'inherit', ...fds, 'pipe'],
        env: { ...process.env, ...this.options.env, ...appEnv, FERRY_HOME: this.layout.home },
      });
    } catch (err) {
      if (launch) this.track(this.options.runner!.cleanup(id, launch));
      throw err;
    } finally {
      // The child holds its own copy now; ours would only keep a dead generation's socket bound.
      healthSocket?.close();
    }
    if (child.pid === undefined) {
      if (launch) this.track(this.options.runner!.cleanup(id, launch));
      throw new FerryError('ERR_IO', `could not start ${(launch?.command ?? this.options.command).join(' ')}`);
    }
    const label = launch ? `${launch.label}, pid ${child.pid}` : `pid ${child.pid}`;
    let resolveNotified!: () => void;
    const notified = new Promise<void>((r) => { resolveNotified = r; });
    const channel = child.stdio[notifyFd] as net.Socket | null | undefined;
    if (channel) {
      let text = '';
      channel.setEncoding('utf8');
      channel.on('data', (d: string) => {
        text = (text + d).slice(-1024);
        if (/(^|\n)READY=1\n/.test(text)) resolveNotified();
      });
      channel.on('error', () => {});
    }
    const gen: Generation = {
      id, version, dir, child, pid: child.pid, label, launch, state, startedAt: Date.now(),
      exited: new Promise<void>((resolve) => {
        child.on('exit', (code, signal) => {
          gen.exitDetail = signal ? `killed by ${signal}` : `exited ${code}`;
          resolve();
          this.onGenerationExit(gen);
          if (launch) this.track(this.options.runner!.cleanup(id, launch));
        });
      }),
      exitDetail: null, notified, healthPort: healthSocket?.address?.port ?? null, ready: null, retiring: null,
    };
    child.on('error', (err) => this.log(`generation ${id} (${version}): ${err.message}`));
    this.generations.push(gen);
    return gen;
  }

  private track(cleanup: Promise<void>): void {
    const p = cleanup.catch((err: unknown) => this.log(`cleanup: ${(err as Error).message}`)).finally(() => this.cleanups.delete(p));
    this.cleanups.add(p);
  }

  private onGenerationExit(gen: Generation): void {
    const action = onExit(gen.state, this.stopping !== null);
    this.generations = this.generations.filter((g) => g !== gen);
    // Anything the app left in its group goes with it (a pgid is not reused while members live).
    killGroup(gen.pid, 'SIGKILL');
    if (gen.state === 'active' || gen.state === 'draining' || gen.state === 'failed') this.move(gen, 'exited');
    if (action === 'restart' && this.active === gen) {
      const { crashesInARow, delayMs } = restartDelay(this.crashesInARow, Date.now() - gen.startedAt, this.backoff);
      this.crashesInARow = crashesInARow;
      this.log(`${gen.version} (${gen.label}) ${gen.exitDetail}; restarting in ${delayMs} ms (crash ${crashesInARow} in a row)`);
      this.restartTimer = setTimeout(() => {
        this.restartTimer = null;
        if (this.stopping || this.active !== gen) return;
        this.spawnGeneration(gen.version, gen.dir, 'active').then((next) => {
          // Stopped, or handed over, while the runner readied it: it is not wanted any more.
          if (this.stopping || this.active !== gen) {
            void this.retire(next, this.options.drainTimeoutMs);
            return;
          }
          this.active = next;
          this.restarts++;
          this.log(`restarted ${gen.version} (${next.label})`);
        }, (err: unknown) => {
          this.log(`restart failed: ${(err as Error).message}`);
        });
      }, delayMs);
    }
  }

  /** SIGTERM the group, SIGKILL it after `timeoutMs`; resolves once the process is gone. */
  private retire(gen: Generation, timeoutMs: number): Promise<void> {
    if (gen.retiring) return gen.retiring;
    if (gen.state === 'starting' && this.stopping === null) this.move(gen, 'failed');
    else if (gen.state === 'starting' || gen.state === 'active') this.move(gen, 'draining');
    gen.retiring = (async () => {
      if (gen.exitDetail !== null) return;
      killGroup(gen.pid, 'SIGTERM');
      const timer = new AbortController();
      const killed = sleep(timeoutMs, timer.signal).then(() => {
        if (gen.exitDetail !== null) return;
        this.log(`${gen.version} (${gen.label}) still running after ${timeoutMs} ms of draining: SIGKILL`);
        killGroup(gen.pid, 'SIGKILL');
      });
      await gen.exited;
      timer.abort();
      await killed;
    })();
    return gen.retiring;
  }

  /** Resolves healthy once `gen` is ready as the readiness mode says, or unhealthy on exit, timeout or abort. */
  private waitReady(gen: Generation, timeoutMs: number, signal?: AbortSignal): Promise<HealthResult> {
    const r = this.options.readiness;
    const stop = new AbortController();
    const onAbort = () => stop.abort();
    signal?.addEventListener('abort', onAbort, { once: true });
    const started = Date.now();
    const unhealthy = (detail: string): HealthResult => ({ healthy: false, detail: `${gen.version} (${gen.label}) ${detail}` });
    const contenders: Promise<HealthResult>[] = [
      gen.exited.then(() => unhealthy(`${gen.exitDetail} before it was ready`)),
      sleep(timeoutMs, stop.signal).then(() => unhealthy(stop.signal.aborted ? 'abandoned: the caller went away' : `not ready within ${timeoutMs} ms`)),
    ];
    switch (r.mode) {
      case 'health':
        contenders.push((async () => {
          let last = 'no answer';
          while (!stop.signal.aborted) {
            const p = await probe(gen.healthPort!, r.path, Math.max(100, Math.min(5000, timeoutMs - (Date.now() - started))));
            if (p.ok) return { healthy: true, detail: `${gen.version} (${gen.label}) ready: ${p.detail}` };
            last = p.detail;
            await sleep(100, stop.signal);
          }
          return unhealthy(`not ready (last: ${last})`);
        })());
        break;
      case 'notify':
        contenders.push(gen.notified.then(() => ({ healthy: true, detail: `${gen.version} (${gen.label}) reported READY=1` })));
        break;
      case 'settle':
        contenders.push(Promise.race([
          gen.notified.then(() => `${gen.version} (${gen.label}) reported READY=1`),
          sleep(Math.min(r.settleMs, timeoutMs), stop.signal).then(() => `${gen.version} (${gen.label}) stayed up for ${r.settleMs} ms`),
        ]).then((detail) => (gen.exitDetail !== null ? unhealthy(`${gen.exitDetail} before it was ready`) : { healthy: true, detail })));
        break;
      default: {
        const never: never = r;
        throw new FerryError('ERR_INTERNAL', `unknown readiness ${String(never)}`);
      }
    }
    return Promise.race(contenders).finally(() => {
      stop.abort();
      signal?.removeEventListener('abort', onAbort);
    });
  }

  /**
   * The trial of a ready candidate: it serves beside the active generation for `trialMs`. Healthy
   * if it is still up (and, with a health path, still answering) at the end; unhealthy at once if
   * it exits or fails two probes in a row.
   */
  private waitTrial(gen: Generation, ready: HealthResult, trialMs: number, signal?: AbortSignal): Promise<HealthResult> {
    const r = this.options.readiness;
    const stop = new AbortController();
    const onAbort = () => stop.abort();
    signal?.addEventListener('abort', onAbort, { once: true });
    const unhealthy = (detail: string): HealthResult => ({ healthy: false, detail: `${gen.version} (${gen.label}) ${detail}` });
    const contenders: Promise<HealthResult>[] = [
      gen.exited.then(() => unhealthy(`was ready, then ${gen.exitDetail} during its ${trialMs} ms trial`)),
      sleep(trialMs, stop.signal).then(() => (stop.signal.aborted
        ? unhealthy('abandoned during its trial: the caller went away')
        : { healthy: true, detail: `${ready.detail}; still up after a ${trialMs} ms trial` })),
    ];
    if (r.mode === 'health') {
      contenders.push((async () => {
        let failedInARow = 0;
        while (!stop.signal.aborted) {
          await sleep(TRIAL_PROBE_MS, stop.signal);
          if (stop.signal.aborted) break;
          const p = await probe(gen.healthPort!, r.path, TRIAL_PROBE_MS);
          failedInARow = p.ok ? 0 : failedInARow + 1;
          if (failedInARow >= 2) return unhealthy(`was ready, then failed its health probe twice during its ${trialMs} ms trial (${p.detail})`);
        }
        return new Promise<HealthResult>(() => {}); // the other contenders decide
      })());
    }
    return Promise.race(contenders).finally(() => {
      stop.abort();
      signal?.removeEventListener('abort', onAbort);
    });
  }

  // -------------------------------------------------------------------------------------------
  // GracefulUpdater

  /** Starts `version` from its release folder as the candidate, beside the active generation. */
  async prepare(version: string, options: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<void> {
    if (this.stopping) throw new FerryError('ERR_BUSY', 'the supervisor is stopping');
    if (this.candidate || this.launching) throw new FerryError('ERR_BUSY', `a handover to ${this.candidate?.version ?? 'another version'} is in progress`);
    if (semver.valid(version) !== version) throw new FerryError('ERR_USAGE', `"${version}" is not a version`);
    // The caller's deadline (the updater's health timeout) bounds ours, with a margin for the
    // answer to travel: the updater must never roll back `current` after we switched traffic.
    // It counts from here: readying a container (unpacking its image) spends it too.
    const timeoutMs = Math.min(this.options.readiness.timeoutMs, options.timeoutMs !== undefined ? Math.max(100, options.timeoutMs - 1000) : Infinity);
    const started = Date.now();
    this.launching = true;
    let gen: Generation;
    try {
      const dir = await realpath(this.layout.release(version)).catch(() => {
        throw new FerryError('ERR_NOT_FOUND', `${version} is not installed in ${this.layout.releases}`);
      });
      gen = await this.spawnGeneration(version, dir, 'starting');
    } finally {
      this.launching = false;
    }
    if (this.stopping) {
      void this.retire(gen, this.options.drainTimeoutMs);
      throw new FerryError('ERR_BUSY', 'the supervisor is stopping');
    }
    this.candidate = gen;
    gen.ready = this.waitReady(gen, Math.max(100, timeoutMs - (Date.now() - started)), options.signal).then((r) => {
      // The trial fits in what is left of the caller's deadline.
      const trialMs = Math.min(this.options.trialMs ?? 0, Math.max(0, timeoutMs - (Date.now() - started)));
      return r.healthy && trialMs > 0 ? this.waitTrial(gen, r, trialMs, options.signal) : r;
    }).then((r) => {
      if (!r.healthy && this.candidate === gen) {
        this.candidate = null;
        this.log(`handover to ${version} failed: ${r.detail}`);
        void this.retire(gen, this.options.drainTimeoutMs);
      }
      return r;
    });
  }

  /** The candidate's readiness (waits for it); false also when there is no candidate. */
  async healthCheck(): Promise<boolean> {
    return (await this.candidateReady()).healthy;
  }

  private async candidateReady(): Promise<HealthResult> {
    const gen = this.candidate;
    if (!gen?.ready) return { healthy: false, detail: 'no handover in progress' };
    return gen.ready;
  }

  /** Tells every generation but the active one and the candidate to drain, and waits (SIGKILL at the timeout). */
  async drainConnections(timeoutMs: number): Promise<void> {
    await Promise.all(this.generations.filter((g) => g !== this.active && g !== this.candidate).map((g) => this.retire(g, timeoutMs)));
  }

  /** The whole handover of the prepared candidate: ready → promote → drain the old one. ERR_UNHEALTHY if not ready. */
  async execute(): Promise<void> {
    const r = await this.candidateReady();
    if (!r.healthy) throw new FerryError('ERR_UNHEALTHY', r.detail);
    this.promote();
    await this.drainConnections(this.options.drainTimeoutMs);
  }

  private promote(): Generation | null {
    const gen = this.candidate!;
    const old = this.active;
    this.move(gen, 'active');
    this.active = gen;
    this.candidate = null;
    this.crashesInARow = 0;
    if (this.restartTimer) {
      clearTimeout(this.restartTimer);
      this.restartTimer = null;
    }
    if (old) void this.retire(old, this.options.drainTimeoutMs);
    return old;
  }

  /**
   * The control socket's and SIGHUP's handover (serialized): prepare → ready → promote, old told to
   * drain. Answers without waiting for the drain: from the promotion on, the new version serves.
   */
  handover(version: string | undefined, options: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<HealthResult> {
    const run = async (): Promise<HealthResult> => {
      const target = version ?? (await readCurrent(this.layout));
      if (!target) return { healthy: false, detail: 'nothing installed to hand over to' };
      if (options.signal?.aborted) return { healthy: false, detail: 'abandoned: the caller went away' };
      try {
        await this.prepare(target, options);
      } catch (err) {
        this.handovers.unhealthy++;
        return { healthy: false, detail: (err as Error).message };
      }
      const r = await this.candidateReady();
      if (!r.healthy) {
        this.handovers.unhealthy++;
        return r;
      }
      if (options.signal?.aborted || this.stopping) {
        const gen = this.candidate!;
        this.candidate = null;
        void this.retire(gen, this.options.drainTimeoutMs);
        this.handovers.unhealthy++;
        return { healthy: false, detail: 'abandoned: the caller went away before the switch' };
      }
      const old = this.promote();
      this.handovers.healthy++;
      const detail = `${r.detail}${old ? `; ${old.version} (${old.label}) draining` : ''}`;
      this.log(`handed over to ${detail}`);
      return { healthy: true, detail };
    };
    const next = this.queue.then(run, run);
    this.queue = next.catch(() => undefined);
    return next;
  }

  // -------------------------------------------------------------------------------------------
  // Status

  status(): SupervisorStatus {
    const info = (g: Generation): GenerationInfo => ({ generation: g.id, pid: g.pid, version: g.version, dir: g.dir, state: g.state, startedAt: new Date(g.startedAt).toISOString() });
    const r = this.options.readiness;
    return {
      pid: process.pid,
      home: this.layout.home,
      listen: this.addresses,
      readiness: r.mode === 'health' ? `health ${r.path}` : r.mode,
      active: this.active ? info(this.active) : null,
      candidate: this.candidate ? info(this.candidate) : null,
      draining: this.generations.filter((g) => g.state === 'draining' || g.state === 'failed').map(info),
      restarts: this.restarts,
      handovers: { ...this.handovers },
    };
  }
}
