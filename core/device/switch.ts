// The atomic switch (ARCHITECTURE.md "Device state machine"): `current` is a symlink to releases/<version>, replaced
// by one rename(2) of a new link over it, and the home directory fsynced so the rename survives a
// power cut. Readers see the old or the new target, never neither. A `current` of any other shape
// (a link elsewhere, a folder, a file) is damage: inspectCurrent names it without following it,
// readCurrent refuses it, and recovery (core/update/repair-current.ts) restores the link.

import { lstat, readlink, rename, rm, symlink } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import * as semver from '../semver.ts';
import { FerryError, fromFsError } from '../errors.ts';
import { fsyncDir } from '../io/durable.ts';
import { printableJson } from '../io/printable.ts';
import type { HomeLayout } from './layout.ts';

/** What `current` is: absent, a link to releases/<version>, or damaged (`what` says how, for people). */
export type CurrentState =
  | { state: 'none' }
  | { state: 'ok'; version: string }
  | { state: 'damaged'; what: string; isLink: boolean };

/**
 * Looks at `current` with lstat and readlink only: a damaged link is never followed, wherever it
 * points (SECURITY.md row 20).
 */
export async function inspectCurrent(layout: HomeLayout): Promise<CurrentState> {
  let st;
  try {
    st = await lstat(layout.current);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { state: 'none' };
    throw fromFsError(err, `reading ${layout.current}`);
  }
  if (!st.isSymbolicLink()) {
    const kind = st.isDirectory() ? 'a folder' : st.isFile() ? 'a plain file' : 'a special file';
    return { state: 'damaged', what: `current is ${kind}, not a link to releases/<version>`, isLink: false };
  }
  const target = await readlink(layout.current).catch((err) => { throw fromFsError(err, `reading ${layout.current}`); });
  const version = versionOfTarget(target);
  if (version === null) return { state: 'damaged', what: `current links to ${printableJson(target)}, not releases/<version>`, isLink: true };
  return { state: 'ok', version };
}

/** The version a link target names when it is exactly releases/<semver> (no "..", nothing absolute). */
export function versionOfTarget(target: string): string | null {
  const m = /^releases\/([^/]+)$/.exec(target);
  return m && semver.valid(m[1]!) === m[1] ? m[1]! : null;
}

/** The version `current` points at, or null when nothing is installed; ERR_SCHEMA when it is damaged. */
export async function readCurrent(layout: HomeLayout): Promise<string | null> {
  const c = await inspectCurrent(layout);
  if (c.state === 'damaged') throw new FerryError('ERR_SCHEMA', `${layout.current} is damaged: ${c.what}`);
  return c.state === 'ok' ? c.version : null;
}

export async function switchCurrent(layout: HomeLayout, version: string): Promise<void> {
  const tmp = join(layout.home, `.current.${randomBytes(6).toString('hex')}`);
  try {
    await symlink(`releases/${version}`, tmp);
    await rename(tmp, layout.current);
    await fsyncDir(layout.home, 'switch.dir');
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => {}); // best effort: the switch's error is the one to report
    throw fromFsError(err, `switching ${layout.current} to ${version}`);
  }
}
