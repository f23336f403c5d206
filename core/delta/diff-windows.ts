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
