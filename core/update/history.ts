// The update history in the store: one record per attempt (an update or a manual rollback),
// written in-progress before its first phase is journaled and closed with its outcome; and a
// refused record for each time a source tried to fool the device (SECURITY.md rows 3, 10).

import { FerryError, type ErrorCode } from '../errors.ts';
import { readCurrent } from '../device/switch.ts';
import type { ActiveJournal, SwitchJournal } from '../device/journal.ts';
import type { UpdateRecord } from '../spec.ts';
import type { UpdateContext } from './context.ts';

/** Source problems that mean "someone tried to fool us", worth a refused record in history. */
export const REFUSALS: ReadonlySet<ErrorCode> = new Set(['ERR_SIGNATURE', 'ERR_THRESHOLD', 'ERR_UNKNOWN_KEY', 'ERR_ROOT_CHAIN', 'ERR_HASH_MISMATCH', 'ERR_SIZE', 'ERR_EXPIRED', 'ERR_DOWNGRADE', 'ERR_WRONG_TARGET', 'ERR_JSON', 'ERR_SCHEMA', 'ERR_TOO_LARGE', 'ERR_UNSAFE_ARCHIVE', 'ERR_PATCH', 'ERR_NOT_GRANTED']);

/** Writes the in-progress record of a new attempt; returns its id. */
export async function openAttempt(ctx: UpdateContext, fields: Pick<UpdateRecord, 'from' | 'to' | 'source' | 'kind'>): Promise<string> {
  const id = await ctx.store.newHistoryId(ctx.now);
  await ctx.store.putHistory({ id, ...fields, bytesMoved: 0, startedAt: ctx.now.toISOString(), finishedAt: null, outcome: 'in-progress', errorCode: null });
  return id;
}

/** The record of an attempt, which exists from before its first journaled phase. */
export async function attemptRecord(ctx: UpdateContext, id: string): Promise<UpdateRecord> {
  const record = await ctx.store.getHistory(id);
  if (!record) throw new FerryError('ERR_INTERNAL', `internal: no history record ${id} for the attempt in progress`);
  return record;
}

/**
 * Closes the record of the attempt `journal` belongs to. A bare download has no record, and a
 * journal whose record is gone (recovery after damage) has nothing to close: undefined.
 */
export async function closeAttempt(ctx: UpdateContext, journal: ActiveJournal, outcome: UpdateRecord['outcome'], errorCode: ErrorCode | null, message?: string): Promise<UpdateRecord | undefined> {
  if (journal.kind === 'download') return undefined;
  const prev = await ctx.store.getHistory(journal.attemptId);
  if (!prev) return undefined;
  const bytesMoved = journal.kind === 'update' ? journal.bytesMoved : 0;
  const record: UpdateRecord = { ...prev, outcome, errorCode, bytesMoved, finishedAt: ctx.now.toISOString(), ...(message ? { message } : {}) };
  await ctx.store.putHistory(record);
  return record;
}

/** closeAttempt for an attempt this process is running, whose record must be there. */
export async function closeRunningAttempt(ctx: UpdateContext, journal: SwitchJournal, outcome: UpdateRecord['outcome'], errorCode: ErrorCode | null, message?: string): Promise<UpdateRecord> {
  const record = await closeAttempt(ctx, journal, outcome, errorCode, message);
  if (!record) throw new FerryError('ERR_INTERNAL', `internal: no history record ${journal.attemptId} for the attempt in progress`);
  return record;
}

export async function recordRefusal(ctx: UpdateContext, to: string | null, source: string | null, err: FerryError): Promise<void> {
  const now = ctx.now.toISOString();
  await ctx.store.putHistory({
    id: await ctx.store.newHistoryId(ctx.now),
    from: await readCurrent(ctx.layout),
    to,
    source,
    kind: null,
    bytesMoved: 0,
    startedAt: now,
    finishedAt: now,
    outcome: 'refused',
    errorCode: err.code,
    message: err.message,
  });
}

/**
 * A kill between writing an attempt's record and journaling its first phase leaves a record no
 * journal names: it is closed, so history never shows a phantom update in progress.
 */
export async function closeOrphans(ctx: UpdateContext, live: string | null): Promise<void> {
  for (const record of await ctx.store.history()) {
    if (record.outcome === 'in-progress' && record.id !== live) {
      await ctx.store.putHistory({ ...record, outcome: 'failed', errorCode: 'ERR_INTERRUPTED', finishedAt: ctx.now.toISOString(), message: 'interrupted before it started' });
    }
  }
}
