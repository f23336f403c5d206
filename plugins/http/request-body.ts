// Reading a request body a server asked for, under a hard cap and a deadline: a body that declares
// more than the cap is refused before a byte of it is read, and one that streams past the cap
// (chunked, or lying) is cut off at cap+1 bytes — never buffered whole, so a 100 MB PUT costs the
// server one cap of memory (SECURITY.md, fleet rows: oversized report). The caller answers and
// then closes the connection with closeAfterRefusal, which reads nothing more.

import type { IncomingMessage, ServerResponse } from 'node:http';

export type CappedBody =
  | { kind: 'body'; bytes: Buffer }
  /** Over the cap: declared by Content-Length (nothing read) or seen while reading. */
  | { kind: 'too-large'; read: number }
  /** The body did not arrive within the deadline (a trickle holds no server for ever). */
  | { kind: 'timeout'; read: number }
  /** The client went away before the body ended. */
  | { kind: 'aborted' };

export function readCappedBody(req: IncomingMessage, cap: number, deadlineMs: number): Promise<CappedBody> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && /^\d+$/.test(declared) && Number(declared) > cap) {
    req.pause();
    return Promise.resolve({ kind: 'too-large', read: 0 });
  }
  return new Promise<CappedBody>((resolve) => {
    const parts: Buffer[] = [];
    let read = 0;
    let done = false;
    const finish = (result: CappedBody) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      req.off('data', onData).off('end', onEnd).off('close', onClose).off('error', onClose);
      // Not one more byte is taken from the socket: the caller refuses and closes it.
      if (result.kind !== 'body') req.pause();
      resolve(result);
    };
    const onData = (chunk: Buffer) => {
      read += chunk.length;
      if (read > cap) return finish({ kind: 'too-large', read });
      parts.push(chunk);
    };
    const onEnd = () => finish({ kind: 'body', bytes: Buffer.concat(parts, read) });
    const onClose = () => finish({ kind: 'aborted' });
    const timer = setTimeout(() => finish({ kind: 'timeout', read }), deadlineMs);
    req.on('data', onData).on('end', onEnd).on('close', onClose).on('error', onClose);
  });
}

/** How long a refused client has to take its answer and go before its connection is destroyed. */
export const LINGER_MS = 2000;

/**
 * Answers a request whose body was not read to its end, then ends the connection. Closing at once
 * with unread bytes in the socket makes the kernel send a reset, and a client still sending would
 * lose the answer with it; reading on would take bytes the server does not want. So the socket is
 * no longer read (the client's writes stall once the kernel buffers between them are full), the
 * whole answer is written (`Connection: close`, with its length, so the client knows it has it all
 * and stops), and the socket is destroyed when the client closes or after LINGER_MS, whichever
 * comes first.
 */
export function closeAfterRefusal(req: IncomingMessage, res: ServerResponse, status: number, body: string): void {
  const socket = req.socket;
  req.pause();
  let over = false;
  const finish = () => {
    if (over) return;
    over = true;
    clearTimeout(timer);
    if (!res.writableEnded) res.end();
    socket.destroy();
  };
  const timer = setTimeout(finish, LINGER_MS);
  socket.once('close', finish);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), connection: 'close' });
  // Not res.end(): the server would then close the socket at once, and with it the answer.
  res.write(body);
}
