// What to update to, and how: reads the device's trust state, discovers the verified offers of its
// channels, applies each pointer's phased rollout (core/policy/rollout.ts), chooses a target by
// policy, resolves the chosen release's file list (inline; kept; rebuilt from the installed
// release's list and a pack delta's edit; or read from the source, each checked against the
// signed pin: core/trust/file-list.ts), fetches the signed manifests a delta chain goes through,
// and plans the download. Every source problem that looks like an attack is recorded as a refused
// attempt (SECURITY.md rows 3, 5, 10). Nothing here touches the journal or the installed tree.

import { readdir, readFile } from 'node:fs/promises';
import * as semver from '../semver.ts';
import { FerryError, fromFsError } from '../errors.ts';
import { readCurrent } from '../device/switch.ts';
import { verifyTrustedRoot, type RootDoc } from '../trust/root.ts';
import { effectiveNow, readMarks, writeMarks, raiseChannelMark, raiseSignedFloor, raiseTimeFloor, type TrustMarks } from '../trust/trust-marks.ts';
import { discover, noSourceAnswered, type Discovery, type Offer } from '../trust/discover.ts';
import { readFileList, readManifest, readSignedManifest, verifyManifest, type VerifiedSignedManifest } from '../trust/trusted-metadata.ts';
import { matchesPin, rebuildFileList } from '../trust/file-list.ts';
import { sha256 } from '../io/hash.ts';
import { parseEnvelope } from '../trust/dsse.ts';
import { MANIFEST_MAX_BYTES, manifestInfo, resolveTarget, type ChannelTarget, type ManifestDoc, type SignedManifest, type SignedTarget, type TargetRelease } from '../trust/metadata.ts';
import { channelsFor, decideTarget, gaveUpAfter, type Candidate } from '../policy/policy.ts';
import { metadataSources, type Source } from '../ports/source.ts';
import type { HomeLayout } from '../device/layout.ts';
import type { UpdateInfo, UpdatePackage } from '../spec.ts';
import type { UpdateContext } from './context.ts';
import { exists, keptList, localManifest } from './installed.ts';
import { recordRefusal, REFUSALS } from './history.ts';
import { planUpdate, type Plan } from './plan.ts';
import { planArtifacts } from './download.ts';
import { keepPointers, keepRootChain } from './kept-metadata.ts';
import { decideRequestedTarget } from '../policy/requested-version.ts';
import { decideRollout, offerUnderRollout, type PointerOffer } from '../policy/rollout.ts';

/**
 * The release chosen, with its verified manifest (this device's target resolved, the only one in
 * `manifest.targets`) and the source that offered it.
 */
export interface Target {
  candidate: Candidate;
  manifest: ManifestDoc;
  manifestBytes: Uint8Array;
  /** The bytes of this device's separate file list (matched the pin), to keep beside the manifest; absent for an inline list. */
  listBytes?: Uint8Array;
  source: Source;
}

/** An offered version's verified manifest before the choice: its lists are read only for the chosen one. */
interface Offered {
  signed: SignedManifest;
  manifestBytes: Uint8Array;
  source: Source;
}

export interface UpdateResolution {
  kind: 'update';
  current: string | null;
  target: Target;
  /** The verified release of every version the plan may build from or through. */
  releases: Map<string, TargetRelease>;
  plan: Plan;
}

export type Resolution = { kind: 'up-to-date'; current: string | null } | UpdateResolution;

/** How many of the target's deltas may send us reading an intermediate manifest. */
const MAX_INTERMEDIATE = 8;

/** `requested`: a version the caller chose among the offers (DownloadOptions.version), else the policy chooses. */
export async function resolve(ctx: UpdateContext, requested?: string): Promise<Resolution> {
  const trust = await readTrustState(ctx);
  const current = await readCurrent(ctx.layout);
  const found = await discover({
    sources: await metadataSources(ctx.deps.sources),
    trusted: trust.root,
    marks: trust.marks,
    channels: channelsFor(ctx.config.policy.channel),
    clock: ctx.now,
    offlineGraceDays: ctx.config.offlineGraceDays,
  });
  if (found.root.app !== ctx.config.app) throw new FerryError('ERR_WRONG_TARGET', `the repository is for app "${found.root.app}", this device runs "${ctx.config.app}"`);
  await keepRootChain(ctx.layout, trust.root, trust.rootBytes, found.rootChain);

  // Raised as far as this check got, and written even when it fails part way.
  const marks = { value: raiseTimeFloor(trust.marks, ctx.now) };
  for (const o of found.offers) marks.value = raiseChannelMark(marks.value, o.doc, o.bytes, found.root);
  let chosen: Target | undefined;
  try {
    await keepPointers(ctx.layout, found.offers);
    const mine = offersForThisDevice(ctx, found);
    if (mine.length === 0) return { kind: 'up-to-date', current };
    chosen = await chooseTarget(ctx, found.root, mine, current, marks, requested);
    if (!chosen) return { kind: 'up-to-date', current };
    const releases = await knownReleases(ctx, found.root, chosen, current);
    const cached = new Set(await readdir(ctx.layout.cache).catch(() => [] as string[]));
    const plan = planUpdate({ installed: releases.has(current ?? '') ? current : null, target: chosen.manifest.version, releases, cached });
    return { kind: 'update', current, target: chosen, releases, plan };
  } catch (err) {
    const e = fromFsError(err, 'checking for updates');
    if (REFUSALS.has(e.code)) await recordRefusal(ctx, chosen?.candidate.version ?? null, found.offers[0]?.source.name ?? found.problems[0]?.source ?? null, e);
    throw e;
  } finally {
    await writeMarks(ctx.layout.marks, marks.value);
  }
}

/**
 * The pinned root and the trust marks. A damaged one stops the check before any source is read:
 * it is recorded like any refusal, and the file is left as it is (never rewritten as empty).
 */
async function readTrustState(ctx: UpdateContext): Promise<{ root: RootDoc; rootBytes: Uint8Array; marks: TrustMarks }> {
  try {
    const bytes = await readFile(ctx.layout.trustRoot).catch((err) => { throw fromFsError(err, `reading ${ctx.layout.trustRoot}`); });
    const root = verifyTrustedRoot(bytes, ctx.layout.trustRoot);
    return { root, rootBytes: bytes, marks: await readMarks(ctx.layout.marks) };
  } catch (err) {
    const e = fromFsError(err, 'reading the trust state');
    if (REFUSALS.has(e.code)) await recordRefusal(ctx, null, null, e);
    throw e;
  }
}

/** An offer with this device's entry in its channel pointer. */
interface MyOffer {
  offer: Offer;
  pointer: ChannelTarget;
}

/**
 * The offers that name a release for this device. None at all: ERR_NO_SOURCE when no source
 * answered, else the first refusal among the sources' problems (else the first problem) is
 * thrown, or, with no problem, nothing is offered.
 * Offers only for other targets: ERR_WRONG_TARGET.
 */
function offersForThisDevice(ctx: UpdateContext, found: Discovery): MyOffer[] {
  if (found.offers.length === 0) {
    const silence = noSourceAnswered(found);
    if (silence) throw silence;
    const problem = found.problems.find((p) => REFUSALS.has(p.code)) ?? found.problems[0];
    if (problem) throw new FerryError(problem.code, problem.message);
    return [];
  }
  const mine = found.offers.flatMap((offer) => {
    const pointer = offer.doc.targets[ctx.target];
    return pointer ? [{ offer, pointer }] : [];
  });
  if (mine.length === 0) {
    const offered = [...new Set(found.offers.flatMap((o) => Object.keys(o.doc.targets)))].join(', ') || 'nothing';
    throw new FerryError('ERR_WRONG_TARGET', `the sources offer ${offered}, not ${ctx.target}`);
  }
  return mine;
}

/**
 * Reads the manifest each offer points at (once per version), raising the signed time floor with
 * each release date (bounded: SECURITY.md row 5); a pointer under a rollout this device is outside
 * of offers its `previous` instead, or nothing (offerUnderRollout). Then lets the policy choose,
 * passing over the releases it gave up on or that are held; undefined when it chooses to stay.
 */
async function chooseTarget(ctx: UpdateContext, root: RootDoc, mine: MyOffer[], current: string | null, marks: { value: TrustMarks }, requested?: string): Promise<Target | undefined> {
  // By version: the first offer of a version is the source its manifest (and target) comes from.
  const manifests = new Map<string, Offered>();
  // `optional`: undefined, not ERR_NOT_FOUND, when the source lacks the manifest (bytes that are
  // there are verified all the same).
  const manifestOf = async (source: Source, pinned: PointerOffer, optional = false): Promise<Offered | undefined> => {
    let m = manifests.get(pinned.version);
    if (!m) {
      const got = await pinnedManifest(ctx.layout, source, root, pinned);
      if (!got && optional) return undefined;
      if (!got) throw new FerryError('ERR_NOT_FOUND', `${source.name} names ${pinned.version} but has no manifest for it`);
      if (!got.signed.targets[ctx.target]) throw new FerryError('ERR_WRONG_TARGET', `${pinned.version}'s manifest has no ${ctx.target} release`);
      m = { signed: got.signed, manifestBytes: got.bytes, source };
      manifests.set(pinned.version, m);
    }
    marks.value = raiseSignedFloor(marks.value, m.signed.releaseDate, ctx.now, root);
    return m;
  };
  // A rollout's steps are judged at the device's clock, never below its time floor (SECURITY.md row 5).
  const rolloutNow = effectiveNow(marks.value, ctx.now, root);
  const candidates: Candidate[] = [];
  for (const { offer, pointer } of mine) {
    let m = (await manifestOf(offer.source, pointer))!;
    const decision = decideRollout({ deviceId: ctx.deviceId, rollout: pointer.rollout, now: rolloutNow, security: m.signed.securityFix || offer.channel === 'security' });
    const offered = offerUnderRollout({ pointer, decision, current });
    // Held back by a rollout is no refusal (nothing is wrong with the source): only a note.
    if (!decision.take) ctx.log(`${offer.channel} ${pointer.version} is rolling out and not to this device yet (${decision.why}); ${offered ? `${offered.version}, the version before it, is offered instead` : 'staying on what is installed'}`);
    if (!offered) continue;
    if (offered.version !== pointer.version) {
      // A bundle carries the rolled version's manifest only: without the one before it, stay.
      const previous = await manifestOf(offer.source, offered, true);
      if (!previous) {
        ctx.log(`${offer.source.name} has no manifest for ${offered.version}: nothing from ${offer.channel} for this device now`);
        continue;
      }
      m = previous;
    }
    candidates.push({ channel: offer.channel, version: offered.version, sequence: offer.doc.sequence, mandatory: m.signed.mandatory, securityFix: m.signed.securityFix });
  }
  // Given up on (ERR_GAVE_UP) or held after a manual rollback: a security fix below it must still reach the device.
  const passOver = new Set<string>();
  for (const version of manifests.keys()) {
    if (gaveUpAfter(await ctx.store.failures(version)) || (await ctx.store.isHeld(version))) passOver.add(version);
  }
  // A version a person asked for by name is judged on its own (download({ version })).
  const decision = requested === undefined
    ? decideTarget({ current, candidates, policy: ctx.config.policy, floor: marks.value.securityFloor, passOver })
    : decideRequestedTarget({ version: requested, current, candidates, policy: ctx.config.policy, floor: marks.value.securityFloor });
  if (decision.kind === 'downgrade-refused') throw new FerryError('ERR_DOWNGRADE', decision.why);
  if (decision.kind === 'up-to-date') return undefined;
  const m = manifests.get(decision.candidate.version);
  if (!m) throw new FerryError('ERR_INTERNAL', `internal: the policy chose ${decision.candidate.version}, which no offer names`);
  // Only the chosen release's list is read: an offer passed over (or held back by a rollout) costs no list.
  const { release, listBytes } = await deviceRelease(ctx, m.source, m.signed.version, m.signed.targets[ctx.target]!);
  return { candidate: decision.candidate, manifest: { ...manifestInfo(m.signed), targets: { [ctx.target]: release } }, manifestBytes: m.manifestBytes, ...(listBytes ? { listBytes } : {}), source: m.source };
}

/**
 * This device's release of `version` with its file list known (issue 14 item 5): inline; else the
 * list this device kept for that version; else rebuilt from an installed base's list and a pack
 * delta's edit; else read from `source`. Each separate list is checked against the signed pin
 * (SECURITY.md row 9); a rebuilt one that does not match is dropped, never used, and the source's
 * is read instead. A source's list that does not match is ERR_SIZE / ERR_HASH_MISMATCH.
 */
async function deviceRelease(ctx: UpdateContext, source: Source, version: string, t: SignedTarget): Promise<{ release: TargetRelease; listBytes?: Uint8Array }> {
  if (t.kind === 'inline') return { release: t.release };
  const own = await keptList(ctx.layout, version, ctx.target);
  if (own && matchesPin(own, t.fileList)) return { release: resolveTarget(t, own), listBytes: own };
  for (const d of t.deltas) {
    if (!d.listEdit || !(await exists(ctx.layout.manifest(d.from)))) continue;
    const base = (await localManifest(ctx.layout, d.from).catch(() => undefined))?.targets[ctx.target];
    const rebuilt = base ? rebuildFileList(base.files, d.listEdit, t.fileList) : null;
    if (rebuilt) return { release: resolveTarget(t, rebuilt), listBytes: rebuilt };
    if (base) ctx.log(`the file list of ${version} rebuilt from ${d.from}'s does not match its signed pin; reading ${t.fileList.path} instead`);
  }
  const bytes = await readFileList(source, t.fileList);
  return { release: resolveTarget(t, bytes), listBytes: bytes };
}

/**
 * The manifest a pointer pins: the device's own copy (manifests/<v>.json, kept for each installed
 * version) when it holds exactly the pinned bytes, so an idle check asks no source for it (issue 13
 * item 14); else the source's. The copy is verified as a source's bytes would be (same pin, same
 * root), and equal bytes give equal verdicts, so which one is used changes no decision.
 */
async function pinnedManifest(layout: HomeLayout, source: Source, root: RootDoc, pointer: PointerOffer): Promise<VerifiedSignedManifest | undefined> {
  const own = await readFile(layout.manifest(pointer.version)).catch(() => undefined);
  if (own && own.length === pointer.manifest.size && sha256(own) === pointer.manifest.sha256) return verifyManifest(own, root, pointer.version, pointer.manifest);
  return readSignedManifest(source, root, pointer.version, pointer.manifest);
}

/**
 * The verified releases a plan may use: the target's, the installed one's (from the device's own
 * manifest copy), and the intermediate versions the target has deltas from, read from the source
 * that offered the target (one it lacks is simply not a route).
 */
async function knownReleases(ctx: UpdateContext, root: RootDoc, chosen: Target, current: string | null): Promise<Map<string, TargetRelease>> {
  const target = chosen.manifest.targets[ctx.target];
  if (!target) throw new FerryError('ERR_INTERNAL', `internal: the chosen manifest ${chosen.manifest.version} has no ${ctx.target} release`);
  const releases = new Map([[chosen.manifest.version, target]]);
  if (!current || !(await exists(ctx.layout.manifest(current)))) return releases;
  const installed = (await localManifest(ctx.layout, current)).targets[ctx.target];
  if (installed) releases.set(current, installed);
  for (const d of target.deltas.slice(0, MAX_INTERMEDIATE)) {
    if (d.from === current || !semver.gt(d.from, current) || releases.has(d.from)) continue;
    const mid = await readManifest(chosen.source, root, d.from, null, ctx.target).catch(() => undefined);
    const midRelease = mid?.doc.targets[ctx.target];
    if (midRelease) releases.set(d.from, midRelease);
  }
  return releases;
}

/** Where a file of a source is, for people: "<source>/<path>" (a URL for an origin). */
function locate(source: Source, path: string): string {
  return `${source.name}/${path}`;
}

/** What `checkUpdate` reports. */
export function updateInfo(r: Resolution, channel: UpdateInfo['channel']): UpdateInfo {
  if (r.kind === 'up-to-date') {
    return { currentVersion: r.current, latestVersion: r.current, updateAvailable: false, releaseNotes: '', releaseDate: null, mandatory: false, securityFix: false, channel, downloadUrl: null, downloadSize: null, checksum: null, signature: null };
  }
  const t = r.target;
  return {
    currentVersion: r.current,
    latestVersion: t.candidate.version,
    updateAvailable: true,
    releaseNotes: t.manifest.releaseNotes,
    releaseDate: t.manifest.releaseDate,
    mandatory: t.manifest.mandatory,
    securityFix: t.manifest.securityFix,
    channel: t.candidate.channel,
    downloadUrl: planArtifacts(r.plan).map((a) => locate(t.source, a.path)).join(' + '),
    downloadSize: r.plan.bytes,
    // Both from the manifest verified above: the hashes the download is checked against, and the
    // release-key signatures that vouch for them.
    checksum: planArtifacts(r.plan).map((a) => a.sha256).join(' + '),
    signature: parseEnvelope(t.manifestBytes, MANIFEST_MAX_BYTES, 'manifest').signatures.map(({ keyid, sig }) => ({ keyid, sig })),
  };
}

/** What `download` reports: the first artifact of the plan, the signed target it is for, and the signed manifest. */
export function packageOf(r: UpdateResolution, device: { platform: string; arch: string }): UpdatePackage {
  const first = r.plan.kind === 'full' ? r.plan.artifact : r.plan.steps[0]?.artifact;
  if (!first) throw new FerryError('ERR_INTERNAL', `internal: a ${r.plan.kind} plan with no steps`);
  return {
    version: r.target.candidate.version,
    // The device's own target: the manifest was chosen because it signs a release under that key.
    platform: device.platform,
    arch: device.arch,
    kind: r.plan.kind,
    downloadUrl: locate(r.target.source, first.path),
    size: r.plan.bytes,
    checksum: first.sha256,
    signature: parseEnvelope(r.target.manifestBytes, MANIFEST_MAX_BYTES, 'manifest'),
  };
}
