// ferry container up|down|status --home <home>: the containers of a device whose app ships as an
// image (ferry.json `container`). up: recovery, then exactly the container of `current` runs (what
// the agent does when it starts; after a kill or power cut one of the two images runs again);
// down: every container of the app stopped and deleted; status: what runs. The library
// (plugins/container/device-containers.ts) does the work; this parses, calls and prints.

import type { CommandModule } from 'yargs';
import { containersDown, containersStatus, containersUp } from '../../plugins/container/device-containers.ts';
import { printResult, type OutputFlags } from '../output.ts';
import { table } from '../table.ts';

interface Args extends OutputFlags {
  action: 'up' | 'down' | 'status';
  home: string;
}

export const containerCommand: CommandModule<object, Args> = {
  command: 'container <action>',
  describe: 'Run, stop or show the container of an app shipped as an image (up: the container of current, and no other)',
  builder: (y) =>
    y
      .positional('action', { choices: ['up', 'down', 'status'] as const, demandOption: true, describe: 'up | down | status' })
      .option('home', { type: 'string', demandOption: true, describe: 'the device home folder' }) as never,
  handler: async (args) => {
    if (args.action === 'up') {
      const r = await containersUp(args.home);
      printResult(args, r, () => [
        r.version === null ? 'nothing installed: no container to run' : `${r.running} ${r.started ? 'started' : 'already running'}`,
        ...(r.stopped.length > 0 ? [`stopped: ${r.stopped.join(', ')}`] : []),
      ]);
    } else if (args.action === 'down') {
      const stopped = await containersDown(args.home);
      printResult(args, { stopped }, () => [stopped.length === 0 ? 'no container was there' : `stopped: ${stopped.join(', ')}`]);
    } else {
      const r = await containersStatus(args.home);
      printResult(args, r, () => [
        `engine ${r.engine}; current ${r.current ?? 'none'}`,
        ...(r.containers.length === 0 ? ['no containers'] : table(['container', 'version', 'status', 'current'], r.containers.map((c) => [c.id, c.version, c.status, c.current ? 'yes' : '']))),
      ]);
    }
  },
};
