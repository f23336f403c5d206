// ferry serve <repo>: serve a repository folder over HTTP for devices (static files with Range and
// ETag) until SIGINT or SIGTERM. Any static server works as an origin; this one needs no setup.

import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { CommandModule } from 'yargs';
import { FerryError, fromFsError } from '../../core/errors.ts';
import { startStaticServer } from '../../plugins/http/server.ts';
import { printResult, type OutputFlags } from '../output.ts';
import { untilStopSignal } from '../wait-signal.ts';

interface Args extends OutputFlags {
  repo: string;
  port: number;
  host: string;
}

export const serveCommand: CommandModule<object, Args> = {
  command: 'serve <repo>',
  describe: 'Serve a repository folder over HTTP (Range, ETag) until SIGINT/SIGTERM',
  builder: (y) =>
    y
      .positional('repo', { type: 'string', demandOption: true, describe: 'repository folder' })
      .option('port', { type: 'number', default: 8080, describe: 'TCP port (0 picks a free one)' })
      .option('host', { type: 'string', default: '127.0.0.1', describe: 'address to listen on' }) as never,
  handler: async (args) => {
    if (!Number.isInteger(args.port) || args.port < 0 || args.port > 65535) {
      throw new FerryError('ERR_USAGE', `--port ${args.port}: not a TCP port`);
    }
    // Refuse to serve a folder that is not a repository: a typo would otherwise serve 404s forever.
    const root = await stat(join(args.repo, 'root.json')).catch((err) => { throw fromFsError(err, `reading ${join(args.repo, 'root.json')} (is ${args.repo} a ferry repository?)`); });
    if (!root.isFile()) throw new FerryError('ERR_NOT_FOUND', `${args.repo} has no root.json: not a ferry repository`);
    const server = await startStaticServer({ root: args.repo, host: args.host, port: args.port }).catch((err) => {
      throw new FerryError('ERR_IO', `cannot listen on ${args.host}:${args.port}: ${(err as Error).message}`, { cause: err });
    });
    printResult(args, { url: server.url, port: server.port, host: args.host, repo: args.repo }, () => [`serving ${args.repo} at ${server.url} (Ctrl-C stops)`]);
    const signal = await untilStopSignal();
    await server.close();
    if (!args.json) process.stdout.write(`stopped (${signal})\n`);
    process.exitCode = 0;
  },
};
