// `ferry fleet` as a library call: read every report file under a folder (read-reports.ts),
// verify each and decide trust and replays against the remembered state (fleet-state.ts), save the
// state, and summarise the fleet (fleet-summary.ts), optionally rendered as one page
// (fleet-html.ts). The CLI (cli/commands/fleet.ts) only parses its flags, calls runFleet and prints.
//
// The state file defaults to <reports-dir>/.ferry-fleet.json: it is the memory of that folder's
// reports (first-seen keys, newest sequences), so it travels with the folder and a second folder
// gets its own. Whoever can write the folder can delete it (and so reset trust on first use): for
// a folder others write (a stick), keep the state elsewhere (`state`), or give an allow-list.

import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { FerryError, fromFsError } from '../errors.ts';
import { parseDurationMs } from '../io/duration.ts';
import { writeFileAtomic } from '../io/durable.ts';
import { readRepoRoot, repoSource } from '../publish/repository.ts';
import { readChannel } from '../trust/trusted-metadata.ts';
import { CHANNELS, type ChannelDoc } from '../trust/metadata.ts';
import { candidatesOf, readReportFiles } from './read-reports.ts';
import { foldReports, loadFleetState, saveFleetState } from './fleet-state.ts';
import { summarizeFleet, type FleetSummary } from './fleet-summary.ts';
import { renderFleetHtml } from './fleet-html.ts';

/** Where the state lives when no `state` is given: inside the folder it describes. */
export const DEFAULT_STATE_NAME = '.ferry-fleet.json';

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
  /** State entries that did not verify on load and were dropped ("<device id>: why"). */
  stateDropped: string[];
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
  const dropped: string[] = [];
  const before = await loadFleetState(statePath, app, dropped);
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
  return { summary, statePath, stateDropped: dropped, html: o.html ?? null };
}
