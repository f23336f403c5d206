// The systemd LISTEN_FDS convention, both ways (DESIGN.md "Zero-downtime switch").
//
// The app's side of `ferry run`, for apps written in TypeScript/JavaScript that want more than
// `server.listen({ fd: 3 })`. ferry passes sockets the systemd way:
//   LISTEN_FDS=<n>        sockets at fds 3 … 3+n-1, bound (and listening once any generation listened)
//   LISTEN_PID=<pid>      the pid they are meant for (ferry sets it through `sh -c 'exec …'`, so it is
//                         the app's own pid; a process the app forks does not take them by mistake)
//   LISTEN_FDNAMES=a:b    one name per fd: "listen-0", "listen-1", …, and "ferry-health" for the
//                         private socket ferry probes --health on (serve it like the others)
//   FERRY_RUN=1, FERRY_VERSION, FERRY_HOME, FERRY_NOTIFY_FD
// FERRY_NOTIFY_FD is one socket to the supervisor, used both ways: the app writes "READY=1\n" to it
// (notifyReady), and its end-of-file tells the app the supervisor is gone (watchSupervisor).
//
// ferry's own side, socket activation (examples/systemd/): `ferry run` and `ferry agent` take the
// sockets systemd passed them (takeSystemdListenFds) and decide with --listen which sockets they
// serve on (resolveListen): a port is bound by ferry, `fd:N` and `systemd` name inherited sockets.

import net from 'node:net';
import type http from 'node:http';
import { FerryError } from '../../core/errors.ts';
import { parseListen, type ListenAddress } from './supervision.ts';

export const SD_LISTEN_FDS_START = 3;

function ours(env: NodeJS.ProcessEnv): boolean {
  // LISTEN_PID is checked as systemd does; FERRY_RUN alone is accepted too, for an app started by a
  // wrapper that ferry did not exec (the pid differs, the fds are still the ones ferry passed).
  return env.LISTEN_PID === undefined || Number(env.LISTEN_PID) === process.pid || env.FERRY_RUN === '1';
}

/** The fds passed by `ferry run` (or systemd), [] when there are none. */
export function listenFds(env: NodeJS.ProcessEnv = process.env): number[] {
  const n = Number(env.LISTEN_FDS);
  if (!Number.isInteger(n) || n <= 0 || !ours(env)) return [];
  return Array.from({ length: n }, (_, i) => SD_LISTEN_FDS_START + i);
}

/** The names of the passed fds, in fd order ("unknown" where none was given). */
export function listenFdNames(env: NodeJS.ProcessEnv = process.env): string[] {
  const names = (env.LISTEN_FDNAMES ?? '').split(':');
  return listenFds(env).map((_, i) => names[i] || 'unknown');
}

/**
 * Listens on the `index`-th passed socket. Outside `ferry run` it listens on $PORT (on every address)
 * so the same app runs under a plain `node server.js` in development; with neither it throws
 * ERR_USAGE rather than pick a port nobody asked for.
 */
export function listenOn(server: net.Server | http.Server, index = 0, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const fds = listenFds(env);
  let options: { fd: number } | { port: number };
  if (fds.length > 0) {
    const fd = fds[index];
    if (fd === undefined) throw new FerryError('ERR_USAGE', `listenOn: socket ${index} asked for, but ferry passed ${fds.length}`);
    options = { fd };
  } else if (env.PORT && /^\d+$/.test(env.PORT)) {
    options = { port: Number(env.PORT) };
  } else {
    throw new FerryError('ERR_USAGE', 'listenOn: no socket passed (not started by `ferry run`) and no PORT set');
  }
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.once('error', onError);
    // `{ fd }` is the listen(handle) form; @types/node's ListenOptions does not name it.
    server.listen(options as net.ListenOptions, () => {
      server.off('error', onError);
      resolve();
    });
  });
}

let channel: net.Socket | null | undefined;

/** The supervisor socket, opened once, never keeping the app alive by itself. */
function supervisorChannel(env: NodeJS.ProcessEnv = process.env): net.Socket | null {
  if (channel !== undefined) return channel;
  const fd = Number(env.FERRY_NOTIFY_FD);
  if (env.FERRY_RUN !== '1' || !Number.isInteger(fd) || fd < SD_LISTEN_FDS_START) return (channel = null);
  try {
    channel = new net.Socket({ fd, readable: true, writable: true });
    channel.on('error', () => { /* the supervisor went away: watchSupervisor reports it */ });
    channel.unref();
  } catch {
    channel = null;
  }
  return channel;
}

/** Tells `ferry run --notify` this process is ready for traffic. A no-op outside ferry. */
export function notifyReady(env: NodeJS.ProcessEnv = process.env): void {
  supervisorChannel(env)?.write('READY=1\n');
}

/**
 * Calls `onGone` once if the supervisor dies (its end of FERRY_NOTIFY_FD closes), even by SIGKILL.
 * ferry also asks the kernel to SIGTERM the app when the supervisor dies (setpriv --pdeathsig) where
 * util-linux is installed; this is the portable half. A typical `onGone` starts the same drain as
 * SIGTERM. Returns false when not run under ferry.
 */
export function watchSupervisor(onGone: () => void, env: NodeJS.ProcessEnv = process.env): boolean {
  const socket = supervisorChannel(env);
  if (!socket) return false;
  let called = false;
  const gone = () => {
    if (called) return;
    called = true;
    onGone();
  };
  socket.on('end', gone);
  socket.on('close', gone);
  socket.resume();
  return true;
}

// ---------------------------------------------------------------------------------------------
// ferry's own side: sockets inherited from systemd (socket activation)

/** A socket this process inherited, at `fd`, with the name systemd gave it ("unknown" without one). */
export interface InheritedFd {
  fd: number;
  name: string;
}

const LISTEN_VARIABLES = ['LISTEN_FDS', 'LISTEN_PID', 'LISTEN_FDNAMES'] as const;

/**
 * The sockets systemd passed to process `pid`, as sd_listen_fds(3) reads them, and the LISTEN_*
 * variables removed from `env` in every case (sd_listen_fds(1)): they describe this process's fds,
 * so no child may read them as its own. Stricter than listenFds(): LISTEN_PID must be set and be
 * `pid`, since variables meant for a parent describe fds this process may not have, or has as
 * something else. [] when nothing was passed to `pid`.
 */
export function takeSystemdListenFds(env: NodeJS.ProcessEnv = process.env, pid: number = process.pid): InheritedFd[] {
  const count = env.LISTEN_FDS;
  const target = env.LISTEN_PID;
  const names = (env.LISTEN_FDNAMES ?? '').split(':');
  for (const name of LISTEN_VARIABLES) delete env[name];
  const n = Number(count);
  if (target === undefined || !/^\d+$/.test(target) || Number(target) !== pid) return [];
  if (count === undefined || !/^\d+$/.test(count) || !Number.isSafeInteger(n) || n <= 0) return [];
  if (SD_LISTEN_FDS_START + n - 1 > MAX_LISTEN_FD) throw new FerryError('ERR_USAGE', `LISTEN_FDS=${count}: more sockets than ferry takes (fds up to ${MAX_LISTEN_FD})`);
  return Array.from({ length: n }, (_, i) => ({ fd: SD_LISTEN_FDS_START + i, name: names[i] || 'unknown' }));
}

/** One socket to serve on: an address ferry binds itself, or a socket it inherited. */
export type ListenSocket =
  | { kind: 'address'; address: ListenAddress; spec: string }
  | { kind: 'fd'; fd: number; name: string };

/** The largest fd `--listen fd:N` may name: far above what systemd passes, small enough for a stdio array. */
export const MAX_LISTEN_FD = 1023;

/**
 * Which sockets `ferry run` serves on (and `ferry agent` hands to it), in fd order for the app, from
 * the --listen values and the sockets systemd passed (takeSystemdListenFds):
 *   (none)           every socket systemd passed; ERR_USAGE when it passed none
 *   systemd          every socket systemd passed; ERR_USAGE when it passed none
 *   fd:N             inherited fd N: one of those systemd passed, or, when it passed none, a socket a
 *                    parent placed at N (how `ferry agent` hands its sockets to its `ferry run`,
 *                    which it cannot name in LISTEN_PID before starting it)
 *   PORT, HOST:PORT  ferry binds it; ERR_USAGE when systemd passed sockets, for the unit that asks
 *                    for both means two owners of one port (it would fail "address in use" anyway)
 */
export function resolveListen(specs: readonly string[] | undefined, passed: readonly InheritedFd[]): ListenSocket[] {
  const fromSystemd = (why: string): ListenSocket[] => {
    if (passed.length === 0) {
      throw new FerryError('ERR_USAGE', `${why}, but no sockets were passed to this process (LISTEN_FDS unset, or LISTEN_PID names another process)`);
    }
    return passed.map((p) => ({ kind: 'fd', fd: p.fd, name: p.name }));
  };
  if (!specs || specs.length === 0) return fromSystemd('no --listen given (PORT, HOST:PORT, fd:N or systemd)');
  const out: ListenSocket[] = [];
  for (const raw of specs) {
    const spec = raw.trim();
    if (spec === 'systemd') {
      out.push(...fromSystemd('--listen systemd'));
      continue;
    }
    const m = /^fd:(\d{1,4})$/.exec(spec);
    if (m) {
      const fd = Number(m[1]);
      if (fd < SD_LISTEN_FDS_START || fd > MAX_LISTEN_FD) throw new FerryError('ERR_USAGE', `--listen ${spec}: N must be ${SD_LISTEN_FDS_START} to ${MAX_LISTEN_FD} (0-2 are stdio)`);
      const known = passed.find((p) => p.fd === fd);
      if (passed.length > 0 && !known) throw new FerryError('ERR_USAGE', `--listen ${spec}: systemd passed fds ${passed.map((p) => p.fd).join(', ')} only`);
      out.push({ kind: 'fd', fd, name: known?.name ?? 'unknown' });
      continue;
    }
    if (/^fd:/.test(spec)) throw new FerryError('ERR_USAGE', `--listen "${spec}" is not fd:N`);
    const address = parseListen(spec);
    if (passed.length > 0) {
      throw new FerryError('ERR_USAGE', `--listen ${spec} would bind a port of ferry's own, but systemd passed ${passed.length} socket(s) (LISTEN_FDS): use --listen systemd or fd:N, or remove the .socket unit`);
    }
    out.push({ kind: 'address', address, spec });
  }
  const fds = out.flatMap((s) => (s.kind === 'fd' ? [s.fd] : []));
  const twice = fds.find((fd, i) => fds.indexOf(fd) !== i);
  if (twice !== undefined) throw new FerryError('ERR_USAGE', `--listen names fd ${twice} twice`);
  return out;
}
