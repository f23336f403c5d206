// The ferry command: one module per verb under cli/commands, each parsing flags, calling the
// library, and printing. Errors become one line with a stable code and a documented exit code.

import yargs from 'yargs';
import { FerryError } from '../core/errors.ts';
import { printError } from './output.ts';
import { setSeams, type CliSeams } from './seams.ts';
import { keygenCommand } from './commands/keygen.ts';
import { repoCommand } from './commands/repo.ts';
import { releaseCommand } from './commands/release.ts';
import { bundleCommand } from './commands/bundle.ts';
import { verifyCommand } from './commands/verify.ts';
import { deviceCommands } from './commands/device.ts';
import { serveCommand } from './commands/serve.ts';
import { shareCommand } from './commands/share.ts';
import { runCommand } from './commands/run.ts';
import { agentCommand } from './commands/agent.ts';
import type { CommandModule } from 'yargs';

export const commands: CommandModule[] = [keygenCommand, repoCommand, releaseCommand, bundleCommand, verifyCommand, serveCommand, ...deviceCommands, shareCommand, runCommand, agentCommand] as CommandModule[];

export function buildCli(argv: string[]) {
  let cli = yargs(argv)
    .scriptName('ferry')
    .option('json', { type: 'boolean', default: false, describe: 'print one JSON document (errors as JSON on stderr)' })
    .option('verbose', { type: 'boolean', default: false, describe: 'print the cause chain of errors' })
    .strict()
    .demandCommand(1, 'name a command (ferry --help lists them)')
    .recommendCommands()
    .help()
    .version(false)
    .wrap(Math.min(110, process.stdout.columns || 100))
    .fail((msg, err) => {
      throw err ?? new FerryError('ERR_USAGE', msg);
    });
  for (const c of commands) cli = cli.command(c);
  return cli;
}

/** Runs one `ferry` command line (without node and the script); sets process.exitCode. */
export async function runCli(argv: string[], seams: CliSeams = {}): Promise<void> {
  setSeams(seams);
  const flags = { json: argv.includes('--json'), verbose: argv.includes('--verbose') };
  try {
    await buildCli(argv).parseAsync();
  } catch (err) {
    process.exitCode = printError(flags, err);
  }
}
