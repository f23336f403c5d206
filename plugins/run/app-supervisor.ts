// ferry/app: the app's end of the supervisor channel (ARCHITECTURE.md "Zero-downtime switch").
// `ferry run` passes one socket at FERRY_NOTIFY_FD (set with FERRY_RUN=1), used both ways: the app
// writes "READY=1\n" when it can take traffic (what `ferry run --notify` waits for), and the end of
// the stream tells the app the supervisor is gone (even if it was SIGKILLed), so the app drains
// instead of serving on without anyone to hand over to it. Outside ferry both are no-ops.
// Loaded inside apps: node: built-ins only.

import net from 'node:net';

let channel: net.Socket | null | undefined;
let reported = false;

/** The channel, opened once; it never keeps the app alive by itself. null when not under ferry. */
function supervisorChannel(env: NodeJS.ProcessEnv = process.env): net.Socket | null {
  if (channel !== undefined) return channel;
  const fd = Number(env.FERRY_NOTIFY_FD);
  if (env.FERRY_RUN !== '1' || !Number.isInteger(fd) || fd < 3) return (channel = null);
  try {
    channel = new net.Socket({ fd, readable: true, writable: true });
    channel.on('error', () => { /* the supervisor went away: 'close' reports it */ });
    channel.unref();
  } catch {
    channel = null;
  }
  return channel;
}

/**
 * Writes READY=1 to the supervisor, once; later calls do nothing. Returns false when not run under
 * ferry (nobody to tell). Apps call app.ts's reportReady(), which first starts listening.
 */
export function notifySupervisor(): boolean {
  const socket = supervisorChannel();
  if (!socket) return false;
  if (!reported) {
    reported = true;
    socket.write('READY=1\n');
  }
  return true;
}

/**
 * Calls `onGone` once when the supervisor's end of FERRY_NOTIFY_FD closes. Returns false when not
 * run under ferry. serve() uses it to drain; an app that handles its own exit may use it too.
 */
export function onSupervisorGone(onGone: () => void): boolean {
  const socket = supervisorChannel();
  if (!socket) return false;
  let called = false;
  const gone = () => {
    if (called) return;
    called = true;
    onGone();
  };
  socket.on('end', gone);
  socket.on('close', gone);
  // Reading is what lets us see the end of the stream; nothing else is ever sent to the app.
  socket.resume();
  return true;
}
