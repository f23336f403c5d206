// ferry/app: draining an app's HTTP servers without failing a request (ARCHITECTURE.md
// "Zero-downtime switch"). On a handover `ferry run` starts the new generation on the same sockets,
// then SIGTERMs the old one, which must:
//   - stop accepting: close its listening handles (the shared queue goes on to the new generation);
//   - finish every request in flight, and answer each one (and any that still arrives on an open
//     connection) with `Connection: close`, so the client knows not to reuse that connection;
//   - close idle keep-alive connections, but only once idle for a while: a connection idle for a
//     moment may be carrying the client's next request right now, and closing it then is the
//     classic keep-alive race (the client sees a reset). http.Server#close does exactly that (it
//     drops every idle connection at once), which is why a plain `server.close()` app still failed
//     a few requests per update under load;
//   - be done when every connection is closed, or cut what is left after the drain timeout.
// Loaded inside apps: node: built-ins only.

import type http from 'node:http';
import net from 'node:net';

/** During a drain, a connection with no request in flight is closed once idle this long. */
export const IDLE_CLOSE_MS = 1000;

/** How often a drain looks for idle connections to close. */
const SWEEP_MS = 200;

/** What a drain knows about one connection. */
export interface ConnectionState {
  /** Responses not yet finished on it. */
  inFlight: Set<http.ServerResponse>;
  /** When its last response finished (or it was accepted). */
  idleSince: number;
  /** It was told to close (end() sent). */
  ending: boolean;
}

/** Whether a drain closes this connection now: nothing in flight, and idle long enough that no request is likely on its way. */
export function shouldCloseIdle(state: { inFlight: number; idleSince: number; ending: boolean }, now: number, idleCloseMs: number): boolean {
  return !state.ending && state.inFlight === 0 && now - state.idleSince >= idleCloseMs;
}

/** Makes a response end its connection, if its headers are not sent yet (Node then closes the socket after it). */
function closeAfter(res: http.ServerResponse): void {
  if (!res.headersSent) res.setHeader('connection', 'close');
}

export class Drain {
  private readonly connections = new Map<net.Socket, ConnectionState>();
  private readonly servers: http.Server[] = [];
  private closing: Promise<void> | null = null;

  constructor(private readonly options: { drainTimeoutMs: number; idleCloseMs: number }) {}

  /** True once close() was called. */
  get draining(): boolean {
    return this.closing !== null;
  }

  /** Follows the connections of `server`. */
  track(server: http.Server): void {
    this.servers.push(server);
    server.on('connection', (socket: net.Socket) => {
      this.connections.set(socket, { inFlight: new Set(), idleSince: Date.now(), ending: false });
      socket.on('close', () => this.connections.delete(socket));
    });
  }

  /** Called first for every request: counts it in flight, and asks for `Connection: close` while draining. */
  request(req: http.IncomingMessage, res: http.ServerResponse): void {
    const state = this.connections.get(req.socket);
    if (state) {
      state.inFlight.add(res);
      res.on('close', () => {
        state.inFlight.delete(res);
        state.idleSince = Date.now();
      });
    }
    if (this.draining) closeAfter(res);
  }

  /** Starts the drain (once; later calls return the same promise); resolves when every connection is closed. */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.closing = new Promise<void>((resolve) => {
      for (const state of this.connections.values()) for (const res of state.inFlight) closeAfter(res);
      const sweep = setInterval(() => this.sweep(), SWEEP_MS);
      const cut = setTimeout(() => {
        for (const socket of this.connections.keys()) socket.destroy();
      }, this.options.drainTimeoutMs);
      // Neither keeps the process up on its own: they only matter while connections do.
      sweep.unref();
      cut.unref();
      let open = this.servers.length;
      const closed = () => {
        if (--open > 0) return;
        clearInterval(sweep);
        clearTimeout(cut);
        resolve();
      };
      if (open === 0) {
        open = 1;
        closed();
      }
      // net.Server#close, not http.Server#close: stop accepting and call back once every connection
      // is closed, without http.Server#close's drop of every idle keep-alive connection at once.
      for (const server of this.servers) net.Server.prototype.close.call(server, closed);
      this.sweep();
    });
    return this.closing;
  }

  private sweep(): void {
    const now = Date.now();
    for (const [socket, state] of this.connections) {
      if (!shouldCloseIdle({ inFlight: state.inFlight.size, idleSince: state.idleSince, ending: state.ending }, now, this.options.idleCloseMs)) continue;
      state.ending = true;
      socket.end();
    }
  }
}
