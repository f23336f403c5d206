// ferry release <app-dir>: publish a signed release (full artifact, deltas, manifest, channel pointer).

import { readFile } from 'node:fs/promises';
import type { CommandModule } from 'yargs';
import { loadSigningKey } from '../../core/trust/keys.ts';
import { publishRelease } from '../../core/publish/publish.ts';
import { parseDurationMs } from '../../core/io/duration.ts';
import { CHANNELS, type Channel } from '../../core/trust/metadata.ts';
import { createBsdiffPatcher } from '../../plugins/bsdiff/patcher.ts';
import { printResult, type OutputFlags } from '../output.ts';
import { defaultArch, defaultPlatform, formatBytes } from '../format.ts';

interface Args extends OutputFlags {
  appDir: string;
  repo: string;
  version: string;
  channel: Channel;
  key: string[];
  platform: string;
  arch: string;
  notes?: string;
  notesFile?: string;
  mandatory: boolean;
  security: boolean;
  deltas: number;
  expires: string;
}

export const releaseCommand: CommandModule<object, Args> = {
  command: 'release <app-dir>',
  describe: 'Publish <app-dir> as a signed release into a repository',
  builder: (y) =>
    y
      .positional('app-dir', { type: 'string', demandOption: true })
      .option('repo', { type: 'string', demandOption: true })
      .option('version', { type: 'string', demandOption: true, describe: 'semver, greater than the channel\'s latest' })
      .option('channel', { choices: CHANNELS, default: 'stable' as Channel })
      .option('key', { type: 'string', array: true, demandOption: true, describe: 'release private key (.key); repeat to meet a threshold' })
      .option('platform', { type: 'string', default: defaultPlatform() })
      .option('arch', { type: 'string', default: defaultArch() })
      .option('notes', { type: 'string', describe: 'release notes' })
      .option('notes-file', { type: 'string', describe: 'read release notes from a file' })
      .option('mandatory', { type: 'boolean', default: false })
      .option('security', { type: 'boolean', default: false, describe: 'mark as a security fix' })
      .option('deltas', { type: 'number', default: 3, describe: 'make deltas from this many previous releases' })
      .option('expires', { type: 'string', default: '30d', describe: 'channel pointer lifetime' }) as never,
  handler: async (args) => {
    const notes = args.notesFile ? await readFile(args.notesFile, 'utf8') : args.notes;
    const result = await publishRelease({
      repo: args.repo,
      appDir: args.appDir,
      version: args.version,
      channel: args.channel,
      keys: await Promise.all(args.key.map(loadSigningKey)),
      platform: args.platform,
      arch: args.arch,
      ...(notes !== undefined ? { notes } : {}),
      mandatory: args.mandatory,
      securityFix: args.security,
      deltas: args.deltas,
      expiresIn: parseDurationMs(args.expires) / 1000,
      now: new Date(),
      patcher: createBsdiffPatcher(),
    });
    const release = result.manifest.targets[result.target]!;
    printResult(args, { version: args.version, channel: args.channel, target: result.target, sequence: result.channel.sequence, files: release.files.length, full: result.full, deltas: result.deltas }, () => [
      `released ${args.version} (${result.target}) on ${args.channel}, sequence ${result.channel.sequence}`,
      `  ${release.files.length} files, full artifact ${formatBytes(result.full.size)}`,
      ...result.deltas.map((d) => `  delta from ${d.from}: ${formatBytes(d.size)}`),
    ]);
  },
};
