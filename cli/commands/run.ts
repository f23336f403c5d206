// `ferry run`: supervise the app for zero-downtime updates (ARCHITECTURE.md "ferry run").
//   ferry run --home H --listen 8080 [--listen 127.0.0.1:8443] [--health /healthz | --notify]
//             [--drain-timeout 30s] [--ready-timeout 60s] [--settle 2s] [--trial 3s] -- node server.js
//   ferry run --home H --container [--listen …] [--notify | --health /healthz] [options]
// --container: each generation is a container of the image `current` points at (runc, with the
// held sockets preserved into it: plugins/container/generation.ts); --listen defaults to ferry.json
// container.listen, and the image's own command runs (none is given after --).
// Under systemd socket activation (LISTEN_FDS, LISTEN_PID = this pid) it serves on the sockets
// systemd passed instead of binding: --listen may then be left out, or be `systemd` or `fd:N`
// (plugins/run/listen-fds.ts resolveListen says which combinations are refused).
// Runs until SIGTERM or SIGINT (drains the app, exits 0). SIGHUP hands over to whatever `current`
// points at now. `ferry update` on the same home asks this process to hand over through
// <home>/run/control.sock and commits or rolls back on its answer.

import type { CommandModule } from 'yargs';
import { FerryError } from '../../core/errors.ts';
import { parseDurationMs } from '../../core/io/duration.ts';
import { resolveListen, takeSystemdListenFds } from '../../plugins/run/listen-fds.ts';
import { chooseReadiness } from '../../plugins/run/supervision.ts';
import { grantsOf, readDeviceConfig } from '../../core/device/config.ts';
import { homeLayout } from '../../core/device/layout.ts';
import { ContainerGenerations } from '../../plugins/container/generation.ts';
import { containersDown } from '../../plugins/container/device-containers.ts';
import { Supervisor } from '../../plugins/run/supervisor.ts';
import { pinRunningRelease } from '../../plugins/running-release-pin.ts';
import type { OutputFlags } from '../output.ts';

interface RunArgs extends OutputFlags {
  home: string;
  listen?: string[];
  health?: string;
  notify: boolean;
  drainTimeout: string;
  readyTimeout: string;
  settle: string;
  trial: string;
  container: boolean;
  _: (string | number)[];
  '--'?: (string | number)[];
}

/** The app command: everything after the first `--` as typed (yargs would turn "007" into 7). */
function appCommand(args: RunArgs): string[] {
  if (args['--']) return args['--'].map(String);
  const i = process.argv.indexOf('--');
  if (i >= 0) return process.argv.slice(i + 1);
  return args._.slice(1).map(String);
}

export const runCommand: CommandModule<object, RunArgs> = {
  command: 'run',
  describe: 'Run the app on sockets ferry holds, and hand over to new versions without dropping a request',
  builder: (y) =>
    y
      .usage('ferry run --home H [--listen PORT | --listen fd:N | --listen systemd] [options] -- <app command>')
      .option('home', { type: 'string', demandOption: true, describe: 'the device home folder' })
      .option('listen', { type: 'string', array: true, describe: 'PORT, HOST:PORT or [IPV6]:PORT to bind, or fd:N / systemd for inherited sockets (the default when systemd passed some); repeat for more (the app gets fds 3, 4, …)' })
      .option('health', { type: 'string', describe: 'URL or path that must answer 2xx; probed on a private socket of each new generation (LISTEN_FDNAMES ferry-health)' })
      .option('notify', { type: 'boolean', default: false, describe: 'the app reports readiness with READY=1 on FERRY_NOTIFY_FD (ferry/app does it)' })
      .option('drain-timeout', { type: 'string', default: '30s', describe: 'how long an old generation may finish its requests before SIGKILL' })
      .option('ready-timeout', { type: 'string', default: '60s', describe: 'how long a new generation has to become ready' })
      .option('settle', { type: 'string', default: '2s', describe: 'without --health or --notify: ready once up this long' })
      .option('container', { type: 'boolean', default: false, describe: 'run each version as a container of its image (runc; the release is an OCI image layout) with the held sockets passed in; --listen defaults to ferry.json container.listen' })
      .option('trial', { type: 'string', default: '3s', describe: 'once ready, how long a new version serves beside the old one before the handover counts; exiting (or failing --health twice) in that time rolls it back (0s: none)' }) as never,
  handler: async (args) => {
    const command = appCommand(args);
    if (args.container && command.length > 0) throw new FerryError('ERR_USAGE', 'ferry run --container runs the image\'s own command: give none after --');
    if (!args.container && command.length === 0) throw new FerryError('ERR_USAGE', 'name the app command after --, e.g. ferry run --home H --listen 8080 -- node server.js');
    // Taken (and the LISTEN_* variables removed) before anything is started, so no child reads them.
    const passed = takeSystemdListenFds(process.env, process.pid);
    // Long-running: the release ferry runs from must outlive cleanup (plugins/running-release-pin.ts).
    await pinRunningRelease('run', (m) => process.stderr.write(`ferry run: ${m}\n`));
    const log = (m: string) => process.stderr.write(`ferry run: ${m}\n`);
    let runner: ContainerGenerations | undefined;
    let listenSpecs = args.listen;
    if (args.container) {
      const config = await readDeviceConfig(homeLayout(args.home).config);
      const c = config.container;
      if (c && c.engine === 'podman') throw new FerryError('ERR_CONTAINER_ENGINE', 'ferry run --container runs images with runc; ferry.json container.engine is podman');
      if (c) {
        // `ferry apply`, the agent or `ferry container up` may run this app's container themselves
        // (holding container.listen): stopped first (under the home's lock, after the updater's
        // recovery), so this supervisor takes over the sockets and the app.
        const stopped = await containersDown(args.home, { log });
        if (stopped.length > 0) log(`stopped ${stopped.join(', ')} (run outside ferry run): this supervisor runs the app from now on`);
      }
      runner = new ContainerGenerations({ home: args.home, container: c ?? { name: `ferry-${config.app}`, env: {}, mounts: [] }, grants: grantsOf(config), log });
      // Sockets systemd passed win over ferry.json's addresses, as they win over binding without --container.
      if (!listenSpecs?.length && c?.listen.length && passed.length === 0) listenSpecs = c.listen;
    }
    const listen = resolveListen(listenSpecs, passed).map((l) => (l.kind === 'fd' ? { fd: l.fd, name: l.name } : l.address));
    const supervisor = new Supervisor({
      home: args.home,
      listen,
      command,
      ...(runner ? { runner } : {}),
      readiness: chooseReadiness({ health: args.health, notify: args.notify, settleMs: parseDurationMs(args.settle), readyTimeoutMs: parseDurationMs(args.readyTimeout) }),
      drainTimeoutMs: parseDurationMs(args.drainTimeout),
      trialMs: parseDurationMs(args.trial),
      log,
    });
    await supervisor.start();
    if (args.json) process.stdout.write(JSON.stringify(supervisor.status()) + '\n');
    else process.stdout.write(`ferry run: supervising ${supervisor.status().active?.version}${runner ? ' (container)' : ''} on ${supervisor.addresses.join(', ')} (pid ${process.pid})\n`);
    await new Promise<void>((resolve) => {
      let signals = 0;
      const stop = (signal: NodeJS.Signals) => {
        if (++signals > 1) {
          process.stderr.write(`ferry run: ${signal} again: killing the app now\n`);
          supervisor.killAll();
          process.exit(1);
        }
        process.stderr.write(`ferry run: ${signal}: draining the app\n`);
        supervisor.stop().then(resolve, (err: unknown) => {
          process.stderr.write(`ferry run: stopping: ${(err as Error).message}\n`);
          resolve();
        });
      };
      process.on('SIGTERM', stop);
      process.on('SIGINT', stop);
      process.on('SIGHUP', () => {
        supervisor.handover(undefined).then((r) => process.stderr.write(`ferry run: SIGHUP handover: ${r.healthy ? 'healthy' : 'unhealthy'}: ${r.detail}\n`));
      });
    });
    process.stderr.write('ferry run: stopped\n');
  },
};
