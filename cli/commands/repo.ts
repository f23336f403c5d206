// ferry repo init | rotate: create a repository with its first signed root, or rotate its keys.

import { basename, resolve } from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import { loadPublicKey, loadSigningKey } from '../../core/trust/keys.ts';
import { initRepository, rotateRoot } from '../../core/publish/repository.ts';
import { parseDurationMs } from '../../core/io/duration.ts';
import { printResult, type OutputFlags } from '../output.ts';

interface InitArgs extends OutputFlags {
  repo: string;
  app?: string;
  rootKey: string[];
  threshold: number;
  releaseKey: string[];
  releaseThreshold: number;
}

interface RotateArgs extends OutputFlags {
  repo: string;
  key: string[];
  rootKey?: string[];
  threshold?: number;
  releaseKey?: string[];
  releaseThreshold?: number;
  revoke?: string[];
  releaseSigningKey?: string[];
  expires: string;
}

function appNameFrom(repo: string): string {
  return basename(resolve(repo)).toLowerCase().replace(/[^a-z0-9._-]/g, '-').replace(/^[^a-z0-9]+/, '') || 'app';
}

const initCommand: CommandModule<object, InitArgs> = {
  command: 'init <repo>',
  describe: 'Create a repository and its signed root.json',
  builder: (y) =>
    y
      .positional('repo', { type: 'string', demandOption: true })
      .option('app', { type: 'string', describe: 'application name devices check (default: the folder name)' })
      .option('root-key', { type: 'string', array: true, demandOption: true, describe: 'root private key (.key); repeat for several' })
      .option('threshold', { type: 'number', default: 1, describe: 'root signatures required' })
      .option('release-key', { type: 'string', array: true, demandOption: true, describe: 'release public key (.pub/.pem); repeat for several' })
      .option('release-threshold', { type: 'number', default: 1, describe: 'release signatures required' }) as never,
  handler: async (args) => {
    const root = await initRepository({
      repo: args.repo,
      app: args.app ?? appNameFrom(args.repo),
      rootKeys: await Promise.all(args.rootKey.map(loadSigningKey)),
      rootThreshold: args.threshold,
      releaseKeys: await Promise.all(args.releaseKey.map(loadPublicKey)),
      releaseThreshold: args.releaseThreshold,
      now: new Date(),
    });
    printResult(args, { repo: args.repo, root }, () => [
      `created ${args.repo} for app "${root.app}" (root 1)`,
      `  root keys ${root.roles.root.keyids.length}, threshold ${root.roles.root.threshold}; release keys ${root.roles.release.keyids.length}, threshold ${root.roles.release.threshold}`,
      `  devices pin ${args.repo}/root.json (ferry init --trust)`,
    ]);
  },
};

const rotateCommand: CommandModule<object, RotateArgs> = {
  command: 'rotate <repo>',
  describe: 'Write root N+1 (new keys, thresholds, revocations), signed by old and new root thresholds',
  builder: (y) =>
    y
      .positional('repo', { type: 'string', demandOption: true })
      .option('key', { type: 'string', array: true, demandOption: true, describe: 'private root keys to sign with (old and new); repeat' })
      .option('root-key', { type: 'string', array: true, describe: 'new root key set (.pub/.pem/.key); default: unchanged' })
      .option('threshold', { type: 'number', describe: 'new root threshold' })
      .option('release-key', { type: 'string', array: true, describe: 'new release key set; default: unchanged' })
      .option('release-threshold', { type: 'number', describe: 'new release threshold' })
      .option('revoke', { type: 'string', array: true, describe: 'key id to remove from every role' })
      .option('release-signing-key', { type: 'string', array: true, describe: 'new release private key(s): re-sign manifests and channel pointers when the release keys change' })
      .option('expires', { type: 'string', default: '30d', describe: 'lifetime of re-signed channel pointers' }) as never,
  handler: async (args) => {
    const result = await rotateRoot({
      repo: args.repo,
      signers: await Promise.all(args.key.map(loadSigningKey)),
      ...(args.rootKey ? { rootKeys: await Promise.all(args.rootKey.map(loadPublicKey)) } : {}),
      ...(args.threshold !== undefined ? { rootThreshold: args.threshold } : {}),
      ...(args.releaseKey ? { releaseKeys: await Promise.all(args.releaseKey.map(loadPublicKey)) } : {}),
      ...(args.releaseThreshold !== undefined ? { releaseThreshold: args.releaseThreshold } : {}),
      ...(args.revoke ? { revoke: args.revoke } : {}),
      ...(args.releaseSigningKey ? { releaseSigners: await Promise.all(args.releaseSigningKey.map(loadSigningKey)) } : {}),
      expiresIn: parseDurationMs(args.expires) / 1000,
      now: new Date(),
    });
    printResult(args, { repo: args.repo, root: result.root, releaseKeysChanged: result.releaseKeysChanged, resigned: result.resigned }, () => [
      `rotated ${args.repo}: root ${result.previous.version} -> ${result.root.version}`,
      ...(result.resigned ? [`  release keys changed: re-signed ${result.resigned} manifests and channel pointers with the new release keys`] : []),
    ]);
  },
};

export const repoCommand: CommandModule = {
  command: 'repo <command>',
  describe: 'Create a repository or rotate its root keys',
  builder: (y: Argv) => y.command(initCommand as CommandModule).command(rotateCommand as CommandModule).demandCommand(1),
  handler: () => {},
};
