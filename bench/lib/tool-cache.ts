// The other tools' results on a pair, kept in bench/.cache/tool-results.json so a rerun of the
// delta bench (after ferry changed) does not spend minutes re-running xdelta3, zstd -19 and
// HDiffPatch on the same inputs: their output depends only on the pinned packages, the command
// line and the tool's binary, which together are the key (the binary by its sha256). A reused
// result was checked (rebuilt the new tar exactly) when it was made; its times are that run's,
// and the bench marks them. FERRY_BENCH_FRESH=1 runs every tool again.

import { createHash } from 'node:crypto';
import { readFile, writeFile, rename } from 'node:fs/promises';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { CACHE_DIR } from './npm-pack.ts';
import type { Measured } from './measure.ts';

export interface CachedResult {
  bytes: number;
  diff: Measured;
  apply: Measured;
  /** When the result was measured (ISO date). */
  at: string;
}

const FILE = join(CACHE_DIR, 'tool-results.json');

async function load(): Promise<Record<string, CachedResult>> {
  try {
    return JSON.parse(await readFile(FILE, 'utf8')) as Record<string, CachedResult>;
  } catch {
    return {};
  }
}

/** sha256 of the executable `command` resolves to (on PATH or a path). */
async function binaryHash(command: string): Promise<string> {
  const found = spawnSync('sh', ['-c', 'command -v "$1"', 'sh', command], { encoding: 'utf8' }).stdout.trim();
  if (found === '') throw new Error(`${command} not found`);
  return createHash('sha256').update(await readFile(found)).digest('hex');
}

export async function toolKey(pair: string, encoder: string, decoder: string, encodeArgs: string[], decodeArgs: string[]): Promise<string> {
  return [pair, await binaryHash(encoder), await binaryHash(decoder), encodeArgs.join(' '), decodeArgs.join(' ')].join(' | ');
}

export async function cachedResult(key: string): Promise<CachedResult | null> {
  if (process.env.FERRY_BENCH_FRESH === '1') return null;
  return (await load())[key] ?? null;
}

export async function storeResult(key: string, result: CachedResult): Promise<void> {
  const all = await load();
  all[key] = result;
  await writeFile(`${FILE}.tmp`, JSON.stringify(all, null, 1) + '\n');
  await rename(`${FILE}.tmp`, FILE);
}
