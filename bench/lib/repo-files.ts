// What one `ferry release` added to a repository, read from the files on disk (not from ferry's
// manifest format), so the delta bench counts bytes the same way whatever layout the repository
// has: the full artifact (the path `ferry release --json` names), the delta artifact (the new file
// of the size it names), the separate file lists (releases/<v>/files-<target>.json: a device on the
// delta's base rebuilds its list and never downloads it, a device without one does), and every
// other new or rewritten file, which is the signed metadata a device downloads to learn of the
// release (channel pointer, manifest).

import { readdir, readFile, stat } from 'node:fs/promises';
import { brotliCompressSync, constants as zlib } from 'node:zlib';
import { join } from 'node:path';
import type { ReleaseJson } from './ferry-cli.ts';

/** Relative path → identity of the version on disk (size, mtime, inode: a rewrite changes it). */
export type Snapshot = Map<string, { size: number; id: string }>;

export async function snapshot(repo: string): Promise<Snapshot> {
  const out: Snapshot = new Map();
  const walk = async (rel: string): Promise<void> => {
    for (const e of await readdir(join(repo, rel), { withFileTypes: true })) {
      const path = rel === '' ? e.name : `${rel}/${e.name}`;
      if (e.isDirectory()) await walk(path);
      else if (e.isFile()) {
        const st = await stat(join(repo, path));
        out.set(path, { size: st.size, id: `${st.size}:${st.mtimeMs}:${st.ino}` });
      }
    }
  };
  await walk('');
  return out;
}

export interface FileBytes {
  path: string;
  bytes: number;
}

export interface ReleaseFiles {
  full: FileBytes | null;
  delta: FileBytes | null;
  /** Metadata as served: of a file written in two forms (x and x.br / x.gz / x.zst / x.xz), the smaller one. */
  metadata: FileBytes[];
  metadataBytes: number;
  /** Separate file lists: downloaded only by a device that cannot rebuild them (issue 14 item 5). */
  lists: FileBytes[];
}

/** A separate file list (core/trust/file-list.ts fileListPath). */
const FILE_LIST = /^releases\/[^/]+\/files-[^/]+\.json$/;

/** What `files` cost on the wire from `ferry serve`: .json brotli q11 (plugins/http/server.ts), the rest as they are. */
export async function servedBytes(repo: string, files: FileBytes[]): Promise<number> {
  let n = 0;
  for (const f of files) {
    if (!f.path.endsWith('.json')) { n += f.bytes; continue; }
    const raw = await readFile(join(repo, f.path));
    n += brotliCompressSync(raw, { params: { [zlib.BROTLI_PARAM_QUALITY]: 11, [zlib.BROTLI_PARAM_SIZE_HINT]: raw.length } }).length;
  }
  return n;
}

const COMPRESSED = /\.(br|gz|zst|xz)$/;

export function releaseFiles(before: Snapshot, after: Snapshot, json: ReleaseJson): ReleaseFiles {
  const written: FileBytes[] = [];
  for (const [path, v] of after) if (before.get(path)?.id !== v.id) written.push({ path, bytes: v.size });
  const fullPath = json.full?.path;
  const full = written.find((f) => f.path === fullPath) ?? null;
  if (fullPath !== undefined && !full) throw new Error(`ferry release named the full artifact ${fullPath}, but wrote no such file`);
  let rest = written.filter((f) => f !== full);
  let delta: FileBytes | null = null;
  const deltas = json.deltas ?? [];
  if (deltas.length > 1) throw new Error(`the bench publishes one delta per release, got ${deltas.length}`);
  if (deltas.length === 1) {
    const sized = rest.filter((f) => f.bytes === deltas[0]!.size);
    // Two new files of the same size: the one named as a delta is the artifact.
    delta = sized.length === 1 ? sized[0]! : sized.find((f) => /delta|from/i.test(f.path)) ?? null;
    if (!delta) throw new Error(`ferry release made a ${deltas[0]!.size}-byte delta, but no single new file has that size: ${JSON.stringify(rest)}`);
    rest = rest.filter((f) => f !== delta);
  }
  const lists = rest.filter((f) => FILE_LIST.test(f.path));
  rest = rest.filter((f) => !FILE_LIST.test(f.path));
  const paths = new Set(rest.map((f) => f.path));
  const metadata = rest.filter((f) => {
    // A plain file with a compressed twin is served compressed when that is smaller, and the reverse.
    const twin = COMPRESSED.test(f.path) ? f.path.replace(COMPRESSED, '') : [...paths].find((p) => p !== f.path && p.replace(COMPRESSED, '') === f.path);
    if (twin === undefined || !paths.has(twin)) return true;
    const other = rest.find((g) => g.path === twin)!;
    return f.bytes < other.bytes || (f.bytes === other.bytes && COMPRESSED.test(f.path));
  });
  return { full, delta, metadata, metadataBytes: metadata.reduce((n, f) => n + f.bytes, 0), lists };
}
