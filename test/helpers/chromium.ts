// Headless Chromium for tests of the pages ferry writes (Debian's chromium package): the DOM after
// load (--dump-dom) and a screenshot. Each run has its own temp profile and is killed by its pid
// (its process group) in a finally, whatever happened; null when Chromium is not installed, so the
// caller prints a visible SKIP naming it.

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const CHROMIUM_CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser'];

export function findChromium(): string | null {
  const named = process.env.FERRY_TEST_CHROMIUM;
  if (named) return existsSync(named) ? named : null;
  return CHROMIUM_CANDIDATES.find((p) => existsSync(p)) ?? null;
}

/** Runs chromium headless with `args` and returns its stdout; rejects on a non-zero exit or timeout. */
export async function runChromium(binary: string, args: string[], timeoutMs = 30_000): Promise<string> {
  const profile = await mkdtemp(join(tmpdir(), 'ferry-chromium-'));
  const child = spawn(binary, [
    '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--no-default-browser-check',
    '--disable-extensions', '--disable-background-networking', '--disable-sync', '--hide-scrollbars',
    `--user-data-dir=${profile}`, ...args,
  ], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let stdout = '', stderr = '';
  child.stdout.on('data', (d) => { stdout += d; });
  child.stderr.on('data', (d) => { stderr += d; });
  let timer: NodeJS.Timeout | undefined;
  try {
    const code = await new Promise<number | null>((resolve, reject) => {
      child.on('error', reject);
      child.on('exit', (c) => resolve(c));
      timer = setTimeout(() => reject(new Error(`chromium did not finish in ${timeoutMs} ms; stderr: ${stderr.slice(-2000)}`)), timeoutMs);
    });
    if (code !== 0) throw new Error(`chromium exited ${code}; stderr: ${stderr.slice(-2000)}`);
    return stdout;
  } finally {
    clearTimeout(timer);
    // Chromium leaves helper processes (zygote, renderer, gpu): the whole group goes, by its pid.
    if (child.pid !== undefined) {
      try { process.kill(-child.pid, 'SIGKILL'); } catch { /* already gone */ }
    }
    await rm(profile, { recursive: true, force: true, maxRetries: 3 });
  }
}
