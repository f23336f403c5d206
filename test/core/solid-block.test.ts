// FERRYSB1 solid blocks (issue 14 items 4 and 8; ARCHITECTURE.md "Patch format"): the entries of a
// delta's small files compressed together as one brotli stream, chosen by the publisher when that
// is smaller; the device decodes a block within its bound, checks it whole, and builds each member
// with FERRYBD1's checks. Format round trips, hostile blocks, and one update through a real repository.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { brotliCompressSync, constants as zc } from 'node:zlib';
import { applyDelta } from '../../core/delta/apply-delta.ts';
import { makeDelta } from '../../core/delta/make-delta.ts';
import { applyPatchEntry, applySolidMember } from '../../core/delta/patch-apply.ts';
import { writeFerryPatch } from '../../core/delta/patch-encode.ts';
import { encodeSolid, parseSolid, SOLID_MAGIC, SOLID_MAX_DECODED, writeSolidHeader, type SolidInput } from '../../core/delta/solid-format.ts';
import { SolidBlocks } from '../../core/delta/solid-blocks.ts';
import type { RawPatch } from '../../core/delta/raw-patch.ts';
import { scanTree } from '../../core/publish/tree.ts';
import { verifyTree } from '../../core/device/verify-tree.ts';
import { sha256 } from '../../core/io/hash.ts';
import { isPackRange, type DeltaOp, type FileEntry } from '../../core/trust/metadata.ts';
import { createBsdiffPatcher } from '../../plugins/bsdiff/patcher.ts';
import { assertCodeAsync } from '../helpers/assert-code.ts';
import { assertInstalled, makeDevice } from '../helpers/device.ts';
import { makeRepo, tempDir, writeTree, type TempDir, type TreeSpec } from '../helpers/repo.ts';

const patcher = createBsdiffPatcher();

/** A JS-like tree of small modules; `bump` makes the same fix in eight of them and adds two files (as lodash 4.17.21 did). */
function tree(bump: boolean, version: string): TreeSpec {
  const spec: TreeSpec = {};
  for (let i = 0; i < 40; i++) {
    const trim = bump && i % 5 === 0 ? 'return baseTrim(string)' : 'return string.replace(reTrim, "")';
    spec[`lib/m${i}.js`] = `/** Module ${i} of the library. */\nvar reTrim = /^\\s+|\\s+$/g;\nfunction f${i}(string) {\n  ${trim};\n}\nmodule.exports = f${i};\n// ${'padding '.repeat(20 + i)}\n`;
  }
  spec['package.json'] = `{ "name": "lib", "version": "${version}" }\n`;
  if (bump) {
    spec['lib/_baseTrim.js'] = 'function baseTrim(string) {\n  return string ? string.slice(0, trimmedEndIndex(string) + 1).replace(/^\\s+/, "") : string;\n}\nmodule.exports = baseTrim;\n';
    spec['release.md'] = '# 1.1.0\n\nThe trim functions no longer backtrack on long whitespace runs.\n';
  }
  return spec;
}

interface Made { tmp: TempDir; oldDir: string; newDir: string; ops: DeltaOp[]; artifact: string }
let shared: Made | undefined;
async function made(): Promise<Made> {
  if (shared) return shared;
  const tmp = await tempDir('ferry-solid-');
  const oldDir = join(tmp.path, 'old');
  const newDir = join(tmp.path, 'new');
  await writeTree(oldDir, tree(false, '1.0.0'));
  await writeTree(newDir, tree(true, '1.1.0'));
  const d = await makeDelta({ oldDir, oldFiles: await scanTree(oldDir), newDir, newFiles: await scanTree(newDir), workDir: join(tmp.path, 'work'), outFile: join(tmp.path, 'delta'), patcher });
  shared = { tmp, oldDir, newDir, ops: d.ops, artifact: d.artifact };
  return shared;
}

const pack = suite('issue 14 item 4: small files share one FERRYSB1 solid block');

pack.after(async () => {
  await shared?.tmp.cleanup();
  await patcher.close();
});

pack('issue 14 item 4: the small files\' ops all name one FERRYSB1 block, smaller than their own entries side by side, and the device builds the signed tree from it', async () => {
  const m = await made();
  const entries = m.ops.flatMap((op) => (op.op === 'patch' || op.op === 'whole' ? [op.entry] : []));
  assert.is(entries.length, 11, `8 fixed modules, package.json and 2 new files have entries: ${JSON.stringify(m.ops.map((o) => o.path))}`);
  assert.ok(entries.every((e) => isPackRange(e) && e.offset === 0 && e.size === entries[0]!.size), 'every entry is the same range: the block');
  const bytes = await readFile(m.artifact);
  assert.is(bytes.subarray(0, 8).toString('latin1'), SOLID_MAGIC);
  // What the same entries cost on their own: a FERRYBD1 patch or a brotli whole file each, the smaller.
  let alone = 0;
  for (const [i, op] of m.ops.entries()) {
    if (op.op !== 'patch' && op.op !== 'whole') continue;
    const newBytes = await readFile(join(m.newDir, op.path));
    const whole = brotliCompressSync(newBytes, { params: { [zc.BROTLI_PARAM_QUALITY]: 11 } }).length;
    const patch = op.op === 'patch' ? await writeFerryPatch(await patcher.diff(join(m.oldDir, op.from), join(m.newDir, op.path)), join(m.tmp.path, `alone-${i}`)) : Infinity;
    alone += Math.min(whole, patch);
  }
  assert.ok(bytes.length < alone * 0.7, `the block (${bytes.length} B) is well under the entries alone (${alone} B)`);
  const out = join(m.tmp.path, 'out');
  await mkdir(out);
  const newFiles = await scanTree(m.newDir);
  await applyDelta({ baseDir: m.oldDir, ops: m.ops, targetFiles: newFiles, artifact: m.artifact, outDir: out, workDir: join(m.tmp.path, 'apply-work'), patcher });
  await verifyTree(out, newFiles);
  assert.equal(await scanTree(out), newFiles);
});

pack('issue 14 item 7: the block is decoded once for all of its members, and a corrupted block is refused for every member', async () => {
  const m = await made();
  const members = m.ops.filter((op) => op.op === 'patch' || op.op === 'whole').length;
  const newFiles = await scanTree(m.newDir);
  const out = join(m.tmp.path, 'out-once');
  await mkdir(out);
  const once = new SolidBlocks();
  await applyDelta({ baseDir: m.oldDir, ops: m.ops, targetFiles: newFiles, artifact: m.artifact, outDir: out, workDir: join(m.tmp.path, 'once-work'), patcher, solidBlocks: once });
  assert.is(once.decodes, 1, `one decode for the ${members} ops that name the block`);
  assert.is(once.size, 0, 'and the block is let go once its last member is built');
  assert.equal(await scanTree(out), newFiles);

  // The same block cut one byte short (its brotli stream no longer ends), given to each member
  // through one cache: every member is refused (ERR_PATCH, no output), by the one decode's failure.
  const bytes = await readFile(m.artifact);
  const block = m.ops.find((op) => op.op === 'whole' || op.op === 'patch')!;
  const range = (block as { entry: { offset: number; size: number } }).entry;
  const bad = bytes.subarray(range.offset, range.offset + range.size - 1);
  const badFile = join(m.tmp.path, 'bad-block');
  await writeFile(badFile, bad);
  const patch = { file: badFile, offset: 0, size: bad.length };
  const blocks = new SolidBlocks();
  for (let i = 0; i < members; i++) blocks.expect(patch);
  for (const [i, op] of m.ops.entries()) {
    if (op.op !== 'patch' && op.op !== 'whole') continue;
    const outFile = join(m.tmp.path, `bad-out-${i}`);
    const newSize = (newFiles.find((f) => f.path === op.path) as FileEntry).size;
    const base = op.op === 'patch' ? join(m.oldDir, op.from) : undefined;
    const run = () => (base
      ? applyPatchEntry({ baseFile: base, baseSize: readFileSync(base).length, patch, outFile, newSize, member: op.sha256, solidBlocks: blocks })
      : applySolidMember({ patch, member: op.sha256, outFile, newSize, solidBlocks: blocks }));
    const err = await assertCodeAsync(run, 'ERR_PATCH');
    assert.match(err.message, /solid block stream (does not decode|ends)/, `${op.path}: ${err.message}`);
    assert.not.ok(existsSync(outFile), `no output for ${op.path}`);
  }
  assert.is(blocks.decodes, 1, 'the corrupted block was decoded once, and its refusal given to each member');
  assert.is(blocks.size, 0, 'and it is let go once its last member is done');
});

// ---------------------------------------------------------------------------------------------
// The format and hostile blocks (in process, a hand-made block).

const OLD = Buffer.from('function trim(s) { return s.replace(/^\\s+|\\s+$/g, ""); }\n'.repeat(30));
const NEW = Buffer.from(OLD.toString().replaceAll('s.replace(/^\\s+|\\s+$/g, "")', 'baseTrim(s)  ').replace('function', 'FUNCTION') + 'export default trim;\n');
const WHOLE = Buffer.from('# 1.1.0\nno backtracking\n'.repeat(10));

/** A RawPatch building NEW from OLD: one add over the common length (diff = new - old), the rest from extra. */
function rawPatch(): RawPatch {
  const n = Math.min(OLD.length, NEW.length);
  const diff = new Uint8Array(n);
  for (let i = 0; i < n; i++) diff[i] = (NEW[i]! - OLD[i]! + 256) & 0xff;
  return { oldSize: OLD.length, newSize: NEW.length, control: [n, NEW.length - n, 0], diff, extra: NEW.subarray(n) };
}

const MEMBERS: SolidInput[] = [{ kind: 'patch', sha256: sha256(NEW), raw: rawPatch() }, { kind: 'whole', sha256: sha256(WHOLE), data: WHOLE }];

function block(decoded: Buffer, members = 2, stated = decoded.length): Buffer {
  return Buffer.concat([writeSolidHeader(members, stated), brotliCompressSync(decoded, { params: { [zc.BROTLI_PARAM_QUALITY]: 5 } })]);
}

const fmt = suite('issue 14 item 8: FERRYSB1 blocks, genuine and hostile');
let dir: TempDir;
let n = 0;
fmt.before(async () => {
  dir = await tempDir('ferry-solid-fmt-');
  await writeFile(join(dir.path, 'base'), OLD);
});
fmt.after(() => dir.cleanup());

/** Applies member `member` of `bytes` (a patch op from the base for member 0 by default, a whole op otherwise). */
async function apply(bytes: Buffer, opts: { member?: string; whole?: boolean; newSize?: number; baseSize?: number } = {}) {
  const file = join(dir.path, `block-${n}`);
  const outFile = join(dir.path, `out-${n++}`);
  await writeFile(file, bytes);
  const patch = { file, offset: 0, size: bytes.length };
  const whole = opts.whole ?? false;
  const newSize = opts.newSize ?? (whole ? WHOLE.length : NEW.length);
  const run = () => (whole
    ? applySolidMember({ patch, member: opts.member ?? sha256(WHOLE), outFile, newSize })
    : applyPatchEntry({ baseFile: join(dir.path, 'base'), baseSize: opts.baseSize ?? OLD.length, patch, outFile, newSize, member: opts.member ?? sha256(NEW) }));
  return { run, outFile, patch };
}

async function refused(bytes: Buffer, pattern: RegExp, opts: Parameters<typeof apply>[1] = {}): Promise<void> {
  const { run, outFile } = await apply(bytes, opts);
  const err = await assertCodeAsync(run, 'ERR_PATCH');
  assert.match(err.message, pattern);
  assert.not.ok(existsSync(outFile), 'no output is left');
}

fmt('issue 14 item 4: encodeSolid → parseSolid gives each member back, and the device builds both from the block', async () => {
  const decoded = encodeSolid(MEMBERS);
  const [p, w] = parseSolid(decoded, 2);
  assert.is(p!.kind, 'patch');
  assert.is(w!.kind === 'whole' && w!.data.equals(WHOLE), true);
  const a = await apply(block(decoded));
  assert.equal(await a.run(), { sha256: sha256(NEW), size: NEW.length });
  assert.ok((await readFile(a.outFile)).equals(NEW));
  const b = await apply(block(decoded), { whole: true });
  assert.equal(await b.run(), { sha256: sha256(WHOLE), size: WHOLE.length });
  assert.ok((await readFile(b.outFile)).equals(WHOLE));
});

fmt('issue 14 item 8: a block whose framing lies about its decoded size, its member count, or exceeds the bound is refused', async () => {
  const decoded = encodeSolid(MEMBERS);
  await refused(block(decoded, 2, decoded.length + 1), /decodes to|ends|states/);
  await refused(block(decoded, 2, decoded.length - 1), /decodes past|decodes to/);
  await refused(block(decoded, 3), /FERRYSB1 block/);
  await refused(block(decoded, 1), /FERRYSB1 block/);
  await refused(block(decoded, 0), /members/);
  await refused(block(decoded, 2, SOLID_MAX_DECODED + 1), /over the/);
});

fmt('issue 14 item 8: a truncated block, and bytes after its brotli stream, are refused', async () => {
  const good = block(encodeSolid(MEMBERS));
  await refused(good.subarray(0, good.length - 3), /does not decode|ends/);
  await refused(good.subarray(0, 9), /FERRYSB1|ends|number/);
  await refused(Buffer.concat([good, Buffer.from([0])]), /ends after/);
});

fmt('issue 14 item 8: a bomb (a stream decoding to 64 MiB under a small stated size) is stopped one chunk past the bound', async () => {
  const bomb = Buffer.concat([writeSolidHeader(2, 1000), brotliCompressSync(Buffer.alloc(64 * 1024 * 1024), { params: { [zc.BROTLI_PARAM_QUALITY]: 1 } })]);
  const rss0 = process.memoryUsage().rss;
  const t0 = performance.now();
  await refused(bomb, /decodes past the 1000 bytes/);
  assert.ok(performance.now() - t0 < 5_000, 'refused without decoding it all');
  assert.ok(process.memoryUsage().rss - rss0 < 32 * 1024 * 1024, 'and without holding it');
});

fmt('issue 14 item 8: a member that is not what the signed op says (no member names its sha256, kind, new size, base size) is refused before anything is written', async () => {
  const good = block(encodeSolid(MEMBERS));
  await refused(good, /no member of the solid block builds/, { member: sha256(OLD) });
  // A caller with no member to name (a FERRYBD1 entry expected, the magic turned into FERRYSB1).
  const { outFile, patch } = await apply(good);
  const err = await assertCodeAsync(() => applyPatchEntry({ baseFile: join(dir.path, 'base'), baseSize: OLD.length, patch, outFile, newSize: NEW.length }), 'ERR_PATCH');
  assert.match(err.message, /an entry of its own was expected/);
  assert.not.ok(existsSync(outFile));
  await refused(good, /is a whole file, the op is a patch/, { member: sha256(WHOLE), newSize: WHOLE.length });
  await refused(good, /is a patch, the op has no base/, { whole: true, member: sha256(NEW), newSize: NEW.length });
  await refused(good, /promises/, { newSize: NEW.length + 1 });
  await refused(good, /promises/, { whole: true, newSize: WHOLE.length - 1 });
  await refused(good, /for a base of/, { baseSize: OLD.length + 1 });
});

fmt('issue 14 item 8: decoded sections that do not add up (a zero among the values, a gap past the diff, control writing past the file, an unknown kind) are refused', async () => {
  const decoded = encodeSolid(MEMBERS);
  // Section H starts: kind 2, then oldSize, newSize, entries, non-zero count (varints).
  const kind = Buffer.from(decoded);
  kind[0] = 7;
  await refused(block(kind), /unknown kind 7/);
  const members = parseSolid(decoded, 2);
  const p = members[0]! as Extract<ReturnType<typeof parseSolid>[number], { kind: 'patch' }>;
  const zero = Buffer.from(decoded);
  zero[p.values.byteOffset - decoded.byteOffset] = 0;
  await refused(block(zero), /zero among/);
  const gap = Buffer.from(decoded);
  gap[p.gaps.byteOffset - decoded.byteOffset + p.gaps.length - 1] = 0x7f; // the last gap jumps past the diff
  await refused(block(gap), /gaps run past|ends|past its last/);
  const ctrl = Buffer.from(decoded);
  const y = p.control.byteOffset - decoded.byteOffset + p.control.length - 2;
  ctrl[y] = ctrl[y]! + 1; // y one more: past the new size
  await refused(block(ctrl), /write past|ends early|past its last/);
});

// ---------------------------------------------------------------------------------------------

const e2e = suite('issue 14 item 4: a FERRYSB1 delta through a real repository');

/** A repository whose 1.0.0 (`v1`) a device has installed; `fn` runs on both, then both are removed. */
async function onFirstRelease(v1: TreeSpec, fn: (repo: Awaited<ReturnType<typeof makeRepo>>, device: Awaited<ReturnType<typeof makeDevice>>) => Promise<void>): Promise<void> {
  const repo = await makeRepo();
  const device = await makeDevice({ trust: await repo.trust(), sources: [repo.repo] });
  try {
    await repo.release('1.0.0', v1);
    assert.is((await device.with((u) => u.apply())).status, 'committed');
    await fn(repo, device);
  } finally {
    await device.cleanup();
    await repo.cleanup();
  }
}

/** The device's history record of its update to 1.1.0. */
async function record110(device: Awaited<ReturnType<typeof makeDevice>>) {
  return (await device.with((u) => u.history())).find((h) => h.to === '1.1.0');
}

e2e('issue 14 item 4: a release whose small files changed is published with a solid block; the device updates by the delta and installs the signed tree', () => onFirstRelease(tree(false, '1.0.0'), async (repo, device) => {
    const r2 = await repo.release('1.1.0', tree(true, '1.1.0'));
    const delta = r2.manifest.targets['linux-x64']!.deltas[0]!;
    const artifact = await readFile(join(repo.repo, delta.artifact.path));
    assert.is(artifact.subarray(0, 8).toString('latin1'), SOLID_MAGIC, 'the published delta is a solid block');
    assert.is((await stat(join(repo.repo, delta.artifact.path))).size, delta.artifact.size);
    const result = await device.with((u) => u.apply());
    assert.is(result.status, 'committed');
    const record = await record110(device);
    assert.is(record?.kind, 'delta', `updated by the delta: ${JSON.stringify(record)}`);
    assert.not.ok(record?.fellBackToFull, 'without falling back to the full artifact');
    await assertInstalled(device, r2.manifest);
}));

e2e('issue 14 item 4: two changed files that build the same bytes (one patched, one new) each find their own member', async () => {
  // A member is named by the first bytes of the sha256 it builds: a patched file and a new file with
  // those same bytes have one name, so one of them keeps an entry of its own (else the device met a
  // patch member for a whole op, refused the delta and fell back to the full artifact).
  const v1 = tree(false, '1.0.0');
  await onFirstRelease(v1, async (repo, device) => {
    const v2 = tree(true, '1.1.0');
    v2['lib/m1-copy.js'] = v2['lib/m1.js'] = String(v1['lib/m1.js']).replace('Module 1 ', 'Module one ');
    const r2 = await repo.release('1.1.0', v2);
    const ops = r2.manifest.targets['linux-x64']!.deltas[0]!.ops;
    const same = ops.filter((o) => o.path === 'lib/m1.js' || o.path === 'lib/m1-copy.js').map((o) => o.op).sort();
    assert.equal(same, ['patch', 'whole'], `one patched, one whole: ${JSON.stringify(ops)}`);
    assert.is((await device.with((u) => u.apply())).status, 'committed');
    const record = await record110(device);
    assert.is(record?.kind, 'delta');
    assert.not.ok(record?.fellBackToFull, `without falling back to the full artifact: ${JSON.stringify(record)}`);
    await assertInstalled(device, r2.manifest);
  });
});

e2e('issue 14 item 8: a solid patch member whose base file was altered on the device is caught before use; the device falls back to the full artifact', async () => {
  // apply-delta no longer hashes a base before the patcher (issue 14 item 7): applyPatchEntry checks
  // it in the read that loads it, for a FERRYSB1 member as for a FERRYBD1 entry.
  await onFirstRelease(tree(false, '1.0.0'), async (repo, device) => {
    const r2 = await repo.release('1.1.0', tree(true, '1.1.0'));
    const patched = r2.manifest.targets['linux-x64']!.deltas[0]!.ops.find((o) => o.op === 'patch');
    assert.ok(patched && patched.op === 'patch', 'the delta patches a file');
    const base = join(device.layout.release('1.0.0'), patched.from);
    const bytes = await readFile(base);
    bytes[10] = bytes[10]! ^ 1; // same size, one bit off
    await writeFile(base, bytes);
    assert.is((await device.with((u) => u.apply())).status, 'committed');
    const record = await record110(device);
    assert.ok(record?.fellBackToFull, `fell back to the full artifact: ${JSON.stringify(record)}`);
    assert.match(record?.fallbackReason ?? '', /base file/, 'the base is what was refused, before the patch ran');
    await assertInstalled(device, r2.manifest);
  });
});

pack.run();
fmt.run();
e2e.run();
