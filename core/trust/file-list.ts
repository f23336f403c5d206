// A target's signed file list as its own document (issue 14 item 5, ARCHITECTURE.md "Artifacts and
// deltas"): releases/<v>/files-<target>.json, unsigned itself but pinned by size and sha256 in the
// signed manifest (`fileList`), so one signed manifest still pins every file of a version
// (SECURITY.md row 9) while the manifest stays small.
//   fileListPayload   the ONE canonical form of a list's bytes: the publisher writes it, and a
//                     device that rebuilds a list from its base's list and a pack delta's edit
//                     serialises with it, so equal lists give equal bytes and hashes
//   parseFileList     bytes -> entries, only after the bytes match the pin (ERR_SIZE /
//                     ERR_HASH_MISMATCH otherwise), each entry checked as inline `files` are
//   resolveListTarget a signed target + its list's bytes -> a whole TargetRelease
//   listEditFrom / rebuildFileList  the edit a pack delta carries, and the device's rebuild

import { FerryError } from '../errors.ts';
import { expectHash, sha256 } from '../io/hash.ts';
import { arr, obj } from '../io/schema.ts';
import { parseStrictJson } from '../io/strict-json.ts';
import { isLink, resolveTarget, treeEntry, type FileRef, type ListEdit, type SignedTarget, type TargetKey, type TargetRelease, type TreeEntry } from './metadata.ts';

export const FILE_LIST_TYPE = 'ferry/file-list';

/** Where a version's list for `target` is published: beside its manifest. */
export function fileListPath(version: string, target: TargetKey): string {
  return `releases/${version}/files-${target}.json`;
}

/** Byte order of the paths' UTF-8 (as core/publish/tree.ts sorts a scanned tree), never locale order. */
function byPath(a: TreeEntry, b: TreeEntry): number {
  return Buffer.compare(Buffer.from(a.path), Buffer.from(b.path));
}

/** One entry with its keys in a fixed order: a regular file path, size, sha256, mode; a link path, type, target. */
function canonicalEntry(e: TreeEntry): TreeEntry {
  return isLink(e) ? { path: e.path, type: 'symlink', target: e.target } : { path: e.path, size: e.size, sha256: e.sha256, mode: e.mode };
}

/**
 * The bytes of a list document: {"type":"ferry/file-list","files":[...]} with the entries in
 * path byte order, each with its keys in a fixed order, no white space. The one function that
 * makes them, for the publisher and for a device's rebuild alike.
 */
export function fileListPayload(entries: readonly TreeEntry[]): Buffer {
  return Buffer.from(JSON.stringify({ type: FILE_LIST_TYPE, files: [...entries].sort(byPath).map(canonicalEntry) }));
}

/** The pin of a list's bytes at `path`. */
export function fileListPin(path: string, bytes: Uint8Array): FileRef {
  return { path, size: bytes.length, sha256: sha256(bytes) };
}

/** Whether `bytes` are exactly the pinned list (size, then sha256). */
export function matchesPin(bytes: Uint8Array, pin: FileRef): boolean {
  return bytes.length === pin.size && sha256(bytes) === pin.sha256;
}

/**
 * The entries of a list document, read only once its bytes are the pinned ones: another size is
 * ERR_SIZE, another hash ERR_HASH_MISMATCH, and nothing of unpinned bytes is parsed. The pin's
 * size bounds the parse (no cap of its own: a big legitimate list is as valid as a small one).
 */
export function parseFileList(bytes: Uint8Array, pin: FileRef): TreeEntry[] {
  if (bytes.length !== pin.size) throw new FerryError('ERR_SIZE', `${pin.path} is ${bytes.length} bytes, the manifest pins ${pin.size}`);
  expectHash(sha256(bytes), pin.sha256, pin.path);
  const o = obj(parseStrictJson(bytes, pin.size, pin.path), pin.path);
  if (o.type !== FILE_LIST_TYPE) throw new FerryError('ERR_SCHEMA', `${pin.path}: type must be "${FILE_LIST_TYPE}"`);
  if (Object.keys(o).some((k) => k !== 'type' && k !== 'files')) throw new FerryError('ERR_SCHEMA', `${pin.path}: a file list has only type and files`);
  return arr(o.files, `${pin.path}.files`).map((f, i) => treeEntry(f, `${pin.path}.files[${i}]`));
}

/**
 * A whole TargetRelease from a signed target and, for a separate list, the list's bytes: they are
 * held to the pin, then the list gets every check an inline list gets (entries, path set, links,
 * the deltas' ops, the container's blobs).
 */
export function resolveListTarget(t: SignedTarget, listBytes: Uint8Array | undefined): TargetRelease {
  if (t.kind === 'inline') return t.release;
  if (!listBytes) throw new FerryError('ERR_NOT_FOUND', `${t.fileList.path} (the file list the manifest pins) is missing`);
  return resolveTarget(t, parseFileList(listBytes, t.fileList));
}

/** What a pack delta carries to turn `base` (the delta base's list) into `next`. */
export function listEditFrom(base: readonly TreeEntry[], next: readonly TreeEntry[]): ListEdit {
  const old = new Map(base.map((e) => [e.path, JSON.stringify(canonicalEntry(e))]));
  const kept = new Set(next.map((e) => e.path));
  return {
    removed: base.filter((e) => !kept.has(e.path)).map((e) => e.path),
    entries: next.filter((e) => old.get(e.path) !== JSON.stringify(canonicalEntry(e))).map(canonicalEntry),
  };
}

/**
 * The list `base` + `edit` would give, as canonical bytes, when they are exactly the pinned list;
 * null otherwise (a lying or stale edit, a base that is not the delta's): the device then reads
 * the list from its source. Only bytes that match the pin leave this function.
 */
export function rebuildFileList(base: readonly TreeEntry[], edit: ListEdit, pin: FileRef): Buffer | null {
  const entries = new Map(base.map((e) => [e.path, e]));
  for (const p of edit.removed) entries.delete(p);
  for (const e of edit.entries) entries.set(e.path, e);
  const bytes = fileListPayload([...entries.values()]);
  return matchesPin(bytes, pin) ? bytes : null;
}
