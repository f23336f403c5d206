// ferry rollout <version> --percent N: the channel's pointer re-signed with a phased rollout of the
// version it names (core/publish/rollout.ts does it; this parses and prints). --percent 0 halts it,
// --percent 100 (with no --step) ends it: every device takes the version.

import type { CommandModule } from 'yargs';
import { loadSigningKey } from '../../core/trust/keys.ts';
import { parseStep, rolloutRelease } from '../../core/publish/rollout.ts';
import { parseDurationMs } from '../../core/io/duration.ts';
import { CHANNELS, type Channel } from '../../core/trust/metadata.ts';
import { printResult, type OutputFlags } from '../output.ts';

interface Args extends OutputFlags {
  version: string;
  repo: string;
  channel: Channel;
  percent: number;
  step: string[];
  key: string[];
  expires: string;
}

export const rolloutCommand: CommandModule<object, Args> = {
  command: 'rollout <version>',
  describe: 'Give the version a channel names to a percentage of devices only (0 halts, 100 ends the rollout); each device decides from the signed pointer',
  builder: (y) =>
    y
      .positional('version', { type: 'string', demandOption: true, describe: 'the version the channel names now' })
      .option('repo', { type: 'string', demandOption: true })
      .option('channel', { choices: CHANNELS, default: 'stable' as Channel })
      .option('percent', { type: 'number', demandOption: true, describe: 'share of devices that take it, 0-100 (two decimals at most)' })
      .option('step', { type: 'string', array: true, default: [] as string[], describe: 'a later percentage by date, <ISO time>=<percent> (e.g. 2026-12-24T08:00:00Z=50); repeat' })
      .option('key', { type: 'string', array: true, demandOption: true, describe: 'release private key (.key); repeat to meet a threshold' })
      .option('expires', { type: 'string', default: '30d', describe: 'channel pointer lifetime' }) as never,
  handler: async (args) => {
    const steps = args.step.map(parseStep);
    const keys = await Promise.all(args.key.map(loadSigningKey));
    const result = await rolloutRelease({
      repo: args.repo,
      version: args.version,
      channel: args.channel,
      plan: { percent: args.percent, steps },
      keys,
      expiresIn: parseDurationMs(args.expires) / 1000,
      now: new Date(),
    });
    printResult(args, { version: args.version, channel: args.channel, sequence: result.channel.sequence, targets: result.targets }, () => [
      `${args.version} on ${args.channel}: ${args.percent === 0 ? 'rollout halted (0%)' : result.targets.every((t) => t.rollout === null) ? 'every device (rollout ended)' : `${args.percent}% of devices`}, sequence ${result.channel.sequence}`,
      ...result.targets.map(({ target, rollout }) => rollout
        ? `  ${target}: ${rollout.percent}%${rollout.steps.map((s) => `, ${s.percent}% from ${s.at}`).join('')}; devices outside it ${rollout.previous ? `go no further than ${rollout.previous.version}` : 'stay as they are'}`
        : `  ${target}: every device`),
    ]);
  },
};
