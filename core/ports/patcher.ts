// The binary diff port. The core decides which files to patch and checks every input and output
// by hash; a Patcher only turns (old, patch) into new bytes and back. plugins/bsdiff implements it.

export interface Patcher {
  /** Writes a patch that turns oldFile into newFile. */
  diff(oldFile: string, newFile: string, patchFile: string): Promise<void>;
  /** Writes newFile (which must not exist) from oldFile and patchFile. */
  patch(oldFile: string, newFile: string, patchFile: string): Promise<void>;
  /**
   * Reads a patch header and returns the output size it promises, or throws ERR_PATCH when the
   * header is malformed; called before patch() so a lying header never reaches the native code.
   */
  outputSize(patchHeader: Uint8Array, patchSize: number): number;
  /** Bytes of the header outputSize() needs. */
  readonly headerSize: number;
  /** Releases what the patcher holds (a worker process); called when its user is done. */
  close?(): Promise<void>;
}
