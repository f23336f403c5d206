// The device's LevelDB store: the journal, history, restore points, approvals and failure counts.
// Every write is synced (THREATS.md row 20). The store is not the source of truth for what is
// installed — the `current` link is — so a damaged database is moved aside and rebuilt, and the
// app still starts.

import { rename } from 'node:fs/promises';
import { Level } from 'level';
import { FerryError } from './errors.ts';
import { UNSAFE_SKIP_FSYNC } from './durable.ts';
import { IDLE, type Journal } from './journal.ts';
import type { RestorePoint, UpdateRecord } from './spec.ts';

type Value = Journal | UpdateRecord | RestorePoint | number | string;

const SYNC = { sync: !UNSAFE_SKIP_FSYNC } as const;

export class DeviceStore {
  private constructor(private readonly db: Level<string, Value>, readonly rebuiltFrom: string | null) {}

  /**
   * Opens the store at `dir`. A database held by another process is ERR_BUSY; a damaged one is
   * renamed to `<dir>.damaged-<time>` and a fresh one created (`rebuiltFrom` says where it went).
   */
  static async open(dir: string, now: Date): Promise<DeviceStore> {
    const db = new Level<string, Value>(dir, { valueEncoding: 'json' });
    try {
      await db.open();
      return new DeviceStore(db, null);
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause;
      if (cause?.code === 'LEVEL_LOCKED') throw new FerryError('ERR_BUSY', `the store ${dir} is in use by another ferry process`, { cause: err });
      const aside = `${dir}.damaged-${now.toISOString().replace(/[:.]/g, '-')}`;
      await rename(dir, aside);
      const fresh = new Level<string, Value>(dir, { valueEncoding: 'json' });
      await fresh.open();
      return new DeviceStore(fresh, aside);
    }
  }

  close(): Promise<void> {
    return this.db.close();
  }

  async journal(): Promise<Journal> {
    return ((await this.db.get('journal')) as Journal | undefined) ?? { ...IDLE };
  }

  async setJournal(journal: Journal): Promise<void> {
    await this.db.put('journal', journal, SYNC);
  }

  /** A new history id: a counter (so records list in the order they were made), then the time. */
  async newHistoryId(now: Date): Promise<string> {
    const n = (((await this.db.get('history-counter')) as number | undefined) ?? 0) + 1;
    await this.db.put('history-counter', n, SYNC);
    return `${String(n).padStart(8, '0')}-${now.toISOString().replace(/[-:.]/g, '')}`;
  }

  async hold(version: string): Promise<void> {
    await this.db.put(`held!${version}`, new Date().toISOString(), SYNC);
  }

  async isHeld(version: string): Promise<boolean> {
    return (await this.db.get(`held!${version}`)) !== undefined;
  }

  async putHistory(record: UpdateRecord): Promise<void> {
    await this.db.put(`history!${record.id}`, record, SYNC);
  }

  async getHistory(id: string): Promise<UpdateRecord | undefined> {
    return (await this.db.get(`history!${id}`)) as UpdateRecord | undefined;
  }

  /** Oldest first (ids start with a counter). */
  async history(): Promise<UpdateRecord[]> {
    return (await this.db.values({ gt: 'history!', lt: 'history!~' }).all()) as UpdateRecord[];
  }

  async putRestorePoint(point: RestorePoint): Promise<void> {
    await this.db.put(`restore!${point.id}`, point, SYNC);
  }

  async deleteRestorePoint(id: string): Promise<void> {
    await this.db.del(`restore!${id}`, SYNC);
  }

  /** Oldest first. */
  async restorePoints(): Promise<RestorePoint[]> {
    return (await this.db.values({ gt: 'restore!', lt: 'restore!~' }).all()) as RestorePoint[];
  }

  /** Approves a version, and lifts a hold a manual rollback put on it. */
  async approve(version: string): Promise<void> {
    await this.db.batch([{ type: 'put', key: `approved!${version}`, value: new Date().toISOString() }, { type: 'del', key: `held!${version}` }], SYNC);
  }

  async isApproved(version: string): Promise<boolean> {
    return (await this.db.get(`approved!${version}`)) !== undefined;
  }

  async failures(version: string): Promise<number> {
    return ((await this.db.get(`failures!${version}`)) as number | undefined) ?? 0;
  }

  async addFailure(version: string): Promise<number> {
    const n = (await this.failures(version)) + 1;
    await this.db.put(`failures!${version}`, n, SYNC);
    return n;
  }
}

/** Ids that sort by time, then by a random suffix: "20261126T204501123Z-3fa9". */
export function timeId(now: Date, random: string): string {
  return `${now.toISOString().replace(/[-:.]/g, '')}-${random}`;
}
