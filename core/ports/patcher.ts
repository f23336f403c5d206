// The binary diff port. The core decides which files to patch and checks every input and output
// by hash; plugins/bsdiff implements it.
//
// Publisher side: diff() is bsdiff's matcher, giving the raw streams that core/delta/patch-encode.ts
// writes as a FERRYBD1 patch (ARCHITECTURE.md "Patch format"); it bounds its memory on large files
// by windows (core/delta/diff-windows.ts).
// Device side: FERRYBD1 patches are applied by ferry's own TypeScript patcher, not through this
// port. patch(), outputSize() and headerSize serve only OLD patch entries — BSDIFF40 files in
// repositories published before FERRYBD1 — applied by bsdiff-node's bspatch in a worker process
// when bsdiff-node is built on the device; without it patch() throws ERR_NO_PATCHER and the
// update uses the full artifact.

import type { RawPatch } from '../delta/raw-patch.ts';
import type { WindowOptions } from '../delta/diff-windows.ts';

export interface Patcher {
  /**
   * bsdiff's control, diff and extra streams turning oldFile into newFile (publisher side).
   * `windows`: how a large pair is cut for matching (core/delta/diff-windows.ts); without it, the
   * patcher's own default. The publisher asks for FINE_DIFF_WINDOWS as a second try on a far pair.
   */
  diff(oldFile: string, newFile: string, windows?: WindowOptions): Promise<RawPatch>;
  /** Writes newFile (which must not exist) from oldFile and a BSDIFF40 patchFile (old entries). */
  patch(oldFile: string, newFile: string, patchFile: string): Promise<void>;
  /**
   * Reads a BSDIFF40 header and returns the output size it promises, or throws ERR_PATCH when the
   * header is malformed; called before patch() so a lying header never reaches the native code.
   */
  outputSize(patchHeader: Uint8Array, patchSize: number): number;
  /** Bytes of the header outputSize() needs. */
  readonly headerSize: number;
  /** Releases what the patcher holds (a worker process); called when its user is done. */
  close?(): Promise<void>;
}
