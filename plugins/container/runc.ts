// The runc engine: a bundle (umoci's rootfs + ferry's config.json) run detached with `runc run -d`,
// its state under <home>/containers/runc (so one home never sees another's containers). The
// container's stdout and stderr are the log file handed to runc (with terminal false, a detached
// runc passes its own stdio through); listening sockets reach it as fds 3… via --preserve-fds.

import { execFile as execFileCb, spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { FerryError } from '../../core/errors.ts';
import type { ContainerEngine, ContainerStatus, ExecResult, StartRequest } from './engine.ts';
import { engineError, execOutcome } from './engine-command.ts';

const execFile = promisify(execFileCb);
/** Every runc command but exec is a quick bookkeeping call; one that hangs longer is an engine failure. */
const RUNC_TIMEOUT_MS = 30_000;
const POLL_MS = 50;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function createRuncEngine(options: { root: string; runc?: string }): ContainerEngine {
  const runc = options.runc ?? 'runc';
  const root = options.root;
  // SIGKILL at the timeout: a runc exec forwards SIGTERM to the command it runs and waits for it, so
  // a health command that ignores SIGTERM held the check (and the home's lock) past its deadline.
  const run = (args: string[], timeout = RUNC_TIMEOUT_MS) => execFile(runc, ['--root', root, ...args], { timeout, killSignal: 'SIGKILL', maxBuffer: 4 << 20 });

  async function status(id: string): Promise<ContainerStatus | null> {
    try {
      const { stdout } = await run(['state', id]);
      return (JSON.parse(stdout) as { status: ContainerStatus }).status;
    } catch (err) {
      const text = String((err as { stderr?: string }).stderr ?? '');
      if (/does not exist|not exist/.test(text)) return null;
      throw engineError(`runc state ${id}`, err);
    }
  }

  async function waitNotRunning(id: string, ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    for (;;) {
      const s = await status(id);
      if (s !== 'running' && s !== 'paused') return true;
      if (Date.now() >= deadline) return false;
      await sleep(POLL_MS);
    }
  }

  /**
   * A container of this id left behind (stopped, or half-created by a kill) is in the way. One whose
   * state runc cannot even read (a kill while runc wrote it) is not listed by runc and cannot be
   * deleted by it: its state folder is removed.
   */
  async function clearStale(id: string): Promise<void> {
    const s = await status(id).catch(() => 'unreadable' as const);
    if (s === null) return;
    await run(['delete', '--force', id]).catch(async (err) => {
      if (s !== 'unreadable') throw engineError(`runc delete ${id}`, err);
      await rm(join(root, id), { recursive: true, force: true });
    });
  }

  return {
    kind: 'runc',
    status,
    async start(req: StartRequest) {
      await mkdir(root, { recursive: true });
      await mkdir(dirname(req.logFile), { recursive: true });
      await clearStale(req.id);
      const log = openSync(req.logFile, 'a');
      let exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
      const args = ['--root', root, 'run', '--detach', '--bundle', req.bundle];
      if (req.handIn && req.handIn.count > 0) args.push('--preserve-fds', String(req.handIn.count));
      try {
        const fds = req.handIn?.open() ?? [];
        const child = spawn(runc, [...args, req.id], { stdio: ['ignore', log, log, ...fds] });
        exit = new Promise((resolve, reject) => {
          child.once('error', reject);
          child.once('exit', (code, signal) => resolve({ code, signal }));
        });
      } finally {
        req.handIn?.close(); // the child has its own copies
        closeSync(log);
      }
      const r = await withTimeout(exit, RUNC_TIMEOUT_MS, `runc run ${req.id}`);
      if (r.code !== 0) {
        const tail = (await readFile(req.logFile, 'utf8').catch(() => '')).trim().split('\n').slice(-3).join(' | ');
        throw new FerryError('ERR_CONTAINER_ENGINE', `runc run ${req.id} failed (${r.signal ?? `exit ${r.code}`}): ${tail || 'no output'}`);
      }
    },
    async stop(id, timeoutMs) {
      const s = await status(id);
      if (s === null) return;
      if (s === 'running' || s === 'paused') {
        await run(['kill', id, 'TERM']).catch(() => {}); // it may have exited meanwhile
        if (!(await waitNotRunning(id, timeoutMs))) {
          await run(['kill', '--all', id, 'KILL']).catch(() => {});
          await waitNotRunning(id, 5_000);
        }
      }
      await run(['delete', '--force', id]).catch(async (err) => {
        if ((await status(id)) !== null) throw engineError(`runc delete ${id}`, err);
      });
    },
    exec(id, argv, timeoutMs): Promise<ExecResult> {
      return execOutcome(run(['exec', id, ...argv], timeoutMs));
    },
    async list(prefix) {
      let stdout: string;
      try {
        ({ stdout } = await run(['list', '--format', 'json']));
      } catch (err) {
        throw engineError('runc list', err);
      }
      const all = (JSON.parse(stdout || 'null') as { id: string; status: ContainerStatus }[] | null) ?? [];
      return all.filter((c) => c.id.startsWith(prefix)).map((c) => ({ id: c.id, status: c.status }));
    },
  };
}


async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new FerryError('ERR_CONTAINER_ENGINE', `${what} did not finish within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
