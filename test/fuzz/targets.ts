// The fuzz targets and their oracles. Each case builds one hostile input from a real signed seed
// and feeds it to the real code. The oracles:
//   - the code returns, or throws a FerryError with a code: any other exception (TypeError,
//     RangeError, a raw Node error) is a finding
//   - (in the runner) each case finishes before its deadline
//   - extraction and bundle cases write nothing outside their staging folder (sandbox.ts), and
//     leave no link, device or setuid file inside it
//   - a patch (FERRYBD1) never has more written than its signed new size, leaves no output file
//     when refused, and when accepted reports the size and sha256 of exactly the file it wrote
//   - what is accepted is what was signed: a verified envelope yields exactly the payload its
//     signer signed, never a mutated one; an accepted document survives a round trip; a strictly
//     parsed document means what JSON.parse says it means

import { existsSync, readdirSync } from 'node:fs';
import { lstat, readdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { brotliCompressSync, brotliDecompressSync, constants as zc, gzipSync } from 'node:zlib';
import { applyPatchEntry, applySolidMember } from '../../core/delta/patch-apply.ts';
import { PATCH_HEADER_SIZE, readPatchHeader, unzigzag, writeVarint } from '../../core/delta/patch-format.ts';
import { encodeSolid, writeSolidHeader } from '../../core/delta/solid-format.ts';
import { FerryError } from '../../core/errors.ts';
import { parseStrictJson, type Json } from '../../core/io/strict-json.ts';
import { encodeEnvelope, parseEnvelope, PAYLOAD_TYPES, signEnvelope } from '../../core/trust/dsse.ts';
import { parseRootPayload, verifyRootRotation, verifyTrustedRoot, type RootDoc } from '../../core/trust/root.ts';
import { FILE_LIST_TYPE, parseChannelPayload, parseFileList, parseManifestPayload, regularFiles, type FileRef, type TreeEntry } from '../../core/trust/metadata.ts';
import { readChannel, readManifest, updateRoot, verifyArtifactFile } from '../../core/trust/trusted-metadata.ts';
import { openBundle } from '../../core/publish/bundle.ts';
import { archiveCoder, extractArchive, type ArchiveCoder, type ExpectedFile } from '../../core/io/extract.ts';
import { brotliDecoder } from '../../core/io/brotli.ts';
import { sha256 } from '../../core/io/hash.ts';
import { fileListPayload } from '../../core/trust/file-list.ts';
import type { Source } from '../../core/ports/source.ts';
import type { SigningKey } from '../../core/trust/keys.ts';
import { floodSignatures, mutateBytes, mutateJson, mutateTar, mutateTarEntry, mutateTarBr, mutateTarGz, withPayload, type Rng } from './mutate.ts';
import { NEW, OLD, TARGET, type Seeds } from './seeds.ts';
import type { Sandbox } from './sandbox.ts';

/** A broken oracle: the thing fuzzing looks for. */
export class Finding extends Error {
  constructor(readonly kind: string, message: string) {
    super(message);
    this.name = 'Finding';
  }
}

/** "accepted", or the FerryError code the input was refused with. */
export type Outcome = string;

/** A case function: builds its input from `r` and runs it; throws a Finding when an oracle breaks. */
export type RunCase = (r: Rng, index: number) => Promise<Outcome>;

export interface Target {
  name: string;
  what: string;
  /**
   * A case still running after this long is reported as a hang. Generous (the machine is shared):
   * a real hang runs for minutes or for ever, so a wide margin costs nothing but waiting.
   */
  deadlineMs: number;
  prepare(seeds: Seeds, sandbox: Sandbox): Promise<RunCase>;
}

/** Classifies a thrown value: a FerryError is a refusal (its code); anything else is a finding. */
function refusal(err: unknown): Outcome {
  if (err instanceof Finding) throw err;
  if (err instanceof FerryError && typeof err.code === 'string' && err.code.startsWith('ERR_')) return err.code;
  const e = err as Error | undefined;
  throw new Finding('non-FerryError', `${e?.name ?? typeof err}: ${e?.message ?? String(err)}\n${e?.stack?.split('\n').slice(1, 6).join('\n') ?? ''}`);
}

async function attempt(fn: () => Promise<Outcome> | Outcome): Promise<Outcome> {
  try {
    return await fn();
  } catch (err) {
    return refusal(err);
  }
}

function same(a: unknown, b: unknown, what: string): void {
  const x = JSON.stringify(a);
  const y = JSON.stringify(b);
  if (x !== y) throw new Finding('invariant', `${what}: ${x.slice(0, 300)} != ${y.slice(0, 300)}`);
}

const PROTOTYPE_NAMES = Object.getOwnPropertyNames(Object.prototype).sort().join(',');

/** A "__proto__" or "constructor" key must stay data: Object.prototype never gains a property. */
function checkPrototype(): void {
  const now = Object.getOwnPropertyNames(Object.prototype).sort().join(',');
  if (now !== PROTOTYPE_NAMES) throw new Finding('prototype-pollution', `Object.prototype changed: ${now}`);
}

// ---------------------------------------------------------------------------------------------

const strictJson: Target = {
  name: 'json',
  what: 'core/io/strict-json.ts parseStrictJson over mutated envelopes and payloads',
  deadlineMs: 10_000,
  async prepare(seeds) {
    const inputs = [seeds.root1, seeds.root2, seeds.channel, seeds.manifests[NEW]!, seeds.manifests[OLD]!].flatMap((e) => [e.bytes, e.payload]);
    const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
    return async (r) => {
      const base = r.pick(inputs);
      const bytes = r.chance(0.7) ? mutateJson(r, base) : mutateBytes(r, base, inputs);
      let value: Json;
      try {
        value = parseStrictJson(bytes, 16 * 1024 * 1024, 'fuzz input'); // the largest cap ferry uses (manifests)
      } catch (err) {
        return refusal(err);
      }
      // Differential: anything the strict reader accepts, JSON.parse reads the same way.
      let lax: unknown;
      try {
        lax = JSON.parse(decoder.decode(bytes));
      } catch (err) {
        throw new Finding('differential', `parseStrictJson accepted what JSON.parse refuses (${(err as Error).message})`);
      }
      same(value, lax, 'parseStrictJson and JSON.parse disagree');
      const walk = (v: Json, depth: number): void => {
        if (depth > 65) throw new Finding('invariant', 'accepted a document nested deeper than the cap');
        if (typeof v === 'number' && !Number.isSafeInteger(v)) throw new Finding('invariant', `accepted the unsafe number ${v}`);
        if (Array.isArray(v)) v.forEach((x) => walk(x, depth + 1));
        else if (v !== null && typeof v === 'object') Object.values(v).forEach((x) => walk(x, depth + 1));
      };
      walk(value, 0);
      checkPrototype();
      return 'accepted';
    };
  },
};

// ---------------------------------------------------------------------------------------------

const metadata: Target = {
  name: 'metadata',
  what: 'core/trust/root.ts parseRootPayload, core/trust/metadata.ts parseChannelPayload / parseManifestPayload, parseFileList over mutated payloads',
  deadlineMs: 10_000,
  async prepare(seeds) {
    const kinds = [
      { payloads: [seeds.root1.payload, seeds.root2.payload], parse: parseRootPayload as (p: Uint8Array) => unknown },
      { payloads: [seeds.channel.payload], parse: parseChannelPayload },
      { payloads: [seeds.manifests[NEW]!.payload, seeds.manifests[OLD]!.payload], parse: parseManifestPayload },
      // A separate file list's entries, past its pin (taken from the bytes themselves: the pin check is not what is fuzzed).
      {
        payloads: [fileListPayload(seeds.manifests[NEW]!.doc.targets[TARGET]!.files), fileListPayload(seeds.manifests[OLD]!.doc.targets[TARGET]!.files)],
        parse: (b: Uint8Array) => ({ type: FILE_LIST_TYPE, files: parseFileList(b, { path: `releases/${NEW}/files-${TARGET}.json`, size: b.length, sha256: sha256(b) }) }),
      },
    ];
    return async (r) => {
      const kind = r.pick(kinds);
      const base = r.pick(kind.payloads);
      const bytes = r.chance(0.85) ? mutateJson(r, base) : mutateBytes(r, base, kind.payloads);
      let doc: unknown;
      try {
        doc = kind.parse(bytes);
      } catch (err) {
        return refusal(err);
      }
      // An accepted document, written back as JSON, is accepted again as the same document.
      let again: unknown;
      try {
        again = kind.parse(Buffer.from(JSON.stringify(doc)));
      } catch (err) {
        throw new Finding('invariant', `an accepted document is refused after a round trip: ${(err as Error).message}`);
      }
      same(again, doc, 'round trip changed the document');
      checkPrototype();
      return 'accepted';
    };
  },
};

// ---------------------------------------------------------------------------------------------

/** An in-memory Source holding a few repository files (caps enforced as a real source does). */
function memorySource(files: Record<string, Buffer | undefined>): Source {
  return {
    name: 'fuzz:memory',
    offline: true,
    async read(path, maxBytes) {
      const bytes = files[path];
      if (!bytes) return undefined;
      if (bytes.length > maxBytes) throw new FerryError('ERR_TOO_LARGE', `${path} is over its ${maxBytes}-byte cap`);
      return bytes;
    },
    async fetch() {
      return false;
    },
  };
}

interface EnvelopeMode {
  name: string;
  original: { bytes: Buffer; payload: Buffer };
  payloadType: string;
  signers: SigningKey[];
  /** Verifies `bytes` the way ferry does; returns the verified document and payload bytes. */
  verify(bytes: Buffer, r: Rng): Promise<{ doc: unknown; payload: Buffer }>;
  parse(payload: Buffer): unknown;
}

const payloadOf = (envelope: Uint8Array) => Buffer.from(parseEnvelope(envelope, 16 * 1024 * 1024, 'accepted envelope').payload, 'base64');

const envelopes: Target = {
  name: 'envelope',
  what: 'core/trust/dsse.ts parseEnvelope + verifyThreshold through core/trust/root.ts verifyTrustedRoot / verifyRootRotation and core/trust/trusted-metadata.ts readChannel / readManifest, against the real root',
  deadlineMs: 10_000,
  async prepare(seeds) {
    const root1 = seeds.root1.doc;
    const root2 = seeds.root2.doc;
    const pin = seeds.channel.doc.targets[TARGET]!.manifest;
    const modes: EnvelopeMode[] = [
      {
        name: 'trusted root', original: seeds.root1, payloadType: PAYLOAD_TYPES.root, signers: [seeds.rootKeys[0]!], parse: parseRootPayload,
        async verify(bytes) {
          const doc = verifyTrustedRoot(bytes);
          return { doc, payload: payloadOf(bytes) };
        },
      },
      {
        name: 'root rotation', original: seeds.root2, payloadType: PAYLOAD_TYPES.root, signers: seeds.rootKeys, parse: parseRootPayload,
        async verify(bytes) {
          const doc = verifyRootRotation(root1, bytes, 'root 2');
          return { doc, payload: payloadOf(bytes) };
        },
      },
      {
        name: 'channel', original: seeds.channel, payloadType: PAYLOAD_TYPES.channel, signers: [seeds.releaseKey], parse: parseChannelPayload,
        async verify(bytes) {
          const got = await readChannel(memorySource({ 'channels/stable.json': bytes }), root2, 'stable', null);
          if (!got) throw new Finding('invariant', 'readChannel found no channel in a source that holds one');
          return { doc: got.doc, payload: payloadOf(got.bytes) };
        },
      },
      {
        name: 'manifest', original: seeds.manifests[NEW]!, payloadType: PAYLOAD_TYPES.manifest, signers: [seeds.releaseKey], parse: parseManifestPayload,
        async verify(bytes, r) {
          const got = await readManifest(memorySource({ [`releases/${NEW}/manifest.json`]: bytes }), root2, NEW, r.chance(0.25) ? pin : null);
          if (!got) throw new Finding('invariant', 'readManifest found no manifest in a source that holds one');
          return { doc: got.doc, payload: payloadOf(got.bytes) };
        },
      },
    ];
    const all = modes.map((m) => m.original.bytes);
    return async (r) => {
      const mode = r.pick(modes);
      const original = mode.original;
      let bytes: Buffer;
      let signed = original.payload; // the payload the holder of the keys signed
      const how = r.next();
      if (how < 0.05) bytes = floodSignatures(r, original.bytes);
      else if (how < 0.4) bytes = mutateJson(r, original.bytes);
      else if (how < 0.6) bytes = withPayload(original.bytes, (p) => (r.chance(0.8) ? mutateJson(r, p) : mutateBytes(r, p)));
      else if (how < 0.75) bytes = mutateBytes(r, original.bytes, all);
      else {
        // A hostile document under a valid signature: reaches the payload parsers after verification.
        signed = r.chance(0.85) ? mutateJson(r, original.payload) : mutateBytes(r, original.payload);
        const type = r.chance(0.9) ? mode.payloadType : r.pick(Object.values(PAYLOAD_TYPES));
        bytes = encodeEnvelope(signEnvelope(type, signed, mode.signers));
      }
      return attempt(async () => {
        const got = await mode.verify(bytes, r);
        // What verifies is what was signed: a mutated payload never verifies, and the document
        // ferry uses is exactly the parse of the signed payload.
        if (!got.payload.equals(signed)) throw new Finding('invariant', `${mode.name}: accepted a payload nobody signed`);
        same(got.doc, mode.parse(signed), `${mode.name}: verified document differs from the signed payload`);
        checkPrototype();
        return 'accepted';
      });
    };
  },
};

// ---------------------------------------------------------------------------------------------

/** Inside `dir`: only regular files and folders, no special mode bits. Returns files by path. */
async function inspectTree(dir: string): Promise<Map<string, { sha256: string; size: number; mode: number }>> {
  const files = new Map<string, { sha256: string; size: number; mode: number }>();
  const walk = async (rel: string): Promise<void> => {
    for (const name of await readdir(join(dir, rel))) {
      const path = rel ? `${rel}/${name}` : name;
      const st = await lstat(join(dir, path));
      if (st.mode & 0o7000) throw new Finding('unsafe-file', `${path} has mode ${(st.mode & 0o7777).toString(8)} (setuid, setgid or sticky)`);
      if (st.isDirectory()) await walk(path);
      else if (st.isFile()) {
        const bytes = await readFile(join(dir, path));
        files.set(path, { sha256: sha256(bytes), size: bytes.length, mode: st.mode & 0o777 });
      } else throw new Finding('unsafe-file', `${path} in staging is not a regular file or folder`);
    }
  };
  await walk('');
  return files;
}

/** Runs `work` between two snapshots of the sandbox; anything written outside dest is a finding. */
async function contained(sandbox: Sandbox, work: () => Promise<Outcome>): Promise<Outcome> {
  await sandbox.resetDest();
  const before = await sandbox.snapshot();
  let outcome: Outcome | undefined;
  let broken: unknown;
  try {
    outcome = await attempt(work);
  } catch (err) {
    broken = err;
  }
  // An escape is reported before any other broken oracle of the same case: it is the worse one.
  const diffs = sandbox.escapes(before, await sandbox.snapshot());
  if (diffs.length > 0) throw new Finding('write-outside-staging', diffs.slice(0, 10).join('\n'));
  if (broken !== undefined) throw broken;
  await inspectTree(sandbox.dest);
  return outcome!;
}

const bundles: Target = {
  name: 'bundle',
  what: 'core/publish/bundle.ts openBundle over mutated .ferry files, then the root chain, channel, pinned manifest and artifacts read through the bundle',
  deadlineMs: 30_000,
  async prepare(seeds, sandbox) {
    const ctx = { escapeDir: sandbox.escapeDir };
    const originalArtifact = async (ref: FileRef) => readFile(join(seeds.repo, ref.path));
    return async (r) => {
      const how = r.next();
      let bytes: Buffer;
      if (how < 0.4) bytes = mutateTar(r, seeds.bundle, ctx);
      else if (how < 0.65) {
        bytes = mutateTarEntry(r, seeds.bundle, (n) => n.endsWith('.json'), (c) => (r.chance(0.3) ? withPayload(c, (p) => mutateJson(r, p)) : mutateJson(r, c)));
      } else if (how < 0.8) bytes = mutateTarEntry(r, seeds.bundle, (n) => !n.endsWith('.json'), (c) => mutateBytes(r, c));
      else bytes = mutateBytes(r, seeds.bundle);
      await writeFile(sandbox.input, bytes);
      return contained(sandbox, async () => {
        const source = await openBundle(sandbox.input, sandbox.dest);
        const root: RootDoc = await updateRoot(source, seeds.root1.doc);
        const rootAsSigned = root.version === 1 ? seeds.root1.doc : seeds.root2.doc;
        same(root, rootAsSigned, 'bundle root chain');
        const channel = await readChannel(source, root, 'stable', null);
        if (!channel) return 'accepted (no channel)';
        same(channel.doc, seeds.channel.doc, 'bundle channel pointer');
        const pin = channel.doc.targets[TARGET]!;
        const manifest = await readManifest(source, root, pin.version, pin.manifest);
        if (!manifest) return 'accepted (no manifest)';
        if (!Buffer.from(manifest.bytes).equals(seeds.manifests[NEW]!.bytes)) throw new Finding('invariant', 'a bundle manifest other than the signed one verified');
        const release = manifest.doc.targets[TARGET]!;
        let k = 0;
        for (const ref of [release.full, ...release.deltas.map((d) => d.artifact)]) {
          const fetched = join(sandbox.dest, `.fuzz-fetched-${k++}`);
          if (!(await source.fetch(ref.path, fetched, ref.size))) continue;
          await verifyArtifactFile(fetched, ref);
          if (!(await readFile(fetched)).equals(await originalArtifact(ref))) throw new Finding('invariant', `${ref.path}: altered bytes verified`);
        }
        return 'accepted';
      });
    };
  },
};

// ---------------------------------------------------------------------------------------------

interface ArchiveSeed {
  bytes: Buffer;
  /** The decoder its signed path names (core/io/extract.ts archiveCoder). */
  coder: ArchiveCoder;
  expected: Map<string, ExpectedFile>;
}

const extraction: Target = {
  name: 'extract',
  what: 'core/io/extract.ts extractArchive over mutated full tar.br (and older tar.gz) and delta tar artifacts, with and without the signed file list',
  deadlineMs: 30_000,
  async prepare(seeds, sandbox) {
    const ctx = { escapeDir: sandbox.escapeDir };
    const fileList = (files: TreeEntry[]) => new Map(regularFiles(files).map((f) => [f.path, { size: f.size, sha256: f.sha256, mode: f.mode }]));
    const delta = seeds.release.deltas.find((d) => d.from === OLD)!;
    const archives: ArchiveSeed[] = [
      { bytes: seeds.fullGz, coder: archiveCoder(seeds.release.full.path), expected: fileList(seeds.release.files) },
      { bytes: seeds.oldFullGz, coder: archiveCoder(seeds.manifests[OLD]!.doc.targets[TARGET]!.full.path), expected: fileList(seeds.manifests[OLD]!.doc.targets[TARGET]!.files) },
      // A .tar.gz full artifact as publishers before issue 14 wrote them: devices still take it.
      { bytes: gzipSync(brotliDecompressSync(seeds.fullGz, brotliDecoder()), { level: 9 }), coder: 'gzip', expected: fileList(seeds.release.files) },
      { bytes: seeds.deltaTar, coder: 'tar', expected: new Map(delta.ops.flatMap((op) => (op.op === 'copy' || op.op === 'link' || !('path' in op.entry) ? [] : [[op.entry.path, { size: op.entry.size, sha256: op.entry.sha256, mode: 0o600 }] as const]))) },
    ];
    const all = archives.map((a) => a.bytes);
    return async (r) => {
      const seed = r.pick(archives);
      const withList = r.chance(0.5);
      const bytes = seed.coder === 'brotli' ? mutateTarBr(r, seed.bytes, ctx, all) : seed.coder === 'gzip' ? mutateTarGz(r, seed.bytes, ctx, all) : r.chance(0.8) ? mutateTar(r, seed.bytes, ctx) : mutateBytes(r, seed.bytes, all);
      await writeFile(sandbox.input, bytes);
      const expected = withList ? seed.expected : null;
      return contained(sandbox, async () => {
        const files = await extractArchive(sandbox.input, sandbox.dest, expected, undefined, undefined, undefined, seed.coder);
        // Accepted: staging holds exactly the reported files, with the reported (and signed) bytes.
        const onDisk = await inspectTree(sandbox.dest);
        same([...onDisk.keys()].sort(), files.map((f) => f.path).sort(), 'files in staging vs files reported');
        for (const f of files) {
          const disk = onDisk.get(f.path)!;
          if (disk.sha256 !== f.sha256 || disk.size !== f.size) throw new Finding('invariant', `${f.path}: reported hash or size differs from the bytes written`);
          const want = expected?.get(f.path);
          if (expected && (!want || want.sha256 !== disk.sha256 || want.size !== disk.size || want.mode !== disk.mode)) {
            throw new Finding('invariant', `${f.path}: written file differs from the signed list (sha256, size or mode)`);
          }
        }
        if (expected) same([...onDisk.keys()].sort(), [...expected.keys()].sort(), 'staging vs signed file list');
        return 'accepted';
      });
    };
  },
};

// ---------------------------------------------------------------------------------------------

/** The varints of a control stream, as read (the zigzag left on); stops at the first incomplete one. */
function readVarints(bytes: Buffer): number[] {
  const out: number[] = [];
  for (let p = 0, v = 0, mult = 1; p < bytes.length; p++) {
    v += (bytes[p]! & 0x7f) * mult;
    mult *= 0x80;
    if (bytes[p]! < 0x80) { out.push(v); v = 0; mult = 1; }
  }
  return out;
}

function writeVarints(values: number[]): Buffer {
  const out = Buffer.alloc(values.length * 10);
  let at = 0;
  for (const v of values) at = writeVarint(out, at, Math.min(v, Number.MAX_SAFE_INTEGER));
  return out.subarray(0, at);
}

const EDGE = [0, 1, 2, 0x7f, 0x80, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1];
const HEADER_FIELDS = [
  { at: 8, bytes: 1 }, { at: 9, bytes: 1 }, { at: 10, bytes: 1 }, { at: 11, bytes: 1 }, { at: 12, bytes: 4 },
  { at: 16, bytes: 8 }, { at: 24, bytes: 8 }, { at: 32, bytes: 8 }, { at: 40, bytes: 8 }, { at: 48, bytes: 8 },
];

const ferryPatch: Target = {
  name: 'patch',
  what: 'core/delta/patch-apply.ts applyPatchEntry over mutated FERRYBD1 patches, with and without the x86-64 branch filter, in both control encodings: header fields, compressed bytes, and re-encoded control, diff and extra streams (base in memory or by positioned reads)',
  deadlineMs: 10_000,
  async prepare(seeds, sandbox) {
    const names = ['control', 'diff', 'extra'] as const;
    // Three seeds: the plain patch (control encoding 2), the same with encoding 1, and one with the
    // x86-64 filter (header byte 10 = 1), whose base the device filters (in memory or into a temp
    // file) and whose output it unfilters.
    const variants = await Promise.all([seeds.ferryPatch, seeds.ferryPatchX86, seeds.ferryPatchLeb128].map(async (seed, k) => {
      const h = readPatchHeader(seed.patch);
      const cut = (from: number, len: number) => seed.patch.subarray(from, from + len);
      const packed = {
        control: cut(PATCH_HEADER_SIZE, h.controlLength),
        diff: cut(PATCH_HEADER_SIZE + h.controlLength, h.diffLength),
        extra: cut(PATCH_HEADER_SIZE + h.controlLength + h.diffLength, h.extraLength),
      };
      const plain = { control: brotliDecompressSync(packed.control), diff: brotliDecompressSync(packed.diff), extra: brotliDecompressSync(packed.extra) };
      const baseFile = join(dirname(sandbox.input), `patch-base-${k}`);
      await writeFile(baseFile, seed.base);
      return { seed, h, packed, plain, baseFile };
    }));
    const squeeze = (r: Rng, b: Buffer) => brotliCompressSync(b, { params: { [zc.BROTLI_PARAM_QUALITY]: r.int(5) } });
    return async (r) => {
      const { seed, h, packed, plain, baseFile } = r.chance(1 / 3) ? variants[1]! : r.chance(1 / 3) ? variants[2]! : variants[0]!;
      /** A patch with these compressed streams, the header's lengths fitted to them. */
      const assemble = (streams: Record<(typeof names)[number], Buffer>, entries = h.entries) => {
        const header = Buffer.from(seed.patch.subarray(0, PATCH_HEADER_SIZE));
        header.writeUInt32LE(entries, 12);
        names.forEach((n, i) => header.writeBigUInt64LE(BigInt(streams[n].length), 32 + 8 * i));
        return Buffer.concat([header, streams.control, streams.diff, streams.extra]);
      };
      const how = r.next();
      let bytes: Buffer;
      if (how < 0.2) bytes = mutateBytes(r, seed.patch);
      else if (how < 0.35) {
        // One header field set to an edge value, a neighbour of its own, or noise.
        bytes = Buffer.from(seed.patch);
        const f = r.pick(HEADER_FIELDS);
        const now = f.bytes === 8 ? Number(bytes.readBigUInt64LE(f.at)) : bytes.readUIntLE(f.at, f.bytes);
        const max = 2 ** (8 * Math.min(f.bytes, 6)) - 1;
        const v = r.chance(0.4) ? r.pick(EDGE) : r.chance(0.6) ? now + r.int(5) - 2 : r.int(max);
        if (f.bytes === 8) bytes.writeBigUInt64LE(r.chance(0.1) ? 2n ** 64n - 1n - BigInt(r.int(3)) : BigInt(Math.max(0, v)), f.at);
        else bytes.writeUIntLE(((Math.max(0, v) % (max + 1)) + max + 1) % (max + 1), f.at, f.bytes);
      } else if (how < 0.75) {
        // A stream changed before compression, re-compressed, the header fitted: reaches the
        // checks made while writing.
        const streams = { ...packed };
        let entries = h.entries;
        const which = r.chance(0.5) ? 'control' : r.pick(names);
        if (which === 'control' && r.chance(0.8)) {
          const values = readVarints(plain.control);
          for (let k = 1 + r.int(3); k > 0; k--) {
            const i = r.int(values.length);
            const m = r.int(6);
            if (m === 0) values[i] = r.pick(EDGE);
            else if (m === 1) values[i] = Math.max(0, values[i]! + r.int(129) - 64);
            else if (m === 2) values.splice(i - (i % 3), 3); // drop an entry
            else if (m === 3) values.splice(i - (i % 3), 0, ...values.slice(i - (i % 3), i - (i % 3) + 3)); // repeat one
            else if (m === 4) values[i] = r.int(seed.base.length * 4);
            else values.push(r.int(100));
          }
          if (r.chance(0.7)) entries = Math.floor(values.length / 3);
          streams.control = squeeze(r, writeVarints(values));
          // Spare diff and extra bytes, so an entry grown past the signed size has the bytes to
          // write there, and only the patcher's own check can stop it.
          if (r.chance(0.7)) {
            streams.diff = squeeze(r, Buffer.concat([plain.diff, Buffer.alloc(1 + r.int(256))]));
            streams.extra = squeeze(r, Buffer.concat([plain.extra, Buffer.alloc(1 + r.int(256), 0x41)]));
          }
        } else {
          streams[which] = squeeze(r, mutateBytes(r, plain[which], [plain.diff, plain.extra]));
        }
        bytes = assemble(streams, entries);
      } else if (how < 0.9) {
        // The compressed bytes of one stream mutated (or cut, or grown), the header fitted.
        const which = r.pick(names);
        bytes = assemble({ ...packed, [which]: mutateBytes(r, packed[which]) });
      } else if (how < 0.95) {
        bytes = Buffer.concat([Buffer.from(r.pick(['FERRYZF1', 'BSDIFF40', 'FERRYBD2', 'ferrybd1']), 'latin1'), seed.patch.subarray(8)]);
      } else bytes = seed.patch;
      await writeFile(sandbox.input, bytes);
      const outFile = join(sandbox.dest, 'out');
      let most = 0;
      const checkWritten = () => {
        if (most > seed.newSize) throw new Finding('invariant', `wrote ${most} bytes, signed ${seed.newSize}`);
      };
      // A filtered base's temp folder (beside the output) is gone once the patch is done, whatever happened.
      const checkNoFilteredBase = () => {
        const left = readdirSync(sandbox.dest).filter((name) => name.startsWith('.x86-base-'));
        if (left.length > 0) throw new Finding('invariant', `left the filtered base's temp folder ${left[0]}`);
      };
      return contained(sandbox, async () => {
        let got: { sha256: string; size: number };
        try {
          got = await applyPatchEntry({
            baseFile, baseSize: seed.base.length, patch: { file: sandbox.input, offset: 0, size: bytes.length }, outFile, newSize: seed.newSize,
            ...(r.chance(0.5) ? { oldInMemoryMax: 0 } : {}), onWritten: (b) => { most = Math.max(most, b); },
          });
        } catch (err) {
          checkWritten();
          checkNoFilteredBase();
          // ERR_INTERNAL is ferry's own bug (an impossible state), never a verdict on a patch.
          if (err instanceof FerryError && err.code === 'ERR_INTERNAL') throw new Finding('internal', err.message);
          if (existsSync(outFile)) throw new Finding('invariant', `refused (${(err as Error).message}) but left its output file`);
          throw err;
        }
        checkWritten();
        checkNoFilteredBase();
        // Accepted: exactly the signed size, and the hash reported is the hash of the file written.
        const written = await readFile(outFile);
        if (got.size !== seed.newSize || written.length !== got.size) throw new Finding('invariant', `accepted with ${got.size} bytes reported, ${written.length} written, ${seed.newSize} signed`);
        if (sha256(written) !== got.sha256) throw new Finding('invariant', 'the reported sha256 is not the written file\'s');
        // The genuine seed builds exactly its new bytes (with the filter: undone on the output).
        if (bytes === seed.patch && got.sha256 !== seed.sha256) throw new Finding('invariant', 'the unchanged seed patch built other bytes than its own');
        return 'accepted';
      });
    };
  },
};

const SOLID_WHOLE = Buffer.from('export function trim(s) { return s.replace(/^\\s+|\\s+$/g, ""); }\n'.repeat(20));

const solidBlock: Target = {
  name: 'solid',
  what: 'core/delta/patch-apply.ts over mutated FERRYSB1 solid blocks (a patch member and a whole member): framing varints, compressed bytes, and re-encoded decoded sections with the framing fitted',
  deadlineMs: 10_000,
  async prepare(seeds, sandbox) {
    // Encoding 1 interleaves each entry's varints, as a FERRYSB1 member's control does.
    const seed = seeds.ferryPatchLeb128;
    const h = readPatchHeader(seed.patch);
    const plain = (from: number, len: number) => brotliDecompressSync(seed.patch.subarray(from, from + len));
    const control = readVarints(plain(PATCH_HEADER_SIZE, h.controlLength)).map((v, i) => (i % 3 === 2 ? unzigzag(v) : v));
    const raw = { oldSize: h.oldSize, newSize: h.newSize, control, diff: plain(PATCH_HEADER_SIZE + h.controlLength, h.diffLength), extra: plain(PATCH_HEADER_SIZE + h.controlLength + h.diffLength, h.extraLength) };
    const decoded = encodeSolid([{ kind: 'patch', sha256: seed.sha256, raw }, { kind: 'whole', sha256: sha256(SOLID_WHOLE), data: SOLID_WHOLE }]);
    const other = (r: Rng) => r.pick([seed.sha256, sha256(SOLID_WHOLE), sha256(seed.base)]);
    const block = (d: Buffer, members = 2, stated = d.length, q = 5) => Buffer.concat([writeSolidHeader(members, stated), brotliCompressSync(d, { params: { [zc.BROTLI_PARAM_QUALITY]: q } })]);
    const good = block(decoded);
    const baseFile = join(dirname(sandbox.input), 'solid-base');
    await writeFile(baseFile, seed.base);
    // A base that is not the signed one (cut short): the device must notice before it patches.
    const shortBase = join(dirname(sandbox.input), 'solid-base-short');
    await writeFile(shortBase, seed.base.subarray(0, seed.base.length - 1));
    return async (r) => {
      const how = r.next();
      let bytes: Buffer;
      if (how < 0.25) bytes = mutateBytes(r, good);
      else if (how < 0.4) bytes = block(decoded, r.chance(0.5) ? r.pick([0, 1, 3, 2 ** 16, 2 ** 16 + 1]) : 2, r.chance(0.5) ? r.pick([0, decoded.length - 1, decoded.length + 1, 2 ** 21, 2 ** 21 + 1]) : decoded.length);
      else if (how < 0.85) {
        // A decoded section changed, re-compressed, the framing fitted: reaches the split and the replay.
        const d = r.chance(0.5) ? mutateBytes(r, decoded, [SOLID_WHOLE]) : Buffer.from(decoded);
        if (d.length > 0 && r.chance(0.5)) d[r.int(Math.min(d.length, 64))] = r.pick([0, 1, 2, 0x7f, 0x80, 0xff]);
        bytes = block(d, 2, d.length, r.int(5));
      } else if (how < 0.92) {
        // A well-formed block whose members build more (or fewer) bytes than the signed op says.
        const k = r.int(64) - 16 || 1;
        const grownWhole = k > 0 ? Buffer.concat([SOLID_WHOLE, Buffer.alloc(k, 0x41)]) : SOLID_WHOLE.subarray(0, SOLID_WHOLE.length + k);
        const last = control.length - 2;
        const y = Math.max(0, control[last]! + k);
        const grownRaw = { ...raw, newSize: raw.newSize - control[last]! + y, control: control.map((v, i) => (i === last ? y : v)), extra: y >= control[last]! ? Buffer.concat([raw.extra, Buffer.alloc(y - control[last]!, 0x42)]) : raw.extra.subarray(0, raw.extra.length - control[last]! + y) };
        bytes = block(encodeSolid([{ kind: 'patch', sha256: seed.sha256, raw: grownRaw }, { kind: 'whole', sha256: sha256(SOLID_WHOLE), data: grownWhole }]));
      } else if (how < 0.96) bytes = Buffer.concat([good, Buffer.alloc(1 + r.int(8), r.int(256))]);
      else bytes = good;
      await writeFile(sandbox.input, bytes);
      const outFile = join(sandbox.dest, 'out');
      const whole = r.chance(0.4);
      const newSize = whole ? SOLID_WHOLE.length : seed.newSize;
      let most = 0;
      return contained(sandbox, async () => {
        let got: { sha256: string; size: number };
        const patch = { file: sandbox.input, offset: 0, size: bytes.length };
        const onWritten = (b: number) => { most = Math.max(most, b); };
        try {
          got = whole
            ? await applySolidMember({ patch, member: r.chance(0.9) ? sha256(SOLID_WHOLE) : other(r), outFile, newSize, onWritten })
            : await applyPatchEntry({ baseFile: r.chance(0.8) ? baseFile : shortBase, baseSize: seed.base.length, patch, outFile, newSize, member: r.chance(0.9) ? seed.sha256 : other(r), onWritten, ...(r.chance(0.5) ? { oldInMemoryMax: 0 } : {}) });
        } catch (err) {
          if (most > newSize) throw new Finding('invariant', `wrote ${most} bytes, signed ${newSize}`);
          if (err instanceof FerryError && err.code === 'ERR_INTERNAL') throw new Finding('internal', err.message);
          if (existsSync(outFile)) throw new Finding('invariant', `refused (${(err as Error).message}) but left its output file`);
          throw err;
        }
        const written = await readFile(outFile);
        if (got.size !== newSize || written.length !== got.size) throw new Finding('invariant', `accepted with ${got.size} bytes reported, ${written.length} written, ${newSize} signed`);
        if (sha256(written) !== got.sha256) throw new Finding('invariant', 'the reported sha256 is not the written file\'s');
        return 'accepted';
      });
    };
  },
};

export const TARGETS: readonly Target[] = [strictJson, metadata, envelopes, bundles, extraction, ferryPatch, solidBlock];


// ---------------------------------------------------------------------------------------------

/**
 * The runner's own check: a target whose cases break each oracle on purpose, so a test can show
 * that a non-FerryError, a hang, a write outside staging and a crash are each reported with their
 * case index (and that the run goes on after each). Never part of TARGETS.
 */
export const SELF_TEST: Target = {
  name: 'selftest',
  what: 'planted failures, one per oracle',
  deadlineMs: 1_500,
  async prepare(_seeds, sandbox) {
    return async (_r, index) => {
      switch (index % 5) {
        case 0: return attempt(() => { throw new FerryError('ERR_JSON', 'a proper refusal'); });
        case 1: return attempt(() => { throw new TypeError('planted: not a FerryError'); });
        case 2: for (;;) { /* planted: a synchronous hang only a watchdog outside the process can stop */ }
        case 3: return contained(sandbox, async () => { await writeFile(join(sandbox.outer, 'sandbox', 'sibling', 'planted.txt'), 'x'); return 'accepted'; });
        default: setImmediate(() => { throw new Error('planted: an uncaught exception after the case'); }); await new Promise((resolve) => setTimeout(resolve, 60_000)); return 'accepted';
      }
    };
  },
};


/**
 * Fixed inputs for bugs fuzzing found, run under the same watchdog and oracles as the fuzz cases.
 *   0: found by `envelope` (seed 438783825, case 137): a channel pointer carrying 3,000 forged
 *      signatures that name the trusted release key, ahead of the real one. Each was checked with
 *      ed25519 (over a minute of CPU per read); now only the first per key id is, so it is refused.
 *   1: the same forgeries after the real signature: the real one is checked first and verifies.
 */
export const REGRESSIONS: Target = {
  name: 'regress',
  what: 'inputs fuzzing found, replayed',
  deadlineMs: 10_000,
  async prepare(seeds) {
    const env = JSON.parse(seeds.channel.bytes.toString()) as { signatures: { keyid: string; sig: string }[] };
    const forged = Array.from({ length: 3000 }, (_, i) => {
      const sig = Buffer.alloc(64, (i % 250) + 1);
      sig[63] = 0x01; // scalar below the group order: each reaches the ed25519 check
      return { keyid: env.signatures[0]!.keyid, sig: sig.toString('base64') };
    });
    const read = (signatures: { keyid: string; sig: string }[]) => readChannel(memorySource({ 'channels/stable.json': Buffer.from(JSON.stringify({ ...env, signatures })) }), seeds.root2.doc, 'stable', null);
    return async (_r, index) => attempt(async () => {
      switch (index) {
        case 0: await read([...forged, ...env.signatures]); return 'accepted';
        case 1: same((await read([...env.signatures, ...forged]))?.doc, seeds.channel.doc, 'channel verified past forged signatures'); return 'accepted';
        default: throw new Error(`no regression case ${index}`);
      }
    });
  },
};

export function targetByName(name: string): Target {
  const t = [...TARGETS, SELF_TEST, REGRESSIONS].find((x) => x.name === name);
  if (!t) throw new Error(`unknown fuzz target "${name}" (targets: ${TARGETS.map((x) => x.name).join(', ')})`);
  return t;
}
