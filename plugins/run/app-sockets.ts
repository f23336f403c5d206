// ferry/app: where an app listens (ARCHITECTURE.md "Zero-downtime switch"). A pure decision from
// the environment, kept apart from the effects in app.ts.
//
// Under `ferry run` (or systemd) the sockets are passed the systemd way: LISTEN_FDS=n sockets at fds
// 3 … 3+n-1, LISTEN_FDNAMES naming them ("listen-0", …, and "ferry-health" for the private socket
// `--health` probes), LISTEN_PID the process they are meant for. The app serves every one of them.
// Run alone (no sockets passed) it listens on options.port ?? $PORT ?? 8080, so the same app runs
// under a plain `node server.js`. Loaded inside apps: node: built-ins only.

/** The first passed fd (stdin, stdout, stderr come before it). */
export const FIRST_LISTEN_FD = 3;

/** The port an app listens on when run alone with neither options.port nor $PORT. */
export const DEFAULT_PORT = 8080;

export type ListenTarget =
  | { kind: 'fd'; fd: number; name: string }
  | { kind: 'port'; port: number; host?: string };

function passedToUs(env: NodeJS.ProcessEnv, pid: number): boolean {
  // LISTEN_PID as systemd checks it; FERRY_RUN=1 alone is accepted too, for an app started by a
  // wrapper ferry did not exec (the pid differs, the fds are still the ones ferry passed).
  return env.LISTEN_PID === undefined || Number(env.LISTEN_PID) === pid || env.FERRY_RUN === '1';
}

function parsePort(text: string, what: string): number {
  const port = Number(text);
  if (!/^\d{1,5}$/.test(text) || port > 65535) throw new RangeError(`ferry/app: ${what} "${text}" is not a port (0-65535)`);
  return port;
}

/**
 * What to listen on: every passed socket when there are some (options.port is then ignored: the
 * supervisor owns the address), else one port. Throws RangeError on a malformed LISTEN_FDS or port.
 */
export function listenTargets(env: NodeJS.ProcessEnv, pid: number, options: { port?: number | undefined; host?: string | undefined } = {}): ListenTarget[] {
  const count = env.LISTEN_FDS;
  if (count !== undefined && count !== '' && passedToUs(env, pid)) {
    if (!/^\d{1,4}$/.test(count)) throw new RangeError(`ferry/app: LISTEN_FDS "${count}" is not a count of sockets`);
    const n = Number(count);
    if (n > 0) {
      const names = (env.LISTEN_FDNAMES ?? '').split(':');
      return Array.from({ length: n }, (_, i) => ({ kind: 'fd', fd: FIRST_LISTEN_FD + i, name: names[i] || `fd-${FIRST_LISTEN_FD + i}` }));
    }
  }
  const port = options.port !== undefined ? parsePort(String(options.port), 'port')
    : env.PORT !== undefined && env.PORT !== '' ? parsePort(env.PORT, '$PORT')
      : DEFAULT_PORT;
  return [options.host !== undefined ? { kind: 'port', port, host: options.host } : { kind: 'port', port }];
}

/** How a target reads in a log line: "fd 3 (listen-0)", "port 8080", "127.0.0.1:8080". */
export function describeTarget(t: ListenTarget): string {
  if (t.kind === 'fd') return `fd ${t.fd} (${t.name})`;
  return t.host !== undefined ? `${t.host.includes(':') ? `[${t.host}]` : t.host}:${t.port}` : `port ${t.port}`;
}
