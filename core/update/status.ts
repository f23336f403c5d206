// What `ferry status` shows: the device (and its id), the running version, an update in progress,
// the last error in history, the trust state that outlives the store, and a damaged `current` that
// recovery restored on this or an earlier open (core/update/repair-current.ts).

import type { ErrorCode } from '../errors.ts';
import { readCurrent } from '../device/switch.ts';
import type { Phase } from '../device/journal.ts';
import { readMarks } from '../trust/trust-marks.ts';
import type { UpdateRecord } from '../spec.ts';
import type { UpdateContext } from './context.ts';
import { REPAIR_SOURCE } from './repair-current.ts';

/**
 * The last repair of a damaged `current`, until an attempt commits after it: what was wrong
 * (`damage`), what recovery did (`action`, the record's message) and the version restored (null:
 * none verified, so nothing is installed until the next update).
 */
export interface CurrentRepairStatus {
  damage: string;
  restoredTo: string | null;
  action: string;
  at: string;
}

export interface DeviceStatus {
  home: string;
  /** The device id (core/fleet/device-identity.ts): how reports and rollouts know this device. */
  /** null when the device key could not be read or made. */
  deviceId: string | null;
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
  currentRepair: CurrentRepairStatus | null;
}

/** The newest repair record, unless an attempt committed after it (then it is old news, still in history). */
export function lastCurrentRepair(history: UpdateRecord[]): CurrentRepairStatus | null {
  let i = history.length - 1;
  while (i >= 0 && history[i]!.source !== REPAIR_SOURCE) i--;
  if (i < 0 || history.slice(i + 1).some((h) => h.outcome === 'committed')) return null;
  const r = history[i]!;
  const message = r.message ?? '';
  const damage = /^current was damaged \((.*?)\); (?:restored to|no installed release)/.exec(message)?.[1] ?? message;
  return { damage, restoredTo: r.to, action: message, at: r.startedAt };
}

export async function deviceStatus(ctx: UpdateContext): Promise<DeviceStatus> {
  const journal = await ctx.store.journal();
  const history = await ctx.store.history();
  const lastFailure = [...history].reverse().find((h): h is UpdateRecord & { errorCode: ErrorCode } => !!h.errorCode);
  const marks = await readMarks(ctx.layout.marks);
  return {
    home: ctx.layout.home,
    deviceId: ctx.deviceId,
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
    currentRepair: lastCurrentRepair(history),
  };
}
