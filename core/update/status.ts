// What `ferry status` shows: the device, the running version, an update in progress, the last
// error in history, and the trust state that outlives the store.

import type { ErrorCode } from '../errors.ts';
import { readCurrent } from '../device/switch.ts';
import type { Phase } from '../device/journal.ts';
import { readMarks } from '../trust/trust-marks.ts';
import type { UpdateRecord } from '../spec.ts';
import type { UpdateContext } from './context.ts';

export interface DeviceStatus {
  home: string;
  app: string;
  platform: string;
  arch: string;
  channel: string;
  currentVersion: string | null;
  phase: Phase;
  pending: { version: string; phase: Phase } | null;
  lastError: { code: ErrorCode; at: string; version: string | null } | null;
  restorePoints: number;
  securityFloor: string | null;
  databaseRebuiltFrom: string | null;
}

export async function deviceStatus(ctx: UpdateContext): Promise<DeviceStatus> {
  const journal = await ctx.store.journal();
  const history = await ctx.store.history();
  const lastFailure = [...history].reverse().find((h): h is UpdateRecord & { errorCode: ErrorCode } => !!h.errorCode);
  const marks = await readMarks(ctx.layout.marks);
  return {
    home: ctx.layout.home,
    app: ctx.config.app,
    platform: ctx.config.platform,
    arch: ctx.config.arch,
    channel: ctx.config.policy.channel,
    currentVersion: await readCurrent(ctx.layout),
    phase: journal.phase,
    pending: journal.phase !== 'idle' ? { version: journal.to, phase: journal.phase } : null,
    lastError: lastFailure ? { code: lastFailure.errorCode, at: lastFailure.finishedAt ?? lastFailure.startedAt, version: lastFailure.to } : null,
    restorePoints: (await ctx.store.restorePoints()).length,
    securityFloor: marks.securityFloor,
    databaseRebuiltFrom: ctx.store.rebuiltFrom,
  };
}
