// How commands print: human lines on stdout, or exactly one JSON document with --json. Errors go
// to stderr as one line with their stable code (JSON with --json), the cause chain with --verbose.

import { FerryError } from '../core/errors.ts';
import { EXIT, EXIT_CODE } from './exit-codes.ts';

export interface OutputFlags {
  json?: boolean;
  verbose?: boolean;
}

export function printResult(flags: OutputFlags, json: unknown, human: () => string[]): void {
  if (flags.json) process.stdout.write(JSON.stringify(json, null, 2) + '\n');
  else for (const line of human()) process.stdout.write(line + '\n');
}

/** Prints an error and returns the exit code for it. */
export function printError(flags: OutputFlags, err: unknown): number {
  const code = err instanceof FerryError ? err.code : 'ERR_INTERNAL';
  const exit = err instanceof FerryError ? EXIT_CODE[err.code] : EXIT.internal;
  const message = (err as Error)?.message ?? String(err);
  if (flags.json) {
    process.stderr.write(JSON.stringify({ error: { code, message, exitCode: exit } }) + '\n');
  } else {
    process.stderr.write(`ferry: ${code}: ${message}\n`);
    let cause = (err as Error)?.cause;
    if (flags.verbose) {
      while (cause) {
        process.stderr.write(`  caused by: ${(cause as Error)?.message ?? String(cause)}\n`);
        cause = (cause as Error)?.cause;
      }
      if (!(err instanceof FerryError)) process.stderr.write(`${(err as Error)?.stack ?? ''}\n`);
    } else if (cause) {
      process.stderr.write('  (--verbose shows the cause)\n');
    }
  }
  return exit;
}
