// Applies a patch entry on the device (ARCHITECTURE.md "Patch format").
// STUB: filled in by the patch-format work (issue 14); the signature is fixed.

import { FerryError } from '../errors.ts';
import type { Patcher } from '../ports/patcher.ts';

export interface PatchEntryInput {
  /** The base file: a regular file whose sha256 the caller has already checked, or checks while this reads it. */
  baseFile: string;
  /** The base's signed size. */
  baseSize: number;
  /** Where the patch bytes are: `size` bytes at `offset` of `file` (a delta pack, or a file of its own). */
  patch: { file: string; offset: number; size: number };
  /** The output file; must not exist; created here with O_EXCL | O_NOFOLLOW, mode 0600, not fsynced. */
  outFile: string;
  /** The signed size of the output. */
  newSize: number;
  /** For old BSDIFF40 entries only (repositories made before FERRYBD1): the native patcher, if any. */
  legacy?: Patcher;
}

/**
 * Builds `outFile` from the base and the patch, and returns the sha256 and size of what it wrote
 * (the caller compares them with the signed ones). ERR_PATCH for a bogus patch, before a byte is
 * written when the header can tell.
 */
export async function applyPatchEntry(input: PatchEntryInput): Promise<{ sha256: string; size: number }> {
  throw new FerryError('ERR_INTERNAL', `applyPatchEntry is not written yet (${input.outFile})`);
}
