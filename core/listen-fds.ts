// The app's side of `ferry run` (DESIGN.md "Zero-downtime switch"), for apps written in
// TypeScript/JavaScript that want more than `server.listen({ fd: 3 })`. ferry passes sockets the
// systemd way:
//   LISTEN_FDS=<n>        sockets at fds 3 … 3+n-1, bound (and listening once any generation listened)
//   LISTEN_PID=<pid>      the pid they are meant for (ferry sets it through `sh -c 'exec …'`, so it is
//                         the app's own pid; a process the app forks does not take them by mistake)
//   LISTEN_FDNAMES=a:b    one name per fd: "listen-0", "listen-1", …, and "ferry-health" for the
//                         private socket ferry probes --health on (serve it like the others)
//   FERRY_RUN=1, FERRY_VERSION, FERRY_HOME, FERRY_NOTIFY_FD
// FERRY_NOTIFY_FD is one socket to the supervisor, used both ways: the app writes "READY=1\n" to it
// (notifyReady), and its end-of-file tells the app the supervisor is gone (watchSupervisor).

import net from 'node:net';
import type http from 'node:http';
import { FerryError } from './errors.ts';

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
