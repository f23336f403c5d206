// A target's signed file list as its own document (issue 14 item 5, ARCHITECTURE.md "Artifacts and
// deltas"): releases/<v>/files-<target>.json, unsigned itself but pinned by size and sha256 in the
// signed manifest (`fileList`), so one signed manifest still pins every file of a version
// (SECURITY.md row 9) while the manifest stays small. Reading one is core/trust/metadata.ts's
// (parseFileList, resolveTarget: bytes checked against the pin before they are parsed).
//   fileListPayload   the ONE canonical form of a list's bytes: the publisher writes it, and a
//                     device that rebuilds a list from its base's list and a pack delta's edit
//                     serialises with it, so equal lists give equal bytes and hashes
//   listEditFrom / rebuildFileList  the edit a pack delta carries, and the device's rebuild

import { sha256 } from '../io/hash.ts';
import { FILE_LIST_TYPE, isLink, type FileRef, type ListEdit, type TreeEntry } from './metadata.ts';

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
