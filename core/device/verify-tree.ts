// Re-verifies an installed or staged tree against its signed file list: exactly those entries
// (nothing extra, nothing missing), each file with its signed size, mode and sha256, each link
// with exactly its signed target (read with readlink, never followed). Run before every switch
// and before rolling back to a restore point.

import { FerryError } from '../errors.ts';
import { listTree } from '../publish/tree.ts';
import { isLink, type TreeEntry } from '../trust/metadata.ts';

export async function verifyTree(dir: string, files: TreeEntry[]): Promise<void> {
  let actual: TreeEntry[];
  try {
    actual = await listTree(dir);
  } catch (err) {
    if (err instanceof FerryError && err.code === 'ERR_UNSUPPORTED_FILE') throw new FerryError('ERR_UNSAFE_ARCHIVE', `${dir}: ${err.message}`, { cause: err });
    throw err;
  }
  const want = new Map(files.map((f) => [f.path, f]));
  for (const f of actual) {
    const w = want.get(f.path);
    if (isLink(f)) {
      // A link is a redirect: one that is not signed, or signed elsewhere, may point anywhere.
      if (!w || !isLink(w)) throw new FerryError('ERR_UNSAFE_ARCHIVE', `${dir}/${f.path} is a symlink, which is not in the signed file list`);
      if (w.target !== f.target) throw new FerryError('ERR_UNSAFE_ARCHIVE', `${dir}/${f.path} links to ${JSON.stringify(f.target)}, signed ${JSON.stringify(w.target)}`);
    } else {
      if (!w) throw new FerryError('ERR_UNSAFE_ARCHIVE', `${dir} holds ${f.path}, which is not in the signed file list`);
      if (isLink(w)) throw new FerryError('ERR_HASH_MISMATCH', `${dir}/${f.path} is a regular file, signed as a symlink`);
      if (w.size !== f.size || w.sha256 !== f.sha256) throw new FerryError('ERR_HASH_MISMATCH', `${dir}/${f.path} differs from its signed hash`);
      if (w.mode !== f.mode) throw new FerryError('ERR_HASH_MISMATCH', `${dir}/${f.path} has mode ${f.mode.toString(8)}, signed ${w.mode.toString(8)}`);
    }
    want.delete(f.path);
  }
  const missing = [...want.keys()];
  if (missing.length) throw new FerryError('ERR_HASH_MISMATCH', `${dir} lacks ${missing.length} signed file(s), e.g. ${missing[0]}`);
}
