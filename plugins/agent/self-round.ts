// The agent's own update, one round after each app attempt (ARCHITECTURE.md "Self-update"),
// through the library SelfUpdate (plugins/self/self-update.ts) on the agent's self home:
//   - on trial (the boot record names this version as tentative): the first attempt that proves
//     the new code works confirms it (`current` moves to it, the record is cleared, history
//     commits). An attempt proves it when it ran to an answer: no error, or a FerryError other than
//     ERR_INTERNAL. An offline check proves the code as well as a successful one, so an air-gapped
//     device can confirm; a bug (ERR_INTERNAL, or anything that is not a FerryError) does not, and
//     the keeper rolls back at the deadline.
//   - otherwise: prepare (check, download, verify, stage the next version of the agent); once one is
//     staged, switch (the boot record's tentative switch, written durably) and ask the agent to stop
//     for the restart. `ferry run` is left serving; the next agent adopts it.
// A failed prepare, switch or confirm is logged and the agent goes on: its own update must never
// stop the app's. Each waiting or refused version is logged once, not every round.

import { FerryError, isFerryError } from '../../core/errors.ts';
import type { PrepareResult, SelfUpdate } from '../self/self-update.ts';
import type { AgentLog } from './agent-log.ts';

/** The part of SelfUpdate the agent uses. */
export type SelfUpdater = Pick<SelfUpdate, 'version' | 'onTrial' | 'prepare' | 'switch' | 'confirm'>;

/** Whether an app attempt that ended with `error` (null: none) proves the running code works. */
export function attemptProvesCode(error: Error | null): boolean {
  return error === null || (isFerryError(error) && error.code !== 'ERR_INTERNAL');
}

/** The self round of one agent run: start() once, then after() after each attempt. */
export class SelfRound {
  private trial = false;
  /** The last waiting/refused/busy line, so a state that lasts is logged once. */
  private lastSaid = '';

  constructor(
    private readonly self: SelfUpdater,
    private readonly log: AgentLog,
  ) {}

  private get version(): string {
    return this.self.version;
  }

  /** Whether this version is on trial; logs the 'self' line. */
  async start(): Promise<void> {
    try {
      this.trial = await this.self.onTrial();
    } catch (err) {
      this.fail('trial', err);
    }
    const trial = this.trial ? ': on trial, confirms after its first working check' : '';
    this.log('self', { version: this.version, trial: this.trial }, `ferry agent ${this.version}${trial}`);
  }

  /**
   * After one app attempt: confirms, or prepares and switches. Returns the version to restart
   * into (the switch is written), or null. `stopping`: the agent is stopping, so nothing new begins
   * (a confirm still happens: the attempt proved the code).
   */
  async after(attemptError: Error | null, stopping: boolean): Promise<string | null> {
    if (this.trial) {
      if (attemptProvesCode(attemptError)) await this.confirm();
      else this.say('self-trial', { version: this.version, message: attemptError?.message ?? null }, `self-update: on trial, and this attempt failed with a bug (${attemptError?.message}); not confirming ${this.version}`);
      return null;
    }
    if (stopping) return null;
    let prepared: PrepareResult;
    try {
      prepared = await this.self.prepare();
    } catch (err) {
      this.fail('prepare', err);
      return null;
    }
    switch (prepared.status) {
      case 'up-to-date':
        this.lastSaid = '';
        return null;
      case 'waiting':
        this.say('self-waiting', { version: prepared.version, reason: prepared.reason, why: prepared.why }, `self-update: ${prepared.version} is staged (${prepared.reason}): ${prepared.why}`);
        return null;
      case 'refused':
        this.say('self-refused', { version: prepared.version, reason: prepared.reason }, `self-update: ${prepared.version} failed a trial before (${prepared.reason}); not tried again`);
        return null;
      case 'busy':
        this.say('self-waiting', { version: prepared.version, reason: 'busy' }, `self-update: a trial of ${prepared.version} is under way`);
        return null;
      case 'staged':
        try {
          await this.self.switch(prepared.version);
        } catch (err) {
          this.fail('switch', err);
          return null;
        }
        this.log('self-update', { version: prepared.version, from: prepared.from ?? this.version }, `self-update: switching to ${prepared.version}; restarting`);
        return prepared.version;
    }
  }

  private async confirm(): Promise<void> {
    try {
      const c = await this.self.confirm();
      this.trial = false;
      if (c.confirmed) this.log('self-confirmed', { version: c.version, from: c.from ?? null }, `self-update: confirmed ${c.version}${c.from ? ` (from ${c.from})` : ''}`);
      else this.log('note', { message: `${this.version} is no longer on trial` }, `self-update: ${this.version} is no longer on trial; nothing to confirm`);
    } catch (err) {
      this.fail('confirm', err); // still on trial: the next attempt tries again
    }
  }

  /** Logs a line once while it says the same thing. */
  private say(event: string, fields: Record<string, unknown>, text: string): void {
    const key = `${event} ${JSON.stringify(fields)}`;
    if (key === this.lastSaid) return;
    this.lastSaid = key;
    this.log(event, fields, text);
  }

  private fail(step: string, err: unknown): void {
    const e = err instanceof Error ? err : new FerryError('ERR_INTERNAL', String(err));
    const code = isFerryError(e) ? e.code : 'ERR_INTERNAL';
    this.log('self-error', { step, code, message: e.message }, `self-update: ${step} failed: ${code} ${e.message}`);
  }
}
