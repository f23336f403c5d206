// Writes a RawPatch as a FERRYBD1 patch file (ARCHITECTURE.md "Patch format").
// STUB: filled in by the patch-format work (issue 14); the signature is fixed.

import { FerryError } from '../errors.ts';
import type { RawPatch } from './raw-patch.ts';

/** Writes `raw` to `outFile` (which must not exist) as FERRYBD1; returns the patch's size in bytes. */
export async function writeFerryPatch(raw: RawPatch, outFile: string): Promise<number> {
  throw new FerryError('ERR_INTERNAL', `writeFerryPatch is not written yet (${raw.newSize} bytes, ${outFile})`);
}
