// What is installed on this device: the release folders, the signed manifest kept beside each
// (written when it was staged, after full verification) with the separate file list it pins for
// this device's target, and which release `current` points at.
// The `current` link is the truth about what runs (SECURITY.md row 20).

import { readdir, readFile, rm, stat } from 'node:fs/promises';
import * as semver from '../semver.ts';
import { FerryError, fromFsError } from '../errors.ts';
import type { HomeLayout } from '../device/layout.ts';
import { switchCurrent } from '../device/switch.ts';
import { keptManifestJson } from '../trust/manifest-envelope.ts';
import { manifestInfo, parseSignedManifest, resolveTarget, type ManifestDoc, type TargetKey, type TargetRelease, type TreeEntry } from '../trust/metadata.ts';
import type { UpdateContext } from './context.ts';

export async function exists(path: string): Promise<boolean> {
  return stat(path).then(() => true, () => false);
}

/** The versions in releases/, oldest first. */
export async function installedVersions(layout: HomeLayout): Promise<string[]> {
  const names = await readdir(layout.releases).catch(() => [] as string[]);
  return names.filter((n) => semver.valid(n) === n).sort(semver.compare);
}

/**
 * The device's own copy of a release's signed manifest, each target resolved whose list is inline
 * or kept beside it (checked against its pin again); a target whose list this device never kept
 * (another device's target) is left out.
 */
export async function localManifest(layout: HomeLayout, version: string): Promise<ManifestDoc> {
  const bytes = await readFile(layout.manifest(version)).catch((err) => { throw fromFsError(err, `reading the manifest of ${version}`); });
  const signed = parseSignedManifest(keptManifestJson(bytes, `manifest ${version}`));
  const targets: Record<TargetKey, TargetRelease> = {};
  for (const [key, t] of Object.entries(signed.targets)) {
    const list = t.kind === 'list' ? await keptList(layout, version, key) : undefined;
    if (t.kind === 'inline' || list) targets[key] = resolveTarget(t, list);
  }
  return { ...manifestInfo(signed), targets };
}

/** The kept list of `version` for `target`, or undefined when this device keeps none. */
export async function keptList(layout: HomeLayout, version: string, target: TargetKey): Promise<Uint8Array | undefined> {
  return readFile(layout.keptFileList(version, target)).catch((err) => {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw fromFsError(err, `reading the file list of ${version}`);
  });
}

/** The signed file list of an installed release, to verify its tree against. */
export async function localFiles(ctx: UpdateContext, version: string): Promise<TreeEntry[]> {
  const release = (await localManifest(ctx.layout, version)).targets[ctx.target];
  if (!release) throw new FerryError('ERR_WRONG_TARGET', `the manifest of ${version} has no ${ctx.target} release (or this device did not keep its file list, manifests/${version}.files-${ctx.target}.json)`);
  return release.files;
}

/** Points `current` at `version`; null: at nothing (the device had nothing installed). */
export async function switchTo(layout: HomeLayout, version: string | null): Promise<void> {
  if (version) await switchCurrent(layout, version);
  else await rm(layout.current, { force: true });
}
