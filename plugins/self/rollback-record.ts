// The history record of a self-update rolled back by the keeper (plugins/self/launch.ts,
// ARCHITECTURE.md "Self-update"): the agent staged the new version in its self home (the
// journal is `staged`), the version failed its trial, so that staged attempt is closed in the
// self home's history as rolled back, naming why. `current` never moved, so nothing else changes.
//
// The boot record already refuses the version (written before this runs), so a record that
// cannot be written here loses a history line, never the rollback: the keeper logs it and goes
// on. The home may be busy for a moment (a `ferry run`, a `ferry status`, an agent still
// stopping holds its lock), hence a few tries.

import { FerryError, isFerryError } from '../../core/errors.ts';
import type { UpdateRecord } from '../../core/spec.ts';
import { Updater } from '../../core/update/updater.ts';
import { createBsdiffPatcher } from '../bsdiff/patcher.ts';
import { rollbackMessage } from './start-plan.ts';

export interface RollbackRecordOptions {
  clock?: () => Date;
  log?: (message: string) => void;
  /** Tries while the home is busy (ERR_BUSY), `pauseMs` apart; default 10 × 500 ms. */
  tries?: number;
  pauseMs?: number;
}

/**
 * Closes the staged attempt at `rollback.from` as rolled back (ERR_UNHEALTHY). Returns the
 * record, or null when there was none to close (no staged attempt at that version) or the home
 * stayed busy or failed to open (logged).
 */
export async function recordRollback(home: string, rollback: { from: string; to: string; reason: string }, options: RollbackRecordOptions = {}): Promise<UpdateRecord | null> {
  const log = options.log ?? (() => {});
  const tries = options.tries ?? 10;
  const pauseMs = options.pauseMs ?? 500;
  const message = rollbackMessage(rollback);
  for (let attempt = 1; ; attempt++) {
    try {
      // No sources and no health check: this only closes a journaled attempt. The patcher is
      // loaded lazily, so it costs nothing here.
      const updater = await Updater.open({ home, sources: [], patcher: createBsdiffPatcher(), health: null, ...(options.clock ? { clock: options.clock } : {}), log });
      try {
        return await updater.settleStaged(rollback.from, { outcome: 'rolled-back', errorCode: 'ERR_UNHEALTHY', message });
      } finally {
        await updater.close();
      }
    } catch (err) {
      if (isFerryError(err, 'ERR_BUSY') && attempt < tries) {
        await new Promise((resolve) => setTimeout(resolve, pauseMs));
        continue;
      }
      const code = err instanceof FerryError ? err.code : 'ERR_INTERNAL';
      log(`could not record the rollback of ${rollback.from} in the history of ${home} (${code}: ${(err as Error).message}); the boot record still refuses it`);
      return null;
    }
  }
}
