// Relative paths taken from signed metadata or archives. Every path ferry writes under a staging
// directory passes here first, so traversal ("../x", "/abs", "a/./b") never reaches the filesystem.

import { FerryError } from '../errors.ts';

export const MAX_PATH_BYTES = 1024;
export const MAX_PATH_DEPTH = 32;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Returns the path if it is a plain relative path ("a/b.txt"), else throws ERR_UNSAFE_ARCHIVE. */
export function checkRelativePath(path: string, what: string): string {
  const fail = (why: string): never => {
    throw new FerryError('ERR_UNSAFE_ARCHIVE', `${what}: unsafe path ${JSON.stringify(path.slice(0, 200))} (${why})`);
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
