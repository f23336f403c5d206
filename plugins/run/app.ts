// ferry/app: what an app needs to run under `ferry run` with no failed request across updates
// (ARCHITECTURE.md "Zero-downtime switch"). The package entry `ferry/app`.
//
//   import { serve } from 'ferry/app';
//   await serve((req, res) => res.end('hello\n'));
//
// serve() listens on every socket `ferry run` passes (LISTEN_FDS, including the private
// "ferry-health" one `--health` probes; app-sockets.ts), or, run alone, on options.port ?? $PORT ??
// 8080; reports ready to the supervisor once listening (app-supervisor.ts); and on SIGTERM, SIGINT
// or the supervisor going away drains (app-drain.ts) and exits 0. An app that manages its own exit
// passes `handleSignals: false` and calls close() itself.
//
// Ready means "takes traffic": with `ready: false` the app listens on nothing, not even the private
// health socket, until it calls reportReady(). Listening is what lets the kernel hand it
// connections from the shared queue, so an app still warming up must not listen yet: the old
// generation keeps serving them meanwhile, and a release that never gets ready never answers one.
//
// It is loaded inside apps, from a release tree where only this file and its app-*.js siblings are
// vendored (node_modules/ferry/): it imports node: built-ins only, never the rest of ferry.

import http from 'node:http';
import { describeTarget, listenTargets, type ListenTarget } from './app-sockets.ts';
import { Drain, IDLE_CLOSE_MS } from './app-drain.ts';
import { notifySupervisor, onSupervisorGone } from './app-supervisor.ts';

export { onSupervisorGone };

/**
 * How long a drain may take before what is left is cut: under `ferry run`'s default
 * --drain-timeout (30 s), so the app closes its last connections itself before the supervisor's SIGKILL.
 */
export const DEFAULT_DRAIN_TIMEOUT_MS = 25_000;

/** How long an idle keep-alive connection stays open outside a drain (Node's own default). */
export const DEFAULT_KEEP_ALIVE_TIMEOUT_MS = 5_000;

export interface ServeOptions {
  /** Run alone: the port (default $PORT, else 8080). Ignored under `ferry run`, which owns the address. */
  port?: number;
  /** Run alone: the address to listen on (default every address). */
  host?: string;
  /** How long a drain waits for requests in flight before it closes what is left (default 25 s). */
  drainTimeoutMs?: number;
  /** server.keepAliveTimeout of each server (default 5 s). */
  keepAliveTimeoutMs?: number;
  /** Listen and report ready at once (default true); false: neither until the app calls reportReady(), e.g. after warming a cache. */
  ready?: boolean;
  /** Drain and exit 0 on SIGTERM, SIGINT or the supervisor going away (default true); false: the app calls close() itself. */
  handleSignals?: boolean;
}

export interface AppServer {
  /** One HTTP server per socket, in fd order (not listening yet with `ready: false` before reportReady()). */
  servers: http.Server[];
  /** What each server listens on (or will, once ready), for a log line: "fd 3 (listen-0)", "port 8080". */
  listening: string[];
  /** True once a drain started. */
  readonly draining: boolean;
  /** Drains (stop accepting, finish what is in flight, close every connection); resolves once all are closed. Idempotent. */
  close(): Promise<void>;
}

function listen(server: http.Server, target: ListenTarget): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    // `{ fd }` is the listen(handle) form; @types/node's ListenOptions does not name it.
    const options = target.kind === 'fd' ? ({ fd: target.fd } as unknown as { port: number }) : target.host !== undefined ? { port: target.port, host: target.host } : { port: target.port };
    server.listen(options, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** Servers of serve({ ready: false }) calls waiting for reportReady() to listen. */
const waitingForReady: (() => Promise<void>)[] = [];

/**
 * Tells the supervisor (READY=1 on FERRY_NOTIFY_FD) this process is ready for traffic, after
 * starting to listen for every serve({ ready: false }) so far. serve() calls it itself unless given
 * `ready: false`. Rejects if listening fails (e.g. run alone on a port in use). Resolves false when
 * not run under ferry (nobody to tell; it listens all the same).
 */
export async function reportReady(): Promise<boolean> {
  await Promise.all(waitingForReady.splice(0).map((listenAll) => listenAll()));
  return notifySupervisor();
}

/**
 * Serves `handler` on every socket ferry passed (or one port, run alone) and drains on the way out.
 * Call it once per process: each call installs its own signal handlers.
 */
export async function serve(handler: http.RequestListener, options: ServeOptions = {}): Promise<AppServer> {
  const targets = listenTargets(process.env, process.pid, options);
  const drain = new Drain({ drainTimeoutMs: options.drainTimeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS, idleCloseMs: IDLE_CLOSE_MS });
  const servers = targets.map(() => {
    const server = http.createServer((req, res) => {
      drain.request(req, res);
      handler(req, res);
    });
    server.keepAliveTimeout = options.keepAliveTimeoutMs ?? DEFAULT_KEEP_ALIVE_TIMEOUT_MS;
    drain.track(server);
    return server;
  });
  const listenAll = async () => {
    if (drain.draining) return; // closed before it was ever ready: nothing to open
    try {
      await Promise.all(servers.map((server, i) => listen(server, targets[i]!)));
    } catch (err) {
      for (const server of servers) if (server.listening) server.close();
      throw err;
    }
  };
  const app: AppServer = {
    servers,
    listening: targets.map(describeTarget),
    get draining() {
      return drain.draining;
    },
    close: () => drain.close(),
  };
  if (options.ready !== false) await listenAll();
  if (options.handleSignals !== false) {
    const exitWhenDrained = () => {
      void app.close().then(() => process.exit(0));
    };
    process.on('SIGTERM', exitWhenDrained);
    // A second ^C means "now", as it does for most programs.
    process.on('SIGINT', () => (app.draining ? process.exit(130) : exitWhenDrained()));
    onSupervisorGone(exitWhenDrained);
  }
  if (options.ready === false) waitingForReady.push(listenAll);
  else notifySupervisor();
  return app;
}
