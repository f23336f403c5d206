// `ferry rollout <version> --percent N` and `ferry release --rollout N`: a channel's version given
// to a share of the fleet only. The rollout is a field of the channel pointer's target (so it is
// signed with the pointer: SECURITY.md, fleet rows), and each device decides for itself whether it
// is in (core/policy/rollout.ts). Re-signing is one new pointer: sequence + 1, a fresh expiry.
//
// The choices made here:
//   - salt: fresh (random) the first time a version gets a rollout on a channel, then kept on every
//     re-sign, so a device that was in at 10% is still in at 50%, and every target of the version
//     shares it;
//   - previous: the channel's last fully rolled-out version for that target (what a device outside
//     the rollout installs when it runs something older, or nothing): the version the pointer named
//     before, when it had no rollout or its rollout had reached 100%, else that rollout's own
//     previous. `ferry rollout` keeps the previous of the rollout it changes; a version published
//     without a rollout and put under one afterwards has none (null), since the pointer before it
//     is gone;
//   - `--percent 100` with no steps drops the rollout field: every device takes the version, and
//     the pointer is what it would be without rollouts (the salt and previous go with it);
//   - `--percent 0` halts: no new device takes it; devices that have it keep it.

import { randomBytes } from 'node:crypto';
import * as semver from '../semver.ts';
import { FerryError } from '../errors.ts';
import { writeNextPointer } from './channel-pointer.ts';
import { readChannel } from '../trust/trusted-metadata.ts';
import { isChannel, isRolloutPercent, type Channel, type ChannelDoc, type ChannelTarget, type Rollout, type TargetKey } from '../trust/metadata.ts';
import { ISO_TIME } from '../io/schema.ts';
import { rolloutPercentAt } from '../policy/rollout.ts';
import type { SigningKey } from '../trust/keys.ts';
import { readRepoRoot, repoSource } from './repository.ts';
import { releaseSigners } from './publish.ts';

/** What a publisher asks for: the percentage now, and optionally later percentages by date. */
export interface RolloutPlan {
  percent: number;
  /** ISO times (any form Date.parse reads; written as toISOString) with the percentage from then on. */
  steps?: { at: string; percent: number }[];
  /**
   * 32 hex digits for a version's first rollout on a channel (default: random); ignored once the
   * version has one, whose salt is kept. For a test, or a publisher re-creating a rollout elsewhere.
   */
  salt?: string;
}

/** A plan checked and put in the signed form (steps sorted, times as toISOString); ERR_USAGE when malformed. */
export function checkRolloutPlan(plan: RolloutPlan): { percent: number; steps: { at: string; percent: number }[]; salt?: string } {
  const percentOk = (p: unknown, what: string) => {
    if (!isRolloutPercent(p)) throw new FerryError('ERR_USAGE', `${what} must be a number from 0 to 100 with at most two decimals (got ${String(p)})`);
  };
  percentOk(plan.percent, '--percent');
  const steps = (plan.steps ?? []).map((s) => {
    const t = Date.parse(s.at);
    if (Number.isNaN(t)) throw new FerryError('ERR_USAGE', `--step "${s.at}" is not a time (e.g. 2026-12-24T08:00:00Z)`);
    percentOk(s.percent, `--step ${s.at}`);
    return { at: new Date(t).toISOString(), percent: s.percent };
  });
  steps.sort((a, b) => Date.parse(a.at) - Date.parse(b.at));
  for (let i = 1; i < steps.length; i++) {
    if (steps[i]!.at === steps[i - 1]!.at) throw new FerryError('ERR_USAGE', `two --step entries at ${steps[i]!.at}`);
  }
  for (const s of steps) if (!ISO_TIME.test(s.at)) throw new FerryError('ERR_USAGE', `--step time ${s.at} cannot be signed (years 0000-9999 only)`);
  if (plan.salt !== undefined && !/^[0-9a-f]{32}$/.test(plan.salt)) throw new FerryError('ERR_USAGE', 'a rollout salt is 32 lowercase hex digits');
  return { percent: plan.percent, steps, ...(plan.salt !== undefined ? { salt: plan.salt } : {}) };
}

/** "<ISO time>=<percent>" as `ferry rollout --step` takes it. */
export function parseStep(text: string): { at: string; percent: number } {
  const eq = text.lastIndexOf('=');
  const percent = eq < 0 ? NaN : Number(text.slice(eq + 1));
  if (eq <= 0 || text.slice(eq + 1).trim() === '' || Number.isNaN(percent)) throw new FerryError('ERR_USAGE', `--step "${text}" must be <ISO time>=<percent>, e.g. 2026-12-24T08:00:00Z=50`);
  return { at: text.slice(0, eq), percent };
}

export function newSalt(): string {
  return randomBytes(16).toString('hex');
}

/** The salt a rollout of `version` already has on this channel (on any of its targets). */
export function saltOf(targets: ChannelDoc['targets'], version: string): string | undefined {
  return Object.values(targets).find((t) => t.version === version && t.rollout)?.rollout?.salt;
}

/** The last fully rolled-out version of a channel's target, given the pointer's entry `prior` before it changes. */
export function lastFullyRolledOut(prior: ChannelTarget | undefined, now: Date): Rollout['previous'] {
  if (!prior) return null;
  if (!prior.rollout || rolloutPercentAt(prior.rollout, now) >= 100) return { version: prior.version, manifest: prior.manifest };
  return prior.rollout.previous;
}

/** The rollout field for a plan; undefined for 100% with no steps (every device takes it). */
export function rolloutField(plan: { percent: number; steps: { at: string; percent: number }[] }, salt: string, previous: Rollout['previous']): Rollout | undefined {
  if (plan.percent === 100 && plan.steps.length === 0) return undefined;
  return { percent: plan.percent, salt, steps: plan.steps, previous };
}

/** A pointer target naming `version` under `rollout` (none: the field is left out). */
export function withRollout(target: { version: string; manifest: ChannelTarget['manifest'] }, rollout: Rollout | undefined): ChannelTarget {
  return rollout ? { version: target.version, manifest: target.manifest, rollout } : { version: target.version, manifest: target.manifest };
}

export interface RolloutInput {
  repo: string;
  version: string;
  channel: Channel;
  plan: RolloutPlan;
  keys: SigningKey[];
  /** The new pointer expires this many seconds after `now`. */
  expiresIn: number;
  now: Date;
}

export interface RolloutResult {
  channel: ChannelDoc;
  /** Every target the channel names at `version`, with its rollout (null: dropped, every device takes it). */
  targets: { target: TargetKey; rollout: Rollout | null }[];
}

/** Re-signs `channel`'s pointer with `plan` for every target naming `version`; ERR_NOT_FOUND when none does. */
export async function rolloutRelease(input: RolloutInput): Promise<RolloutResult> {
  const { repo, version, channel, now } = input;
  if (semver.valid(version) !== version) throw new FerryError('ERR_VERSION', `"${version}" is not a semver version (e.g. 1.2.3)`);
  if (!isChannel(channel)) throw new FerryError('ERR_USAGE', `unknown channel "${channel}"`);
  const plan = checkRolloutPlan(input.plan);
  const { root } = await readRepoRoot(repo);
  const signers = releaseSigners(root, input.keys);
  const pointer = await readChannel(repoSource(repo), root, channel, null);
  const named = Object.entries(pointer?.doc.targets ?? {}).filter(([, t]) => t.version === version);
  if (!pointer || named.length === 0) {
    const names = [...new Set(Object.values(pointer?.doc.targets ?? {}).map((t) => t.version))];
    throw new FerryError('ERR_NOT_FOUND', `${channel} does not name ${version} (it names ${names.length ? names.join(', ') : 'nothing'}); a rollout changes the version a channel serves now`);
  }
  const salt = saltOf(pointer.doc.targets, version) ?? plan.salt ?? newSalt();
  const targets: ChannelDoc['targets'] = { ...pointer.doc.targets };
  const report: RolloutResult['targets'] = [];
  for (const [key, t] of named) {
    const rollout = rolloutField(plan, salt, t.rollout?.previous ?? null);
    targets[key] = withRollout(t, rollout);
    report.push({ target: key, rollout: rollout ?? null });
  }
  const doc = await writeNextPointer(repo, { app: root.app, channel, previous: pointer.doc, targets, now, expiresIn: input.expiresIn, signers });
  return { channel: doc, targets: report };
}
