// ferry as a publisher and a device run it: the built CLI (`node dist/cli/ferry.js`, made by
// `npm run bench`'s build) in a child under GNU time, so every figure is the whole command's wall
// time and peak RSS, node's start-up included. The benches use only the CLI's documented commands
// and the fields of their --json output named below, never ferry's internals, so they measure
// whatever engine, patch format and repository layout the CLI has.

import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { measureCommand, type MeasuredOutput } from './measure.ts';

export const FERRY_JS = fileURLToPath(new URL('../../dist/cli/ferry.js', import.meta.url));

/** The fields of `ferry release --json` the benches read. */
export interface ReleaseJson {
  full?: { path?: string; size?: number };
  deltas?: { from: string; size: number }[];
}

/** The fields of `ferry update --json` the benches read. */
export interface UpdateJson {
  status: string;
  record?: { to?: string; kind?: string; fellBackToFull?: boolean; bytesMoved?: number };
}

export interface Keys {
  rootKey: string;
  releaseKey: string;
  releasePub: string;
}

/** Runs `ferry args…` under GNU time (scratch file `timeOut`); throws on a non-zero exit. */
export function ferry(args: string[], timeOut: string, timeoutMs: number): Promise<MeasuredOutput> {
  return measureCommand(process.execPath, [FERRY_JS, ...args], timeOut, timeoutMs);
}

function parseJson<T>(what: string, stdout: string): T {
  try {
    return JSON.parse(stdout) as T;
  } catch (cause) {
    throw new Error(`${what} printed no JSON: ${JSON.stringify(stdout.slice(-500))}`, { cause });
  }
}

/** A root and a release key pair in `dir`. */
export async function makeKeys(dir: string, timeOut: string): Promise<Keys> {
  await ferry(['keygen', '--out', join(dir, 'root')], timeOut, 60_000);
  await ferry(['keygen', '--out', join(dir, 'release')], timeOut, 60_000);
  return { rootKey: join(dir, 'root.key'), releaseKey: join(dir, 'release.key'), releasePub: join(dir, 'release.pub') };
}

export async function initRepo(repo: string, keys: Keys, timeOut: string): Promise<void> {
  await ferry(['repo', 'init', repo, '--app', 'bench-app', '--root-key', keys.rootKey, '--release-key', keys.releasePub], timeOut, 60_000);
}

/** `ferry release` of `appDir` as `version`, with deltas from at most `deltas` earlier releases. */
export async function release(repo: string, appDir: string, version: string, keys: Keys, deltas: number, timeOut: string, timeoutMs: number): Promise<MeasuredOutput & { json: ReleaseJson }> {
  const m = await ferry(['release', appDir, '--repo', repo, '--version', version, '--key', keys.releaseKey, '--deltas', String(deltas), '--json'], timeOut, timeoutMs);
  return { ...m, json: parseJson<ReleaseJson>(`ferry release ${version}`, m.stdout) };
}

/** A device home that trusts `repo` and takes updates from it as a folder source (no health check). */
export async function initHome(home: string, repo: string, timeOut: string): Promise<void> {
  await ferry(['init', home, '--trust', join(repo, 'root.json'), '--source', repo], timeOut, 60_000);
}

/** `ferry update --home` (check, download, apply), as a device runs it. */
export async function update(home: string, timeOut: string, timeoutMs: number): Promise<MeasuredOutput & { json: UpdateJson }> {
  const m = await ferry(['update', '--home', home, '--json'], timeOut, timeoutMs);
  return { ...m, json: parseJson<UpdateJson>('ferry update', m.stdout) };
}

/** Throws unless `u` committed `version` by the plan `kind` (no silent fallback from delta to full). */
export function expectUpdate(u: { json: UpdateJson }, version: string, kind: 'full' | 'delta', what: string): void {
  const r = u.json.record;
  if (u.json.status !== 'committed' || r?.to !== version) throw new Error(`${what}: ${JSON.stringify(u.json)}`);
  if (r.kind !== kind || r.fellBackToFull === true) throw new Error(`${what} was built as ${r.kind}${r.fellBackToFull ? ' (delta fell back to full)' : ''}, want ${kind}`);
}

/** The tree a device home runs: its `current` link. */
export const currentTree = (home: string) => join(home, 'current');
