// Re-verifies an installed or staged tree against its signed file list: exactly those files
// (nothing extra, nothing missing, no links), each with its signed size, mode and sha256. Run
// before every switch and before rolling back to a restore point.

import { FerryError } from '../errors.ts';
import { scanTree } from '../publish/tree.ts';
import type { FileEntry } from '../trust/metadata.ts';

export async function verifyTree(dir: string, files: FileEntry[]): Promise<void> {
  let actual: FileEntry[];
  try {
    actual = await scanTree(dir);
  } catch (err) {
    if (err instanceof FerryError && err.code === 'ERR_UNSUPPORTED_FILE') throw new FerryError('ERR_UNSAFE_ARCHIVE', `${dir}: ${err.message}`, { cause: err });
    throw err;
  }
  const want = new Map(files.map((f) => [f.path, f]));
  for (const f of actual) {
    const w = want.get(f.path);
    if (!w) throw new FerryError('ERR_UNSAFE_ARCHIVE', `${dir} holds ${f.path}, which is not in the signed file list`);
    if (w.size !== f.size || w.sha256 !== f.sha256) throw new FerryError('ERR_HASH_MISMATCH', `${dir}/${f.path} differs from its signed hash`);
    if (w.mode !== f.mode) throw new FerryError('ERR_HASH_MISMATCH', `${dir}/${f.path} has mode ${f.mode.toString(8)}, signed ${w.mode.toString(8)}`);
    want.delete(f.path);
  }
  const missing = [...want.keys()];
  if (missing.length) throw new FerryError('ERR_HASH_MISMATCH', `${dir} lacks ${missing.length} signed file(s), e.g. ${missing[0]}`);
}
