// ferry's side of the systemd LISTEN_FDS convention (ARCHITECTURE.md "ferry run").
//
// The app's side (how an app finds the sockets `ferry run` passes, reports READY=1 and notices its
// supervisor is gone) is ferry/app: plugins/run/app.ts and its app-*.ts siblings.
//
// ferry's own side, socket activation (examples/systemd/): `ferry run` and `ferry agent` take the
// sockets systemd passed them (takeSystemdListenFds) and decide with --listen which sockets they
// serve on (resolveListen): a port is bound by ferry, `fd:N` and `systemd` name inherited sockets.

import { FerryError } from '../../core/errors.ts';
import { parseListen, type ListenAddress } from './supervision.ts';

export const SD_LISTEN_FDS_START = 3;

/** A socket this process inherited, at `fd`, with the name systemd gave it ("unknown" without one). */
export interface InheritedFd {
  fd: number;
  name: string;
}

const LISTEN_VARIABLES = ['LISTEN_FDS', 'LISTEN_PID', 'LISTEN_FDNAMES'] as const;

/**
 * The sockets systemd passed to process `pid`, as sd_listen_fds(3) reads them, and the LISTEN_*
 * variables removed from `env` in every case (sd_listen_fds(1)): they describe this process's fds,
 * so no child may read them as its own. Stricter than ferry/app's listenTargets(): LISTEN_PID must be set and be
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
