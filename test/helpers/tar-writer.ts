// Writes hostile tar archives byte by byte: raw 512-byte ustar headers with correct checksums, so
// a test can build what no well-behaved packer would (absolute names, "..", links, devices,
// setuid bits, lying sizes) without touching the filesystem the entries name.

import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { createGzip } from 'node:zlib';
import type { Writable } from 'node:stream';

export type TarType = 'file' | 'dir' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo';

const TYPEFLAG: Record<TarType, string> = { file: '0', hardlink: '1', symlink: '2', char: '3', block: '4', dir: '5', fifo: '6' };

export interface TarEntry {
  name: string;
  type?: TarType;
  /** File content; the header's size is its length unless `size` overrides it (a lying header). */
  content?: Buffer | string;
  size?: number;
  mode?: number;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
}

function octal(buf: Buffer, value: number, at: number, width: number): void {
  // width-1 octal digits, zero-padded, then NUL (the common ustar spelling).
  buf.write(value.toString(8).padStart(width - 1, '0') + '\0', at, width, 'ascii');
}

/** One 512-byte ustar header with a correct checksum. */
export function tarHeader(entry: TarEntry, size: number): Buffer {
  const h = Buffer.alloc(512);
  if (Buffer.byteLength(entry.name) > 100) throw new Error(`tar-writer: name over 100 bytes: ${entry.name.slice(0, 40)}…`);
  h.write(entry.name, 0, 100, 'utf8');
  octal(h, entry.mode ?? (entry.type === 'dir' ? 0o755 : 0o644), 100, 8);
  octal(h, 0, 108, 8); // uid
  octal(h, 0, 116, 8); // gid
  octal(h, size, 124, 12);
  octal(h, 0, 136, 12); // mtime
  h.write('        ', 148, 8, 'ascii'); // checksum field counts as spaces while summing
  h.write(TYPEFLAG[entry.type ?? 'file'], 156, 1, 'ascii');
  if (entry.linkname) h.write(entry.linkname, 157, 100, 'utf8');
  h.write('ustar\0', 257, 6, 'ascii');
  h.write('00', 263, 2, 'ascii');
  h.write('root', 265, 32, 'ascii');
  h.write('root', 297, 32, 'ascii');
  octal(h, entry.devmajor ?? 0, 329, 8);
  octal(h, entry.devminor ?? 0, 337, 8);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'ascii');
  return h;
}

function padding(size: number): Buffer {
  return Buffer.alloc((512 - (size % 512)) % 512);
}

/** Header, content, and padding to the next 512-byte block. */
export function tarEntryBytes(entry: TarEntry): Buffer {
  const content = entry.content === undefined ? Buffer.alloc(0) : Buffer.from(entry.content);
  const size = entry.size ?? (entry.type === undefined || entry.type === 'file' ? content.length : 0);
  return Buffer.concat([tarHeader(entry, size), content, padding(content.length)]);
}

/** The two zero blocks that end an archive. */
export const TAR_END = Buffer.alloc(1024);

/** A whole uncompressed archive in memory. */
export function tarBytes(entries: TarEntry[]): Buffer {
  return Buffer.concat([...entries.map(tarEntryBytes), TAR_END]);
}

async function write(out: Writable, chunk: Buffer): Promise<void> {
  if (!out.write(chunk)) await once(out, 'drain');
}

async function finish(out: Writable, file: Writable): Promise<void> {
  const done = once(file, 'close');
  out.end();
  await done;
}

/** Streams a gzipped archive of `count` zero-size files named by `name(i)` (never all in memory). */
export async function writeManyEntriesTarGz(path: string, count: number, name: (i: number) => string): Promise<void> {
  const file = createWriteStream(path);
  const gz = createGzip({ level: 6 });
  gz.pipe(file);
  const batch: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    batch.push(tarHeader({ name: name(i) }, 0));
    if (batch.length === 1024) await write(gz, Buffer.concat(batch.splice(0)));
  }
  await write(gz, Buffer.concat([...batch, TAR_END]));
  await finish(gz, file);
}

/**
 * Streams a gzip bomb: one file entry of `size` zero bytes, gzipped at level 9, written 1 MiB at a
 * time so the expanded size is never held in memory.
 */
export async function writeZeroBombTarGz(path: string, name: string, size: number): Promise<void> {
  const file = createWriteStream(path);
  const gz = createGzip({ level: 9 });
  gz.pipe(file);
  await write(gz, tarHeader({ name }, size));
  const mib = Buffer.alloc(1024 * 1024);
  let left = size;
  while (left > 0) {
    const n = Math.min(left, mib.length);
    await write(gz, n === mib.length ? mib : mib.subarray(0, n));
    left -= n;
  }
  await write(gz, Buffer.concat([padding(size), TAR_END]));
  await finish(gz, file);
}
