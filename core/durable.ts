// Writes that survive a power cut. A rename is only durable once the directory holding it is
// fsynced, and file contents only once the file is: every metadata write and every switch goes
// through here (DESIGN.md: "the fsyncs that make it durable").

import { open, readdir, rename, rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { dirname, join, basename } from 'node:path';
import { fromFsError } from './errors.ts';

/**
 * Test-only: FERRY_UNSAFE_SKIP_FSYNC=1 turns every fsync ferry issues into a no-op (files,
 * directories, LevelDB writes), so the power-cut test can prove it detects lost durability.
 */
export const UNSAFE_SKIP_FSYNC = process.env.FERRY_UNSAFE_SKIP_FSYNC === '1';

export async function fsyncPath(path: string): Promise<void> {
  if (UNSAFE_SKIP_FSYNC) return;
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export const fsyncDir = fsyncPath;

/** Writes `data` beside `path`, fsyncs it, renames it over `path`, fsyncs the directory. */
export async function writeFileAtomic(path: string, data: Uint8Array | string, mode = 0o644): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    const handle = await open(tmp, 'wx', mode);
    try {
      await handle.writeFile(data);
      if (!UNSAFE_SKIP_FSYNC) await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, path);
    await fsyncDir(dirname(path));
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => {}); // best effort: the write's error is the one to report
    throw fromFsError(err, `writing ${path}`);
  }
}

/** Fsyncs `root` and every directory below it, so the entries created in them are durable. */
export async function fsyncDirsUnder(root: string): Promise<void> {
  for (const entry of await readdir(root, { withFileTypes: true })) {
    if (entry.isDirectory()) await fsyncDirsUnder(join(root, entry.name));
  }
  await fsyncDir(root);
}
