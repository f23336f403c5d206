// Rate limit for wake-ups from LAN peers: a peer announcing a newer release than ours (mDNS TXT
// `ver=`) is a reason to look now, but the claim is unverified, so it only wakes a check, at most
// one per PEER_WAKE_MS however chatty or lying the peers are; what gets installed is decided by
// signed metadata as always (SECURITY.md row 8, ARCHITECTURE.md "The agent"). Each announcement
// is heard once, so one that comes too soon after the last wake is kept as a single deferred
// wake, never dropped. Time is the agent's injected clock and sleep.

import type { SleepFn } from './sleep.ts';

/** At most one check woken by peer announcements per this long. */
export const PEER_WAKE_MS = 30_000;

export interface PeerWake {
  /** A peer announced something worth a look: wake now, or once PEER_WAKE_MS after the last peer wake. */
  heard(): void;
  /** Drops a deferred wake. */
  close(): void;
}

export function createPeerWake(input: { clock: () => Date; sleep: SleepFn; wake: () => void }): PeerWake {
  let last = -Infinity;
  let deferred = false;
  const closed = new AbortController();
  const fire = () => {
    last = input.clock().getTime();
    input.wake();
  };
  return {
    heard() {
      if (closed.signal.aborted) return;
      const wait = last + PEER_WAKE_MS - input.clock().getTime();
      if (wait <= 0) return fire();
      if (deferred) return;
      deferred = true;
      void input.sleep(wait, closed.signal).then(() => {
        deferred = false;
        if (!closed.signal.aborted) fire();
      });
    },
    close() {
      closed.abort();
    },
  };
}
