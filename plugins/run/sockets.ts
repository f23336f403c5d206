// Sockets the supervisor owns but never polls. A net.Server here would accept connections itself
// and steal them from the app (readStop does not stop libuv's accept loop), so the socket is made
// with Node's internal TCP handle, bound, and left alone: no listen(2) and no onconnection. The
// first app generation's `server.listen({ fd: 3 })` does the listen(2); later generations listen
// on the same socket again and every live generation accepts from the one kernel queue. From
// then on the socket stays listening as long as the supervisor holds it, so connections made
// while no app runs (a crash restart) wait in the backlog instead of being refused.
// Verified on Node 20: two generations handed over under load on one socket (ARCHITECTURE.md "ferry run").
//
// Under socket activation the socket is systemd's, already bound and listening: adoptInherited
// wraps the inherited fd in the same unpolled handle (open(2)ed, never read) so that it is held,
// described and closed exactly like one ferry bound. Node marks inherited fds close-on-exec at
// start, so the fd reaches only the children it is handed to explicitly.

import { spawn } from 'node:child_process';
import { fstatSync } from 'node:fs';
import { FerryError } from '../../core/errors.ts';
import type { ListenAddress } from './supervision.ts';

/** Node's internal TCP handle: a socket Node does not poll (plugins/container/host-sockets.ts uses it too). */
export interface TcpHandle {
  fd: number;
  open(fd: number): number;
  listen(backlog: number): number;
  bind(host: string, port: number): number;
  bind6(host: string, port: number, flags: number): number;
  getsockname(out: { address?: string; port?: number; family?: string }): number;
  close(cb?: () => void): void;
}

export interface TcpWrap {
  TCP: new (type: number) => TcpHandle;
  constants: { SERVER: number };
}

let binding: TcpWrap | undefined;

export function tcpWrap(): TcpWrap {
  if (binding) return binding;
  // process.binding is deprecated (DEP0111) but the only way to a socket Node does not poll; the
  // warning is muted for this one call so it does not alarm whoever reads the supervisor's log.
  const emit = process.emitWarning;
  process.emitWarning = () => {};
  try {
    binding = (process as unknown as { binding(name: string): TcpWrap }).binding('tcp_wrap');
  } finally {
    process.emitWarning = emit;
  }
  return binding;
}

export interface HeldSocket {
  fd: number;
  /** The address actually bound (port 0 becomes the kernel's choice); null for a non-IP inherited socket. */
  address: ListenAddress | null;
  /** HOST:PORT, or fd:N for an inherited socket that has no IP address (a unix socket). */
  label: string;
  /** Set when the socket was inherited (socket activation): its fd number and name. */
  inherited: { fd: number; name: string } | null;
  close(): void;
}

function holder(handle: TcpHandle, address: ListenAddress | null, inherited: HeldSocket['inherited']): HeldSocket {
  let closed = false;
  return {
    fd: handle.fd,
    address,
    label: address ? formatAddress(address) : `fd:${handle.fd}`,
    inherited,
    close() {
      if (closed) return;
      closed = true;
      handle.close();
    },
  };
}

/** Binds a TCP socket to `address` without listening on it or polling it. */
export function bindUnpolled(address: ListenAddress): HeldSocket {
  const { TCP, constants } = tcpWrap();
  const handle = new TCP(constants.SERVER);
  // libuv sets SO_REUSEADDR, so a restarted supervisor binds again while old connections linger.
  const err = address.family === 6 ? handle.bind6(address.host, address.port, 0) : handle.bind(address.host, address.port);
  if (err !== 0) {
    handle.close();
    const errno = -err;
    const why = errno === 98 ? 'address in use' : errno === 13 ? 'permission denied' : errno === 99 ? 'address not available' : `errno ${errno}`;
    throw new FerryError('ERR_USAGE', `cannot bind ${address.family === 6 ? `[${address.host}]` : address.host}:${address.port}: ${why}`);
  }
  const out: { address?: string; port?: number } = {};
  handle.getsockname(out);
  // libuv defers EADDRINUSE from bind(2) to listen, which the supervisor never calls: a socket left
  // unbound reads back port 0, and an app's listen(2) would put it on a random port. Refuse here.
  if (!out.port || (address.port !== 0 && out.port !== address.port)) {
    handle.close();
    throw new FerryError('ERR_USAGE', `cannot bind ${formatAddress(address)}: address in use`);
  }
  return holder(handle, { host: out.address ?? address.host, port: out.port ?? address.port, family: address.family }, null);
}

/**
 * ERR_USAGE unless `fd` is an open socket, so a wrong `--listen fd:N` cannot hand an app some other
 * file. (Whether it is a stream socket cannot be asked from Node; a datagram socket would fail in
 * the app's listen(): use ListenStream=.)
 */
export function assertInheritedSocket(fd: number): void {
  let isSocket: boolean;
  try {
    isSocket = fstatSync(fd).isSocket();
  } catch {
    throw new FerryError('ERR_USAGE', `--listen fd:${fd}: no such open file descriptor (was the socket passed to this process?)`);
  }
  if (!isSocket) throw new FerryError('ERR_USAGE', `--listen fd:${fd}: not a socket`);
}

/**
 * Holds socket `fd` this process inherited (from systemd, or from a `ferry agent` that got it from
 * systemd), without listening or polling: the apps listen on it as on one ferry bound.
 */
export function adoptInherited(fd: number, name: string): HeldSocket {
  assertInheritedSocket(fd);
  const { TCP, constants } = tcpWrap();
  const handle = new TCP(constants.SERVER);
  const err = handle.open(fd);
  if (err !== 0) {
    handle.close(); // it never took the fd (EEXIST: libuv already watches it), so this closes nothing of the caller's
    throw new FerryError('ERR_USAGE', `--listen fd:${fd}: cannot hold it (errno ${-err})`);
  }
  const out: { address?: string; port?: number; family?: string } = {};
  // A unix socket reads back no family or port: it is held and handed on all the same.
  const ip = handle.getsockname(out) === 0 && out.port !== undefined && (out.family === 'IPv4' || out.family === 'IPv6');
  const address: ListenAddress | null = ip ? { host: out.address ?? '', port: out.port!, family: out.family === 'IPv6' ? 6 : 4 } : null;
  return holder(handle, address, { fd, name });
}

export function formatAddress(a: ListenAddress): string {
  return a.family === 6 ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

// listen(2) by a short-lived child: Node cannot listen without polling, and a polled socket would
// have this process accept (and drop) connections. The child listens on its copies (fds 3, …) and
// exits in the same tick, before its event loop could accept anything; the listening state belongs
// to the socket, so it stays while the supervisor holds it.
const LISTEN_SCRIPT = `const net = require('node:net');
for (let i = 0; i < Number(process.argv[1]); i++) net.createServer().listen({ fd: 3 + i, backlog: 511 });
process.exit(0);`;

/**
 * Makes bound sockets listen (the systemd convention that apps in containers expect: they accept
 * on fd 3… without calling listen themselves). A socket that listens already is left as it is.
 */
export function listenHeld(fds: number[]): Promise<void> {
  if (fds.length === 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', LISTEN_SCRIPT, String(fds.length)], { stdio: ['ignore', 'ignore', 'pipe', ...fds] });
    let stderr = '';
    child.stderr!.on('data', (d) => { stderr += String(d); });
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new FerryError('ERR_IO', `could not listen on the held sockets: ${stderr.trim() || `exit ${code}`}`))));
  });
}
