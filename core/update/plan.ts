// How to build a target release on this device, chosen by bytes to download: the full artifact,
// one delta from the installed version, or a chain of deltas through intermediate versions. A pure
// function over verified manifests: the code that downloads and patches only carries the plan out,
// and falls back to `fallback` (the full artifact) if any delta fails.

import { FerryError } from '../errors.ts';
import type { ArtifactRef, DeltaOp, TargetRelease } from '../trust/metadata.ts';

export interface PlanStep {
  from: string;
  to: string;
  artifact: ArtifactRef;
  ops: DeltaOp[];
}

export type Plan =
  | { kind: 'full'; to: string; artifact: ArtifactRef; bytes: number }
  | { kind: 'delta' | 'chain'; to: string; steps: PlanStep[]; bytes: number; fallback: ArtifactRef };

export const DEFAULT_MAX_HOPS = 4;

/** Best way found so far to reach a version with a given number of hops. */
interface Route {
  bytes: number;
  steps: PlanStep[];
}

/**
 * Chooses how to build `target` by fewest bytes to download: the full artifact, one delta from
 * the installed version, or a chain installed -> A -> ... -> target where each hop is a delta
 * listed in the hop's destination release (releases.get(to).deltas with from === previous).
 * `releases` holds the verified TargetRelease of every version the device knows. Artifacts whose
 * sha256 is in `cached` cost 0 bytes (already downloaded and verified). Ties prefer full over delta
 * over chain, and shorter chains over longer ones: fewer moving parts. A chain has at most
 * `maxHops` hops. No installed version, installed === target, or no path of deltas: 'full'.
 * Throws ERR_NOT_FOUND if `target` is not in releases.
 */
export function planUpdate(input: { installed: string | null; target: string; releases: Map<string, TargetRelease>; cached?: ReadonlySet<string>; maxHops?: number }): Plan {
  const { installed, target, releases } = input;
  const cached = input.cached ?? new Set<string>();
  const maxHops = input.maxHops ?? DEFAULT_MAX_HOPS;
  if (!Number.isSafeInteger(maxHops) || maxHops < 0) throw new FerryError('ERR_USAGE', `maxHops must be an integer >= 0 (got ${maxHops})`);
  const targetRelease = releases.get(target);
  if (targetRelease === undefined) throw new FerryError('ERR_NOT_FOUND', `no verified release ${target} to plan an update to`);

  const cost = (artifact: ArtifactRef): number => (cached.has(artifact.sha256) ? 0 : artifact.size);
  const full: Plan = { kind: 'full', to: target, artifact: targetRelease.full, bytes: cost(targetRelease.full) };
  // Reinstalling the same version is a repair: rebuild it whole rather than patch a tree we distrust.
  if (installed === null || installed === target) return full;

  const route = cheapestDeltaRoute(installed, target, releases, cost, maxHops);
  // `<=`: at equal bytes the full artifact wins, it has no base files that can be wrong.
  if (route === undefined || full.bytes <= route.bytes) return full;
  return { kind: route.steps.length === 1 ? 'delta' : 'chain', to: target, steps: route.steps, bytes: route.bytes, fallback: targetRelease.full };
}

/**
 * The cheapest path of at most `maxHops` deltas from `installed` to `target`, or undefined.
 *
 * The graph: one node per version, one edge `d.from -> v` for every delta d listed in release v,
 * weighted by the bytes of d's artifact (0 when cached). Plain Dijkstra would find the cheapest
 * path regardless of length, and a cheap long path could hide a dearer one within the hop bound,
 * so this is a breadth-first search by hop count that carries costs (hop-bounded Bellman-Ford):
 * layer k holds, for each version, the cheapest route reaching it in exactly k hops, built only
 * from layer k - 1. The answer is the cheapest route to `target` over all layers, the earliest
 * layer (fewest hops) winning ties. Such a route never repeats a version: dropping the loop
 * would give one no dearer with fewer hops. The graph is a handful of versions, so
 * O(maxHops x deltas) is nothing.
 */
function cheapestDeltaRoute(
  installed: string,
  target: string,
  releases: Map<string, TargetRelease>,
  cost: (artifact: ArtifactRef) => number,
  maxHops: number,
): Route | undefined {
  let layer = new Map<string, Route>([[installed, { bytes: 0, steps: [] }]]);
  let best: Route | undefined;
  for (let hop = 1; hop <= maxHops && layer.size > 0; hop++) {
    const next = new Map<string, Route>();
    for (const [to, release] of releases) {
      // A route that comes back to the installed version only adds bytes.
      if (to === installed) continue;
      for (const delta of release.deltas) {
        const prev = layer.get(delta.from);
        // Routes end at the target: continuing past it and coming back cannot be cheaper.
        if (prev === undefined || delta.from === target) continue;
        const bytes = prev.bytes + cost(delta.artifact);
        const known = next.get(to);
        // Strictly cheaper only, so the first delta listed wins a tie: the plan is deterministic.
        if (known === undefined || bytes < known.bytes) {
          next.set(to, { bytes, steps: [...prev.steps, { from: delta.from, to, artifact: delta.artifact, ops: delta.ops }] });
        }
      }
    }
    const reached = next.get(target);
    if (reached !== undefined && (best === undefined || reached.bytes < best.bytes)) best = reached;
    layer = next;
  }
  return best;
}
