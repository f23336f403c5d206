// The device: ferry's UpdateManager and RollbackManager over one home folder. This class only
// opens the home (lock, store, recovery) and hands each call to the step that does it:
//   resolve.ts       what to update to, and how (trust state, offers, policy, plan)
//   download.ts      fetching a plan's artifacts; the bare `download`
//   attempt.ts       apply: stage (with the delta-to-full fallback), gate, switch, confirm; stage: up to the switch
//   settle-staged.ts closing a staged attempt switched outside the Updater (ferry's self-update)
//   rollback.ts      a manual rollback to a restore point
//   recover.ts       on open: finish or undo what a kill or power cut interrupted
//   housekeeping.ts  restore points and cleanup
//   history.ts       history records;  status.ts  `ferry status`
//   context.ts       what every step shares, and the journal transitions (core/device/journal.ts)
// The state machine, its journal and recovery are described in ARCHITECTURE.md and SECURITY.md
// rows 18-22.

import * as semver from '../semver.ts';
import { FerryError } from '../errors.ts';
import { homeLayout } from '../device/layout.ts';
import { readDeviceConfig } from '../device/config.ts';
import { acquireLock } from '../device/lock.ts';
import { DeviceStore } from '../device/store.ts';
import { readCurrent } from '../device/switch.ts';
import type { ApplyResult, DownloadOptions, RestorePoint, RollbackManager, UpdateInfo, UpdateManager, UpdatePackage, UpdateRecord } from '../spec.ts';
import { UpdateContext, realClock, type UpdaterDeps } from './context.ts';
import { packageOf, resolve, updateInfo } from './resolve.ts';
import { prefetch } from './download.ts';
import { applyUpdate, stageUpdate, type ApplyOptions, type StageResult } from './attempt.ts';
import { settleStaged, type StagedVerdict } from './settle-staged.ts';
import { rollback } from './rollback.ts';
import { recover } from './recover.ts';
import { cleanup, restorePointOfCurrent, type CleanupResult } from './housekeeping.ts';
import { deviceStatus, type DeviceStatus } from './status.ts';
import { writeDeviceReport, type WrittenReport } from '../fleet/device-report.ts';
import { ensureDeviceIdentity } from '../fleet/device-identity.ts';

export { MAX_ATTEMPTS } from './attempt.ts';
export type { ApplyOptions, StageResult } from './attempt.ts';
export type { StagedVerdict } from './settle-staged.ts';
export type { UpdaterDeps } from './context.ts';
export type { DeviceStatus } from './status.ts';

export class Updater implements UpdateManager, RollbackManager {
  private constructor(
    private readonly ctx: UpdateContext,
    private readonly unlock: () => Promise<void>,
  ) {}

  /**
   * Takes the home's lock (ERR_BUSY if held), makes the device key pair if the home predates them,
   * opens the store, and recovers any interrupted update.
   */
  static async open(deps: UpdaterDeps): Promise<Updater> {
    const layout = homeLayout(deps.home);
    const config = await readDeviceConfig(layout.config);
    const unlock = await acquireLock(layout.lock);
    try {
      // Under the lock, so two processes never both make a key for a home from before device keys.
      // A key that cannot be made (a full disk, a read-only device/ folder) must not stop updates
      // or recovery: the device goes on without an id (outside every rollout, no reports).
      const deviceId = await ensureDeviceIdentity(layout).then((identity) => identity.id, (err: unknown) => {
        deps.log?.(`no device key, so no device id for now (${(err as Error).message})`);
        return null;
      });
      const store = await DeviceStore.open(layout.state, (deps.clock ?? realClock)());
      const ctx = new UpdateContext(layout, config, store, deps, deviceId);
      try {
        await recover(ctx);
      } catch (err) {
        await store.close();
        throw err;
      }
      return new Updater(ctx, unlock);
    } catch (err) {
      await unlock();
      throw err;
    }
  }

  async close(): Promise<void> {
    await this.ctx.deps.patcher.close?.();
    await this.ctx.store.close();
    await this.unlock();
  }

  async checkUpdate(): Promise<UpdateInfo> {
    return updateInfo(await resolve(this.ctx), this.ctx.config.policy.channel);
  }

  /** The spec's download; `options.version` picks one of the offered versions (DownloadOptions). */
  async download(options: DownloadOptions = {}): Promise<UpdatePackage | null> {
    const r = await resolve(this.ctx, options.version);
    if (r.kind === 'up-to-date') return null;
    await prefetch(this.ctx, r);
    return packageOf(r, this.ctx.config);
  }

  async apply(options: ApplyOptions = {}): Promise<ApplyResult> {
    return this.reporting(() => applyUpdate(this.ctx, options), (r) => r.status === 'committed' || r.status === 'rolled-back');
  }

  /**
   * apply() up to the switch and no further: resolve, stage (or take the release staged
   * earlier), the policy decision and the re-verify; no restore point, `current` untouched, the
   * journal left `staged`. For a switch made by another protocol (ferry's self-update), which
   * reports how it ended with settleStaged.
   */
  async stage(options: ApplyOptions = {}): Promise<StageResult> {
    return this.reporting(() => stageUpdate(this.ctx, options), () => false);
  }

  /**
   * Closes the staged attempt at `version` with the verdict of a switch made outside the Updater
   * (committed requires `current` to name `version`). Returns the closed record, or null when no
   * attempt at `version` is staged (so repeating it is harmless).
   */
  async settleStaged(version: string, verdict: StagedVerdict): Promise<UpdateRecord | null> {
    return this.reporting(() => settleStaged(this.ctx, version, verdict), (r) => r !== null);
  }

  async approve(version: string): Promise<void> {
    if (semver.valid(version) !== version) throw new FerryError('ERR_USAGE', `"${version}" is not a version`);
    await this.ctx.store.approve(version);
  }

  async createRestorePoint(reason: RestorePoint['reason'] = 'manual'): Promise<RestorePoint> {
    return restorePointOfCurrent(this.ctx, reason);
  }

  async listRestorePoints(): Promise<RestorePoint[]> {
    return this.ctx.store.restorePoints();
  }

  /** Back to the newest restore point of another version than current (the spec's rollback()). */
  async rollback(id?: string): Promise<UpdateRecord> {
    return this.reporting(() => rollback(this.ctx, id), () => true);
  }

  /**
   * Keeps the newest `keepCount` restore points and removes release folders no one needs: never
   * `current`, the newest other version (the one a rollback goes to), a restore point's version,
   * the version an update in progress started from or is staging, or a release a live ferry
   * process runs from (core/device/running-pins.ts). Returns the restore points removed (the
   * spec's signature); cleanupReport says which releases were kept and why.
   */
  async cleanup(keepCount: number): Promise<RestorePoint[]> {
    return (await cleanup(this.ctx, keepCount)).removed;
  }

  /** cleanup(), returning what it removed and which releases it kept and why. */
  async cleanupReport(keepCount: number): Promise<CleanupResult> {
    return cleanup(this.ctx, keepCount);
  }

  async currentVersion(): Promise<string | null> {
    return readCurrent(this.ctx.layout);
  }

  async history(): Promise<UpdateRecord[]> {
    return this.ctx.store.history();
  }

  async status(): Promise<DeviceStatus> {
    return deviceStatus(this.ctx);
  }

  /** Writes a fresh signed report, <home>/device/report.json (core/fleet/device-report.ts). */
  async writeReport(): Promise<WrittenReport> {
    return writeDeviceReport(this.ctx);
  }

  /**
   * Runs an attempt, then writes the device's report when it ended one (a throw always did: failed
   * or refused; `ended` says which results did). The report never fails or changes the attempt:
   * its own failure (a full disk) is only logged (ARCHITECTURE.md "Fleet reports").
   */
  private async reporting<T>(attempt: () => Promise<T>, ended: (result: T) => boolean): Promise<T> {
    let result: T;
    try {
      result = await attempt();
    } catch (err) {
      await this.reportQuietly();
      throw err;
    }
    if (ended(result)) await this.reportQuietly();
    return result;
  }

  private async reportQuietly(): Promise<void> {
    try {
      await writeDeviceReport(this.ctx);
    } catch (err) {
      const e = err as { code?: string; message?: string };
      this.ctx.log(`device report not written (${e.code ?? 'error'}: ${e.message ?? String(err)}); the update is unaffected`);
    }
  }
}
