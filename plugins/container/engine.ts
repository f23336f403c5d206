// The container engine port and its detection. An engine runs one prepared bundle (bundle.ts) as a
// detached container that outlives the ferry process, and stops, inspects, lists and execs into
// the containers it started. Detection TRIES each engine (ARCHITECTURE.md "Containers"): a binary
// on PATH is not enough — crun, for one, is installed on hosts where it cannot run (cgroup v1
// hybrid), and podman's defaults can exceed a sandbox's limits — so an engine counts only once a
// harmless command of it succeeded here.

import { execFile as execFileCb } from 'node:child_process';
import { createHash } from 'node:crypto';
import { realpathSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { FerryError } from '../../core/errors.ts';
import type { ContainerConfig } from '../../core/device/config.ts';

const execFile = promisify(execFileCb);

export type ContainerStatus = 'creating' | 'created' | 'running' | 'paused' | 'stopped';

export interface StartRequest {
  /** The container's id (<name>-<version>). */
  id: string;
  /** The bundle folder (config.json + rootfs/). */
  bundle: string;
  /** Where the container's stdout and stderr go (appended). */
  logFile: string;
  /** Host fds handed in as fds 3, 4, … (listening sockets, then a readiness channel); null: none. */
  handIn: HandIn | null;
}

/**
 * Fds to hand a container. The engine calls open() right before it spawns and close() right after,
 * in one synchronous stretch (host-sockets.ts: a listening socket this process never polls must
 * not meet the event loop).
 */
export interface HandIn {
  /** How many fds open() returns. */
  count: number;
  open(): number[];
  close(): void;
}

export interface ExecResult {
  /** The command's exit code; null when it was killed at its deadline. */
  code: number | null;
  output: string;
}

export interface ContainerEngine {
  readonly kind: 'runc' | 'podman';
  /** Creates and starts the container detached; resolves once the engine started its process. */
  start(req: StartRequest): Promise<void>;
  /** SIGTERM, SIGKILL after `timeoutMs`, then deleted; quiet when there is no such container. */
  stop(id: string, timeoutMs: number): Promise<void>;
  /** The container's status, or null when the engine has no container of that id. */
  status(id: string): Promise<ContainerStatus | null>;
  /** Runs `argv` inside the running container (the health command). */
  exec(id: string, argv: string[], timeoutMs: number): Promise<ExecResult>;
  /** This home's containers whose id starts with `prefix`. */
  list(prefix: string): Promise<{ id: string; status: ContainerStatus }[]>;
}

/** Where an engine keeps its state for one device home: under <home>/containers/, so homes never see each other's containers. */
export interface EngineDirs {
  /** <home>/containers */
  containers: string;
}

/** Runs a harmless command; the first line of what went wrong, or null when it worked. */
export type Probe = (cmd: string, args: string[]) => Promise<string | null>;

export const defaultProbe: Probe = async (cmd, args) => {
  try {
    await execFile(cmd, args, { timeout: 15_000 });
    return null;
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string; killed?: boolean };
    if (e.code === 'ENOENT') return 'not installed';
    if (e.killed) return 'did not answer within 15 s';
    const line = String(e.stderr ?? '').trim().split('\n').pop() ?? '';
    return line || e.message.split('\n')[0]!;
  }
};

/**
 * Where engines keep RUNTIME state for a home: /run/ferry/<engine>/<hash of the home's containers
 * folder>. Runtime state belongs on /run (tmpfs): a reboot clears it, as it clears the containers
 * it describes, and a power cut cannot leave it half-written on disk (runc's own default is
 * /run/runc for the same reason). One folder per home, so homes never see each other's containers.
 */
export function runtimeStateDir(dirs: EngineDirs, engine: 'runc' | 'podman'): string {
  return join('/run/ferry', engine, createHash('sha256').update(canonicalContainersDir(dirs.containers)).digest('hex').slice(0, 16));
}

/**
 * The containers folder by its canonical path: `--home ./dev`, `--home /srv/dev/` and a symlink to
 * it are one home, so they must name one state folder (hashing the text as given made the agent and
 * a `ferry container up` or `ferry update` with another spelling see no containers, and start a
 * second copy of the app beside the first). The home exists whenever an engine is used.
 */
function canonicalContainersDir(containers: string): string {
  const home = resolve(dirname(containers));
  try {
    return join(realpathSync(home), basename(containers));
  } catch {
    return join(home, basename(containers));
  }
}

/** runc's --root for a home. */
export function runcRoot(dirs: EngineDirs): string {
  return runtimeStateDir(dirs, 'runc');
}

/**
 * The engine ferry.json names, or with "auto" the first of runc, podman that works here.
 * ERR_CONTAINER_ENGINE naming every engine tried and why it did not work.
 */
export async function detectEngine(config: Pick<ContainerConfig, 'engine'>, dirs: EngineDirs, probe: Probe = defaultProbe): Promise<ContainerEngine> {
  const candidates = config.engine === 'auto' ? (['runc', 'podman'] as const) : [config.engine];
  const tried: string[] = [];
  for (const kind of candidates) {
    if (kind === 'runc') {
      const why = (await probe('runc', ['--version'])) ?? (await probe('runc', ['--root', runcRoot(dirs), 'list', '--quiet'])) ?? (await probe('umoci', ['--version']));
      if (why === null) {
        const { createRuncEngine } = await import('./runc.ts');
        return createRuncEngine({ root: runcRoot(dirs) });
      }
      tried.push(`runc (${why})`);
    } else {
      const { createPodmanEngine, podmanGlobalArgs } = await import('./podman.ts');
      const why = (await probe('podman', ['--version'])) ?? (await probe('podman', [...podmanGlobalArgs(dirs), 'ps', '--all', '--quiet'])) ?? (await probe('umoci', ['--version']));
      if (why === null) return createPodmanEngine(dirs);
      tried.push(`podman (${why})`);
    }
  }
  throw new FerryError('ERR_CONTAINER_ENGINE', `no usable container engine (ferry.json container.engine "${config.engine}"); tried ${tried.join(', ')}`);
}

