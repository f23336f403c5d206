// issue 14: FERRYBD1 control encoding 2 (core/delta/patch-format.ts CONTROL_COLUMNS), the control
// entries in columns per group of CONTROL_GROUP, decoded a group at a time by
// core/delta/control-groups.ts. writeFerryPatch writes it; the device builds the same bytes from it
// as from encoding 1 (which patches already in repositories use) across group boundaries, with the
// base in memory or read through the window; and a hostile columns stream is refused with ERR_PATCH
// and leaves no output, as encoding 1 is (test/core/ferry-patch-hostile.test.ts).

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { access, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { applyPatchEntry, type PatchEntryInput } from '../../core/delta/patch-apply.ts';
import { writeFerryPatch } from '../../core/delta/patch-encode.ts';
import { CONTROL_COLUMNS, CONTROL_GROUP, CONTROL_LEB128, encodeControlColumns, readPatchHeader } from '../../core/delta/patch-format.ts';
import type { RawPatch } from '../../core/delta/raw-patch.ts';
import { sha256 } from '../../core/io/hash.ts';
import { assertCode, assertCodeAsync } from '../helpers/assert-code.ts';
import { craftFrom, craftPatch } from '../helpers/ferry-patch-craft.ts';
import { pseudoRandomBytes, tempDir, type TempDir } from '../helpers/repo.ts';

const OLD = pseudoRandomBytes(200_000, 71);
const ENTRIES = 2 * CONTROL_GROUP + 1234;

/**
 * A RawPatch of ENTRIES entries (three groups, the last one short): each adds 3 old bytes (one of
 * them changed by the diff) and copies 1 extra byte, then seeks. Most seeks are z = y (the old
 * position moves past the replaced byte, so z − y = 0), every seventh jumps far, forward or back.
 */
function manyEntries(): { raw: RawPatch; expected: Buffer } {
  const control: number[] = [];
  const diff = Buffer.alloc(3 * ENTRIES);
  const extra = pseudoRandomBytes(ENTRIES, 72);
  const out = Buffer.alloc(4 * ENTRIES);
  let oldPos = 0;
  for (let e = 0; e < ENTRIES; e++) {
    diff[3 * e + 1] = (e % 251) + 1;
    for (let i = 0; i < 3; i++) out[4 * e + i] = (OLD[oldPos + i]! + diff[3 * e + i]!) & 0xff;
    out[4 * e + 3] = extra[e]!;
    const after = oldPos + 3;
    const next = e % 7 === 6 ? (e * 7919) % (OLD.length - 10) : after + 1;
    control.push(3, 1, next - after);
    oldPos = next;
  }
  return { raw: { oldSize: OLD.length, newSize: out.length, control, diff, extra }, expected: out };
}

const { raw: RAW, expected: NEW } = manyEntries();
let tmp: TempDir;
let baseFile: string;
let n = 0;

async function apply(bytes: Uint8Array, over: Partial<PatchEntryInput> = {}): Promise<{ sha256: string; size: number }> {
  const file = join(tmp.path, `p-${n++}`);
  await writeFile(file, bytes);
  return applyPatchEntry({ baseFile, baseSize: OLD.length, patch: { file, offset: 0, size: bytes.length }, outFile: join(tmp.path, `out-${n++}`), newSize: RAW.newSize, ...over });
}

/** Refused with ERR_PATCH; no output file is left and nothing past the signed size was written. */
async function refused(bytes: Uint8Array, over: Partial<PatchEntryInput> = {}): Promise<string> {
  const outFile = join(tmp.path, `w-${n++}`);
  let most = 0;
  const newSize = over.newSize ?? RAW.newSize;
  const err = await assertCodeAsync(() => apply(bytes, { outFile, onWritten: (b) => { most = Math.max(most, b); }, ...over }), 'ERR_PATCH');
  assert.ok(most <= newSize, `wrote ${most} bytes, signed ${newSize}`);
  assert.not.ok(await access(outFile).then(() => true, () => false), 'no output file is left behind');
  return err.message;
}

const columns = (change: Parameters<typeof craftFrom>[1] = {}) => craftFrom(RAW, { ...change, header: { encoding: CONTROL_COLUMNS, ...change.header } });

const test = suite('issue 14: control encoding 2 (columns per group of entries)');

test.before(async () => {
  tmp = await tempDir('ferry-control-columns-');
  baseFile = join(tmp.path, 'base');
  await writeFile(baseFile, OLD);
});
test.after(async () => { await tmp?.cleanup(); });

test('writeFerryPatch writes encoding 2; it and encoding 1 build the same bytes over three groups, base in memory or through the window', async () => {
  const file = join(tmp.path, 'written.fbd');
  await writeFerryPatch(RAW, file);
  const written = await readFile(file);
  assert.is(readPatchHeader(written).controlEncoding, CONTROL_COLUMNS);
  assert.is(readPatchHeader(written).entries, ENTRIES);
  const want = { sha256: sha256(NEW), size: NEW.length };
  for (const bytes of [written, columns(), craftFrom(RAW, { header: { encoding: CONTROL_LEB128 } })]) {
    assert.equal(await apply(bytes), want);
    assert.equal(await apply(bytes, { oldInMemoryMax: 0 }), want);
  }
});

test('the columns hold every x, then every y, then zigzag(z − y), per group', () => {
  const control = [5, 2, 2, 7, 0, -3, 1, 4, 10];
  // x: 5 7 1 | y: 2 0 4 | z − y: 0, −3 → 5, 6 → 12
  assert.equal([...encodeControlColumns(control)], [5, 7, 1, 2, 0, 4, 0, 5, 12]);
  const many = Array.from({ length: 3 * (CONTROL_GROUP + 1) }, (_, i) => (i % 3 === 0 ? 1 : i % 3 === 1 ? 2 : 3));
  const bytes = encodeControlColumns(many);
  // Group 1: CONTROL_GROUP ones, twos, and zigzag(1) = 2; group 2: one entry.
  assert.equal([...bytes.subarray(0, 2)], [1, 1]);
  assert.is(bytes[CONTROL_GROUP], 2);
  assert.is(bytes[2 * CONTROL_GROUP], 2);
  assert.equal([...bytes.subarray(3 * CONTROL_GROUP)], [1, 2, 2]);
});

test('the writer refuses a seek whose z − y is over 2^52 (ERR_INTERNAL): zigzag would not be exact', () => {
  assertCode(() => encodeControlColumns([0, 2 ** 52, -(2 ** 52)]), 'ERR_INTERNAL');
  assert.is(encodeControlColumns([0, 2 ** 51, -(2 ** 51)]).length > 0, true);
});

test('hostile columns: a stated count above or below the entries, a stream cut inside a later group → ERR_PATCH, no output', async () => {
  for (const entries of [ENTRIES + 1, ENTRIES - 1, CONTROL_GROUP, CONTROL_GROUP + 1]) {
    const msg = await refused(columns({ header: { entries } }));
    assert.match(msg, /control|entries|stream/, `${entries}: ${msg}`);
  }
  // The control bytes of the first two groups only, the header still stating every entry.
  const firstTwo = encodeControlColumns(RAW.control.slice(0, 3 * 2 * CONTROL_GROUP));
  const msg = await refused(craftPatch({ ...RAW, control: firstTwo, header: { encoding: CONTROL_COLUMNS, entries: ENTRIES } }));
  assert.match(msg, /control stream ends inside entry/);
});

test('hostile columns: an entry in the third group that reads outside the base, or writes past the signed size → ERR_PATCH while writing', async () => {
  const at = 2 * CONTROL_GROUP + 10;
  const outside = [...RAW.control];
  outside[3 * at + 2] = OLD.length; // the seek after entry `at` lands past the base's end; the next entry reads there
  assert.match(await refused(columns({ control: outside })), /outside the base/);
  const past = [...RAW.control];
  past[3 * at + 1] = RAW.newSize; // y
  assert.match(await refused(columns({ control: past })), /writes past the signed/);
});

test('hostile columns: a number over 8 bytes in the y column, or a z − y that seeks beyond 2^51 → ERR_PATCH', async () => {
  const overlong = Buffer.from([0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 0]);
  assert.match(await refused(craftPatch({ oldSize: OLD.length, newSize: 0, control: overlong, diff: new Uint8Array(0), extra: new Uint8Array(0), header: { encoding: CONTROL_COLUMNS, entries: 1 } }), { newSize: 0 }), /longer than 8 bytes/);
  // x = 0, y = 0, zigzag(z − y) = 2^56 − 1 (the largest 8-byte varint): z = −2^55.
  const far = Buffer.from([0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
  assert.match(await refused(craftPatch({ oldSize: OLD.length, newSize: 0, control: far, diff: new Uint8Array(0), extra: new Uint8Array(0), header: { encoding: CONTROL_COLUMNS, entries: 1 } }), { newSize: 0 }), /seeks the base/);
});

test.run();
