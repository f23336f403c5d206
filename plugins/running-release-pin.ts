// The process side of running-release pins (core/device/running-pins.ts): a long-running ferry
// process (`ferry agent` and the Agent library, `ferry run`, `ferry share`) calls
// pinRunningRelease() as it starts. It finds where ferry's own code runs from — the realpath of
// this built file — and, when that lies in `<home>/releases/<version>/` of a ferry home, pins
// that release for as long as the process lives, so cleanup cannot delete the code under it.
//
// It lives in plugins/, not cli/, because the Agent library runs without the CLI; and it reads
// its own import.meta.url because all of ferry's code (dist/core, dist/plugins, dist/cli, the
// bspatch worker) is one tree: the release this file is in is the release everything runs from.
// Only ferry's own code is pinned, never the app a `ferry run` supervises (that one runs from
// `current` and is switched on purpose).

import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { looksLikeFerryHome, removePinSync, runningReleaseOf, writePin, type RunningRelease } from '../core/device/running-pins.ts';

let pinned: Promise<RunningRelease | null> | undefined;

/**
 * Pins the release this process's ferry code runs from, once per process (later calls return
 * the first result); the pin is removed when the process exits. null: ferry does not run from a
 * release folder (a checkout, node_modules of an app that is no ferry home). A pin that cannot be
 * written is reported to `log` and does not stop the command.
 */
export function pinRunningRelease(command: string, log: (message: string) => void = () => {}): Promise<RunningRelease | null> {
  pinned ??= pin(command, log);
  return pinned;
}

async function pin(command: string, log: (message: string) => void): Promise<RunningRelease | null> {
  let release: RunningRelease | null;
  try {
    // realpath: the release folder itself, never `current` or another link to it.
    release = runningReleaseOf(realpathSync(fileURLToPath(import.meta.url)), looksLikeFerryHome);
  } catch {
    return null;
  }
  if (!release) return null;
  const { home } = release;
  const pid = process.pid;
  try {
    await writePin(home, { pid, version: release.version, command, startedAt: new Date().toISOString() });
  } catch (err) {
    log(`cannot pin release ${release.version} of ${home} (cleanup may remove it while this process runs): ${(err as Error).message}`);
    return null;
  }
  process.once('exit', () => removePinSync(home, pid));
  return release;
}
