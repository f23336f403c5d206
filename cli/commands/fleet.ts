// ferry fleet <reports-dir>: parses the flags, calls the library's runFleet (core/fleet/run-fleet.ts:
// read, verify, decide trust and replays, remember, summarise, render) and prints the fleet:
// devices per version, rollout progress per channel (with --repo), failures by error code, devices
// not heard from, and the refused reports by code; --json prints the summary.
//
// Refused reports do not fail the command (exit 0): a fleet folder gathered from sticks and peers
// always may hold junk, and the point is to see the fleet anyway; they are counted and listed.

import type { CommandModule } from 'yargs';
import { DEFAULT_STATE_NAME, runFleet, type FleetRun } from '../../core/fleet/run-fleet.ts';
import { table } from '../table.ts';
import { printResult, type OutputFlags } from '../output.ts';

const REFUSED_PRINTED = 20;

export function fleetLines(run: FleetRun): string[] {
  const s = run.summary;
  const lines = [
    `fleet of ${s.app}: ${s.devices} device(s); ${s.reports.files} report file(s): ${s.reports.accepted} accepted, ${s.reports.alreadySeen} already seen, ${s.reports.refused} refused`,
    '',
    'devices per version:',
    ...table(['target', 'version', 'devices'], s.versions.map((r) => [r.target, r.version ?? 'none', String(r.devices)])),
  ];
  if (s.rollouts.length === 0) lines.push('', 'rollouts: none known (--repo DIR reads the channel pointers)');
  else {
    lines.push('', 'rollouts:', ...table(['channel', 'target', 'version', 'percent now', 'running', 'in rollout', 'eligible'], s.rollouts.map((r) => [
      r.channel, r.target, r.version, r.phased ? `${r.percentNow}%${r.halted ? ' (halted)' : ''}` : '100% (no rollout)', String(r.running), String(r.inRollout), String(r.eligible),
    ])));
  }
  lines.push('', 'failures (last attempt):');
  if (s.failures.length === 0) lines.push('  none');
  else lines.push(...table(['error code', 'devices', 'versions tried', 'sources'], s.failures.map((r) => [r.code, String(r.devices), r.versions.join(', '), r.sources.join(', ')])));
  lines.push('', `not heard from since ${s.silent.since}:`);
  if (s.silent.devices.length === 0) lines.push('  none');
  else lines.push(...table(['device', 'last report', 'version', 'channel', 'target'], s.silent.devices.map((r) => [r.deviceId, r.lastReport, r.currentVersion ?? 'none', r.channel, r.target])));
  const codes = Object.entries(s.refusals);
  lines.push('', `refused reports: ${codes.length === 0 ? 'none' : codes.map(([c, n]) => `${c} ${n}`).join(', ')}`);
  for (const r of s.refused.slice(0, REFUSED_PRINTED)) lines.push(`  ${r.file}: ${r.code}: ${r.message}`);
  if (s.reports.refused > REFUSED_PRINTED) lines.push(`  … and ${s.reports.refused - REFUSED_PRINTED} more (--json lists ${s.refused.length})`);
  lines.push('', `state: ${run.statePath}`);
  if (run.stateDropped.length > 0) lines.push(`  ${run.stateDropped.length} entr${run.stateDropped.length === 1 ? 'y' : 'ies'} of it did not verify and were dropped:`, ...run.stateDropped.slice(0, REFUSED_PRINTED).map((d) => `    ${d}`));
  if (run.html) lines.push(`html: ${run.html}`);
  return lines;
}

interface Args extends OutputFlags {
  'reports-dir': string;
  repo?: string;
  app?: string;
  devices?: string;
  state?: string;
  'silent-since': string;
  html?: string;
}

export const fleetCommand: CommandModule<object, Args> = {
  command: 'fleet <reports-dir>',
  describe: 'Verify the device reports under a folder and print the fleet: versions, rollouts, failures, silent devices',
  builder: (y) =>
    y
      .positional('reports-dir', { type: 'string', demandOption: true, describe: 'a folder of report files (*.json, any depth): an inbox, a stick\'s reports/' })
      .option('repo', { type: 'string', describe: 'the app\'s repository: its app name and channel pointers (rollout progress)' })
      .option('app', { type: 'string', describe: 'the app name, without --repo' })
      .option('devices', { type: 'string', describe: 'allow-list: a file of device public keys, 64 hex digits a line (default: trust on first use)' })
      .option('state', { type: 'string', describe: `what fleet remembers (first-seen keys, newest reports) [default: <reports-dir>/${DEFAULT_STATE_NAME}]` })
      .option('silent-since', { type: 'string', default: '7d', describe: 'list devices not heard from since then: a duration (7d) or an ISO date' })
      .option('html', { type: 'string', describe: 'also write the fleet as one self-contained HTML page to this file' }) as never,
  handler: async (args) => {
    const run = await runFleet({ dir: args['reports-dir'], repo: args.repo, app: args.app, devices: args.devices, state: args.state, silentSince: args['silent-since'], html: args.html });
    printResult(args, { ...run.summary, state: run.statePath, stateDropped: run.stateDropped, html: run.html }, () => fleetLines(run));
  },
};
