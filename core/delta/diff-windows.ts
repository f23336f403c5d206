// How the publisher diffs a large file in bounded memory (issue 14 item 6; ARCHITECTURE.md
// "Artifacts and deltas"): bsdiff's suffix sort needs about 17 bytes per byte of the old file, so
// above a window size the new file is cut into windows and each is diffed against a slice of the
// old file at the same relative position, widened by a margin on each side (code that moved a
// little still finds its match). The windows' control entries are then joined into one RawPatch
// for the whole file. Pure functions: the plan and the join; plugins/bsdiff runs bsdiff per window.

/** One window: new bytes [newStart, newEnd) are diffed against old bytes [oldStart, oldEnd). */
export interface DiffWindow {
  newStart: number;
  newEnd: number;
  oldStart: number;
  oldEnd: number;
}

export interface WindowOptions {
  /** Largest new window and (without margins) old slice, in bytes. */
  window: number;
  /** Old bytes added on each side of a slice's proportional position. */
  margin: number;
}

/**
 * Small windows, for a second try on a far pair (core/delta/make-delta.ts): on a pair that changed
 * a lot, bsdiff's greedy matcher takes spurious matches from anywhere in a large old slice, and
 * matching each 64 KiB of the new file only near its proportional place in the old one gave a
 * smaller patch. esbuild 0.20.0 -> 0.24.2 (x86-filtered, quality 11): 3,221,830 bytes with 4 MiB
 * windows ± 1 MiB, 3,148,263 with 256 KiB ± 256 KiB, 3,124,273 with 128 KiB ± 128 KiB, 3,121,014
 * with 64 KiB ± 64 KiB (and the diff took 12 s instead of 20). On a close pair the large windows
 * win (esbuild 0.24.0 -> 0.24.2: 248,353 against 250,033 at 256 KiB, 256,519 at 128 KiB), so the
 * publisher makes both and keeps the smaller.
 */
export const FINE_DIFF_WINDOWS: WindowOptions = { window: 64 * 1024, margin: 64 * 1024 };

/**
 * Windows covering the new file in order, each at most `window` new bytes, each old slice at most
 * `window` + 2 × `margin` bytes. Files that both fit in one window get one window
 * spanning both whole files (plain bsdiff). An empty new file needs no window.
 */
export function planDiffWindows(oldSize: number, newSize: number, opts: WindowOptions): DiffWindow[] {
  if (!(opts.window >= 1) || !(opts.margin >= 0)) throw new RangeError(`bad window options ${JSON.stringify(opts)}`);
  if (newSize === 0) return [];
  // As many windows as the larger file needs, so neither a new window nor an old slice (before
  // its margins) exceeds the window size.
  const count = Math.max(Math.ceil(newSize / opts.window), Math.ceil(oldSize / opts.window));
  const windows: DiffWindow[] = [];
  for (let i = 0; i < count; i++) {
    // Window i covers the i-th count-th of each file: its new bytes, and its old slice plus margins.
    const newStart = Math.floor((newSize * i) / count);
    const newEnd = Math.floor((newSize * (i + 1)) / count);
    if (newEnd === newStart) continue; // more old windows than new bytes: nothing to build here
    windows.push({
      newStart,
      newEnd,
      oldStart: Math.max(0, Math.floor((oldSize * i) / count) - opts.margin),
      oldEnd: Math.min(oldSize, Math.floor((oldSize * (i + 1)) / count) + opts.margin),
    });
  }
  return windows;
}

/** Where the old position ends after applying `control` from 0 (sum of every x + z). */
export function controlOldEnd(control: readonly number[]): number {
  let pos = 0;
  for (let i = 0; i < control.length; i += 3) pos += control[i]! + control[i + 2]!;
  return pos;
}

/**
 * Appends a window's control entries (relative to its old slice, starting at the slice's first
 * byte) to `joined`, whose entries so far leave the old position at `oldPos`. The seek of the
 * last entry already in `joined` is corrected so the old position moves to the slice's start
 * (or, with nothing joined yet, an entry that only seeks is added). Returns the old position
 * after the appended entries.
 */
export function appendWindowControl(joined: number[], oldPos: number, window: DiffWindow, control: readonly number[]): number {
  const seek = window.oldStart - oldPos;
  if (seek !== 0) {
    if (joined.length > 0) joined[joined.length - 1]! += seek;
    else joined.push(0, 0, seek);
  }
  for (const v of control) joined.push(v);
  return window.oldStart + controlOldEnd(control);
}
