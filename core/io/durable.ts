// Writes that survive a power cut. A rename is only durable once the directory holding it is
// fsynced, and file contents only once the file is: every metadata write and every switch goes
// through here (SECURITY.md row 18).

import { closeSync, constants, fsync, openSync } from 'node:fs';
import { open, readdir, rename, rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { dirname, join, basename } from 'node:path';
import { fromFsError } from '../errors.ts';

/**
 * Every fsync ferry issues has a site name, so the power-cut tests can take away exactly one
 * (skipFsyncAt; the test entry sets it from FERRY_UNSAFE_SKIP_FSYNC=<site>[,<site>]) and show the
 * check notices. Callers that pass no name fall under 'unnamed' (fsyncPath, fsyncDir,
 * fsyncDirsUnder) or 'atomic-write' (writeFileAtomic).
 */
export const FSYNC_SITES = [
  'switch.dir', // the home folder after `current` is renamed (switch.ts)
  'stage.tree', // every folder of a tree a delta built, before it is renamed into releases/ (stage.ts; a full artifact's under 'extract.dirs')
  'stage.releases-dir', // releases/ after that rename (stage.ts)
  'extract.file', // each file a full artifact's extraction writes (extract.ts)
  'delta.file', // each file a delta writes, fsynced together once all are written (apply-delta.ts)
  'extract.dirs', // the folders of an extracted tree (extract.ts)
  'fetch.cache-dir', // cache/ after that rename (fetch-artifact.ts)
  'store.sync', // every LevelDB write: journal, history, restore points, failures, holds (store.ts)
  'marks.write', // trust/marks.json, file and folder (trust-marks.ts)
  'atomic-write', // writeFileAtomic called without a site: config, trust root, manifest copies, publisher files
  'unnamed', // fsyncPath/fsyncDir/fsyncDirsUnder called without a site (bundle.ts, publish.ts)
] as const;

export type FsyncSite = (typeof FSYNC_SITES)[number];

/**
 * A test seam, off in production: the sites whose fsyncs are no-ops. Only the test entry
 * (test/helpers/ferry-with-seams.mjs, from its FERRY_UNSAFE_SKIP_FSYNC) and tests in-process call
 * skipFsyncAt; the `ferry` executable never does, and nothing here reads the environment, so a
 * stray variable on a device cannot turn durability off (SECURITY.md row 18).
 */
let skipped: ReadonlySet<FsyncSite> = new Set();

/**
 * The sites a skip list names: "1" is every site, otherwise a comma-separated list of
 * FSYNC_SITES; empty is none. A name not in FSYNC_SITES throws, so a typo cannot pass for a test
 * of a missing fsync.
 */
export function parseFsyncSkip(value: string): FsyncSite[] {
  if (!value) return [];
  if (value === '1') return [...FSYNC_SITES];
  const names = value.split(',').map((s) => s.trim());
  for (const name of names) {
    if (!(FSYNC_SITES as readonly string[]).includes(name)) {
      throw new Error(`names "${name}", which is not an fsync site (1, or some of: ${FSYNC_SITES.join(', ')})`);
    }
  }
  return names as FsyncSite[];
}

/** Test-only: makes the fsyncs of exactly these sites no-ops from now on (none: all fsyncs again). */
export function skipFsyncAt(sites: Iterable<FsyncSite>): void {
  const set = new Set(sites);
  for (const site of set) {
    if (!(FSYNC_SITES as readonly string[]).includes(site)) throw new Error(`"${String(site)}" is not an fsync site`);
  }
  skipped = set;
}

/** True when the test seam turned this site's fsyncs off; always false in production. */
export function skipsFsync(site: FsyncSite): boolean {
  return skipped.has(site);
}

export async function fsyncPath(path: string, site: FsyncSite = 'unnamed'): Promise<void> {
  if (skipped.has(site)) return;
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export const fsyncDir = fsyncPath;

/** Writes `data` beside `path`, fsyncs it, renames it over `path`, fsyncs the directory. */
export async function writeFileAtomic(path: string, data: Uint8Array | string, mode = 0o644, site: FsyncSite = 'atomic-write'): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    const handle = await open(tmp, 'wx', mode);
    try {
      await handle.writeFile(data);
      if (!skipped.has(site)) await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, path);
    await fsyncDir(dirname(path), site);
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => {}); // best effort: the write's error is the one to report
    throw fromFsError(err, `writing ${path}`);
  }
}

/** fsync(2) of an open descriptor on the thread pool (the caller opens and closes it). */
export function fsyncFd(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fsync(fd, (err) => (err ? reject(err) : resolve())));
}

/** Directories fsynced at once by fsyncDirs. */
const DIRS_PARALLEL = 16;

/**
 * Fsyncs every directory in `dirs`, DIRS_PARALLEL at a time (one batch, not one wait per folder),
 * so the entries created in them are durable. Each is opened read-only and never through a link.
 */
export async function fsyncDirs(dirs: readonly string[], site: FsyncSite = 'unnamed'): Promise<void> {
  if (skipped.has(site)) return;
  let next = 0;
  const worker = async () => {
    while (next < dirs.length) {
      const dir = dirs[next++]!;
      const fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY);
      try {
        await fsyncFd(fd);
      } finally {
        closeSync(fd);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(DIRS_PARALLEL, dirs.length) }, worker));
}

/** Fsyncs `root` and every directory below it, so the entries created in them are durable. */
export async function fsyncDirsUnder(root: string, site: FsyncSite = 'unnamed'): Promise<void> {
  if (skipped.has(site)) return;
  const dirs: string[] = [];
  const walk = async (dir: string) => {
    dirs.push(dir);
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      if (entry.isDirectory()) await walk(join(dir, entry.name));
    }
  };
  await walk(root);
  await fsyncDirs(dirs, site);
}
