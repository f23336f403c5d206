// Fetching a plan's artifacts into cache/, from the sources in their preferred order, and the bare
// `download` that fills the cache ahead of an update. Bytes a bare download moves are kept in the
// store until the attempt that uses them takes them over, so history counts every byte fetched.

import { mkdir } from 'node:fs/promises';
import type { ArtifactRef } from '../trust/metadata.ts';
import { hasChunkPeers, type Source } from '../ports/source.ts';
import type { UpdateContext } from './context.ts';
import { fetchArtifact } from './fetch-artifact.ts';
import { withFullFallback } from './delta-fallback.ts';
import type { Plan } from './plan.ts';
import type { UpdateResolution } from './resolve.ts';

export interface FetchedPlan {
  /** sha256 → path in cache/ */
  paths: Map<string, string>;
  bytes: number;
  /** The first source that served bytes; null when every artifact was cached. */
  source: string | null;
}

/**
 * Where artifacts are fetched from, in order. Artifacts are checked by their signed hashes, so
 * any source may serve them whoever offered the metadata: LAN peers first, then offline sources
 * (USB, folders, bundles), the WAN last (ARCHITECTURE.md), each group in config order.
 */
function artifactSources(ctx: UpdateContext): Source[] {
  const rank = (s: Source) => (hasChunkPeers(s) ? 0 : s.offline ? 1 : 2);
  return [...ctx.deps.sources].sort((a, b) => rank(a) - rank(b));
}

export function planArtifacts(plan: Plan): ArtifactRef[] {
  return plan.kind === 'full' ? [plan.artifact] : plan.steps.map((s) => s.artifact);
}

/**
 * Fetches every artifact of `plan` into the cache. For an attempt (`forAttempt`), bytes an
 * earlier bare download moved for a cached artifact are counted here; a bare download leaves
 * them for the attempt to count.
 */
export async function fetchPlan(ctx: UpdateContext, plan: Plan, forAttempt: boolean): Promise<FetchedPlan> {
  await mkdir(ctx.layout.cache, { recursive: true });
  const paths = new Map<string, string>();
  let bytes = 0;
  let source: string | null = null;
  const refs = planArtifacts(plan);
  for (const ref of refs) {
    const got = await fetchArtifact(ref, artifactSources(ctx), ctx.layout.cache, ctx.deps.progress);
    for (const note of got.notes) ctx.log(note);
    if (!forAttempt && got.bytesMoved > 0) await ctx.store.putPrefetch(ref.sha256, { bytes: got.bytesMoved, source: got.source });
    paths.set(ref.sha256, got.path);
    bytes += got.bytesMoved;
    source ??= got.source;
  }
  // Taken over only once the whole plan is here: a plan that fails half way (a delta falling
  // back to the full artifact) leaves them for the attempt that does use them.
  if (forAttempt) {
    for (const ref of refs) {
      const earlier = await ctx.store.takePrefetch(ref.sha256);
      if (!earlier) continue;
      bytes += earlier.bytes;
      source ??= earlier.source;
    }
  }
  return { paths, bytes, source };
}

/**
 * `download`: checking → downloading → verifying, then idle again. No attempt is recorded; a
 * journal already in progress (a staged release) is left alone.
 */
export async function prefetch(ctx: UpdateContext, r: UpdateResolution): Promise<void> {
  const before = await ctx.store.journal();
  if (before.phase !== 'idle') return;
  let journal = await ctx.transition(before, { kind: 'download', phase: 'checking', from: r.current, to: r.target.candidate.version });
  journal = await ctx.advance(journal, 'downloading');
  try {
    await withFullFallback(r.plan, (plan) => fetchPlan(ctx, plan, false));
    await ctx.advance(journal, 'verifying');
  } finally {
    await ctx.clear();
  }
}
