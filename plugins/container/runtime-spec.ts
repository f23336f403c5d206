// The OCI runtime config (config.json) a container of an image release runs with, as a pure
// function of what umoci wrote (the base: namespaces, default mounts, masked paths), the image's own
// config (Env, Entrypoint/Cmd, WorkingDir, User, io.ferry.* labels), the device's ferry.json
// `container` section and grants, and what ferry hands in (listening sockets, a readiness channel).
// ARCHITECTURE.md "Containers"; SECURITY.md "Containers": the grants are checked again here (defence
// in depth: staging already refused an ungranted image), so no path starts a container with a
// privilege ferry.json does not grant.

import { FerryError } from '../../core/errors.ts';
import type { ContainerConfig } from '../../core/device/config.ts';
import { checkGrants, imageRequests, type ContainerGrants } from '../../core/image/requests.ts';

/** The fields of an OCI image config (`config` of the image's config blob) ferry reads. */
export interface ImageConfig {
  Env?: string[] | null;
  Entrypoint?: string[] | null;
  Cmd?: string[] | null;
  WorkingDir?: string | null;
  User?: string | null;
  Labels?: Record<string, string> | null;
}

export interface OciMount {
  destination: string;
  type?: string;
  source?: string;
  options?: string[];
}

export interface OciCapabilities {
  bounding?: string[];
  effective?: string[];
  inheritable?: string[];
  permitted?: string[];
  ambient?: string[];
}

/** The parts of an OCI runtime config ferry changes; everything else passes through untouched. */
export interface OciRuntimeConfig {
  process?: {
    terminal?: boolean;
    user?: { uid: number; gid: number; additionalGids?: number[] };
    args?: string[];
    env?: string[];
    cwd?: string;
    capabilities?: OciCapabilities;
    noNewPrivileges?: boolean;
    [k: string]: unknown;
  };
  hostname?: string;
  mounts?: OciMount[];
  linux?: {
    namespaces?: { type: string; path?: string }[];
    cgroupsPath?: string;
    maskedPaths?: string[];
    readonlyPaths?: string[];
    resources?: { devices?: { allow: boolean; access?: string; type?: string }[]; [k: string]: unknown };
    [k: string]: unknown;
  };
  annotations?: Record<string, string>;
  [k: string]: unknown;
}

/** What ferry hands the container besides its image: sockets at fd 3… and a readiness channel after them. */
export interface HandedIn {
  /** How many listening sockets are passed (fds 3 … 3+n-1 inside the container). */
  listenFds: number;
  /** Their names for LISTEN_FDNAMES (one per socket); "ferry" for each when absent. */
  fdNames?: string[];
  /** The fd inside the container the app writes READY=1 on (after the sockets), or null. */
  notifyFd: number | null;
}

export const NOTHING_HANDED_IN: HandedIn = { listenFds: 0, notifyFd: null };

/**
 * The capabilities every container gets (runc's and umoci's default set). An image that asks for
 * more names them in io.ferry.capabilities and needs ferry.json container.allow.capabilities.
 */
export const DEFAULT_CAPABILITIES = ['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE'] as const;

/** Every capability a privileged container gets (Linux 5.x/6.x). */
export const ALL_CAPABILITIES = [
  'CAP_AUDIT_CONTROL', 'CAP_AUDIT_READ', 'CAP_AUDIT_WRITE', 'CAP_BLOCK_SUSPEND', 'CAP_BPF', 'CAP_CHECKPOINT_RESTORE',
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_DAC_READ_SEARCH', 'CAP_FOWNER', 'CAP_FSETID', 'CAP_IPC_LOCK', 'CAP_IPC_OWNER',
  'CAP_KILL', 'CAP_LEASE', 'CAP_LINUX_IMMUTABLE', 'CAP_MAC_ADMIN', 'CAP_MAC_OVERRIDE', 'CAP_MKNOD', 'CAP_NET_ADMIN',
  'CAP_NET_BIND_SERVICE', 'CAP_NET_BROADCAST', 'CAP_NET_RAW', 'CAP_PERFMON', 'CAP_SETFCAP', 'CAP_SETGID', 'CAP_SETPCAP',
  'CAP_SETUID', 'CAP_SYSLOG', 'CAP_SYS_ADMIN', 'CAP_SYS_BOOT', 'CAP_SYS_CHROOT', 'CAP_SYS_MODULE', 'CAP_SYS_NICE',
  'CAP_SYS_PACCT', 'CAP_SYS_PTRACE', 'CAP_SYS_RAWIO', 'CAP_SYS_RESOURCE', 'CAP_SYS_TIME', 'CAP_SYS_TTY_CONFIG',
  'CAP_WAKE_ALARM',
] as const;

export interface RuntimeSpecInput {
  /** config.json as umoci unpack wrote it. Not modified. */
  base: OciRuntimeConfig;
  image: ImageConfig;
  container: Pick<ContainerConfig, 'env' | 'mounts'>;
  grants: ContainerGrants;
  handedIn: HandedIn;
  /** For messages and the hostname: the container's id (<name>-<version>). */
  id: string;
  /** The cgroup the engine puts the container in; absent: the engine's default. */
  cgroupsPath?: string;
}

/** The image's command: Entrypoint then Cmd (ERR_SCHEMA when both are empty: nothing to run). */
export function imageArgs(image: ImageConfig, id: string): string[] {
  const args = [...(image.Entrypoint ?? []), ...(image.Cmd ?? [])];
  if (args.length === 0) throw new FerryError('ERR_SCHEMA', `${id}: the image has neither Entrypoint nor Cmd (nothing to run)`);
  return args;
}

/** KEY=VALUE lists merged left to right: a later key replaces an earlier one in its place. */
export function mergeEnv(...lists: string[][]): string[] {
  const out = new Map<string, string>();
  for (const list of lists) {
    for (const kv of list) {
      const eq = kv.indexOf('=');
      const key = eq < 0 ? kv : kv.slice(0, eq);
      out.set(key, eq < 0 ? '' : kv.slice(eq + 1));
    }
  }
  return [...out].map(([k, v]) => `${k}=${v}`);
}

/** The socket-handover variables (systemd's sd_listen_fds(3) convention; LISTEN_PID is the container's pid 1). */
export function handoverEnv(h: HandedIn): string[] {
  const out: string[] = [];
  if (h.listenFds > 0) {
    const names = h.fdNames ?? Array.from({ length: h.listenFds }, () => 'ferry');
    out.push(`LISTEN_FDS=${h.listenFds}`, 'LISTEN_PID=1', `LISTEN_FDNAMES=${names.join(':')}`);
  }
  if (h.notifyFd !== null) out.push(`FERRY_NOTIFY_FD=${h.notifyFd}`);
  return out;
}

/** "1000" or "1000:1000" → ids; a name (resolved by umoci from the image's /etc/passwd) → null. */
export function numericUser(user: string | null | undefined): { uid: number; gid: number } | null {
  const m = /^(\d+)(?::(\d+))?$/.exec(user ?? '');
  if (!m) return null;
  return { uid: Number(m[1]), gid: Number(m[2] ?? m[1]) };
}

function bind(source: string, destination: string, readOnly: boolean): OciMount {
  return { destination, type: 'bind', source, options: ['rbind', readOnly ? 'ro' : 'rw', 'nosuid', 'nodev'] };
}

/** The config.json for one container of an image release (see the file header). */
export function runtimeSpec(input: RuntimeSpecInput): OciRuntimeConfig {
  const { base, image, container, grants, handedIn, id } = input;
  const requests = imageRequests(image.Labels);
  checkGrants(requests, grants, id);
  const privileged = requests.privileged && grants.privileged;
  const hostNetwork = requests.hostNetwork && grants.hostNetwork;

  const baseEnv = base.process?.env ?? [];
  const path = baseEnv.filter((kv) => kv.startsWith('PATH='));
  const env = mergeEnv(path, image.Env ?? [], Object.entries(container.env).map(([k, v]) => `${k}=${v}`), handoverEnv(handedIn));

  const caps = privileged ? [...ALL_CAPABILITIES] : [...new Set([...DEFAULT_CAPABILITIES, ...requests.capabilities])].sort();
  // Inheritable and ambient stay empty (as in Docker and runc's own spec since CVE-2022-24769 /
  // CVE-2022-29162): with them filled, a non-root image User, or any program it execs, would keep
  // every capability across execve — granted or privileged sets reaching processes the image meant
  // to run without them, and file capabilities in the image raised through the inheritable set.
  const capabilities: OciCapabilities = { bounding: caps, effective: caps, inheritable: [], permitted: caps, ambient: [] };

  const user = numericUser(image.User) ?? base.process?.user ?? { uid: 0, gid: 0 };
  const mounts = [
    ...(base.mounts ?? []),
    ...container.mounts.map((m) => bind(m.source, m.destination, m.readOnly)),
    ...requests.mounts.map((m) => bind(m.source, m.destination, m.readOnly)),
  ];

  const baseNamespaces = base.linux?.namespaces ?? [];
  const namespaces = hostNetwork
    ? baseNamespaces.filter((n) => n.type !== 'network')
    : baseNamespaces.some((n) => n.type === 'network')
      ? baseNamespaces
      : [...baseNamespaces, { type: 'network' }];

  const linux: NonNullable<OciRuntimeConfig['linux']> = { ...base.linux, namespaces };
  if (input.cgroupsPath) linux.cgroupsPath = input.cgroupsPath;
  if (privileged) {
    linux.maskedPaths = [];
    linux.readonlyPaths = [];
    linux.resources = { ...linux.resources, devices: [{ allow: true, access: 'rwm' }] };
  }

  return {
    ...base,
    process: {
      ...base.process,
      terminal: false,
      user,
      args: imageArgs(image, id),
      env,
      cwd: image.WorkingDir || '/',
      capabilities,
      noNewPrivileges: !privileged,
    },
    hostname: id.slice(0, 63),
    mounts,
    linux,
  };
}
