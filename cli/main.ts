// The ferry command: one module per verb under cli/commands, each parsing flags, calling the
// library, and printing. Errors become one line with a stable code and a documented exit code.
// Start-up is lazy: only the module of the verb being run is imported (with its dependencies:
// LevelDB, tar, tweetnacl, …), and `ferry --version` imports no command and not yargs at all;
// bench/footprint.ts measures what that buys. Help, an unknown verb or none load every module.

import { FerryError } from '../core/errors.ts';
import { printError, printResult } from './output.ts';
import { setSeams, type CliSeams } from './seams.ts';
import { packageVersion } from './version.ts';
import { interruptedLine, STOP_SIGNALS, type StopSignal } from './interrupted.ts';
import type { CommandModule } from 'yargs';

type Loader = () => Promise<CommandModule[]>;

const one = (m: unknown) => [m as CommandModule];
const keygen: Loader = async () => one((await import('./commands/keygen.ts')).keygenCommand);
const repo: Loader = async () => one((await import('./commands/repo.ts')).repoCommand);
const release: Loader = async () => one((await import('./commands/release.ts')).releaseCommand);
const promote: Loader = async () => one((await import('./commands/promote.ts')).promoteCommand);
const rollout: Loader = async () => one((await import('./commands/rollout.ts')).rolloutCommand);
const bundle: Loader = async () => one((await import('./commands/bundle.ts')).bundleCommand);
const verify: Loader = async () => one((await import('./commands/verify.ts')).verifyCommand);
const serve: Loader = async () => one((await import('./commands/serve.ts')).serveCommand);
const device: Loader = async () => (await import('./commands/device.ts')).deviceCommands;
const share: Loader = async () => one((await import('./commands/share.ts')).shareCommand);
const run: Loader = async () => one((await import('./commands/run.ts')).runCommand);
const agent: Loader = async () => one((await import('./commands/agent.ts')).agentCommand);
const self: Loader = async () => one((await import('./commands/self.ts')).selfCommand);
const report: Loader = async () => one((await import('./commands/report.ts')).reportCommand);
const fleet: Loader = async () => one((await import('./commands/fleet.ts')).fleetCommand);
const container: Loader = async () => one((await import('./commands/container.ts')).containerCommand);

/** Every command module, in the order `ferry --help` lists them. */
const ALL: Loader[] = [keygen, repo, release, promote, rollout, bundle, verify, serve, device, share, run, agent, self, report, fleet, container];

/** Which module defines each verb. A verb missing here still works: it loads every module. */
const BY_VERB: Record<string, Loader> = {
  keygen, repo, release, promote, rollout, bundle, verify, serve, share, run, agent, self, report, fleet, container,
  init: device, check: device, download: device, apply: device, update: device, approve: device,
  rollback: device, history: device, status: device, 'restore-points': device,
};

/** The first word of a command line that is not a flag: the verb (global flags take no value). */
export function verbOf(argv: readonly string[]): string | undefined {
  for (const arg of argv) {
    if (arg === '--') return undefined;
    if (!arg.startsWith('-')) return arg;
  }
  return undefined;
}

const commandWord = (c: CommandModule) => String(Array.isArray(c.command) ? c.command[0] : c.command).split(' ')[0];

/** The command modules a command line needs: its verb's, or all of them. */
export async function commandsFor(argv: readonly string[]): Promise<CommandModule[]> {
  const verb = verbOf(argv);
  const loader = verb === undefined ? undefined : BY_VERB[verb];
  if (loader) {
    const modules = await loader();
    // A table gone stale (a verb renamed in its module) costs start-up time, never the command.
    if (modules.some((c) => commandWord(c) === verb)) return modules;
  }
  return (await Promise.all(ALL.map((load) => load()))).flat();
}

export async function buildCli(argv: string[]) {
  const { default: yargs } = await import('yargs');
  let cli = yargs(argv)
    .scriptName('ferry')
    .option('json', { type: 'boolean', default: false, describe: 'print one JSON document (errors as JSON on stderr)' })
    .option('verbose', { type: 'boolean', default: false, describe: 'print the cause chain of errors' })
    .strict()
    .demandCommand(1, 'name a command (ferry --help lists them)')
    .recommendCommands()
    .help()
    .alias('help', 'h')
    .version(false)
    .wrap(Math.min(110, process.stdout.columns || 100))
    .fail((msg, err) => {
      throw err ?? new FerryError('ERR_USAGE', msg);
    });
  // Listed in `ferry --help` only: it is answered in runCli before yargs starts, and a verb's own
  // help (the README's generated reference) stays as it is.
  if (verbOf(argv) === undefined) cli = cli.option('version', { alias: 'V', type: 'boolean', describe: "print ferry's version" });
  for (const c of await commandsFor(argv)) cli = cli.command(c);
  return cli;
}

/**
 * Ctrl-C or SIGTERM while a command runs: one line saying what is left, then exit 130 / 143.
 * Commands that stop themselves on these signals (serve, share, run, agent) add their own
 * listener; then this one stays silent and lets them drain.
 */
function stopOnSignals(verb: string | undefined): () => void {
  const handlers = (Object.keys(STOP_SIGNALS) as StopSignal[]).map((signal) => {
    const handler = () => {
      if (process.listenerCount(signal) > 1) return;
      process.stderr.write(`ferry: ${interruptedLine(verb, signal)}\n`);
      process.exit(STOP_SIGNALS[signal]);
    };
    process.on(signal, handler);
    return () => process.off(signal, handler);
  });
  return () => handlers.forEach((off) => off());
}

/** Runs one `ferry` command line (without node and the script); sets process.exitCode. */
export async function runCli(argv: string[], seams: CliSeams = {}): Promise<void> {
  setSeams(seams);
  const flags = { json: argv.includes('--json'), verbose: argv.includes('--verbose') };
  const stopHandling = stopOnSignals(verbOf(argv));
  try {
    if (verbOf(argv) === undefined && (argv.includes('--version') || argv.includes('-V'))) {
      const version = packageVersion();
      printResult(flags, { version }, () => [version]);
      return;
    }
    await (await buildCli(argv)).parseAsync();
  } catch (err) {
    process.exitCode = printError(flags, err);
  } finally {
    stopHandling();
  }
}
