// ferry serve <repo>: serve a repository folder over HTTP for devices (static files with Range and
// ETag) until SIGINT or SIGTERM. Any static server works as an origin; this one needs no setup.
// With --reports DIR it also takes device reports, PUT /reports/<deviceId>.json, into the report
// inbox DIR (newest per device, verified: plugins/http/report-route.ts) for the repository's app,
// for `ferry fleet DIR` to read.

import { mkdir, realpath, stat } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve } from 'node:path';
import type { CommandModule } from 'yargs';
import { FerryError, fromFsError } from '../../core/errors.ts';
import { readRepoRoot } from '../../core/publish/repository.ts';
import { SERVE_INBOX_MAX_DEVICES, startStaticServer } from '../../plugins/http/server.ts';
import { printResult, type OutputFlags } from '../output.ts';
import { untilStopSignal } from '../wait-signal.ts';

interface Args extends OutputFlags {
  repo: string;
  port: number;
  host: string;
  reports?: string;
  'reports-max-devices': number;
}

/** Whether `inner` is `outer` or lies under it (both real paths). */
function within(outer: string, inner: string): boolean {
  const rel = relative(outer, inner);
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}

export const serveCommand: CommandModule<object, Args> = {
  command: 'serve <repo>',
  describe: 'Serve a repository folder over HTTP (Range, ETag) until SIGINT/SIGTERM',
  builder: (y) =>
    y
      .positional('repo', { type: 'string', demandOption: true, describe: 'repository folder' })
      .option('port', { type: 'number', default: 8080, describe: 'TCP port (0 picks a free one)' })
      .option('host', { type: 'string', default: '127.0.0.1', describe: 'address to listen on' })
      .option('reports', { type: 'string', describe: 'accept device reports (PUT /reports/<deviceId>.json) into this folder' })
      .option('reports-max-devices', { type: 'number', default: SERVE_INBOX_MAX_DEVICES, describe: 'with --reports: devices kept at most (the one heard from longest ago leaves first)' }) as never,
  handler: async (args) => {
    if (!Number.isInteger(args.port) || args.port < 0 || args.port > 65535) {
      throw new FerryError('ERR_USAGE', `--port ${args.port}: not a TCP port`);
    }
    // Refuse to serve a folder that is not a repository: a typo would otherwise serve 404s forever.
    const root = await stat(join(args.repo, 'root.json')).catch((err) => { throw fromFsError(err, `reading ${join(args.repo, 'root.json')} (is ${args.repo} a ferry repository?)`); });
    if (!root.isFile()) throw new FerryError('ERR_NOT_FOUND', `${args.repo} has no root.json: not a ferry repository`);
    if (!Number.isSafeInteger(args['reports-max-devices']) || args['reports-max-devices'] < 1) {
      throw new FerryError('ERR_USAGE', `--reports-max-devices ${args['reports-max-devices']}: not a positive whole number`);
    }
    let reports: { dir: string; app: string; maxDevices: number } | undefined;
    if (args.reports !== undefined) {
      // Reports are for this repository's app only (a report for another app is refused, 403).
      const { root: rootDoc } = await readRepoRoot(args.repo);
      // Inside the repository the reports would be served to anyone who GETs them (checked on the
      // names before the folder is made, and on the real paths after, for links).
      const inside = () => new FerryError('ERR_USAGE', `--reports ${args.reports} is inside the repository ${args.repo}: choose a folder outside it`);
      if (within(resolve(args.repo), resolve(args.reports))) throw inside();
      await mkdir(args.reports, { recursive: true }).catch((err) => { throw fromFsError(err, `making ${args.reports}`); });
      if (within(await realpath(args.repo), await realpath(args.reports))) throw inside();
      reports = { dir: args.reports, app: rootDoc.app, maxDevices: args['reports-max-devices'] };
    }
    const server = await startStaticServer({ root: args.repo, host: args.host, port: args.port, ...(reports ? { reports } : {}) }).catch((err) => {
      throw new FerryError('ERR_IO', `cannot listen on ${args.host}:${args.port}: ${(err as Error).message}`, { cause: err });
    });
    const reportsUrl = reports ? `${server.url}reports/` : null;
    printResult(args, { url: server.url, port: server.port, host: args.host, repo: args.repo, ...(reports ? { reports: reports.dir, reportsUrl } : {}) }, () => [
      `serving ${args.repo} at ${server.url} (Ctrl-C stops)`,
      ...(reports ? [`taking ${reports.app} device reports at ${reportsUrl} into ${reports.dir}`] : []),
    ]);
    const signal = await untilStopSignal();
    await server.close();
    if (!args.json) process.stdout.write(`stopped (${signal})\n`);
    process.exitCode = 0;
  },
};
