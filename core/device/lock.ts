// One ferry process per device home (SECURITY.md row 22). The lock file holds the owner's pid; a
// lock whose process is gone (killed, power cut) is stale and taken over.

import { open, readFile, rm } from 'node:fs/promises';
import { FerryError, fromFsError } from '../errors.ts';
import { pidAlive } from '../io/pid-alive.ts';

/** This boot's id: a lock written before a reboot is stale whatever its pid now names. */
async function bootId(): Promise<string> {
  return (await readFile('/proc/sys/kernel/random/boot_id', 'utf8').catch(() => 'unknown')).trim();
}

/** Locks this process holds: a second holder in the same process is busy, not stale. */
const held = new Set<string>();

/** Takes the lock or throws ERR_BUSY; returns the function that releases it. */
export async function acquireLock(path: string): Promise<() => Promise<void>> {
  if (held.has(path)) throw new FerryError('ERR_BUSY', `this process already works on ${path}`);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const handle = await open(path, 'wx', 0o644);
      await handle.writeFile(`${process.pid} ${await bootId()}\n`);
      await handle.sync();
      await handle.close();
      held.add(path);
      return async () => {
        held.delete(path);
        const [owner] = (await readFile(path, 'utf8').catch(() => '')).trim().split(' ');
        if (Number(owner) === process.pid) await rm(path, { force: true });
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw fromFsError(err, `taking the lock ${path}`);
      const [pidText, boot] = (await readFile(path, 'utf8').catch(() => '')).trim().split(' ');
      const owner = Number(pidText);
      // Stale: written before this boot (a power cut), or by a process that is gone. Our own pid
      // in a lock we do not hold is a leftover of an earlier process that had it.
      const sameBoot = boot === undefined || boot === (await bootId());
      if (sameBoot && Number.isInteger(owner) && owner > 0 && owner !== process.pid && pidAlive(owner)) {
        throw new FerryError('ERR_BUSY', `another ferry process (pid ${owner}) is working on this home`);
      }
      await rm(path, { force: true }); // stale: its owner is gone
    }
  }
  throw new FerryError('ERR_BUSY', `could not take the lock ${path}`);
}
