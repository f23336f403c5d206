// ferry verify <repo-dir | bundle> --trust <root.json>: check everything against a pinned root.

import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CommandModule } from 'yargs';
import { openBundle } from '../../core/publish/bundle.ts';
import { createDirSource } from '../../core/ports/dir-source.ts';
import { fromFsError } from '../../core/errors.ts';
import { verifyRepository } from '../../core/trust/verify-repo.ts';
import { printResult, type OutputFlags } from '../output.ts';
import { EXIT, EXIT_CODE } from '../exit-codes.ts';
import { formatBytes } from '../format.ts';

interface Args extends OutputFlags {
  path: string;
  trust: string;
}

export const verifyCommand: CommandModule<object, Args> = {
  command: 'verify <path>',
  describe: 'Verify a repository folder or a .ferry bundle against a trusted root.json',
  builder: (y) =>
    y
      .positional('path', { type: 'string', demandOption: true, describe: 'repository folder or bundle file' })
      .option('trust', { type: 'string', demandOption: true, describe: 'the root.json devices pin' }) as never,
  handler: async (args) => {
    const trusted = await readFile(args.trust).catch((err) => { throw fromFsError(err, `reading ${args.trust}`); });
    const isDir = (await stat(args.path).catch((err) => { throw fromFsError(err, `reading ${args.path}`); })).isDirectory();
    const scratch = await mkdtemp(join(tmpdir(), 'ferry-verify-'));
    try {
      const source = isDir ? createDirSource(args.path) : await openBundle(args.path, join(scratch, 'bundle'));
      const report = await verifyRepository(source, trusted, { now: new Date(), scratch, partial: !isDir });
      printResult(args, report, () => [
        `${report.ok ? 'OK' : 'FAILED'}: ${isDir ? 'repository' : 'bundle'} ${args.path} for app "${report.app}" (root ${report.trustedRootVersion}${report.rootVersion !== report.trustedRootVersion ? ` -> ${report.rootVersion}` : ''})`,
        ...report.channels.map((c) => `  channel ${c.channel}: sequence ${c.sequence}, expires ${c.expires}${c.expired ? ' (EXPIRED)' : ''}, ${Object.entries(c.targets).map(([k, v]) => `${k} ${v}`).join(', ')}`),
        ...report.releases.map((r) => `  release ${r.version} [${r.targets.join(', ')}]: ${r.artifacts.map((a) => `${a.path.split('/').pop()} ${formatBytes(a.size)} ${a.status}`).join('; ')}`),
        ...report.problems.map((p) => `  problem ${p.code}: ${p.message}`),
      ]);
      if (!report.ok) process.exitCode = EXIT_CODE[report.problems[0]!.code] ?? EXIT.refused;
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
  },
};
