// Hand-made FERRYBD1 patches for hostile tests (SECURITY.md row 17): any control numbers, any
// stream bytes, any header field, with none of writeFerryPatch's checks, so a test can build the
// exact lie it wants (a header that promises other sizes, streams that end early or run on,
// entries that read outside the base or write past the end).

import { brotliCompressSync, constants as z } from 'node:zlib';
import { CONTROL_COLUMNS, encodeControl, encodeControlColumns, FERRYBD1_MAGIC, PATCH_HEADER_SIZE } from '../../core/delta/patch-format.ts';
import type { RawPatch } from '../../core/delta/raw-patch.ts';

/** Brotli at a quick quality: hostile tests need valid streams, not small ones. */
export function brotli(bytes: Uint8Array): Buffer {
  return brotliCompressSync(bytes, { params: { [z.BROTLI_PARAM_QUALITY]: 4 } });
}

export interface Craft {
  oldSize: number;
  newSize: number;
  /** Control triples (x, y, z), encoded as the header's control encoding says (1 unless `header.encoding` is 2), or the control stream's raw bytes before compression. */
  control: number[] | Uint8Array;
  diff: Uint8Array;
  extra: Uint8Array;
  /** Header fields to state instead of the true ones. */
  header?: Partial<{ magic: string; coder: number; encoding: number; filter: number; reserved: number; entries: number; oldSize: bigint; newSize: bigint; controlLength: bigint; diffLength: bigint; extraLength: bigint }>;
  /** The compressed streams as they go in (after compression), for cutting or appending. */
  streams?: (s: { control: Buffer; diff: Buffer; extra: Buffer }) => { control: Buffer; diff: Buffer; extra: Buffer };
}

/** The patch bytes `c` describes. */
export function craftPatch(c: Craft): Buffer {
  const h = c.header ?? {};
  const encode = h.encoding === CONTROL_COLUMNS ? encodeControlColumns : encodeControl;
  const ctrlBytes = Array.isArray(c.control) ? encode(c.control) : c.control;
  const entries = Array.isArray(c.control) ? c.control.length / 3 : 0;
  let s = { control: brotli(ctrlBytes), diff: brotli(c.diff), extra: brotli(c.extra) };
  if (c.streams) s = c.streams(s);
  const header = Buffer.alloc(PATCH_HEADER_SIZE);
  header.write(h.magic ?? FERRYBD1_MAGIC, 0, 'latin1');
  header.writeUInt8(h.coder ?? 1, 8);
  header.writeUInt8(h.encoding ?? 1, 9);
  header.writeUInt8(h.filter ?? 0, 10);
  header.writeUInt8(h.reserved ?? 0, 11);
  header.writeUInt32LE(h.entries ?? entries, 12);
  header.writeBigUInt64LE(h.oldSize ?? BigInt(c.oldSize), 16);
  header.writeBigUInt64LE(h.newSize ?? BigInt(c.newSize), 24);
  header.writeBigUInt64LE(h.controlLength ?? BigInt(s.control.length), 32);
  header.writeBigUInt64LE(h.diffLength ?? BigInt(s.diff.length), 40);
  header.writeBigUInt64LE(h.extraLength ?? BigInt(s.extra.length), 48);
  return Buffer.concat([header, s.control, s.diff, s.extra]);
}

/** craftPatch of a RawPatch, with changes. */
export function craftFrom(raw: RawPatch, change: Partial<Craft> = {}): Buffer {
  return craftPatch({ oldSize: raw.oldSize, newSize: raw.newSize, control: raw.control, diff: raw.diff, extra: raw.extra, ...change });
}
