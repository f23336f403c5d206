// ferry bundle: an offline .ferry bundle of one release, for a USB stick or a file transfer.

import type { CommandModule } from 'yargs';
import { writeBundle } from '../../core/publish/bundle.ts';
import { CHANNELS, type Channel } from '../../core/trust/metadata.ts';
import { printResult, type OutputFlags } from '../output.ts';
import { defaultArch, defaultPlatform, formatBytes } from '../format.ts';

interface Args extends OutputFlags {
  repo: string;
  version: string;
  from?: string;
  full: boolean;
  channel?: Channel;
  platform: string;
  arch: string;
  out: string;
}

export const bundleCommand: CommandModule<object, Args> = {
  command: 'bundle',
  describe: 'Write an offline bundle (.ferry) of one release',
  builder: (y) =>
    y
      .option('repo', { type: 'string', demandOption: true })
      .option('version', { type: 'string', demandOption: true })
      .option('from', { type: 'string', describe: 'carry the delta from this version instead of the full artifact' })
      .option('full', { type: 'boolean', default: false, describe: 'with --from, carry the full artifact too' })
      .option('channel', { choices: CHANNELS, describe: 'channel whose pointer names the version (default: the first that does)' })
      .option('platform', { type: 'string', default: defaultPlatform() })
      .option('arch', { type: 'string', default: defaultArch() })
      .option('out', { type: 'string', demandOption: true, describe: 'bundle file to write (.ferry)' }) as never,
  handler: async (args) => {
    const result = await writeBundle({
      repo: args.repo,
      version: args.version,
      ...(args.from ? { from: args.from } : {}),
      withFull: args.full,
      ...(args.channel ? { channel: args.channel } : {}),
      platform: args.platform,
      arch: args.arch,
      out: args.out,
    });
    printResult(args, result, () => [`wrote ${result.out} (${formatBytes(result.size)}): ${args.version} on ${result.channel}, ${result.files.length} files`]);
  },
};
