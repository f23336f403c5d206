// The host's listening sockets a container serves on (ferry.json container.listen): bound and
// listening in THIS process, handed to the engine as fds 3… (LISTEN_FDS, `runc run --preserve-fds`),
// and closed here right after the engine was spawned, so the container holds the only copy and the
// ports stay with it after ferry exits. A container in its own network namespace reaches the host's
// ports this way only (ARCHITECTURE.md "Containers").
//
// The socket is made with Node's internal TCP handle and listen(2)ed without ever being polled:
// bind, listen, spawn and close happen in one synchronous stretch, so the event loop never gets to
// accept a connection meant for the container (connections arriving meanwhile wait in the backlog,
// which the container's copy keeps). `ferry run --container` holds its sockets across versions
// instead (plugins/run/).

import { FerryError } from '../../core/errors.ts';
import { parseListen, type ListenAddress } from '../run/supervision.ts';
import type { HandIn } from './engine.ts';
import { tcpWrap, type TcpHandle } from '../run/sockets.ts';

export interface ListeningSockets {
  /** The fds, in container.listen order. */
  fds: number[];
  /** The addresses actually bound (port 0 becomes the kernel's choice). */
  addresses: ListenAddress[];
  /** Closes this process's copies (call right after spawning the engine, in the same tick). */
  close(): void;
}

const BACKLOG = 511;

/** A HandIn (engine.ts) of the listening sockets of `specs`, made when the engine spawns. */
export function listeningHandIn(specs: string[]): HandIn & { addresses(): ListenAddress[] } {
  let open: ListeningSockets | null = null;
  let bound: ListenAddress[] = [];
  return {
    count: specs.length,
    open() {
      open = listenOn(specs);
      bound = open.addresses;
      return open.fds;
    },
    close() {
      open?.close();
      open = null;
    },
    addresses: () => bound,
  };
}

/** Binds and listens on every address of `specs`; ERR_USAGE when one cannot be bound (all closed then). */
export function listenOn(specs: string[]): ListeningSockets {
  const { TCP, constants } = tcpWrap();
  const handles: TcpHandle[] = [];
  const addresses: ListenAddress[] = [];
  const close = () => {
    for (const h of handles.splice(0)) h.close();
  };
  try {
    for (const spec of specs) {
      const a = parseListen(spec);
      const h = new TCP(constants.SERVER);
      handles.push(h);
      const err = (a.family === 6 ? h.bind6(a.host, a.port, 0) : h.bind(a.host, a.port)) || h.listen(BACKLOG);
      const out: { address?: string; port?: number } = {};
      h.getsockname(out);
      if (err !== 0 || !out.port || (a.port !== 0 && out.port !== a.port)) {
        throw new FerryError('ERR_USAGE', `container.listen ${spec}: cannot listen there (${err === -98 || err === 0 ? 'address in use' : `errno ${-err}`})`);
      }
      addresses.push({ host: out.address ?? a.host, port: out.port, family: a.family });
    }
  } catch (err) {
    close();
    throw err;
  }
  return { fds: handles.map((h) => h.fd), addresses, close };
}
