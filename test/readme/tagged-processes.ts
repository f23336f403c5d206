// Runs a README shell example and finds every process it left behind. Each example runs with a
// random token in its environment, which every descendant inherits: `ferry serve … &` (re-parented
// once its shell exits) and the app `ferry run` starts in its own session alike. So "what did the
// examples leave running" is "which live processes carry the token" (/proc/<pid>/environ), and
// cleanup kills exactly those pids, never anything by name.

import { spawn } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export const TOKEN_VAR = 'FERRY_README_EXAMPLE';

export interface TaggedProcess {
  pid: number;
  cmdline: string;
}

/** Live (not zombie) processes whose environment carries `TOKEN_VAR=token`. */
export function taggedProcesses(token: string): TaggedProcess[] {
  const needle = Buffer.from(`${TOKEN_VAR}=${token}\0`);
  const found: TaggedProcess[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    if (pid === process.pid) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
      if (state === 'Z' || state === 'X') continue;
      if (!readFileSync(`/proc/${pid}/environ`).includes(needle)) continue;
      found.push({ pid, cmdline: readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim() });
    } catch {
      // It exited while we looked, or is not ours to read.
    }
  }
  return found;
}

/** SIGKILLs every tagged process by its pid; returns what it found. */
export function killTagged(token: string): TaggedProcess[] {
  const found = taggedProcesses(token);
  for (const p of found) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  return found;
}

/** Waits (at most `timeoutMs`, in 100 ms steps) for the tagged processes to exit; returns those still there. */
export async function untilUntagged(token: string, timeoutMs: number): Promise<TaggedProcess[]> {
  for (let waited = 0; waited < timeoutMs; waited += 100) {
    if (taggedProcesses(token).length === 0) return [];
    await sleep(100);
  }
  return taggedProcesses(token);
}

export interface ScriptRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  stdout: string;
  stderr: string;
}

/**
 * Runs `script` with bash in `cwd`, stdout and stderr to files in `logDir` (not pipes: a background
 * job keeps a pipe open after bash exits, so "bash is done" is its exit, not end-of-output). After
 * `timeoutMs` every tagged process, bash included, is killed.
 */
export async function runScript(script: string, opts: { name: string; cwd: string; logDir: string; env: NodeJS.ProcessEnv; token: string; timeoutMs: number }): Promise<ScriptRun> {
  const file = (ext: string) => join(opts.logDir, `${opts.name}.${ext}`);
  writeFileSync(file('sh'), script);
  const out = openSync(file('out'), 'w');
  const err = openSync(file('err'), 'w');
  let timedOut = false;
  const exit = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    const child = spawn('bash', [file('sh')], { cwd: opts.cwd, env: { ...opts.env, [TOKEN_VAR]: opts.token }, stdio: ['ignore', out, err] });
    const timer = setTimeout(() => {
      timedOut = true;
      killTagged(opts.token);
    }, opts.timeoutMs);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal });
    });
  });
  closeSync(out);
  closeSync(err);
  return { ...exit, timedOut, stdout: readFileSync(file('out'), 'utf8'), stderr: readFileSync(file('err'), 'utf8') };
}
