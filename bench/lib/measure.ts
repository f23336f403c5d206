// Runs a tool as a child process and reads its wall time and peak resident memory through GNU
// time (`/usr/bin/time -f %M`, KiB: the largest of the process and the children it waited for).
// ferry itself is measured the same way, as the CLI a device or a publisher runs
// (bench/lib/ferry-cli.ts), so its figures include node's start-up like a real run does.
// Every child has a deadline, so a hung tool ends the bench instead of stalling it.

import { spawn } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';

export interface Measured {
  seconds: number;
  maxRssKiB: number;
}

export interface MeasuredOutput extends Measured {
  stdout: string;
}

export const TIME_BIN = '/usr/bin/time';

interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Spawns `cmd args`, collects output, kills it past `timeoutMs`. Never throws on exit status. */
function runToEnd(cmd: string, args: string[], timeoutMs: number, cwd?: string): Promise<Finished> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs, killSignal: 'SIGKILL', cwd });
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
  return `${[cmd, ...args].join(' ')} ${how}\n${f.stderr.trim()}\n${f.stdout.slice(-2000).trim()}`;
}

/** Runs an external command under GNU time; seconds is wall time measured here. Throws on a non-zero exit. */
export async function measureCommand(cmd: string, args: string[], scratchFile: string, timeoutMs: number): Promise<MeasuredOutput> {
  await rm(scratchFile, { force: true });
  const start = process.hrtime.bigint();
  const f = await runToEnd(TIME_BIN, ['-f', '%M', '-o', scratchFile, cmd, ...args], timeoutMs);
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  if (f.code !== 0) throw new Error(describe(cmd, args, f, timeoutMs));
  // time -o writes the format line last; earlier lines (if any) are its own notes.
  const lines = (await readFile(scratchFile, 'utf8')).trim().split('\n');
  const maxRssKiB = Number(lines[lines.length - 1]);
  if (!Number.isFinite(maxRssKiB)) throw new Error(`${TIME_BIN} wrote no peak RSS for ${cmd}: ${lines.join(' | ')}`);
  return { seconds, maxRssKiB, stdout: f.stdout };
}

/** Runs a command to completion for its side effect (no measurement); throws on failure. */
export async function runChecked(cmd: string, args: string[], timeoutMs: number, cwd?: string): Promise<string> {
  const f = await runToEnd(cmd, args, timeoutMs, cwd);
  if (f.code !== 0) throw new Error(describe(cmd, args, f, timeoutMs));
  return f.stdout;
}

/** The median of `values` (the middle one of an odd count). */
export function median(values: number[]): number {
  return [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
}

/**
 * Writes back every dirty page before a measured step (untimed), so no step pays for the disk
 * writeback of the one before it: every measured step starts from a quiet disk with warm caches.
 */
export async function settle(): Promise<void> {
  await runChecked('sync', [], 5 * 60_000);
}
