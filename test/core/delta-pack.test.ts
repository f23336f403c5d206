// The 'pack' delta layout (issue 14 items 4, 5, 7; ARCHITECTURE.md "Artifacts and deltas"): a
// patch bump of a many-file tree costs its entries and nothing per file, the op list names only
// what changed, parseManifestPayload holds a pack delta's ops to the signed file list, the device
// reads entries in place and fsyncs what it wrote in one batch, and an old 'tar' delta still applies.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdir, open, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { applyDelta } from '../../core/delta/apply-delta.ts';
import { makeDelta } from '../../core/delta/make-delta.ts';
import { writeFerryPatch } from '../../core/delta/patch-encode.ts';
import { scanTree } from '../../core/publish/tree.ts';
import { verifyTree } from '../../core/device/verify-tree.ts';
import { sha256 } from '../../core/io/hash.ts';
import { isLink, isPackRange, manifestPayload, parseManifestPayload, type DeltaOp, type ManifestDoc, type TreeEntry } from '../../core/trust/metadata.ts';
import { createBsdiffPatcher } from '../../plugins/bsdiff/patcher.ts';
import { assertCode, assertCodeAsync } from '../helpers/assert-code.ts';
import { packEntries } from '../helpers/hostile-delta.ts';
import { pseudoRandomBytes, tempDir, writeTree, type TempDir, type TreeSpec } from '../helpers/repo.ts';

const FILES = 120;
const patcher = createBsdiffPatcher();

/** A tree of FILES small JS-like files in a few folders, a binary and a link; `bump` changes three files and renames one. */
function tree(bump: boolean): TreeSpec {
  const spec: TreeSpec = {};
  for (let i = 0; i < FILES; i++) spec[`lib/m${i % 8}/f${i}.js`] = `// module ${i}\nexport const value${i} = ${i};\nexport function f${i}(x) { return x + ${i}; }\n`;
  spec['bin/engine.bin'] = pseudoRandomBytes(48 * 1024, 5);
  if (bump) {
    spec['lib/m1/f1.js'] = `// module 1, fixed\nexport const value1 = 1;\nexport function f1(x) { return x + 1 + 0; }\n`;
    spec['lib/m2/f2.js'] += '// patch bump\n';
    const engine = Buffer.from(spec['bin/engine.bin'] as Buffer);
    engine.writeUInt32LE(0xdeadbeef, 4000);
    spec['bin/engine.bin'] = engine;
    spec['lib/renamed.js'] = spec['lib/m3/f3.js']!; // a rename: same bytes, new path
    delete spec['lib/m3/f3.js'];
  }
  return spec;
}

interface Made {
  tmp: TempDir;
  oldDir: string;
  newDir: string;
  oldFiles: TreeEntry[];
  newFiles: TreeEntry[];
  ops: DeltaOp[];
  artifact: string;
}

let shared: Made | undefined;
/** One delta per file, made once (the bsdiff and brotli work is the slow part). */
async function made(): Promise<Made> {
  if (shared) return shared;
  const tmp = await tempDir('ferry-pack-');
  const oldDir = join(tmp.path, 'old');
  const newDir = join(tmp.path, 'new');
  await writeTree(oldDir, tree(false));
  await writeTree(newDir, tree(true));
  await symlink('bin/engine.bin', join(oldDir, 'engine'));
  await symlink('bin/engine.bin', join(newDir, 'engine'));
  const oldFiles = await scanTree(oldDir);
  const newFiles = await scanTree(newDir);
  const d = await makeDelta({ oldDir, oldFiles, newDir, newFiles, workDir: join(tmp.path, 'work'), outFile: join(tmp.path, 'delta'), patcher });
  shared = { tmp, oldDir, newDir, oldFiles, newFiles, ops: d.ops, artifact: d.artifact };
  return shared;
}

async function applyInto(m: Made, name: string, ops = m.ops, artifact = m.artifact, baseDir = m.oldDir): Promise<string> {
  const out = join(m.tmp.path, name);
  await mkdir(out);
  await applyDelta({ baseDir, ops, targetFiles: m.newFiles, artifact, outDir: out, workDir: join(m.tmp.path, `${name}-work`), patcher });
  return out;
}

const pack = suite('issue 14: the pack delta layout');

pack('issue 14 item 4: the artifact is exactly its entries concatenated, nothing per entry; the device builds the tree from it by range', async () => {
  const m = await made();
  const entries = m.ops.flatMap((op) => (op.op === 'patch' || op.op === 'whole' ? [op.entry] : []));
  assert.ok(entries.length >= 3, `three changed files have entries: ${JSON.stringify(m.ops)}`);
  assert.ok(entries.every(isPackRange), 'every entry is an {offset, size} range');
  // Several small files' ops may name one solid block (FERRYSB1): the distinct ranges are the entries.
  const distinct = [...new Map(entries.map((e) => [JSON.stringify(e), e])).values()].sort((a, b) => (a as { offset: number }).offset - (b as { offset: number }).offset);
  const bytes = await readFile(m.artifact);
  assert.is(bytes.length, distinct.reduce((n, e) => n + e.size, 0), 'artifact bytes = the sum of its entries (a tar adds 512 per entry, padding and 1,024 at the end)');
  // The ranges tile the artifact.
  let at = 0;
  for (const e of distinct) {
    assert.ok(isPackRange(e) && e.offset === at, `entry at ${at}`);
    at += e.size;
  }
  const out = await applyInto(m, 'out-4');
  await verifyTree(out, m.newFiles);
  assert.equal(await scanTree(out), m.newFiles, 'exactly the signed tree, links and all');
});

pack('issue 14 item 5: unchanged files and links are implied; the ops name only the changed files and the rename', async () => {
  const m = await made();
  assert.equal(m.ops.map((op) => op.path).sort(), ['bin/engine.bin', 'lib/m1/f1.js', 'lib/m2/f2.js', 'lib/renamed.js']);
  // A changed file is patched or sent whole, whichever is smaller; only the rename copies.
  for (const op of m.ops) assert.ok(op.path === 'lib/renamed.js' ? op.op === 'copy' : op.op === 'patch' || op.op === 'whole', `${op.op} ${op.path}`);
  const rename = m.ops.find((op) => op.path === 'lib/renamed.js');
  assert.equal(rename, { op: 'copy', path: 'lib/renamed.js', from: 'lib/m3/f3.js', sha256: (m.newFiles.find((f) => f.path === 'lib/renamed.js') as { sha256: string }).sha256 });
  assert.ok(m.newFiles.length > FILES, `${m.newFiles.length} signed entries, ${m.ops.length} ops`);
});

/** A one-target manifest around `m`'s pack delta, as wire JSON the test can break. */
function manifestOf(m: Made, artifactSize: number): any {
  const doc: ManifestDoc = {
    type: 'ferry/manifest', app: 'demo', version: '1.1.0', releaseDate: '2024-05-01T12:00:00.000Z', releaseNotes: '', mandatory: false, securityFix: false,
    targets: {
      'linux-x64': {
        files: m.newFiles,
        full: { path: 'releases/1.1.0/full', size: 1, sha256: sha256('f'), chunkSize: 1024, chunks: [sha256('f')] },
        deltas: [{ from: '1.0.0', artifact: { path: 'releases/1.1.0/d', size: artifactSize, sha256: sha256('d'), chunkSize: 1024 ** 2, chunks: [sha256('d')] }, ops: m.ops, layout: 'pack' }],
      },
    },
  };
  return JSON.parse(manifestPayload(doc).toString());
}

pack('issue 14 item 5: parseManifestPayload holds pack ops to the signed list; an old device sees no delta (`deltas` is empty)', async () => {
  const m = await made();
  const size = (await readFile(m.artifact)).length;
  const good = manifestOf(m, size);
  assert.equal(good.targets['linux-x64'].deltas, [], 'the key an old device reads holds no pack delta');
  const parsed = parseManifestPayload(Buffer.from(JSON.stringify(good)));
  assert.equal(parsed.targets['linux-x64']!.deltas[0]!.ops, m.ops);
  assert.is(parsed.targets['linux-x64']!.deltas[0]!.layout, 'pack');
  const t = (doc: any) => doc.targets['linux-x64'].deltaPacks[0];
  const bad: Record<string, (doc: any) => void> = {
    'ops out of file-list order': (d) => t(d).ops.reverse(),
    'an op doubled': (d) => t(d).ops.push(t(d).ops.at(-1)),
    'an op building other bytes': (d) => { t(d).ops[0].sha256 = sha256('other'); },
    'an op for a path not signed': (d) => { t(d).ops[0].path = 'not/signed.js'; },
    'an op for a signed link': (d) => t(d).ops.push({ op: 'copy', path: 'engine', from: 'bin/engine.bin', sha256: sha256('x') }),
    'a link op': (d) => t(d).ops.push({ op: 'link', path: 'engine', target: 'bin/engine.bin' }),
    'an entry past the artifact': (d) => { t(d).artifact.size = 1; t(d).artifact.chunks = [sha256('c')]; },
    'an entry with a tar name': (d) => { const op = t(d).ops.find((o: any) => o.entry); op.entry = { ...op.entry, path: 'x' }; },
  };
  for (const [what, breakIt] of Object.entries(bad)) {
    const doc = manifestOf(m, size);
    breakIt(doc);
    try {
      parseManifestPayload(Buffer.from(JSON.stringify(doc)));
      assert.unreachable(`${what}: accepted`);
    } catch (err) {
      assert.is((err as { code?: string }).code, 'ERR_SCHEMA', `${what}: ${(err as Error).message}`);
    }
  }
  assertCode(() => parseManifestPayload(Buffer.from(JSON.stringify({ ...good, targets: { 'linux-x64': { ...good.targets['linux-x64'], deltaPacks: {} } } }))), 'ERR_SCHEMA');
});

pack('issue 14 item 5: an implied file the base does not hold with its signed hash fails the delta (ERR_HASH_MISMATCH: the device falls back)', async () => {
  const m = await made();
  const base = join(m.tmp.path, 'edited-base');
  await writeTree(base, tree(false));
  await symlink('bin/engine.bin', join(base, 'engine'));
  await writeFile(join(base, 'lib/m7/f7.js'), 'changed on the device\n');
  await assertCodeAsync(() => applyInto(m, 'out-5', m.ops, m.artifact, base), 'ERR_HASH_MISMATCH');
});

pack('issue 14 item 7: every file is written before the first fsync, and each written file is fsynced once', async () => {
  const m = await made();
  const probe = await open(join(m.tmp.path, 'probe'), 'w');
  const proto = Object.getPrototypeOf(probe) as { sync: () => Promise<void>; write: (...a: unknown[]) => Promise<unknown> };
  await probe.close();
  const events: string[] = [];
  const { sync, write } = proto;
  proto.sync = function (this: unknown) { events.push('sync'); return sync.call(this); };
  proto.write = function (this: unknown, ...a: unknown[]) { events.push('write'); return write.apply(this, a); };
  try {
    await applyInto(m, 'out-7');
  } finally {
    proto.sync = sync;
    proto.write = write;
  }
  const syncs = events.filter((e) => e === 'sync').length;
  const written = m.newFiles.filter((f) => !isLink(f)).length;
  assert.ok(syncs >= written - 1 && syncs <= written, `${syncs} fsyncs for ${written} files`);
  assert.ok(events.lastIndexOf('write') < events.indexOf('sync'), 'no fsync before the last write');
});

pack('issue 14 item 4: an old tar delta (entry {path, size, sha256}, one op per entry, link ops) still applies', async () => {
  const m = await made();
  const entries = new Map<string, Buffer>();
  const bytes = await readFile(m.artifact);
  const listed = new Map(m.ops.map((op) => [op.path, op]));
  const ops: DeltaOp[] = m.newFiles.map((f, i): DeltaOp => {
    if (isLink(f)) return { op: 'link', path: f.path, target: f.target };
    const op = listed.get(f.path);
    if (!op) return { op: 'copy', path: f.path, from: f.path, sha256: f.sha256 };
    if (op.op !== 'patch' && op.op !== 'whole') return op;
    const r = op.entry as { offset: number; size: number };
    const entry = bytes.subarray(r.offset, r.offset + r.size);
    entries.set(`${i}.e`, entry);
    return { ...op, entry: { path: `${i}.e`, size: entry.length, sha256: sha256(entry) } };
  });
  const tar = join(m.tmp.path, 'old-layout.tar');
  await packEntries(entries, tar);
  const out = await applyInto(m, 'out-tar', ops, tar);
  await verifyTree(out, m.newFiles);
});

pack('issue 14 item 7: a FERRYBD1 entry read by range from a pack is applied in-process: the native patcher (a worker process) is never started', async () => {
  const m = await made();
  const dir = join(m.tmp.path, 'bd1');
  await mkdir(join(dir, 'base'), { recursive: true });
  const old = pseudoRandomBytes(20_000, 3);
  const extra = Buffer.from('appended by the new version\n');
  const next = Buffer.concat([old, extra]);
  next[100] = (next[100]! + 7) & 0xff;
  await writeFile(join(dir, 'base', 'app.bin'), old);
  // One control entry: add 20,000 bytes (diff = new - old), then copy the extra bytes.
  const diff = new Uint8Array(old.length);
  for (let i = 0; i < old.length; i++) diff[i] = (next[i]! - old[i]! + 256) & 0xff;
  const patchFile = join(dir, 'p');
  await writeFerryPatch({ oldSize: old.length, newSize: next.length, control: [old.length, extra.length, 0], diff, extra }, patchFile);
  const patchBytes = await readFile(patchFile);
  // The entry sits after a whole entry's worth of other bytes: it is read by range, not from offset 0.
  const lead = pseudoRandomBytes(333, 9);
  await writeFile(join(dir, 'pack'), Buffer.concat([lead, patchBytes]));
  const files: TreeEntry[] = [{ path: 'app.bin', size: next.length, sha256: sha256(next), mode: 0o755 }];
  const ops: DeltaOp[] = [{ op: 'patch', path: 'app.bin', from: 'app.bin', baseSha256: sha256(old), sha256: sha256(next), entry: { offset: lead.length, size: patchBytes.length } }];
  const refusing = { ...patcher, patch: async () => { throw new Error('the native patcher was started'); } };
  await mkdir(join(dir, 'out'));
  await applyDelta({ baseDir: join(dir, 'base'), ops, targetFiles: files, artifact: join(dir, 'pack'), outDir: join(dir, 'out'), workDir: join(dir, 'w'), patcher: refusing });
  assert.ok((await readFile(join(dir, 'out', 'app.bin'))).equals(next));
});

pack.after(async () => {
  await shared?.tmp.cleanup();
});

pack.run();
