#!/usr/bin/env node
// `ferry run` as its own executable, for tests while cli/main.ts does not list runCommand yet:
// the same yargs command, the same error printing. Once main.ts has it, tests use cli/ferry.mjs.
import { register } from 'tsx/esm/api';

register();
const { default: yargs } = await import('yargs');
const { hideBin } = await import('yargs/helpers');
const { runCommand } = await import('../../cli/commands/run.ts');
const { printError } = await import('../../cli/output.ts');
const { FerryError } = await import('../../core/errors.ts');

const argv = hideBin(process.argv);
const flags = { json: argv.includes('--json'), verbose: argv.includes('--verbose') };
try {
  await yargs(['run', ...argv])
    .scriptName('ferry')
    .option('json', { type: 'boolean', default: false })
    .option('verbose', { type: 'boolean', default: false })
    .strict()
    .fail((msg, err) => { throw err ?? new FerryError('ERR_USAGE', msg); })
    .command(runCommand)
    .parseAsync();
} catch (err) {
  process.exitCode = printError(flags, err);
}
