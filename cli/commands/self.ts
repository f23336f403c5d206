// ferry self launch | launcher | status: ferry's own installation as a self home (ARCHITECTURE.md
// "Self-update").
//   ferry self launch --home S [--entry dist/cli/ferry.js] -- <args…>
//       the keeper: one start of the self home's agent (plugins/self/launch.ts), exiting with
//       75 when the launcher should start it again, else with the agent's code
//   ferry self launcher --home S [--node PATH] [--entry REL] [--keeper REL] [--out FILE]
//       the launcher script that runs the keeper in a loop (plugins/self/launcher-script.ts)
//   ferry self status --home S
//       the boot record (a trial under way, refused versions) and the current version
// Each parses its flags, calls the library, and prints; `launch` logs to stderr, so the agent's
// own stdout stays its own.

import { resolve } from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import { homeLayout } from '../../core/device/layout.ts';
import { readCurrent } from '../../core/device/switch.ts';
import { writeFileAtomic } from '../../core/io/durable.ts';
import { readBootRecord } from '../../core/self/boot-record.ts';
import { launchOnce } from '../../plugins/self/launch.ts';
import { launcherScript } from '../../plugins/self/launcher-script.ts';
import { entryPath } from '../../plugins/self/start-plan.ts';
import { printResult, type OutputFlags } from '../output.ts';
import { seams } from '../seams.ts';

/** The entry of ferry's own releases (package.json "bin"). */
const FERRY_ENTRY = 'dist/cli/ferry.js';
/** Where ferry's executable is in the release of an agent that embeds ferry. */
const EMBEDDED_KEEPER = 'node_modules/ferry/dist/cli/ferry.js';

interface LaunchArgs extends OutputFlags {
  home: string;
  entry: string;
  _: (string | number)[];
  '--'?: (string | number)[];
}

interface LauncherArgs extends OutputFlags {
  home: string;
  node?: string;
  entry: string;
  keeper?: string;
  out?: string;
}

interface StatusArgs extends OutputFlags {
  home: string;
}

/** The agent's arguments: everything after the first `--` as typed (as cli/commands/run.ts reads them). */
function agentArgs(args: LaunchArgs): string[] {
  if (args['--']) return args['--'].map(String);
  const i = process.argv.indexOf('--');
  if (i >= 0) return process.argv.slice(i + 1);
  return args._.slice(2).map(String);
}

const launchCommand: CommandModule<object, LaunchArgs> = {
  command: 'launch',
  describe: "Start the self home's agent once: the confirmed version, a new one on trial, or a rollback (run by the launcher)",
  builder: (y) =>
    y
      .usage('ferry self launch --home S [--entry REL] -- <agent arguments>')
      .option('home', { type: 'string', demandOption: true, describe: "ferry's self home (releases/<v>, current)" })
      .option('entry', { type: 'string', default: FERRY_ENTRY, describe: "the agent's entry file inside a release" }) as never,
  handler: async (args) => {
    const killPoint = seams().killPoint as ((when: 'before' | 'after', phase: string) => void) | undefined;
    process.exitCode = await launchOnce({
      home: args.home,
      entry: args.entry,
      args: agentArgs(args),
      ...(seams().clock ? { clock: seams().clock! } : {}),
      ...(killPoint ? { killPoint } : {}),
      log: (m) => process.stderr.write(`ferry self: ${m}\n`),
    });
  },
};

const launcherCommand: CommandModule<object, LauncherArgs> = {
  command: 'launcher',
  describe: 'Print (or write) the launcher script that runs the keeper in a loop; it never changes',
  builder: (y) =>
    y
      .usage('ferry self launcher --home S [--node PATH] [--entry REL] [--keeper REL] [--out FILE]')
      .option('home', { type: 'string', demandOption: true, describe: "ferry's self home" })
      .option('node', { type: 'string', describe: 'the node executable the launcher runs (default: the one running this command)' })
      .option('entry', { type: 'string', default: FERRY_ENTRY, describe: "the agent's entry file inside a release" })
      .option('keeper', { type: 'string', describe: `ferry's executable inside a release (default: the entry when it is ${FERRY_ENTRY}, else ${EMBEDDED_KEEPER})` })
      .option('out', { type: 'string', describe: 'write the script to this file (mode 0755, atomically) instead of printing it' }) as never,
  handler: async (args) => {
    const home = resolve(args.home);
    const keeper = args.keeper ?? (args.entry === FERRY_ENTRY ? FERRY_ENTRY : EMBEDDED_KEEPER);
    // Both are run from inside a release: refuse what would leave it (ERR_USAGE).
    entryPath(home, '0.0.0', args.entry);
    entryPath(home, '0.0.0', keeper);
    const node = resolve(args.node ?? process.execPath);
    const script = launcherScript({ home, node, keeper, entry: args.entry });
    if (args.out === undefined) {
      if (args.json) printResult(args, { home, node, keeper, entry: args.entry, script }, () => []);
      else process.stdout.write(script);
      return;
    }
    const out = resolve(args.out);
    await writeFileAtomic(out, script, 0o755);
    printResult(args, { home, node, keeper, entry: args.entry, out }, () => [`wrote ${out}: runs ${node} ${home}/current/${keeper} self launch (entry ${args.entry})`]);
  },
};

const statusCommand: CommandModule<object, StatusArgs> = {
  command: 'status',
  describe: "The self home's current version, the trial under way and the refused versions",
  builder: (y) =>
    y
      .usage('ferry self status --home S [--json]')
      .option('home', { type: 'string', demandOption: true, describe: "ferry's self home" }) as never,
  handler: async (args) => {
    const home = resolve(args.home);
    // No lock taken: this reads two small files, so it answers while the agent works.
    const current = await readCurrent(homeLayout(home));
    const read = await readBootRecord(home);
    const damaged = read.state === 'damaged' ? { code: read.error.code, message: read.error.message } : null;
    const record = read.state === 'ok' ? read.record : null;
    printResult(args, { home, currentVersion: current, tentative: record?.tentative ?? null, refused: record?.refused ?? [], damaged }, () => {
      const lines = [`self home ${home}: current ${current ?? 'none (nothing installed)'}`];
      if (damaged) lines.push(`  boot record damaged (${damaged.code}: ${damaged.message}); the next start runs ${current ?? 'nothing'} and writes a fresh one`);
      const t = record?.tentative;
      if (t) lines.push(`  trial: ${t.version} (from ${t.previous}), ${t.triesLeft} of ${t.tries} starts left, must confirm by ${t.deadline}`);
      else if (record) lines.push('  no trial under way');
      for (const r of record?.refused ?? []) lines.push(`  refused: ${r.version} at ${r.at}: ${r.reason}`);
      return lines;
    });
  },
};

export const selfCommand: CommandModule = {
  command: 'self <command>',
  describe: "ferry's own installation: the keeper and launcher that run it, and its trial state",
  builder: (y: Argv) => y.command(launchCommand as CommandModule).command(launcherCommand as CommandModule).command(statusCommand as CommandModule).demandCommand(1),
  handler: () => {},
};
