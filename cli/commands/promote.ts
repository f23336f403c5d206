// ferry promote <version> --from beta --to stable: the target channel's pointer re-signed to name
// a version the source channel serves (core/publish/promote.ts does it; this parses and prints).

import type { CommandModule } from 'yargs';
import { loadSigningKey } from '../../core/trust/keys.ts';
import { promoteRelease } from '../../core/publish/promote.ts';
import { parseDurationMs } from '../../core/io/duration.ts';
import { CHANNELS, type Channel } from '../../core/trust/metadata.ts';
import { printResult, type OutputFlags } from '../output.ts';

interface Args extends OutputFlags {
  version: string;
  repo: string;
  from: Channel;
  to: Channel;
  key: string[];
  expires: string;
}

export const promoteCommand: CommandModule<object, Args> = {
  command: 'promote <version>',
  describe: 'Put a version a channel serves (e.g. beta) on another channel (e.g. stable): same artifacts, a re-signed pointer',
  builder: (y) =>
    y
      .positional('version', { type: 'string', demandOption: true, describe: 'the version --from serves now' })
      .option('repo', { type: 'string', demandOption: true })
      .option('from', { choices: CHANNELS, demandOption: true, describe: 'the channel it was tested on' })
      .option('to', { choices: CHANNELS, demandOption: true, describe: 'the channel to put it on (the version must be newer than what it names)' })
      .option('key', { type: 'string', array: true, demandOption: true, describe: 'release private key (.key); repeat to meet a threshold' })
      .option('expires', { type: 'string', default: '30d', describe: 'channel pointer lifetime' }) as never,
  handler: async (args) => {
    const keys = await Promise.all(args.key.map(loadSigningKey));
    const result = await promoteRelease({
      repo: args.repo,
      version: args.version,
      from: args.from,
      to: args.to,
      keys,
      expiresIn: parseDurationMs(args.expires) / 1000,
      now: new Date(),
    });
    printResult(args, { version: args.version, from: args.from, to: args.to, sequence: result.channel.sequence, targets: result.targets }, () => [
      `promoted ${args.version} from ${args.from} to ${args.to}, sequence ${result.channel.sequence}`,
      ...result.targets.map((t) => `  ${t.target}: ${t.previous ?? 'nothing'} -> ${args.version}`),
    ]);
  },
};
