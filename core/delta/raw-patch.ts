// bsdiff's three streams before any coding: what the publisher's matcher (core/ports/patcher.ts)
// gives and what core/delta/patch-encode.ts writes as a FERRYBD1 patch (ARCHITECTURE.md
// "Patch format").

export interface RawPatch {
  /** Size of the file the patch reads from. */
  oldSize: number;
  /** Size of the file the patch builds. */
  newSize: number;
  /**
   * Control entries as flat triples [x0, y0, z0, x1, y1, z1, …]: add x bytes (old bytes at the
   * old position plus the next x diff bytes), then copy y bytes from extra, then move the old
   * position by z (may be negative).
   */
  control: number[];
  /** Sum of the x of every entry, in order. */
  diff: Uint8Array;
  /** Sum of the y of every entry, in order. */
  extra: Uint8Array;
}
