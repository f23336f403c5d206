// Makes sure the external tools the benches compare against are installed. As root on Debian the
// missing packages are installed with apt-get; otherwise the bench stops and names them.

import { spawnSync } from 'node:child_process';
import { TIME_BIN } from './measure.ts';

/** A command the bench runs, and the Debian package that provides it. */
export interface Tool {
  command: string;
  debianPackage: string;
}

export const XDELTA3: Tool = { command: 'xdelta3', debianPackage: 'xdelta3' };
export const ZSTD: Tool = { command: 'zstd', debianPackage: 'zstd' };
export const GNU_TIME: Tool = { command: TIME_BIN, debianPackage: 'time' };

function installed(command: string): boolean {
  return spawnSync('sh', ['-c', 'command -v "$1" >/dev/null', 'sh', command]).status === 0;
}

/** Installs whichever of `tools` is missing (once, with one apt-get), or throws naming them. */
export function ensureTools(tools: Tool[], log: (line: string) => void): void {
  const missing = tools.filter((t) => !installed(t.command));
  if (missing.length === 0) return;
  const pkgs = missing.map((t) => t.debianPackage);
  if (process.getuid?.() !== 0) {
    throw new Error(`missing ${missing.map((t) => t.command).join(', ')}: run as root, or apt-get install -y ${pkgs.join(' ')}`);
  }
  log(`installing ${pkgs.join(' ')} with apt-get`);
  const res = spawnSync('sh', ['-c', 'apt-get update && apt-get install -y "$@"', 'sh', ...pkgs], { stdio: ['ignore', 'ignore', 'inherit'], timeout: 10 * 60_000 });
  if (res.status !== 0) throw new Error(`apt-get install ${pkgs.join(' ')} failed (status ${res.status ?? res.signal})`);
  const still = missing.filter((t) => !installed(t.command));
  if (still.length > 0) throw new Error(`still missing after apt-get: ${still.map((t) => t.command).join(', ')}`);
}
