// The spec's GracefulUpdater for an agent that updates ITSELF (ARCHITECTURE.md "Self-update"):
// the four steps of the spec mapped onto SelfUpdate (plugins/self/self-update.ts).
//   prepare(version)        download, verify and stage that version next to the running one
//   drainConnections(ms)    the agent's own drain (the caller's function): finish work in flight
//   execute()               switch (the trial is written to the boot record), then restart
//   healthCheck()           in the NEW process: confirm, so the switch becomes the commit
// The app-side GracefulUpdater is `ferry run`'s Supervisor (plugins/run/supervisor.ts); here the
// process being replaced is the caller itself, so execute() does not return: the launcher's
// keeper starts the new version, and a version that never reaches healthCheck is rolled back by
// the keeper from the confirmed code.

import { FerryError } from '../../core/errors.ts';
import type { GracefulUpdater } from '../../core/spec.ts';
import type { SelfUpdate } from './self-update.ts';

export interface GracefulSelfUpdateOptions {
  /** Finishes the agent's work in flight within `timeoutMs` (default: nothing to drain). */
  drain?: (timeoutMs: number) => Promise<void>;
}

export class GracefulSelfUpdate implements GracefulUpdater {
  private prepared: string | null = null;

  constructor(
    private readonly self: SelfUpdate,
    private readonly options: GracefulSelfUpdateOptions = {},
  ) {}

  /**
   * Stages `version`. ERR_NOT_FOUND when the self home's sources offer another version (or none),
   * ERR_GAVE_UP when `version` failed a trial before, ERR_BUSY while a trial is under way, and the
   * policy's reason (ERR_USAGE) when it waits for approval or a window: nothing is switched.
   */
  async prepare(version: string): Promise<void> {
    this.prepared = null;
    const r = await this.self.prepare();
    switch (r.status) {
      case 'staged':
        if (r.version !== version) throw new FerryError('ERR_NOT_FOUND', `the self home offers ${r.version}, not ${version}`);
        this.prepared = version;
        return;
      case 'up-to-date':
        throw new FerryError('ERR_NOT_FOUND', `no newer version than ${r.current ?? 'nothing'} is offered; ${version} cannot be prepared`);
      case 'refused':
        throw new FerryError('ERR_GAVE_UP', `${r.version} failed a trial before (${r.reason}); it is not prepared again`);
      case 'busy':
        throw new FerryError('ERR_BUSY', `${r.version} is on trial; it must confirm or roll back first`);
      case 'waiting':
        throw new FerryError('ERR_USAGE', `${r.version} waits: ${r.why}`);
      default: {
        const never: never = r;
        throw new FerryError('ERR_INTERNAL', `unexpected prepare result ${JSON.stringify(never)}`);
      }
    }
  }

  async drainConnections(timeoutMs: number): Promise<void> {
    await this.options.drain?.(timeoutMs);
  }

  /** Begins the trial of the prepared version and exits for the launcher (never returns). */
  async execute(): Promise<void> {
    if (this.prepared === null) throw new FerryError('ERR_USAGE', 'execute() needs a successful prepare() first');
    await this.self.switch(this.prepared);
    this.self.restart();
  }

  /**
   * In the new process, once it works: confirms the trial (true). A start that is not a trial has
   * nothing to prove and answers true too; only a failure to confirm throws.
   */
  async healthCheck(): Promise<boolean> {
    await this.self.confirm();
    return true;
  }
}
