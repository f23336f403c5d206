// Builds releases/<version> from downloaded, verified artifacts (ARCHITECTURE.md "Device home layout"):
// extract the full artifact or apply the delta steps in staging/, verify the whole tree against
// the signed file list, fsync it, and rename it into releases/ in one step. A release folder that
// exists is complete by construction (it only appears by that rename) and is never changed.
// A container release (its target has `container`) is checked as an image before that rename
// (core/image/verify-image.ts): a refusal leaves no releases/<version>, so nothing can switch to it.

import { mkdir, mkdtemp, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { FerryError, fromFsError } from '../errors.ts';
import { archiveCoder, extractArchive } from '../io/extract.ts';
import { applyDelta, baseHashes } from '../delta/apply-delta.ts';
import { verifyTree } from './verify-tree.ts';
import { NO_GRANTS, type ContainerGrants } from '../image/requests.ts';
import { fsyncDir, fsyncDirsUnder } from '../io/durable.ts';
import type { HomeLayout } from './layout.ts';
import { isLink, type TargetRelease } from '../trust/metadata.ts';
import type { Plan } from '../update/plan.ts';
import type { Patcher } from '../ports/patcher.ts';
import type { ProgressEvent, ProgressSink } from '../ports/progress.ts';

/**
 * The image check of a container release (core/image/verify-image.ts), loaded only for one: a
 * release that is a plain tree never loads the OCI code.
 */
async function verifyImage(...args: Parameters<typeof import('../image/verify-image.ts').verifyImage>): Promise<void> {
  const { verifyImage: verify } = await import('../image/verify-image.ts');
  await verify(...args);
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(() => true, () => false);
}

/**
 * Makes releases/<plan.to> from `plan`. `artifacts` maps each planned artifact's sha256 to its
 * verified cache file; `releases` holds the signed TargetRelease of every version the plan
 * touches. Returns false when the release was already installed and verified (nothing built).
 */
export async function stageRelease(input: {
  layout: HomeLayout;
  plan: Plan;
  releases: Map<string, TargetRelease>;
  artifacts: Map<string, string>;
  patcher: Patcher;
  /**
   * Hard-link unchanged files from the installed release (DeviceConfig.linkUnchanged). Later steps
   * of a chain always link from the step before: those trees are ours and thrown away.
   */
  linkUnchanged: boolean;
  /** Hears bytes of the new tree written: step 'stage' for a full artifact, 'patch' for deltas. */
  progress?: ProgressSink;
  /** What ferry.json container.allow grants an image (grantsOf); none when absent. */
  grants?: ContainerGrants;
}): Promise<boolean> {
  const { layout, plan } = input;
  const target = input.releases.get(plan.to);
  if (!target) throw new FerryError('ERR_NOT_FOUND', `no signed release ${plan.to} to stage`);
  const finalDir = layout.release(plan.to);
  const grants = input.grants ?? NO_GRANTS;
  if (await exists(finalDir)) {
    let intact = false;
    try {
      await verifyTree(finalDir, target.files);
      intact = true;
    } catch {
      // Damaged on disk (it was complete when renamed in): moved aside, rebuilt below.
      await rename(finalDir, join(layout.staging, `damaged-${plan.to}-${Date.now()}`));
    }
    if (intact) {
      // Installed before, perhaps under other grants: what it asks is checked against today's.
      if (target.container) await verifyImage(finalDir, target.container, grants);
      return false;
    }
  }
  const report = treeProgress(plan, input.releases, input.progress);
  await mkdir(layout.staging, { recursive: true });
  const work = await mkdtemp(join(layout.staging, `${plan.to}-`));
  try {
    const artifact = (sha: string) => {
      const p = input.artifacts.get(sha);
      if (!p) throw new FerryError('ERR_NOT_FOUND', `artifact ${sha.slice(0, 12)}… was not downloaded`);
      return p;
    };
    let built: string;
    if (plan.kind === 'full') {
      built = join(work, 'tree');
      await mkdir(built);
      await extractArchive(artifact(plan.artifact.sha256), built, new Map(target.files.map((f) => [f.path, f])), undefined, report.written, undefined, archiveCoder(plan.artifact.path));
    } else {
      let base = layout.release(plan.steps[0]!.from);
      built = base;
      for (const [i, step] of plan.steps.entries()) {
        const files = input.releases.get(step.to)?.files;
        if (!files) throw new FerryError('ERR_NOT_FOUND', `no signed file list for ${step.to}`);
        const out = join(work, `step-${i}`);
        await mkdir(out);
        // The base's signed list (verified when it was installed, or read for this plan): what slim
        // patch ops check their base files against (absent: they fail, and the full artifact is used).
        const baseList = input.releases.get(step.from)?.files;
        await applyDelta({ baseDir: base, ops: step.ops, targetFiles: files, artifact: artifact(step.artifact.sha256), outDir: out, workDir: join(work, `w${i}`), patcher: input.patcher, linkUnchanged: i > 0 || input.linkUnchanged, onFileWritten: report.written, ...(baseList ? { baseHashes: baseHashes(baseList) } : {}) });
        base = built = out;
      }
    }
    // Exactly the signed set, every byte and mode, was checked while it was written: extraction
    // admits only the signed paths at their signed sizes and hashes (links at their signed
    // targets, made last) and requires all of them; a delta has one op per signed entry and
    // hashes each output. No second pass is needed.
    if (target.container) await verifyImage(built, target.container, grants);
    // Every folder of the tree is fsynced before the rename. extractArchive did that already, after
    // its last write (site 'extract.dirs'), and nothing has written since: a full artifact's tree
    // is not walked and synced a second time. A delta's folders are synced here.
    if (plan.kind !== 'full') await fsyncDirsUnder(built, 'stage.tree');
    await mkdir(layout.releases, { recursive: true });
    await rename(built, finalDir);
    await fsyncDir(layout.releases, 'stage.releases-dir');
    report.finished();
    return true;
  } catch (err) {
    throw fromFsError(err, `staging ${plan.to}`);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/**
 * Progress over the bytes of every tree the plan builds (one per chain step): 'stage' with the
 * version for a full artifact, 'patch' with "from → to" for deltas. Starts at 0 when made.
 */
function treeProgress(plan: Plan, releases: Map<string, TargetRelease>, sink: ProgressSink | undefined): { written(bytes: number): void; finished(): void } {
  const trees = plan.kind === 'full' ? [plan.to] : plan.steps.map((s) => s.to);
  const bytes = trees.reduce((sum, v) => sum + (releases.get(v)?.files.reduce((n, f) => n + (isLink(f) ? 0 : f.size), 0) ?? 0), 0);
  const total = Math.max(1, bytes); // an empty tree still has a start and an end
  const event = (done: number): ProgressEvent => plan.kind === 'full'
    ? { step: 'stage', label: plan.to, source: null, done, total }
    : { step: 'patch', label: `${plan.steps[0]!.from} → ${plan.to}`, source: null, done, total };
  let done = 0;
  sink?.(event(0));
  return {
    written(n) {
      done += n;
      if (done < total) sink?.(event(done));
    },
    finished: () => sink?.(event(total)),
  };
}
