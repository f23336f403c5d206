// The control entries of a patch, decoded for replay (core/delta/patch-apply.ts) one group of
// CONTROL_GROUP entries at a time into (x, y, seek) triples, in either layout FERRYBD1 has
// (core/delta/patch-format.ts): control encoding 1, each entry's three varints in turn, or 2, the
// group's x column, y column and zigzag(z − y) column. The columns mean a group is decoded before
// its first entry is checked, so a group is all the device holds ahead: 16,384 triples, 384 KiB.
// Nothing here judges the numbers; replay checks each entry before it writes (SECURITY.md row 17).

import { FerryError } from '../errors.ts';
import { CONTROL_COLUMNS, CONTROL_GROUP, MAX_VARINT_BYTES, readVarint, unzigzag, VARINT_INCOMPLETE, VARINT_OVERLONG, type ControlEncoding } from './patch-format.ts';

/** Where the control bytes come from: decoded bytes `buf` from `pos` on, and a way to get more. */
export interface ControlSource {
  buf: Buffer;
  pos: number;
  /** Makes at least `n` unused bytes available when the stream has them; false if it ends first. */
  atLeast(n: number): Promise<boolean>;
}

export class ControlGroups {
  /**
   * x, y and the seek of the current group's entries: entry `first + i` at 3i, 3i + 1, 3i + 2.
   * Sized to the patch's entries when it has fewer than a group (most patches of a delta are small).
   */
  readonly triples: Float64Array;
  private readonly value = new Float64Array(1);

  constructor(private readonly src: ControlSource, private readonly encoding: ControlEncoding, private readonly entries: number) {
    this.triples = new Float64Array(3 * Math.min(CONTROL_GROUP, entries));
  }

  /**
   * Decodes the group that starts at entry `first` (a multiple of CONTROL_GROUP below `entries`)
   * into `triples`; returns how many entries it holds. ERR_PATCH when the stream ends inside it or
   * holds a varint over MAX_VARINT_BYTES.
   */
  async read(first: number): Promise<number> {
    const count = Math.min(CONTROL_GROUP, this.entries - first);
    const t = this.triples;
    if (this.encoding === CONTROL_COLUMNS) {
      for (let k = 0; k < 3; k++) {
        for (let i = 0; i < count; i++) {
          const v = this.varint(first + i);
          t[3 * i + k] = typeof v === 'number' ? v : await v;
        }
      }
      for (let i = 0; i < count; i++) t[3 * i + 2] = unzigzag(t[3 * i + 2]!) + t[3 * i + 1]!;
    } else {
      for (let i = 0; i < count; i++) {
        for (let k = 0; k < 3; k++) {
          const v = this.varint(first + i);
          t[3 * i + k] = typeof v === 'number' ? v : await v;
        }
        t[3 * i + 2] = unzigzag(t[3 * i + 2]!);
      }
    }
    return count;
  }

  /** The next varint, for entry `e`: a number, or a promise only when the decoded bytes run out (an await on every varint would cost a microtask each). */
  private varint(e: number): number | Promise<number> {
    const s = this.src;
    const p = readVarint(s.buf, s.pos, this.value);
    if (p >= 0) {
      s.pos = p;
      return this.value[0]!;
    }
    return this.slowVarint(p, e);
  }

  private async slowVarint(p: number, e: number): Promise<number> {
    const s = this.src;
    if (p === VARINT_INCOMPLETE) {
      await s.atLeast(MAX_VARINT_BYTES);
      p = readVarint(s.buf, s.pos, this.value);
      if (p === VARINT_INCOMPLETE) throw new FerryError('ERR_PATCH', `the patch's control stream ends inside entry ${e} of ${this.entries}`);
    }
    if (p === VARINT_OVERLONG) throw new FerryError('ERR_PATCH', `control entry ${e} has a number longer than ${MAX_VARINT_BYTES} bytes`);
    s.pos = p;
    return this.value[0]!;
  }
}
