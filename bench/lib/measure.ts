// Runs a tool as a child process and reads its wall time and peak resident memory. External
// commands go through GNU time (`/usr/bin/time -f %M`, KiB); ferry's steps run in a node child
// (ferry-delta-child.ts) that reports its own maxRSS and the time of the delta call alone.
// Every child has a deadline, so a hung tool ends the bench instead of stalling it.

import { spawn } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { ChildReport } from './ferry-delta-child.ts';

export interface Measured {
  seconds: number;
  maxRssKiB: number;
}

export const TIME_BIN = '/usr/bin/time';
const CHILD = fileURLToPath(new URL('./ferry-delta-child.ts', import.meta.url));

interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Spawns `cmd args`, collects output, kills it past `timeoutMs`. Never throws on exit status. */
function runToEnd(cmd: string, args: string[], timeoutMs: number): Promise<Finished> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs, killSignal: 'SIGKILL' });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    // Only the tail of stderr is kept: enough for an error message, bounded for a chatty tool.
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr = (stderr + d).slice(-8192); });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

function describe(cmd: string, args: string[], f: Finished, timeoutMs: number): string {
  const how = f.signal === 'SIGKILL' ? `was killed (over its ${timeoutMs / 1000} s deadline?)` : `exited ${f.code ?? f.signal}`;
  return `${[cmd, ...args].join(' ')} ${how}\n${f.stderr.trim()}`;
}

/** Runs an external command under GNU time; seconds is wall time measured here. */
export async function measureCommand(cmd: string, args: string[], scratchFile: string, timeoutMs: number): Promise<Measured> {
  await rm(scratchFile, { force: true });
  const start = process.hrtime.bigint();
  const f = await runToEnd(TIME_BIN, ['-f', '%M', '-o', scratchFile, cmd, ...args], timeoutMs);
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  if (f.code !== 0) throw new Error(describe(cmd, args, f, timeoutMs));
  // time -o writes the format line last; earlier lines (if any) are its own notes.
  const lines = (await readFile(scratchFile, 'utf8')).trim().split('\n');
  const maxRssKiB = Number(lines[lines.length - 1]);
  if (!Number.isFinite(maxRssKiB)) throw new Error(`${TIME_BIN} wrote no peak RSS for ${cmd}: ${lines.join(' | ')}`);
  return { seconds, maxRssKiB };
}

/** Runs `ferry-delta-child.ts verb args` under node + tsx and returns its report. */
export async function measureFerry(verb: 'diff' | 'apply' | 'noop', args: string[], timeoutMs: number): Promise<ChildReport> {
  const nodeArgs = ['--import', 'tsx', CHILD, verb, ...args];
  const f = await runToEnd(process.execPath, nodeArgs, timeoutMs);
  if (f.code !== 0) throw new Error(describe('node', nodeArgs, f, timeoutMs));
  const last = f.stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(last) as ChildReport;
  } catch (cause) {
    throw new Error(`ferry-delta-child ${verb} printed no report: ${JSON.stringify(f.stdout.slice(-500))}`, { cause });
  }
}

/** Runs a command to completion for its side effect (no measurement); throws on failure. */
export async function runChecked(cmd: string, args: string[], timeoutMs: number): Promise<string> {
  const f = await runToEnd(cmd, args, timeoutMs);
  if (f.code !== 0) throw new Error(describe(cmd, args, f, timeoutMs));
  return f.stdout;
}
