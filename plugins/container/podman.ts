// The podman engine, daemonless: the same bundle runc would run (umoci's rootfs + ferry's
// config.json) started with `podman run --rootfs`, its settings translated from that config.json
// (command, env, working folder, user, capabilities, network, mounts, handed-in fds), so both
// engines run one decision (runtime-spec.ts). podman's storage and state live under
// <home>/containers/podman. The global flags are the ones that work without a daemon, without
// systemd and inside a sandbox whose hard rlimits are below podman's defaults (vfs storage,
// cgroupfs, file events, runc; ulimits no higher than this process's hard limits).

import { execFile as execFileCb } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { FerryError } from '../../core/errors.ts';
import { spawn } from 'node:child_process';
import { runtimeStateDir, type ContainerEngine, type ContainerStatus, type EngineDirs, type ExecResult, type StartRequest } from './engine.ts';
import { engineError, execOutcome } from './engine-command.ts';
import type { OciRuntimeConfig } from './runtime-spec.ts';

const execFile = promisify(execFileCb);
const PODMAN_TIMEOUT_MS = 60_000;
const POLL_MS = 100;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** podman's flags for a home: storage under <home>/containers/podman, runtime state on /run (engine.ts runtimeStateDir). */
export function podmanGlobalArgs(dirs: EngineDirs): string[] {
  return ['--storage-driver', 'vfs', '--root', join(dirs.containers, 'podman'), '--runroot', runtimeStateDir(dirs, 'podman'), '--cgroup-manager', 'cgroupfs', '--events-backend', 'file', '--runtime', 'runc'];
}

/** This process's hard limit of a resource, from /proc/self/limits ("unlimited" or unreadable → null). */
async function hardLimit(name: 'Max open files' | 'Max processes'): Promise<number | null> {
  const text = await readFile('/proc/self/limits', 'utf8').catch(() => '');
  const line = text.split('\n').find((l) => l.startsWith(name));
  const hard = line?.slice(name.length).trim().split(/\s+/)[1];
  return hard && /^\d+$/.test(hard) ? Number(hard) : null;
}

/** `podman run` flags for a bundle's config.json (the parts runtime-spec.ts decides). */
export function podmanRunArgs(config: OciRuntimeConfig, bundle: string, req: Pick<StartRequest, 'id' | 'logFile'> & { fdCount: number }): string[] {
  const p = config.process ?? {};
  const root = typeof (config.root as { path?: unknown } | undefined)?.path === 'string' ? (config.root as { path: string }).path : 'rootfs';
  const out = ['run', '--detach', '--name', req.id, '--log-driver', 'k8s-file', '--log-opt', `path=${req.logFile}`];
  for (const kv of p.env ?? []) out.push('--env', kv);
  if (p.cwd) out.push('--workdir', p.cwd);
  if (p.user) out.push('--user', `${p.user.uid}:${p.user.gid}`);
  const privileged = p.noNewPrivileges === false && (config.linux?.maskedPaths ?? []).length === 0;
  if (privileged) out.push('--privileged');
  else {
    out.push('--cap-drop', 'all');
    for (const c of p.capabilities?.effective ?? []) out.push('--cap-add', c);
    out.push('--security-opt', 'no-new-privileges');
  }
  const hostNetwork = !(config.linux?.namespaces ?? []).some((n) => n.type === 'network');
  out.push('--network', hostNetwork ? 'host' : 'none');
  for (const m of config.mounts ?? []) {
    if (m.type !== 'bind' || !m.source) continue;
    out.push('--volume', `${m.source}:${m.destination}:${(m.options ?? []).includes('ro') ? 'ro' : 'rw'}`);
  }
  if (req.fdCount > 0) out.push('--preserve-fds', String(req.fdCount));
  // --rootfs is a switch: the image position then names the root folder, and flag parsing stops
  // there, so the command follows as is.
  out.push('--rootfs', join(bundle, root), ...(p.args ?? []));
  return out;
}

export function createPodmanEngine(dirs: EngineDirs): ContainerEngine {
  const global = podmanGlobalArgs(dirs);
  const run = (args: string[], timeout = PODMAN_TIMEOUT_MS) => execFile('podman', [...global, ...args], { timeout, maxBuffer: 8 << 20 });

  async function status(id: string): Promise<ContainerStatus | null> {
    try {
      const { stdout } = await run(['container', 'inspect', '--format', '{{.State.Status}}', id]);
      return podmanStatus(stdout.trim());
    } catch (err) {
      if (/no such container|no container with name or ID/i.test(String((err as { stderr?: string }).stderr ?? ''))) return null;
      throw engineError(`podman inspect ${id}`, err);
    }
  }

  return {
    kind: 'podman',
    status,
    async start(req) {
      if ((await status(req.id)) !== null) await run(['rm', '--force', req.id]).catch((err) => { throw engineError(`podman rm ${req.id}`, err); });
      const config = JSON.parse(await readFile(join(req.bundle, 'config.json'), 'utf8')) as OciRuntimeConfig;
      const nofile = (await hardLimit('Max open files')) ?? 1024;
      const nproc = Math.min((await hardLimit('Max processes')) ?? 4096, 4096);
      const args = podmanRunArgs(config, req.bundle, { ...req, fdCount: req.handIn?.count ?? 0 });
      args.splice(args.indexOf('--rootfs'), 0, '--ulimit', `nofile=${nofile}:${nofile}`, '--ulimit', `nproc=${nproc}:${nproc}`);
      let child;
      try {
        child = spawn('podman', [...global, ...args], { stdio: ['ignore', 'pipe', 'pipe', ...(req.handIn?.open() ?? [])] });
      } finally {
        req.handIn?.close(); // the child has its own copies
      }
      let err = '';
      child.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
      child.stdout!.resume();
      const timer = setTimeout(() => child.kill('SIGKILL'), PODMAN_TIMEOUT_MS);
      const code = await new Promise<number | null>((resolve, reject) => {
        child.once('error', reject);
        child.once('close', (c) => resolve(c));
      }).finally(() => clearTimeout(timer));
      if (code !== 0) throw new FerryError('ERR_CONTAINER_ENGINE', `podman run ${req.id} failed (exit ${code}): ${err.trim().split('\n').pop() ?? ''}`);
    },
    async stop(id, timeoutMs) {
      if ((await status(id)) === null) return;
      // conmon, the container's monitor, runs `podman container cleanup` when the container exits,
      // after `podman rm` may have returned: wait for it, so a stopped container is all done.
      const conmon = Number((await run(['container', 'inspect', '--format', '{{.State.ConmonPid}}', id]).catch(() => ({ stdout: '0' }))).stdout.trim()) || 0;
      await run(['stop', '--time', String(Math.ceil(timeoutMs / 1000)), id], timeoutMs + PODMAN_TIMEOUT_MS).catch(() => {});
      await run(['rm', '--force', id]).catch(async (err) => {
        if ((await status(id)) !== null) throw engineError(`podman rm ${id}`, err);
      });
      for (let i = 0; i < 50 && (await status(id)) !== null; i++) await sleep(POLL_MS);
      for (let i = 0; i < 50 && conmon > 0 && existsSync(`/proc/${conmon}`); i++) await sleep(POLL_MS);
    },
    exec(id, argv, timeoutMs): Promise<ExecResult> {
      // SIGKILL at the deadline (runc.ts exec: the engine forwards SIGTERM to the command and waits).
      return execOutcome(execFile('podman', [...global, 'exec', id, ...argv], { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 8 << 20 }));
    },
    async list(prefix) {
      let stdout: string;
      try {
        ({ stdout } = await run(['ps', '--all', '--format', 'json']));
      } catch (err) {
        throw engineError('podman ps', err);
      }
      const all = (JSON.parse(stdout || '[]') as { Names?: string[]; State?: string }[] | null) ?? [];
      return all
        .map((c) => ({ id: c.Names?.[0] ?? '', status: podmanStatus(c.State ?? '') }))
        .filter((c) => c.id.startsWith(prefix));
    },
  };
}

/** podman's state words as the engine port's statuses. */
function podmanStatus(s: string): ContainerStatus {
  return s === 'running' ? 'running' : s === 'paused' ? 'paused' : s === 'created' || s === 'configured' || s === 'initialized' ? 'created' : 'stopped';
}

