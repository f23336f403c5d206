// Relative paths taken from signed metadata or archives. Every path ferry writes under a staging
// directory passes here first, so traversal ("../x", "/abs", "a/./b") never reaches the filesystem.
// Symlink targets of a release are checked here too, against the whole signed list: each must
// resolve inside the tree (SECURITY.md row 14).

import { FerryError } from '../errors.ts';
import { printableJson } from './printable.ts';
import type { TreeEntry } from '../trust/metadata.ts';

export const MAX_PATH_BYTES = 1024;
export const MAX_PATH_DEPTH = 32;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Returns the path if it is a plain relative path ("a/b.txt"), else throws ERR_UNSAFE_ARCHIVE. */
export function checkRelativePath(path: string, what: string): string {
  const fail = (why: string): never => {
    throw new FerryError('ERR_UNSAFE_ARCHIVE', `${what}: unsafe path ${printableJson(path.slice(0, 200))} (${why})`);
  };
  if (path.length === 0) fail('empty');
  if (Buffer.byteLength(path) > MAX_PATH_BYTES) fail(`over ${MAX_PATH_BYTES} bytes`);
  if (path.includes('\0') || path.includes('\\')) fail('NUL or backslash');
  // A lone surrogate is written to disk as U+FFFD, so two different signed names could land on one file.
  if (LONE_SURROGATE.test(path)) fail('not well-formed Unicode');
  if (path.startsWith('/')) fail('absolute');
  const parts = path.split('/');
  if (parts.length > MAX_PATH_DEPTH) fail(`deeper than ${MAX_PATH_DEPTH}`);
  for (const p of parts) {
    if (p === '' || p === '.' || p === '..') fail('empty, "." or ".." segment');
    if (Buffer.byteLength(p) > 255) fail('segment over 255 bytes');
  }
  return path;
}

/** Refuses a file list where one path is also a directory of another ("a" and "a/b"), or repeats. */
export function checkPathSet(paths: string[], what: string): void {
  const files = new Set<string>();
  for (const p of paths) {
    if (files.has(p)) throw new FerryError('ERR_SCHEMA', `${what}: ${p} is listed twice`);
    files.add(p);
  }
  for (const p of paths) {
    const parts = p.split('/');
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join('/');
      if (files.has(dir)) throw new FerryError('ERR_SCHEMA', `${what}: ${dir} is both a file and a directory`);
    }
  }
}

/** Links followed while resolving one target before it counts as a loop (Linux's MAXSYMLINKS). */
export const MAX_LINK_HOPS = 40;

/** Why a link target cannot be signed at all, whatever the tree holds; null when it can. */
function targetSyntaxProblem(target: string): string | null {
  if (target.length === 0) return 'has an empty target';
  if (Buffer.byteLength(target) > MAX_PATH_BYTES) return `has a target over ${MAX_PATH_BYTES} bytes`;
  if (target.includes('\0') || target.includes('\\')) return 'has a target with NUL or backslash';
  if (LONE_SURROGATE.test(target)) return 'has a target that is not well-formed Unicode';
  if (target.startsWith('/')) return `points to the absolute path ${printableJson(target.slice(0, 200))}`;
  if (target.split('/').includes('')) return `has an empty segment in its target ${printableJson(target.slice(0, 200))}`;
  return null;
}

/**
 * The first link of `entries` (a list already through checkPathSet, so no entry lies under a link)
 * whose target does not resolve inside the tree, with why; null when every link does. Resolution
 * is the kernel's, played on the list: a target is read against the link's own folder, component
 * by component; ".." climbs from where the path really is (after any link followed on the way),
 * so it may never climb above the root; a link met on the way is followed (at most
 * MAX_LINK_HOPS). The end must be a listed file or a folder some listed entry lies in: a
 * dangling link (or one through a file, or to a folder with nothing in it, which no release
 * holds) is refused too, so what is signed is exactly what the device gets.
 */
export function linkProblem(entries: readonly TreeEntry[]): { path: string; why: string } | null {
  const links = new Map<string, string>();
  for (const e of entries) if ('type' in e && e.type === 'symlink') links.set(e.path, e.target);
  if (links.size === 0) return null;
  for (const [path, target] of links) {
    const why = targetSyntaxProblem(target);
    if (why) return { path, why };
  }
  const files = new Set<string>();
  const dirs = new Set<string>();
  for (const e of entries) {
    if (!links.has(e.path)) files.add(e.path);
    const parts = e.path.split('/');
    for (let i = 1; i < parts.length; i++) dirs.add(parts.slice(0, i).join('/'));
  }
  for (const [path, target] of links) {
    const at = path.split('/').slice(0, -1);
    const pending = target.split('/');
    let hops = 0;
    while (pending.length > 0) {
      const part = pending.shift()!;
      if (part === '.') continue;
      if (part === '..') {
        if (at.length === 0) return { path, why: `points outside the tree (${printableJson(target.slice(0, 200))} climbs above its root)` };
        at.pop();
        continue;
      }
      at.push(part);
      const here = at.join('/');
      const next = links.get(here);
      if (next !== undefined) {
        if (++hops > MAX_LINK_HOPS) return { path, why: `loops (more than ${MAX_LINK_HOPS} links followed)` };
        at.pop();
        pending.unshift(...next.split('/'));
      } else if (files.has(here)) {
        if (pending.length > 0) return { path, why: `resolves through the file ${here} as if it were a folder` };
      } else if (!dirs.has(here)) {
        return { path, why: `is dangling: ${here} is not in the tree` };
      }
    }
  }
  return null;
}
