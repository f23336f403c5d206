// What the engines (runc.ts, podman.ts) share about running their command-line tools: a failed
// command as ERR_CONTAINER_ENGINE with what the tool said, and an `exec` turned into an exit code.

import { FerryError } from '../../core/errors.ts';
import type { ExecResult } from './engine.ts';

/** ERR_CONTAINER_ENGINE for a failed engine command, with the last line it wrote on stderr. */
export function engineError(what: string, err: unknown): FerryError {
  const e = err as { stderr?: string; message?: string };
  const line = String(e.stderr ?? '').trim().split('\n').pop() || String(e.message ?? err).split('\n')[0];
  return new FerryError('ERR_CONTAINER_ENGINE', `${what} failed: ${line}`, { cause: err });
}

/** An `exec` that ran: its exit code (null when killed at its deadline) and everything it printed. */
export async function execOutcome(run: Promise<{ stdout: string; stderr: string }>): Promise<ExecResult> {
  try {
    const { stdout, stderr } = await run;
    return { code: 0, output: `${stdout}${stderr}` };
  } catch (err) {
    const e = err as { code?: unknown; killed?: boolean; stdout?: string; stderr?: string };
    return { code: e.killed ? null : typeof e.code === 'number' ? e.code : 1, output: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}
