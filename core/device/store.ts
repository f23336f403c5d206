// The device's LevelDB store: the journal, history, restore points, approvals and failure counts.
// Every write is synced (SECURITY.md row 20). The store is not the source of truth for what is
// installed — the `current` link is — so a damaged database is moved aside and rebuilt, and the
// app still starts.

import { rename, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import type { Level as LevelDb } from 'level';
import { FerryError } from '../errors.ts';
import { skipsFsync } from '../io/durable.ts';
import { journalFromStored, type Journal } from './journal.ts';
import type { RestorePoint, UpdateRecord } from '../spec.ts';

// `level` is CommonJS: require loads it without the ESM wrapper `import` puts around it (a parse of
// its sources for named exports), ~10 ms of every `ferry` start-up (bench/README.md "apply").
const { Level } = createRequire(import.meta.url)('level') as { Level: typeof LevelDb };

type Value = Journal | UpdateRecord | RestorePoint | number | string | Prefetch;

// One fsync site for every write: LevelDB appends them all to one log, so each synced write also
// makes every earlier one durable. A getter, read at each write: the test seam that skips the site
// (durable.ts skipFsyncAt) may be set after this module loads.
const SYNC = { get sync() { return !skipsFsync('store.sync'); } };

export class DeviceStore {
  /**
   * `rebuiltFrom`: where a damaged store was moved. `created`: there was no store at all before
   * this open (a new device, or one whose store was deleted).
   */
  private constructor(private readonly db: LevelDb<string, Value>, readonly rebuiltFrom: string | null, readonly created: boolean) {}

  /**
   * Opens the store at `dir`. A database held by another process is ERR_BUSY; a damaged one is
   * renamed to `<dir>.damaged-<time>` and a fresh one created (`rebuiltFrom` says where it went).
   */
  static async open(dir: string, now: Date): Promise<DeviceStore> {
    // LevelDB's CURRENT file names the live manifest: without it, open() makes a new database.
    const created = !(await stat(join(dir, 'CURRENT')).then(() => true, () => false));
    const db = new Level<string, Value>(dir, { valueEncoding: 'json' });
    try {
      await db.open();
      return new DeviceStore(db, null, created);
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause;
      if (cause?.code === 'LEVEL_LOCKED') throw new FerryError('ERR_BUSY', `the store ${dir} is in use by another ferry process`, { cause: err });
      // A disk with no room to open the store is not a damaged store: moving it aside would
      // throw away history, approvals and an update in progress.
      if (outOfSpace(err)) throw new FerryError('ERR_NO_SPACE', `no space left to open the store ${dir}: free some space and retry`, { cause: err });
      const aside = `${dir}.damaged-${now.toISOString().replace(/[:.]/g, '-')}`;
      await rename(dir, aside);
      const fresh = new Level<string, Value>(dir, { valueEncoding: 'json' });
      await fresh.open();
      return new DeviceStore(fresh, aside, true);
    }
  }

  close(): Promise<void> {
    return this.db.close();
  }

  async journal(): Promise<Journal> {
    return journalFromStored(await this.db.get('journal'));
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

  /**
   * Journals a rollback and counts the failed attempt at `version` in one synced write. As two
   * writes, a cut between them would leave the journal before the rollback with the attempt
   * already counted, and recovery (which counts an attempt cut short) would count it again.
   */
  async journalFailure(journal: Journal, version: string): Promise<number> {
    const n = (await this.failures(version)) + 1;
    await this.db.batch([{ type: 'put', key: 'journal', value: journal as Value }, { type: 'put', key: `failures!${version}`, value: n as Value }], SYNC);
    return n;
  }

  async addFailure(version: string): Promise<number> {
    const n = (await this.failures(version)) + 1;
    await this.db.put(`failures!${version}`, n, SYNC);
    return n;
  }

  /**
   * Bytes a `download` moved for an artifact before any attempt existed to count them: the
   * attempt that later uses the cached artifact takes them over (takePrefetch), so history's
   * bytes moved include every byte the device fetched.
   */
  async putPrefetch(sha256: string, prefetch: Prefetch): Promise<void> {
    const prev = (await this.db.get(`prefetch!${sha256}`)) as Prefetch | undefined;
    await this.db.put(`prefetch!${sha256}`, { bytes: (prev?.bytes ?? 0) + prefetch.bytes, source: prefetch.source } as Value, SYNC);
  }

  async takePrefetch(sha256: string): Promise<Prefetch | undefined> {
    const got = (await this.db.get(`prefetch!${sha256}`)) as Prefetch | undefined;
    if (got) await this.db.del(`prefetch!${sha256}`, SYNC);
    return got;
  }
}

export interface Prefetch {
  bytes: number;
  source: string | null;
}

/** True when `err` or any cause is ENOSPC/EDQUOT (LevelDB reports it as text: "No space left"). */
function outOfSpace(err: unknown): boolean {
  for (let e = err as { code?: unknown; message?: unknown; cause?: unknown } | undefined, depth = 0; e && depth < 8; e = e.cause as typeof e, depth++) {
    if (e.code === 'ENOSPC' || e.code === 'EDQUOT') return true;
    if (typeof e.message === 'string' && /No space left on device|Disk quota exceeded/i.test(e.message)) return true;
  }
  return false;
}

/** Ids that sort by time, then by a random suffix: "20261126T204501123Z-3fa9". */
export function timeId(now: Date, random: string): string {
  return `${now.toISOString().replace(/[-:.]/g, '')}-${random}`;
}
