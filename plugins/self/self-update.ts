// The self-update library (ARCHITECTURE.md "Self-update"): what a running agent — ferry's
// own `ferry agent`, or any Node agent that embeds ferry — calls to update ITSELF through its self
// home S (an ordinary ferry home whose releases are the agent's own trees):
//   prepare()  check S's sources, download, verify, stage (Updater.stage); never switches
//   switch()   begin the trial: the boot record names the new version, durably
//   restart()  exit with RESTART_EXIT_CODE; the launcher starts the keeper again, which runs the
//              trial version (core/self/boot-decision.ts decideStart spends a try first)
//   confirm()  called by the NEW version once it works: `current` moves to it, the record is
//              cleared, and S's history gets the committed record
// A new version that never confirms (crash, exit, hang) is rolled back by the keeper, from the
// confirmed code, without this library's help: nothing here runs in a version that is broken.
//
// Why `current` only moves at confirm: `current` always names a confirmed version, so the keeper
// (which runs from `current`) is always code that has proved itself, and a power cut anywhere
// leaves either the old confirmed version or the new one, never an unproven one as the default.

import { FerryError, isFerryError } from '../../core/errors.ts';
import { homeLayout } from '../../core/device/layout.ts';
import { readCurrent, switchCurrent } from '../../core/device/switch.ts';
import type { Phase } from '../../core/device/journal.ts';
import { isVersion, readBootRecord, writeBootRecord, type BootRecord } from '../../core/self/boot-record.ts';
import { beginSwitch, confirm as confirmTrial } from '../../core/self/boot-decision.ts';
import type { Updater } from '../../core/update/updater.ts';
import type { UpdateRecord } from '../../core/spec.ts';
import { openDevice } from '../open-device.ts';

import { RESTART_EXIT_CODE } from './restart-exit-code.ts';

/** The exit code that tells the launcher "start me again, deciding the version anew" (EX_TEMPFAIL). */
export { RESTART_EXIT_CODE };

/** The starts a new version gets to confirm, and how long after the switch it may take. */
export const DEFAULT_TRIES = 3;
export const DEFAULT_CONFIRM_WITHIN_MS = 120_000;

/** The self-update's own kill points (a test seam, like UpdaterDeps.killPoint). */
export type SelfPhase = 'self-switch' | 'self-confirm' | 'self-confirmed';

export interface SelfUpdateOptions {
  /** The self home S. */
  home: string;
  /** The version running now (FERRY_SELF_VERSION, set by the keeper). */
  version: string;
  /** Starts the new version gets to confirm (default 3). */
  tries?: number;
  /** Deadline after the switch, in ms (default 120 000). */
  confirmWithinMs?: number;
  clock?: () => Date;
  log?: (message: string) => void;
  /**
   * A test seam handed to S's Updater unchanged, and also called before and after the boot
   * record write of switch() ('self-switch'), the `current` switch of confirm() ('self-confirm')
   * and the cleared-record write of confirm() ('self-confirmed').
   */
  killPoint?: (when: 'before' | 'after', phase: Phase | SelfPhase) => void;
}

export type PrepareResult =
  | { status: 'up-to-date'; current: string | null }
  /** Held back by S's policy (approval, maintenance window…); staged if it got that far. */
  | { status: 'waiting'; version: string; reason: string; why: string }
  /** The version failed a trial before (boot record `refused`): not tried again by itself. */
  | { status: 'refused'; version: string; reason: string }
  /** A trial is under way (this or another version); it must confirm or roll back first. */
  | { status: 'busy'; version: string }
  /** Verified and staged in S/releases/<version>: switch() may begin its trial. */
  | { status: 'staged'; version: string; from: string | null };

export interface ConfirmResult {
  /** True when this call confirmed (or finished confirming) `version`. */
  confirmed: boolean;
  version: string;
  /** The version it replaced, when it confirmed. */
  from?: string;
}

/** How often, and how long apart, S's lock is asked for again while another ferry process holds it. */
const BUSY_TRIES = 10;
const BUSY_WAIT_MS = 500;

export class SelfUpdate {
  readonly home: string;
  readonly version: string;
  readonly tries: number;
  readonly confirmWithinMs: number;
  private readonly clock: () => Date;
  private readonly log: (message: string) => void;
  private readonly killPoint: SelfUpdateOptions['killPoint'];

  constructor(options: SelfUpdateOptions) {
    if (!options.home) throw new FerryError('ERR_USAGE', 'a self-update needs its self home');
    // The version names a folder under releases/ and a boot record entry, so it must be semver.
    if (!isVersion(options.version)) throw new FerryError('ERR_USAGE', `"${options.version}" is not a semver version`);
    this.home = options.home;
    this.version = options.version;
    this.tries = options.tries ?? DEFAULT_TRIES;
    this.confirmWithinMs = options.confirmWithinMs ?? DEFAULT_CONFIRM_WITHIN_MS;
    this.clock = options.clock ?? (() => new Date());
    this.log = options.log ?? (() => {});
    this.killPoint = options.killPoint;
  }

  /** From FERRY_SELF_HOME/FERRY_SELF_VERSION (set by the keeper); null when not run by a keeper. */
  static fromEnv(env: NodeJS.ProcessEnv = process.env, options: Omit<SelfUpdateOptions, 'home' | 'version'> = {}): SelfUpdate | null {
    const home = env.FERRY_SELF_HOME;
    const version = env.FERRY_SELF_VERSION;
    if (!home || !version) return null;
    return new SelfUpdate({ ...options, home, version });
  }

  /** True when the boot record says THIS version is on trial (it must confirm). */
  async onTrial(): Promise<boolean> {
    const read = await readBootRecord(this.home);
    return read.state === 'ok' && read.record.tentative?.version === this.version;
  }

  /**
   * Prepare: check S's sources, download, verify and stage (Updater.stage, trigger 'auto', so
   * S's policy decides as it does for an app). Never switches. A version the boot record refuses
   * is not staged; while a trial is under way nothing is.
   */
  async prepare(): Promise<PrepareResult> {
    const record = await this.record();
    if (record.tentative) return { status: 'busy', version: record.tentative.version };
    return this.withSelfHome(async (updater) => {
      await this.finishCommit(updater);
      const info = await updater.checkUpdate();
      if (info.updateAvailable && info.latestVersion) {
        const refused = refusal(record, info.latestVersion);
        if (refused) return refused;
      }
      const staged = await updater.stage({ trigger: 'auto' });
      if (staged.status === 'up-to-date') return staged;
      // The staged release may be one staged earlier (the sources changed since the check).
      const refused = refusal(record, staged.version);
      if (refused) return refused;
      if (staged.status === 'staged') this.log(`self-update: ${staged.version} is staged in ${this.home} (running ${this.version})`);
      return staged;
    });
  }

  /**
   * Execute, part 1: begins the trial of a staged `version`: the boot record names it, durably,
   * with its tries and deadline. `current` does not move; the next start (restart()) runs it.
   * ERR_NOT_FOUND unless S has `version` staged (and it is still the release to install);
   * ERR_USAGE while S's policy holds it; ERR_BUSY while a trial is under way; ERR_GAVE_UP for a
   * refused version (core/self/boot-decision.ts beginSwitch).
   */
  async switch(version: string): Promise<void> {
    const record = await this.record();
    const previous = await this.withSelfHome(async (updater) => {
      const status = await updater.status();
      if (status.pending?.version !== version || status.pending.phase !== 'staged') {
        throw new FerryError('ERR_NOT_FOUND', `${version} is not staged in ${this.home}${status.pending ? ` (${status.pending.version} is ${status.pending.phase})` : ''}; prepare() stages it`);
      }
      if (!status.currentVersion) throw new FerryError('ERR_NOT_INSTALLED', `nothing is installed in ${this.home}, so there is no confirmed version to return to`);
      // The policy decision and the re-verify again, as apply makes them right before its switch:
      // a release policy holds (not approved, outside the window) is not begun, nor bytes that
      // changed since they were staged.
      const gate = await updater.stage({ trigger: 'auto' });
      if (gate.status === 'waiting') throw new FerryError('ERR_USAGE', `${gate.version} is held by the policy of ${this.home} (${gate.reason}: ${gate.why}); switch what prepare() reports staged`);
      if (gate.status !== 'staged' || gate.version !== version) throw new FerryError('ERR_NOT_FOUND', `${version} is no longer the release to stage in ${this.home} (${gate.status === 'staged' ? `${gate.version} is` : 'it is up to date'}); prepare() again`);
      return status.currentVersion;
    });
    const next = beginSwitch(record, { version, previous, tries: this.tries, deadlineMs: this.confirmWithinMs }, this.clock());
    this.killPoint?.('before', 'self-switch');
    await writeBootRecord(this.home, next);
    this.killPoint?.('after', 'self-switch');
    this.log(`self-update: ${version} is on trial from ${previous} (${this.tries} starts, until ${next.tentative!.deadline}); restart to run it`);
  }

  /** Execute, part 2: exits the process with RESTART_EXIT_CODE for the launcher (call after draining). */
  restart(): never {
    process.exit(RESTART_EXIT_CODE);
  }

  /**
   * HealthCheck: this version, on trial, works. In this order (core/self/boot-decision.ts confirm
   * says why): `current` switches to it, THEN the cleared record is written, THEN S's staged
   * attempt is closed as committed. A cut after the switch leaves `current` on this version with
   * the trial still recorded, which the keeper (decideStart) and the next confirm() or prepare()
   * finish. Not on trial, and nothing left to finish: { confirmed: false }. Idempotent.
   */
  async confirm(): Promise<ConfirmResult> {
    const record = await this.record();
    const t = record.tentative;
    if (t?.version === this.version) {
      const done = confirmTrial(record, this.version, this.clock());
      const layout = homeLayout(this.home);
      this.killPoint?.('before', 'self-confirm');
      if ((await readCurrent(layout)) !== this.version) await switchCurrent(layout, this.version);
      this.killPoint?.('after', 'self-confirm');
      this.killPoint?.('before', 'self-confirmed');
      await writeBootRecord(this.home, done.write);
      this.killPoint?.('after', 'self-confirmed');
      await this.withSelfHome((updater) => this.finishCommit(updater));
      this.log(`self-update: ${this.version} confirmed (was ${done.previous})`);
      return { confirmed: true, version: this.version, from: done.previous };
    }
    // No trial of this version: a confirm cut after its record write still has S's attempt staged.
    if (t === null && (await readCurrent(homeLayout(this.home))) === this.version) {
      const closed = await this.withSelfHome((updater) => this.finishCommit(updater));
      if (closed) return { confirmed: true, version: this.version, ...(closed.from ? { from: closed.from } : {}) };
    }
    return { confirmed: false, version: this.version };
  }

  /** The boot record; a damaged one is the keeper's to replace (it runs the confirmed version). */
  private async record(): Promise<BootRecord> {
    const read = await readBootRecord(this.home);
    if (read.state === 'damaged') throw read.error;
    return read.record;
  }

  /**
   * When `current` names this version and S still has it staged, the switch was confirmed (only a
   * confirm moves `current` during a self-update) and only the history record is missing: close
   * it as committed. Returns the record, or null when there was nothing to finish.
   */
  private async finishCommit(updater: Updater): Promise<UpdateRecord | null> {
    if ((await updater.currentVersion()) !== this.version) return null;
    const record = await updater.settleStaged(this.version, { outcome: 'committed', errorCode: null, message: `${this.version} confirmed itself after its restart` });
    if (record) this.log(`self-update: the commit of ${this.version} is recorded in ${this.home}`);
    return record;
  }

  /**
   * Opens S as the `ferry` command does and runs `fn` with its Updater. Another ferry process
   * holding S's lock (a `ferry status --home S`, say) is waited for, a few seconds at most.
   */
  private async withSelfHome<T>(fn: (updater: Updater) => Promise<T>): Promise<T> {
    const options = { clock: this.clock, log: this.log, ...(this.killPoint ? { killPoint: this.killPoint } : {}) };
    for (let attempt = 1; ; attempt++) {
      let device;
      try {
        device = await openDevice(this.home, options);
      } catch (err) {
        if (!isFerryError(err, 'ERR_BUSY') || attempt >= BUSY_TRIES) throw err;
        await new Promise((resolve) => setTimeout(resolve, BUSY_WAIT_MS));
        continue;
      }
      try {
        return await fn(device.updater);
      } finally {
        await device.close();
      }
    }
  }
}

/** prepare()'s answer for a version the boot record refuses, or null. */
function refusal(record: BootRecord, version: string): PrepareResult | null {
  const refused = record.refused.find((r) => r.version === version);
  return refused ? { status: 'refused', version, reason: refused.reason } : null;
}
