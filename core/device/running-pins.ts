// Running-release pins: a long-running ferry process whose own code lies inside a release folder
// of a ferry home (ferry installed as a ferry home: `<X>/releases/<v>/` holds a complete ferry,
// `current -> releases/<v>`) writes `<X>/run/pins/<pid>.json`, and cleanup never removes a release
// a live pid is pinned to. Without it, `restore-points cleanup` could delete the folder a running
// agent executes from, and the next delta would start the bspatch worker from a deleted path.
//
// Here: where a code path runs from (a pure decision), the pin file format, writing, reading and
// removing pins. plugins/running-release-pin.ts is the process side (import.meta.url, exit hook).
// A pin whose pid is gone (the process was killed) is stale: ignored, and removed when read.

import { existsSync, lstatSync, unlinkSync } from 'node:fs';
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { isAbsolute, join, sep } from 'node:path';
import * as semver from '../semver.ts';
import { writeFileAtomic } from '../io/durable.ts';
import { pidAlive } from '../io/pid-alive.ts';

export interface RunningPin {
  pid: number;
  /** The release folder name under `<home>/releases/`. */
  version: string;
  /** What runs: 'agent', 'run', 'share'. */
  command: string;
  startedAt: string;
}

export interface RunningRelease {
  home: string;
  version: string;
}

/**
 * The release a file of code lies in: the innermost `<home>/releases/<version>/…` of the absolute,
 * symlink-free `codePath` whose `<home>` `isHome` accepts and whose `<version>` is a version
 * folder name (as installedVersions reads releases/). null: not inside any release.
 */
export function runningReleaseOf(codePath: string, isHome: (dir: string) => boolean): RunningRelease | null {
  if (!isAbsolute(codePath)) return null;
  const parts = codePath.split(sep);
  // parts[i] = 'releases', parts[i + 1] = version, and at least one more part: the file itself.
  for (let i = parts.length - 3; i >= 1; i--) {
    const version = parts[i + 1]!;
    if (parts[i] !== 'releases' || semver.valid(version) !== version) continue;
    const home = parts.slice(0, i).join(sep) || sep;
    if (isHome(home)) return { home, version };
  }
  return null;
}

/** A folder that looks like a ferry home: it has ferry.json, or both releases/ and current. */
export function looksLikeFerryHome(dir: string): boolean {
  if (existsSync(join(dir, 'ferry.json'))) return true;
  try {
    lstatSync(join(dir, 'current'));
  } catch {
    return false;
  }
  return existsSync(join(dir, 'releases'));
}

export function pinsDir(home: string): string {
  return join(home, 'run', 'pins');
}

function pinPath(home: string, pid: number): string {
  return join(pinsDir(home), `${pid}.json`);
}

/** Writes the pin atomically (a reader never sees half of one); returns its path. */
export async function writePin(home: string, pin: RunningPin): Promise<string> {
  await mkdir(pinsDir(home), { recursive: true });
  const path = pinPath(home, pin.pid);
  await writeFileAtomic(path, JSON.stringify(pin) + '\n');
  return path;
}

/** Removes this pid's pin; synchronous, so it can run in a process 'exit' handler. */
export function removePinSync(home: string, pid: number): void {
  try {
    unlinkSync(pinPath(home, pid));
  } catch {
    // gone already: nothing to do
  }
}

/** A pin file's content, or null when it is not one (a pid that does not match its name included). */
export function parsePin(name: string, text: string): RunningPin | null {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return null;
  }
  const p = v as Partial<RunningPin> | null;
  if (!p || typeof p !== 'object') return null;
  if (!Number.isSafeInteger(p.pid) || (p.pid as number) <= 0 || name !== `${p.pid}.json`) return null;
  if (typeof p.version !== 'string' || typeof p.command !== 'string' || typeof p.startedAt !== 'string') return null;
  return { pid: p.pid as number, version: p.version, command: p.command, startedAt: p.startedAt };
}

/**
 * The pins of live processes in `home`. Stale pins (pid gone) are removed; files that are not pins
 * (temporary files of an atomic write under way, anything else) are left alone and ignored.
 */
export async function livePins(home: string, alive: (pid: number) => boolean = pidAlive): Promise<RunningPin[]> {
  const dir = pinsDir(home);
  const names = await readdir(dir).catch(() => [] as string[]);
  const live: RunningPin[] = [];
  for (const name of names.filter((n) => n.endsWith('.json')).sort()) {
    const text = await readFile(join(dir, name), 'utf8').catch(() => null);
    const pin = text === null ? null : parsePin(name, text);
    if (!pin) continue;
    if (alive(pin.pid)) live.push(pin);
    else await rm(join(dir, name), { force: true });
  }
  return live;
}
