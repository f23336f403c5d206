// The atomic switch (ARCHITECTURE.md "Device state machine"): `current` is a symlink to releases/<version>, replaced
// by one rename(2) of a new link over it, and the home directory fsynced so the rename survives a
// power cut. Readers see the old or the new target, never neither.

import { readlink, rename, rm, symlink } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import semver from 'semver';
import { FerryError, fromFsError } from '../errors.ts';
import { fsyncDir } from '../io/durable.ts';
import type { HomeLayout } from './layout.ts';

/** The version `current` points at, or null when nothing is installed. */
export async function readCurrent(layout: HomeLayout): Promise<string | null> {
  let target: string;
  try {
    target = await readlink(layout.current);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw fromFsError(err, `reading ${layout.current}`);
  }
  const m = /^releases\/([^/]+)$/.exec(target);
  if (!m || semver.valid(m[1]!) !== m[1]) throw new FerryError('ERR_SCHEMA', `${layout.current} points at ${target}, not releases/<version>`);
  return m[1]!;
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
