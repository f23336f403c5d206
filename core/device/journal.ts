// The update state machine (DESIGN.md "Device side"). The phase is written to the store, synced,
// BEFORE each side effect, so after a kill or power cut `resume()` in updater.ts knows what may
// have half-happened and either finishes it or undoes it.

import type { ErrorCode } from '../errors.ts';
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

export interface Journal {
  phase: Phase;
  /** The history record id of the attempt in progress. */
  attemptId: string | null;
  from: string | null;
  to: string | null;
  plan: Plan | null;
  source: string | null;
  /** The restore point made before the switch, which a rollback returns to. */
  restorePointId: string | null;
  bytesMoved: number;
  startedAt: string | null;
  errorCode: ErrorCode | null;
}

export const IDLE: Journal = {
  phase: 'idle',
  attemptId: null,
  from: null,
  to: null,
  plan: null,
  source: null,
  restorePointId: null,
  bytesMoved: 0,
  startedAt: null,
  errorCode: null,
};
