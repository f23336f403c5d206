// Writes that survive a power cut. A rename is only durable once the directory holding it is
// fsynced, and file contents only once the file is: every metadata write and every switch goes
// through here (DESIGN.md: "the fsyncs that make it durable").

import { open, readdir, rename, rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { dirname, join, basename } from 'node:path';
import { fromFsError } from '../errors.ts';

/**
 * Every fsync ferry issues has a site name, so the power-cut tests can take away exactly one
 * (FERRY_UNSAFE_SKIP_FSYNC=<site>[,<site>]) and show the check notices. Callers that pass no name
 * fall under 'unnamed' (fsyncPath, fsyncDir, fsyncDirsUnder) or 'atomic-write' (writeFileAtomic).
 */
export const FSYNC_SITES = [
  'switch.dir', // the home folder after `current` is renamed (switch.ts)
  'stage.tree', // every folder of a built release, before it is renamed into releases/ (stage.ts)
  'stage.releases-dir', // releases/ after that rename (stage.ts)
  'extract.file', // each file a full artifact's extraction writes (extract.ts)
  'extract.dirs', // the folders of an extracted tree (extract.ts)
  'fetch.part', // a downloaded artifact before it is renamed into the cache (fetch-artifact.ts)
  'fetch.cache-dir', // cache/ after that rename (fetch-artifact.ts)
  'store.sync', // every LevelDB write: journal, history, restore points, failures, holds (store.ts)
  'marks.write', // trust/marks.json, file and folder (trust-marks.ts)
  'atomic-write', // writeFileAtomic called without a site: config, trust root, manifest copies, publisher files
  'unnamed', // fsyncPath/fsyncDir/fsyncDirsUnder called without a site (delta.ts, bundle.ts, publish.ts)
] as const;

export type FsyncSite = (typeof FSYNC_SITES)[number];

/**
 * Test-only: FERRY_UNSAFE_SKIP_FSYNC=1 turns every fsync ferry issues into a no-op (files,
 * directories, LevelDB writes); a comma-separated list of FSYNC_SITES turns off only those. Unset or
 * empty: nothing is skipped. A name not in FSYNC_SITES throws at load, so a typo cannot pass for
 * a test of a missing fsync.
 */
function skippedSites(value: string | undefined): ReadonlySet<FsyncSite> {
  if (!value) return new Set();
  if (value === '1') return new Set(FSYNC_SITES);
  const names = value.split(',').map((s) => s.trim());
  for (const name of names) {
    if (!(FSYNC_SITES as readonly string[]).includes(name)) {
      throw new Error(`FERRY_UNSAFE_SKIP_FSYNC names "${name}", which is not an fsync site (1, or some of: ${FSYNC_SITES.join(', ')})`);
    }
  }
  return new Set(names as FsyncSite[]);
}

const SKIPPED = skippedSites(process.env.FERRY_UNSAFE_SKIP_FSYNC);


/** True when the test-only switch turned this site's fsyncs off; always false in production. */
export function skipsFsync(site: FsyncSite): boolean {
  return SKIPPED.has(site);
}

export async function fsyncPath(path: string, site: FsyncSite = 'unnamed'): Promise<void> {
  if (SKIPPED.has(site)) return;
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
      if (!SKIPPED.has(site)) await handle.sync();
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

/** Fsyncs `root` and every directory below it, so the entries created in them are durable. */
export async function fsyncDirsUnder(root: string, site: FsyncSite = 'unnamed'): Promise<void> {
  for (const entry of await readdir(root, { withFileTypes: true })) {
    if (entry.isDirectory()) await fsyncDirsUnder(join(root, entry.name), site);
  }
  await fsyncDir(root, site);
}
