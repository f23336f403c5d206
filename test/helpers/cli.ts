// Runs the real `ferry` command the way a user does (`node dist/cli/ferry.js …` in a child process)
// and reads what it printed. Shared by the CLI suites.

import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

export function ferry(...args: string[]): Run {
  const r = spawnSync(process.execPath, ['dist/cli/ferry.js', ...args], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' }, timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

export function ok(run: Run, what: string): Run {
  assert.is(run.status, 0, `${what} exits 0 (stderr: ${run.stderr.trim()})`);
  return run;
}

export function json<T>(run: Run): T {
  return JSON.parse(run.stdout) as T;
}
