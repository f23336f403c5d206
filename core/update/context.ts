// What every step of an update shares: the device home, its config, store and id, the injected parts
// (sources, patcher, health check, clock, log, progress display), and the one way to move the
// journal on. A phase is journaled (synced) BEFORE the side effect it names, so recovery knows what
// may have half-happened (ARCHITECTURE.md; SECURITY.md rows 18-19).

import { FerryError } from '../errors.ts';
import type { HomeLayout } from '../device/layout.ts';
import type { DeviceConfig } from '../device/config.ts';
import type { DeviceStore } from '../device/store.ts';
import { IDLE, canTransition, type ActiveJournal, type ActivePhase, type IdleJournal, type Journal, type Phase } from '../device/journal.ts';
import { targetKey } from '../trust/metadata.ts';
import type { ProgressEvent, ProgressSink } from '../ports/progress.ts';
import type { Source } from '../ports/source.ts';
import type { Patcher } from '../ports/patcher.ts';
import type { HealthCheck } from '../ports/health.ts';

export interface UpdaterDeps {
  home: string;
  sources: Source[];
  patcher: Patcher;
  /** null: a switched release counts as healthy once its tree verifies. */
  health: HealthCheck | null;
  clock?: () => Date;
  log?: (message: string) => void;
  /** Progress of downloads and staging, for a display; absent: none is reported. */
  progress?: ProgressSink;
  /**
   * A test seam: called just before and just after each phase is journaled. The crash tests kill
   * the process there; production passes nothing.
   */
  killPoint?: (when: 'before' | 'after', phase: Phase) => void;
}

export const realClock = (): Date => new Date();

export class UpdateContext {
  constructor(
    readonly layout: HomeLayout,
    readonly config: DeviceConfig,
    readonly store: DeviceStore,
    readonly deps: UpdaterDeps,
    /** This device's id (core/fleet/device-identity.ts): what its rollout buckets are computed from. */
    /** null when the device key could not be read or made (a full disk): updates go on without it. */
    readonly deviceId: string | null,
  ) {}

  get now(): Date {
    return (this.deps.clock ?? realClock)();
  }

  log(message: string): void {
    this.deps.log?.(message);
  }

  /** Reports progress to the display, if any; a display that throws never fails an update. */
  progress(e: ProgressEvent): void {
    try {
      this.deps.progress?.(e);
    } catch {
      // display only
    }
  }

  /** "<platform>-<arch>": this device's key in channel pointers and manifests. */
  get target(): string {
    return targetKey(this.config.platform, this.config.arch);
  }

  /**
   * Journals `next` in place of `from`. With `countFailure`, the same synced write also counts a
   * failed attempt at `next.to` (SECURITY.md row 18: a cut between two writes would count it twice).
   */
  async transition<J extends ActiveJournal>(from: Journal, next: J, countFailure = false): Promise<J> {
    if (!canTransition(from.phase, next.phase)) throw new FerryError('ERR_INTERNAL', `internal: no transition ${from.phase} -> ${next.phase}`);
    this.deps.killPoint?.('before', next.phase);
    if (countFailure) await this.store.journalFailure(next, next.to);
    else await this.store.setJournal(next);
    this.deps.killPoint?.('after', next.phase);
    return next;
  }

  /** Moves `journal` on to `phase`, changing the fields in `patch`. */
  advance<J extends ActiveJournal>(journal: J, phase: ActivePhase, patch: Partial<J> = {}, countFailure = false): Promise<J> {
    return this.transition(journal, { ...journal, ...patch, phase }, countFailure);
  }

  /** Journals idle at the end of an attempt that reached its verdict (a phase the crash tests kill at). */
  async settle(): Promise<IdleJournal> {
    this.deps.killPoint?.('before', 'idle');
    await this.store.setJournal(IDLE);
    this.deps.killPoint?.('after', 'idle');
    return IDLE;
  }

  /** Journals idle after a failure, or once recovery has put things right (no kill points). */
  async clear(): Promise<void> {
    await this.store.setJournal(IDLE);
  }
}
