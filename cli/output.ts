// How commands print: human lines on stdout, or exactly one JSON document with --json. Errors go
// to stderr as one line with their stable code (JSON with --json), the cause chain with --verbose.
// Everything printed here passes core/io/printable.ts: messages and lines carry names and text from
// archives, sticks, servers and metadata, and no such text may move the cursor or forge a line
// (SECURITY.md row 14). The sources escape what they quote; this is the last line of defence.

import { FerryError } from '../core/errors.ts';
import { printable, printableJson } from '../core/io/printable.ts';
import { EXIT, EXIT_CODE } from './exit-codes.ts';

export interface OutputFlags {
  json?: boolean;
  verbose?: boolean;
}

export function printResult(flags: OutputFlags, json: unknown, human: () => string[]): void {
  if (flags.json) process.stdout.write(printableJson(json, 2) + '\n');
  else for (const line of human()) process.stdout.write(printable(line) + '\n');
}

/** A progress or log line on stderr, `ferry: message`, kept to one line. */
export function printLogLine(message: string): void {
  process.stderr.write(`ferry: ${printable(message)}\n`);
}

/** Prints an error and returns the exit code for it. */
export function printError(flags: OutputFlags, err: unknown): number {
  const code = err instanceof FerryError ? err.code : 'ERR_INTERNAL';
  const exit = err instanceof FerryError ? EXIT_CODE[err.code] : EXIT.internal;
  const message = (err as Error)?.message ?? String(err);
  if (flags.json) {
    process.stderr.write(printableJson({ error: { code, message, exitCode: exit } }) + '\n');
  } else {
    process.stderr.write(`ferry: ${code}: ${printable(message)}\n`);
    let cause = (err as Error)?.cause;
    if (flags.verbose) {
      while (cause) {
        process.stderr.write(`  caused by: ${printable((cause as Error)?.message ?? String(cause))}\n`);
        cause = (cause as Error)?.cause;
      }
      if (!(err instanceof FerryError)) for (const line of ((err as Error)?.stack ?? '').split('\n')) process.stderr.write(`${printable(line)}\n`);
    } else if (cause) {
      process.stderr.write('  (--verbose shows the cause)\n');
    }
  }
  return exit;
}
