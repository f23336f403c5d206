// `ferry report`: writes a fresh signed report of this device (core/fleet/device-report.ts) and
// prints it; --send carries it (and the reports this device relays) along the configured routes
// (plugins/fleet/deliver-reports.ts); --to DIR writes them into DIR/reports/ the way a stick gets
// them (plugins/fleet/stick-reports.ts), for a person carrying reports out by hand. Parses, calls,
// prints: the behaviour is the library's.

import type { CommandModule } from 'yargs';
import { FerryError } from '../../core/errors.ts';
import { readDeviceConfig } from '../../core/device/config.ts';
import { homeLayout } from '../../core/device/layout.ts';
import { withDevice } from '../../plugins/open-device.ts';
import { deliverReports, describeDelivery, lanPeersOf, reportsToCarry } from '../../plugins/fleet/deliver-reports.ts';
import { writeReportsToStick } from '../../plugins/fleet/stick-reports.ts';
import { printLogLine, printResult, type OutputFlags } from '../output.ts';
import { seams } from '../seams.ts';

interface ReportArgs extends OutputFlags {
  home: string;
  send: boolean;
  to?: string;
}

export const reportCommand: CommandModule<object, ReportArgs> = {
  command: 'report',
  describe: 'Write a fresh signed report of this device; --send or --to DIR carries it off',
  builder: (y) =>
    y
      .option('home', { type: 'string', demandOption: true, describe: 'the device home folder' })
      .option('send', { type: 'boolean', default: false, describe: 'deliver it (and relayed reports) to the endpoint, sticks and LAN peers ferry.json names' })
      .option('to', { type: 'string', describe: 'also write it (and relayed reports) into DIR/reports/, as onto a stick' }) as never,
  handler: async (args) => {
    const layout = homeLayout(args.home);
    const written = await withDevice(args.home, (u) => u.writeReport(), { ...seams(), ...(args.json ? {} : { log: printLogLine }) });
    const { report, bytes } = written;
    const config = await readDeviceConfig(layout.config);
    const delivery = args.send ? await deliverReports({ layout, config, peers: await lanPeersOf(config) }) : null;
    const to = args.to === undefined ? null : await writeReportsToStick(args.to, (await reportsToCarry(layout)).map((r) => r.bytes), { app: config.app, makeFolder: true });
    printResult(args, { deviceId: report.deviceId, currentVersion: report.currentVersion, sequence: report.sequence, bytes: bytes.byteLength, path: layout.deviceReport, delivery, to }, () => [
      `report of device ${report.deviceId}: ${report.currentVersion ?? 'nothing installed'}, sequence ${report.sequence}, ${bytes.byteLength} bytes (${layout.deviceReport})`,
      ...(delivery ? (delivery.endpoint || delivery.sticks.length > 0 || delivery.peers ? describeDelivery(delivery) : ['no route: ferry.json names no report endpoint, no stick is mounted, no LAN peer found']) : []),
      ...(to ? [`${args.to}/reports: ${to.written} written, ${to.unchanged} unchanged${to.overCap ? `, ${to.overCap} over the cap` : ''}${to.refused ? `, ${to.refused} refused` : ''}`] : []),
    ]);
    // A person carrying reports by hand must hear that they are not on the stick.
    if (to?.noSpace) throw new FerryError('ERR_NO_SPACE', `${args.to} is full: the reports were not all written (nothing on it was lost)`);
    if (to?.error) throw new FerryError('ERR_IO', to.error);
  },
};
