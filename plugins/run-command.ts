// Runs a command to its end in its own process group, bounded in time: at the deadline the whole
// group is killed (a command's helpers go with it) and the result says so at once, without
// waiting for pipes a stray grandchild might hold. The health-check command and the self-release
// build (npm ci) run their commands through here.

import { spawn } from 'node:child_process';

export type CommandOutcome =
  | { kind: 'exited'; code: number | null; signal: NodeJS.Signals | null; output: string }
  | { kind: 'timed-out'; output: string }
  | { kind: 'not-started'; error: Error };

export function runCommand(cmd: string, args: string[], options: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs: number; keepBytes: number }): Promise<CommandOutcome> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: options.cwd, env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let output = '';
    const keep = (d: Buffer) => { output = (output + d.toString()).slice(-options.keepBytes); };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    const timer = setTimeout(() => {
      try { process.kill(-child.pid!, 'SIGKILL'); } catch { /* already gone */ }
      resolve({ kind: 'timed-out', output });
    }, options.timeoutMs);
    child.on('error', (error) => { clearTimeout(timer); resolve({ kind: 'not-started', error }); });
    child.on('close', (code, signal) => { clearTimeout(timer); resolve({ kind: 'exited', code, signal, output }); });
  });
}

/** The last `lines` lines of a command's output, joined with `separator`. */
export function outputTail(output: string, lines: number, separator: string): string {
  return output.trim().split('\n').slice(-lines).join(separator);
}
