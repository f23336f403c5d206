// The fuzz corpus: real signed data made at test time, never committed. buildSeeds makes a real
// repository (makeRepo), rotates its root once (so root/2.json is a real rotation), publishes
// 1.0.0 and 1.1.0 (with a bsdiff delta from 1.0.0) and writes a real bundle carrying the delta and
// the full artifact; and a FERRYBD1 patch (core/delta/patch-encode.ts) of lib/engine.bin's change,
// made from a known edit script (moves, a backward seek, inserts, edits), and the same edits as a
// patch with the x86-64 branch filter (header byte 10 = 1) over code-like bytes dense with CALLs and
// RIP-relative loads. loadSeeds reads them back, in the child process that runs the cases.

import { join } from 'node:path';
import { readFile, writeFile } from 'node:fs/promises';
import { generateKeyFiles, loadPublicKey, loadSigningKey, type SigningKey } from '../../core/trust/keys.ts';
import { rotateRoot } from '../../core/publish/repository.ts';
import { writeBundle } from '../../core/publish/bundle.ts';
import { parseEnvelope } from '../../core/trust/dsse.ts';
import { parseChannelPayload, parseManifestPayload, type ChannelDoc, type ManifestDoc, type TargetRelease } from '../../core/trust/metadata.ts';
import { parseRootPayload, type RootDoc } from '../../core/trust/root.ts';
import { makeRepo, pseudoRandomBytes, type TempDir, type TreeSpec } from '../helpers/repo.ts';
import { writeFerryPatch } from '../../core/delta/patch-encode.ts';
import { rawPatchFromSteps } from '../helpers/edit-script.ts';
import { craftFrom } from '../helpers/ferry-patch-craft.ts';
import { CONTROL_LEB128, FILTER_X86 } from '../../core/delta/patch-format.ts';
import { x86FilterWhole } from '../../core/delta/x86-filter.ts';
import { sha256 } from '../../core/io/hash.ts';

export const OLD = '1.0.0';
export const NEW = '1.1.0';
export const TARGET = 'linux-x64';
export const BUNDLE = 'update.ferry';
export const FERRY_PATCH = 'engine.fbd';
/** The same patch with control encoding 1 (each entry's varints in turn), as patches made before encoding 2 are. */
export const FERRY_PATCH_LEB128 = 'engine-leb128.fbd';
export const FERRY_PATCH_BASE = 'engine.base';
export const FERRY_PATCH_X86 = 'engine-x86.fbd';
export const FERRY_PATCH_X86_BASE = 'engine-x86.base';

/** A small tree (so a case is quick) with an executable, a folder, and a binary a delta patches. */
function appTree(n: number): TreeSpec {
  const binary = pseudoRandomBytes(12_000, 11);
  for (let i = 0; i < n; i++) binary.writeUInt32LE(0xfeedface + i, 100 + i * 997);
  const tree: TreeSpec = {
    'package.json': JSON.stringify({ name: 'fuzz-app', version: `1.${n}.0` }) + '\n',
    'server.js': { content: `export const VERSION = '1.${n}.0';\n`, mode: 0o755 },
    'lib/engine.bin': binary,
    'lib/util.js': `export const answer = ${40 + n};\n`.repeat(20),
    'assets/logo.txt': 'ferry\n',
  };
  if (n > 0) tree[`lib/feature-${n}.js`] = `export const feature = ${n};\n`;
  return tree;
}

/** lib/engine.bin of 1.0.0 rearranged: every kind of control entry, a few KB of output. */
function ferryPatchRaw(base: Buffer) {
  return rawPatchFromSteps(base, [
    { from: 6000, len: 3000 }, { insert: pseudoRandomBytes(700, 12) }, { from: 100, len: 5000, delta: (i) => (i % 333 === 0 ? 9 : 0) },
    { from: 9000, len: 3000 }, { insert: Buffer.from('ferry') }, { from: 5100, len: 20 },
  ], { merge: true });
}

/**
 * Code-like bytes for the filtered seed: an ELF x86-64 header, then pseudo-random bytes with a
 * CALL (E8 rel32) or a RIP-relative load (48 8B 05 disp32) into the first 512 bytes every ~24 bytes.
 */
function codeBase(): Buffer {
  const b = pseudoRandomBytes(12_000, 13);
  b.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0], 0);
  b.writeUInt16LE(0x3e, 18);
  for (let at = 600, k = 0; at + 7 < b.length; at += 20 + (k % 9), k++) {
    if (k % 3 === 0) {
      b.set([0x48, 0x8b, 0x05], at);
      b.writeInt32LE(64 + (k % 50) * 8 - (at + 7), at + 3);
    } else {
      b[at] = 0xe8;
      b.writeInt32LE(64 + (k % 40) * 8 - (at + 5), at + 1);
    }
  }
  return b;
}

/**
 * The filtered seed: the same edits as ferryPatchRaw made to filter(base) (what bsdiff of the
 * filtered pair would give); the device builds decode(those bytes) from `base`.
 */
function ferryPatchX86Raw(base: Buffer) {
  const { raw, expected } = ferryPatchRaw(x86FilterWhole(Buffer.from(base), true));
  return { raw, expected: x86FilterWhole(Buffer.from(expected), false) };
}

/** Makes the corpus in a fresh temp folder; the caller removes it. */
export async function buildSeeds(): Promise<TempDir> {
  const repo = await makeRepo({ app: 'fuzz-app' });
  try {
    // Root 2 adds a second root key and is signed by both: a real rotation to fuzz.
    const root2 = await generateKeyFiles(join(repo.keysDir, 'root2'));
    await rotateRoot({
      repo: repo.repo,
      signers: [repo.rootKey, await loadSigningKey(join(repo.keysDir, 'root2.key'))],
      rootKeys: [repo.rootKey, await loadPublicKey(root2.files[1]!)],
      rootThreshold: 1,
      now: new Date(),
    });
    // Inline lists, so the manifest parser meets whole targets; the separate list's own parser is
    // fuzzed on its canonical form of the same list (targets.ts 'metadata').
    await repo.release(OLD, appTree(0), { inlineFileList: true });
    await repo.release(NEW, appTree(1), { inlineFileList: true });
    await writeBundle({ repo: repo.repo, version: NEW, from: OLD, withFull: true, channel: 'stable', platform: 'linux', arch: 'x64', out: join(repo.dir, BUNDLE) });
    const base = appTree(0)['lib/engine.bin'] as Buffer;
    await writeFile(join(repo.dir, FERRY_PATCH_BASE), base);
    await writeFerryPatch(ferryPatchRaw(base).raw, join(repo.dir, FERRY_PATCH));
    await writeFile(join(repo.dir, FERRY_PATCH_LEB128), craftFrom(ferryPatchRaw(base).raw, { header: { encoding: CONTROL_LEB128 } }));
    const code = codeBase();
    await writeFile(join(repo.dir, FERRY_PATCH_X86_BASE), code);
    await writeFerryPatch(ferryPatchX86Raw(code).raw, join(repo.dir, FERRY_PATCH_X86), { filter: FILTER_X86 });
  } catch (err) {
    await repo.cleanup();
    throw err;
  }
  return { path: repo.dir, cleanup: repo.cleanup };
}

export interface Envelopes {
  bytes: Buffer;
  payload: Buffer;
}

export interface Seeds {
  dir: string;
  repo: string;
  bundle: Buffer;
  rootKeys: SigningKey[];
  releaseKey: SigningKey;
  root1: Envelopes & { doc: RootDoc };
  root2: Envelopes & { doc: RootDoc };
  channel: Envelopes & { doc: ChannelDoc };
  manifests: Record<string, Envelopes & { doc: ManifestDoc }>;
  release: TargetRelease;
  fullGz: Buffer;
  oldFullGz: Buffer;
  deltaTar: Buffer;
  /** A genuine FERRYBD1 patch (control encoding 2, as writeFerryPatch writes), its base, and the size and sha256 of what it builds. */
  ferryPatch: { patch: Buffer; base: Buffer; newSize: number; sha256: string };
  /** The same patch with control encoding 1. */
  ferryPatchLeb128: { patch: Buffer; base: Buffer; newSize: number; sha256: string };
  /** The same for a patch with the x86-64 branch filter (header byte 10 = 1). */
  ferryPatchX86: { patch: Buffer; base: Buffer; newSize: number; sha256: string };
}

async function envelope<T>(file: string, parse: (payload: Buffer) => T): Promise<Envelopes & { doc: T }> {
  const bytes = await readFile(file);
  const payload = Buffer.from(parseEnvelope(bytes, 16 * 1024 * 1024, file).payload, 'base64');
  return { bytes, payload, doc: parse(payload) };
}

async function ferryPatchSeed(dir: string, filtered: boolean): Promise<Seeds['ferryPatch']> {
  const base = await readFile(join(dir, filtered ? FERRY_PATCH_X86_BASE : FERRY_PATCH_BASE));
  const { expected } = filtered ? ferryPatchX86Raw(base) : ferryPatchRaw(base);
  return { patch: await readFile(join(dir, filtered ? FERRY_PATCH_X86 : FERRY_PATCH)), base, newSize: expected.length, sha256: sha256(expected) };
}

export async function loadSeeds(dir: string): Promise<Seeds> {
  const repo = join(dir, 'repo');
  const manifests: Seeds['manifests'] = {};
  for (const v of [OLD, NEW]) manifests[v] = await envelope(join(repo, 'releases', v, 'manifest.json'), parseManifestPayload);
  const release = manifests[NEW]!.doc.targets[TARGET]!;
  const delta = release.deltas.find((d) => d.from === OLD);
  if (!delta) throw new Error('fuzz seeds: 1.1.0 has no delta from 1.0.0');
  return {
    dir,
    repo,
    bundle: await readFile(join(dir, BUNDLE)),
    rootKeys: [await loadSigningKey(join(dir, 'keys', 'root.key')), await loadSigningKey(join(dir, 'keys', 'root2.key'))],
    releaseKey: await loadSigningKey(join(dir, 'keys', 'release.key')),
    root1: await envelope(join(repo, 'root', '1.json'), parseRootPayload),
    root2: await envelope(join(repo, 'root', '2.json'), parseRootPayload),
    channel: await envelope(join(repo, 'channels', 'stable.json'), parseChannelPayload),
    manifests,
    release,
    fullGz: await readFile(join(repo, release.full.path)),
    oldFullGz: await readFile(join(repo, manifests[OLD]!.doc.targets[TARGET]!.full.path)),
    deltaTar: await readFile(join(repo, delta.artifact.path)),
    ferryPatch: await ferryPatchSeed(dir, false),
    ferryPatchLeb128: { ...(await ferryPatchSeed(dir, false)), patch: await readFile(join(dir, FERRY_PATCH_LEB128)) },
    ferryPatchX86: await ferryPatchSeed(dir, true),
  };
}
