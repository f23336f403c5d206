// RawPatches built from known edit scripts, for the FERRYBD1 tests: the test says which old ranges
// and which new bytes make the new file, and gets the RawPatch bsdiff would describe it with and
// the bytes it must build. No matcher involved, so every entry shape (x = 0, y = 0, backward
// seeks, moves) is exactly the one asked for.

import type { RawPatch } from '../../core/delta/raw-patch.ts';

/** One step of the new file: old bytes [from, from + len) (each byte plus `delta(i)`), or new bytes. */
export type Step = { from: number; len: number; delta?: (i: number) => number } | { insert: Uint8Array };

/**
 * The RawPatch for `steps` over `old`: one control entry per step (an add step is x = len, y = 0;
 * an insert is x = 0, y = len), or with `merge`, an add followed by an insert in one entry. The
 * seek after each entry lands on the next add's start.
 */
export function rawPatchFromSteps(old: Uint8Array, steps: Step[], opts: { merge?: boolean } = {}): { raw: RawPatch; expected: Buffer } {
  const entries: { x: number; from: number; diff: number[]; extra: Uint8Array }[] = [];
  for (const s of steps) {
    if ('insert' in s) {
      const last = entries.at(-1);
      if (opts.merge && last && last.extra.length === 0 && last.x > 0) last.extra = s.insert;
      else entries.push({ x: 0, from: -1, diff: [], extra: s.insert });
    } else {
      const diff = Array.from({ length: s.len }, (_, i) => (s.delta ? s.delta(i) & 0xff : 0));
      entries.push({ x: s.len, from: s.from, diff, extra: new Uint8Array(0) });
    }
  }
  // The first add starts where the old position starts (0) unless an entry before it seeks there.
  if (entries[0] && entries[0].x > 0 && entries[0].from !== 0) entries.unshift({ x: 0, from: -1, diff: [], extra: new Uint8Array(0) });
  const control: number[] = [];
  const diffBytes: number[] = [];
  const extraParts: Uint8Array[] = [];
  const out: number[] = [];
  let oldPos = 0;
  for (const [i, e] of entries.entries()) {
    if (e.x > 0 && oldPos !== e.from) throw new Error(`edit script: entry ${i} starts at ${oldPos}, not ${e.from}`);
    for (let k = 0; k < e.x; k++) out.push((old[e.from + k]! + e.diff[k]!) & 0xff);
    out.push(...e.extra);
    diffBytes.push(...e.diff);
    extraParts.push(e.extra);
    const after = oldPos + e.x;
    const nextAdd = entries.slice(i + 1).find((n) => n.x > 0);
    const seek = nextAdd ? nextAdd.from - after : 0;
    control.push(e.x, e.extra.length, seek);
    oldPos = after + seek;
  }
  const expected = Buffer.from(out);
  return {
    raw: { oldSize: old.length, newSize: expected.length, control, diff: Uint8Array.from(diffBytes), extra: Buffer.concat(extraParts) },
    expected,
  };
}

/** A RawPatch that turns any `old` into any `next`: one entry adding the common length, then the rest as extra. */
export function rawPatchBetween(old: Uint8Array, next: Uint8Array): RawPatch {
  const x = Math.min(old.length, next.length);
  const diff = new Uint8Array(x);
  for (let i = 0; i < x; i++) diff[i] = (next[i]! - old[i]!) & 0xff;
  return { oldSize: old.length, newSize: next.length, control: [x, next.length - x, 0], diff, extra: next.subarray(x) };
}
