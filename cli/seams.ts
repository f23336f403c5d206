// Test seams the `ferry` command hands to the library: a clock and kill points. The executable
// (cli/ferry.ts) sets none, so the production path never reads them from its environment; the
// crash and agent tests run the same CLI through test/helpers/ferry-with-seams.mjs, which builds
// them from its own environment and calls runCli with them.

import type { UpdaterDeps } from '../core/update/updater.ts';

export interface CliSeams {
  /** The clock the device and the agent read (default: the real clock). */
  clock?: () => Date;
  /** Called before and after each journaled phase of an update. */
  killPoint?: UpdaterDeps['killPoint'];
}

let current: CliSeams = {};

/** Set once per process, by runCli, before any command runs. */
export function setSeams(seams: CliSeams): void {
  current = seams;
}

export function seams(): CliSeams {
  return current;
}
