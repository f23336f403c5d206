// The update state machine (ARCHITECTURE.md). The phase is written to the store, synced, BEFORE
// each side effect, so after a kill or power cut `recover` (core/update/recover.ts) knows what may
// have half-happened and either finishes it or undoes it.
//
// A journal is one of four shapes, told apart by `phase` and `kind`: idle (nothing in progress),
// a bare download filling the cache, an update attempt, or a manual rollback. Each carries only
// the fields its kind has, so no reader has to guess which of them are set.

import { FerryError, type ErrorCode } from '../errors.ts';
import type { Plan } from '../update/plan.ts';

export type Phase =
  | 'idle'
  | 'checking'
  | 'downloading'
  | 'verifying'
  | 'staging'
  | 'staged' // a complete, verified tree in releases/<to>; waits for approval / maintenance window
  | 'switching'
  | 'confirming' // `current` points at the new release; health check running
  | 'committed'
  | 'rolling-back';

export type ActivePhase = Exclude<Phase, 'idle'>;

/** Allowed transitions. Any phase may fall back to idle (an attempt ends, recorded in history). */
export const TRANSITIONS: Record<Phase, readonly Phase[]> = {
  idle: ['checking', 'staged', 'switching'],
  checking: ['downloading', 'idle'],
  downloading: ['verifying', 'downloading', 'idle'], // downloading again: a failed delta falls back to the full artifact
  verifying: ['staging', 'downloading', 'idle'],
  staging: ['staged', 'downloading', 'idle'],
  staged: ['switching', 'idle'],
  switching: ['confirming', 'rolling-back', 'idle'],
  confirming: ['committed', 'rolling-back'],
  committed: ['idle'],
  'rolling-back': ['idle'],
};

export function canTransition(from: Phase, to: Phase): boolean {
  return TRANSITIONS[from].includes(to);
}

/** Nothing in progress. */
export interface IdleJournal {
  phase: 'idle';
}

interface Moving {
  phase: ActivePhase;
  /** The version `current` named when it began (null: nothing installed). */
  from: string | null;
  to: string;
}

/** A bare `download` filling the cache ahead of an update: no history record of its own. */
export interface DownloadJournal extends Moving {
  kind: 'download';
}

/** An update attempt (checking … staged … committed | rolling-back), recorded in history as `attemptId`. */
export interface UpdateJournal extends Moving {
  kind: 'update';
  attemptId: string;
  plan: Plan;
  /** The source that served the bytes (the one that offered the release until a fetch says). */
  source: string;
  bytesMoved: number;
  startedAt: string;
  /** The restore point made before the switch, which a rollback returns to. */
  restorePointId: string | null;
  /** Why it is rolling back, once it is (ERR_UNHEALTHY). */
  errorCode: ErrorCode | null;
}

/** A manual rollback to a restore point: it switches to a release already installed and builds nothing. */
export interface RollbackJournal extends Moving {
  kind: 'rollback';
  attemptId: string;
  startedAt: string;
  restorePointId: string | null;
  errorCode: ErrorCode | null;
}

/** A journal that switches `current`: an update or a manual rollback. */
export type SwitchJournal = UpdateJournal | RollbackJournal;
export type ActiveJournal = DownloadJournal | SwitchJournal;
export type Journal = IdleJournal | ActiveJournal;

export const IDLE: IdleJournal = Object.freeze({ phase: 'idle' });

const PHASES = new Set<string>(Object.keys(TRANSITIONS));

/**
 * A journal as read from the store. Earlier versions of ferry stored one flat record with every
 * field nullable and no `kind`; such a record is converted here (the kind follows from which
 * fields are set), so a device whose ferry was upgraded in the middle of an attempt still
 * recovers it. An unknown phase is damage (ERR_SCHEMA), as it always was.
 */
export function journalFromStored(raw: unknown): Journal {
  const r = raw as Partial<Record<string, unknown>> | null | undefined;
  if (r === null || r === undefined) return IDLE;
  if (typeof r.phase !== 'string' || !PHASES.has(r.phase)) throw new FerryError('ERR_SCHEMA', `unknown journal phase ${String(r.phase)}`);
  if (r.phase === 'idle') return IDLE;
  if (r.kind === 'download' || r.kind === 'update' || r.kind === 'rollback') return r as unknown as ActiveJournal;
  return fromFlatRecord(r as unknown as FlatJournal);
}

/** The journal ferry stored before journals had a `kind`. */
interface FlatJournal {
  phase: ActivePhase;
  attemptId: string | null;
  from: string | null;
  to: string | null;
  plan: Plan | null;
  source: string | null;
  restorePointId: string | null;
  bytesMoved: number;
  startedAt: string | null;
  errorCode: ErrorCode | null;
}

function fromFlatRecord(f: FlatJournal): ActiveJournal {
  // Every attempt named its version; an update also its record, plan, source and start; a
  // rollback its record (and no plan); a bare download none of them.
  if (f.to === null) throw new FerryError('ERR_SCHEMA', `the stored journal (${f.phase}) names no version`);
  const moving = { phase: f.phase, from: f.from, to: f.to };
  if (f.attemptId === null) {
    if (f.plan !== null) throw new FerryError('ERR_SCHEMA', `the stored journal (${f.phase}) has a plan but no attempt`);
    return { ...moving, kind: 'download' };
  }
  // Those versions always set startedAt and source for an attempt; '' only satisfies the type.
  const attempt = { attemptId: f.attemptId, startedAt: f.startedAt ?? '', restorePointId: f.restorePointId, errorCode: f.errorCode };
  if (f.plan === null) return { ...moving, ...attempt, kind: 'rollback' };
  return { ...moving, ...attempt, kind: 'update', plan: f.plan, source: f.source ?? '', bytesMoved: f.bytesMoved };
}
