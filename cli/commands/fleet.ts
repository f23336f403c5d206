// ferry fleet <reports-dir>: reads every report file under a folder (read-reports.ts), verifies
// each and decides trust and replays against the remembered state (fleet-state.ts), then prints
// the fleet (fleet-summary.ts): devices per version, rollout progress per channel (with --repo),
// failures by error code, devices not heard from, and the refused reports by code. --json prints
// the summary; --html FILE writes it as one self-contained page (fleet-html.ts).
//
// Refused reports do not fail the command (exit 0): a fleet folder gathered from sticks and peers
// always may hold junk, and the point is to see the fleet anyway; they are counted and listed.
// The state file defaults to <reports-dir>/.ferry-fleet.json: it is the memory of that folder's
// reports (first-seen keys, newest sequences), so it travels with the folder and a second folder
// gets its own. Whoever can write the folder can delete it (and so reset trust on first use):
// for a folder others write (a stick), keep the state elsewhere with --state, or use --devices.

import type { CommandModule } from 'yargs';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { FerryError, fromFsError } from '../../core/errors.ts';
import { parseDurationMs } from '../../core/io/duration.ts';
import { writeFileAtomic } from '../../core/io/durable.ts';
import { readRepoRoot, repoSource } from '../../core/publish/repository.ts';
import { readChannel } from '../../core/trust/trusted-metadata.ts';
import { CHANNELS, type ChannelDoc } from '../../core/trust/metadata.ts';
import { candidatesOf, readReportFiles } from '../../core/fleet/read-reports.ts';
import { foldReports, loadFleetState, saveFleetState } from '../../core/fleet/fleet-state.ts';
import { summarizeFleet, type FleetSummary } from '../../core/fleet/fleet-summary.ts';
import { renderFleetHtml } from '../../core/fleet/fleet-html.ts';
import { table } from '../table.ts';
import { printResult, type OutputFlags } from '../output.ts';

export const DEFAULT_STATE_NAME = '.ferry-fleet.json';
const REFUSED_PRINTED = 20;

/** The allow-list file: one ed25519 public key per line, 64 hex digits (# starts a comment). */
export function parseDeviceList(text: string, what: string): Set<string> {
  const keys = new Set<string>();
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/#.*/, '').trim();
    if (line === '') return;
    if (!/^[0-9a-fA-F]{64}$/.test(line)) throw new FerryError('ERR_USAGE', `${what} line ${i + 1}: not a 64-hex-digit device public key`);
    keys.add(line.toLowerCase());
  });
  return keys;
}

/** "7d" (a duration before now) or an ISO date/time. */
export function parseSilentSince(text: string, now: Date): Date {
  if (/^\d+(ms|s|m|h|d)$/.test(text.trim())) return new Date(now.getTime() - parseDurationMs(text));
  const t = /^\d{4}-\d{2}-\d{2}/.test(text) ? Date.parse(text) : NaN;
  if (Number.isNaN(t)) throw new FerryError('ERR_USAGE', `--silent-since "${text}" is neither a duration like 7d nor an ISO date like 2026-01-31`);
  return new Date(t);
}

export interface FleetOptions {
  dir: string;
  repo?: string;
  app?: string;
  devices?: string;
  state?: string;
  silentSince?: string;
  html?: string;
  now?: Date;
}

export interface FleetRun {
  summary: FleetSummary;
  statePath: string;
  html: string | null;
}

async function repoChannels(repo: string): Promise<{ app: string; channels: ChannelDoc[] }> {
  const { root } = await readRepoRoot(repo);
  const source = repoSource(repo);
  const channels: ChannelDoc[] = [];
  // Verified with the repository's own root, as promote does; an expired pointer still says
  // what the devices were last offered, so expiry is not checked here.
  for (const c of CHANNELS) {
    const found = await readChannel(source, root, c, null);
    if (found) channels.push(found.doc);
  }
  return { app: root.app, channels };
}

/** The whole command without printing: read, verify, decide, remember, summarise (and render). */
export async function runFleet(o: FleetOptions): Promise<FleetRun> {
  const now = o.now ?? new Date();
  if (!o.repo && !o.app) throw new FerryError('ERR_USAGE', 'name the app: --repo DIR (its root.json app) or --app NAME');
  const fromRepo = o.repo ? await repoChannels(o.repo) : null;
  if (fromRepo && o.app && o.app !== fromRepo.app) throw new FerryError('ERR_USAGE', `--app ${o.app} but ${o.repo} is the repository of ${fromRepo.app}`);
  const app = fromRepo?.app ?? o.app!;
  const silentSince = parseSilentSince(o.silentSince ?? '7d', now);
  let allowed: Set<string> | null = null;
  if (o.devices) {
    const text = await readFile(o.devices, 'utf8').catch((err: unknown) => { throw fromFsError(err, `reading ${o.devices}`); });
    allowed = parseDeviceList(text, o.devices);
  }
  const statePath = resolve(o.state ?? join(o.dir, DEFAULT_STATE_NAME));
  const before = await loadFleetState(statePath, app);
  const files = await readReportFiles(o.dir, { skip: [statePath, join(o.dir, DEFAULT_STATE_NAME)] });
  const { state, outcomes } = foldReports(before, candidatesOf(files, before.seen), { app, allowed }, now);
  await saveFleetState(statePath, state);
  const summary = summarizeFleet({
    app,
    now,
    // With an allow-list, a device remembered from before whose key is no longer on it is not shown.
    reports: Object.values(state.devices).filter((d) => !allowed || allowed.has(d.publicKey)).map((d) => d.report),
    channels: fromRepo?.channels ?? [],
    silentSince,
    outcomes,
  });
  if (o.html) await writeFileAtomic(o.html, renderFleetHtml(summary));
  return { summary, statePath, html: o.html ?? null };
}

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
    printResult(args, { ...run.summary, state: run.statePath, html: run.html }, () => fleetLines(run));
  },
};
