// Which of a changed file's candidate entries the publisher encodes at its own quality
// (core/delta/make-delta.ts). Every candidate — bsdiff's patch, through the x86-64 filter, in fine
// windows, the whole file — is first compressed at ESTIMATE_QUALITY only for its size, and only
// those within ESTIMATE_MARGIN of the smallest estimate are then encoded at the publisher's quality
// (quality 11 costs ~2-3 s per MB of binary; quality 7 under a tenth of that).
// Pure functions; the two numbers are measured on real pairs (below).
//
// An estimate ranks candidates as quality 11 would only as far as every candidate shrinks by the
// same factor from one to the other; a candidate above the best estimate can still win at 11 when
// it shrinks more. The margin must cover that. Measured (sizes at quality 7 and 11; whole file and
// streams in the windows the publisher uses), how far above the best estimate a candidate could
// have been and still tied at 11 — the best's factor over its own, the largest per pair:
//   esbuild 0.24.0 -> 0.24.2: x86 best (304,742 -> 248,107); plain 0.75% (315,344 -> 254,844)
//   esbuild 0.20.0 -> 0.24.2: fine x86 best (3,432,311 -> 3,105,012); whole 1.15% (3,840,302 -> 3,434,525)
//   lightningcss 1.29.2 -> 1.29.3: plain best (423,368 -> 363,524); x86 2.25% (462,084 -> 388,038)
//   biome 1.9.0 -> 2.2.4: whole best (11,742,696 -> 9,917,199); every other shrinks less, 0%
// At quality 5 the spread is wider (3.7% on lightningcss, 13% between a close pair's patch and its
// whole file) and biome's x86 patch (+3.7% there, +5.5% at 7) would have been encoded at 11 too;
// quality 9 costs 3-5x quality 7 (21 s against 3.8 for biome's whole file) for a spread not much narrower.
// On every pair the best estimate was also the best at 11.

/** The fast quality candidates are ranked at, when the publisher's own is higher. */
export const ESTIMATE_QUALITY = 7;

/** How far above the smallest estimate (a fraction of it) a candidate is still encoded for real: over twice the 2.25% measured. */
export const ESTIMATE_MARGIN = 0.05;

/** The quality to rank candidates at for a publisher compressing at `quality`, or undefined: an estimate would cost as much as the entry, so every candidate is encoded directly. */
export function estimateQuality(quality: number): number | undefined {
  return quality > ESTIMATE_QUALITY ? ESTIMATE_QUALITY : undefined;
}

/** Indices, in order, of the `sizes` within `margin` (a fraction) of the smallest; none for none. */
export function pickCandidates(sizes: readonly number[], margin: number): number[] {
  const best = Math.min(...sizes);
  return sizes.flatMap((s, i) => (s <= best * (1 + margin) ? [i] : []));
}
