// `ferry release --image`: turns an image — an OCI layout folder, an `oci-archive` tar or a
// `docker save` tar (the legacy manifest.json + <id>/layer.tar form and the newer blobs/sha256 one)
// — into ONE normalised OCI layout, the tree that is published (ARCHITECTURE.md "Containers"):
//   - the one selected image (by its tag, or the only one), nothing else
//   - layers stored UNCOMPRESSED (gzip inflated by node:zlib; zstd only where node:zlib has it),
//     so per-file deltas work on their content and the device holds exactly the signed bytes
//     (no gzip has to be reproduced byte for byte); each layer's sha256 must equal its diff_id in
//     the config (ERR_HASH_MISMATCH), and each is scanned (layer-scan.ts) before it is published
//   - the config blob byte for byte as it was (its digest, the image id, is unchanged)
//   - a manifest rewritten with the OCI media types and the uncompressed layers' digests, in one
//     canonical form (no annotations), so the same image gives the same manifest digest whatever
//     form it came in
//   - index.json naming that one manifest with the ref name (org.opencontainers.image.ref.name)
// Compressed input blobs are checked against their descriptors' digests and sizes while read.

import { createReadStream, createWriteStream } from 'node:fs';
import { copyFile, lstat, mkdir, open, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import * as zlib from 'node:zlib';
import { dirname, join, posix } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import { Parser, type ReadEntry } from 'tar';
import { FerryError, fromFsError } from '../errors.ts';
import { arr, obj, str } from '../io/schema.ts';
import { parseStrictJson } from '../io/strict-json.ts';
import { checkRelativePath } from '../io/safe-path.ts';
import { printable, printableJson } from '../io/printable.ts';
import { scanLayerFile } from './layer-scan.ts';
import {
  blobPath,
  digestOf,
  IMAGE_JSON_MAX_BYTES,
  layerCompression,
  MAX_LAYERS,
  MEDIA,
  parseImageConfig,
  readLayoutImage,
  REF_NAME,
  type Descriptor,
  type ImageConfig,
  type LayerCompression,
} from './oci-layout.ts';

/** What the signed manifest records of an image (core/trust/metadata.ts ContainerRef). */
export interface ImportedImage {
  /** The image's reference: its tag (the ref name in index.json). */
  ref: string;
  /** sha256:<hex> of the normalised manifest: the image digest. */
  manifestDigest: string;
  /** sha256:<hex> of the config: the image id (unchanged by normalising). */
  configDigest: string;
  /** The uncompressed layers, in order. */
  layers: { digest: string; size: number }[];
  /** Which form the input was. */
  form: 'oci-layout' | 'oci-archive' | 'docker-save';
}

/** An image ref name (OCI's ref.name grammar, loosely): what may be signed and shown. */
export const IMAGE_REF = /^[A-Za-z0-9](?:[A-Za-z0-9._:@/+-]{0,253}[A-Za-z0-9])?$/;

interface SourceLayer {
  file: string;
  /** Declared by a media type, or (docker save) read from the blob's first bytes. */
  compression: LayerCompression;
  /** The descriptor the blob must match (layouts); docker save's layer files have none. */
  descriptor?: Descriptor;
}

interface SourceImage {
  configBytes: Buffer;
  config: ImageConfig;
  layers: SourceLayer[];
  refName: string | undefined;
}

/** Whether this Node can inflate zstd layers (node:zlib has zstd from Node 22.15 / 23.8). */
export function hasZstd(): boolean {
  return typeof (zlib as unknown as { createZstdDecompress?: unknown }).createZstdDecompress === 'function';
}

function decompressor(c: LayerCompression, what: string): Transform | null {
  if (c === 'none') return null;
  if (c === 'gzip') return zlib.createGunzip();
  if (!hasZstd()) throw new FerryError('ERR_USAGE', `${what} is zstd-compressed and this Node (${process.version}) has no zstd in node:zlib (Node >= 22.15 has); recompress the image with gzip (e.g. skopeo copy --dest-compress-format gzip) or publish on a newer Node`);
  return (zlib as unknown as { createZstdDecompress(): Transform }).createZstdDecompress();
}

/** Hashes and counts what passes (the compressed blob as read). */
function hashing(): Transform & { sha256(): string; size(): number } {
  const hash = createHash('sha256');
  let size = 0;
  const t = new Transform({
    transform(chunk: Buffer, _e, done) {
      hash.update(chunk);
      size += chunk.length;
      done(null, chunk);
    },
  });
  return Object.assign(t, { sha256: () => hash.digest('hex'), size: () => size });
}

async function kindOf(input: string): Promise<'dir' | 'file'> {
  try {
    const st = await lstat(input);
    if (st.isDirectory()) return 'dir';
    if (st.isFile()) return 'file';
  } catch (err) {
    throw fromFsError(err, `reading ${input}`);
  }
  throw new FerryError('ERR_USAGE', `${input} is neither a folder nor a file`);
}

/**
 * Unpacks an input tar (oci-archive or docker save, the publisher's own input) into `dir`:
 * regular files at their own (plain relative) paths; a symlink inside the archive (docker save
 * links a repeated layer to its first copy) becomes a copy of its target file; anything else is
 * refused.
 */
async function unpackInputTar(tarFile: string, dir: string): Promise<Set<string>> {
  const files = new Set<string>();
  const links = new Map<string, string>();
  const writes: Promise<void>[] = [];
  let failure: unknown;
  const parser = new Parser({ strict: true } as ConstructorParameters<typeof Parser>[0]);
  parser.on('entry', (entry: ReadEntry) => {
    try {
      if (failure !== undefined) return entry.resume();
      const name = entry.path.replace(/^(\.\/)+/, '').replace(/\/+$/, '');
      if (name === '' || entry.type === 'Directory') return entry.resume();
      const path = checkRelativePath(name, 'image archive entry');
      if (entry.type === 'SymbolicLink') {
        links.set(path, posix.normalize(posix.join(posix.dirname(path), entry.linkpath ?? '')));
        return entry.resume();
      }
      if (entry.type !== 'File' && entry.type !== 'OldFile' && entry.type !== 'ContiguousFile') {
        throw new FerryError('ERR_UNSAFE_ARCHIVE', `image archive entry ${printable(path)} is a ${entry.type}`);
      }
      if (files.has(path)) throw new FerryError('ERR_UNSAFE_ARCHIVE', `image archive entry ${printable(path)} appears twice`);
      files.add(path);
      const out = join(dir, path);
      writes.push(mkdir(dirname(out), { recursive: true }).then(() => pipeline(entry, createWriteStream(out, { flags: 'wx' }))).catch((err) => { failure ??= err; }));
    } catch (err) {
      failure ??= err;
      entry.resume();
    }
  });
  const done = new Promise<void>((resolve, reject) => {
    parser.on('end', resolve);
    parser.on('close', resolve);
    parser.on('error', (err: Error) => reject(new FerryError('ERR_UNSAFE_ARCHIVE', `${tarFile} is not a well-formed tar: ${printable(err.message)}`, { cause: err })));
  });
  try {
    await pipeline(createReadStream(tarFile), parser as unknown as NodeJS.WritableStream);
  } catch (err) {
    failure ??= err instanceof FerryError ? err : fromFsError(err, `reading ${tarFile}`);
  }
  await done.catch((err) => { failure ??= err; });
  await Promise.all(writes);
  if (failure !== undefined) throw failure;
  for (const [link, target] of links) {
    let t = target;
    for (let hops = 0; links.has(t) && hops < 40; hops++) t = links.get(t)!;
    if (!files.has(t)) throw new FerryError('ERR_UNSAFE_ARCHIVE', `image archive link ${printable(link)} does not name a file of the archive`);
    await mkdir(dirname(join(dir, link)), { recursive: true });
    await copyFile(join(dir, t), join(dir, link));
    files.add(link);
  }
  return files;
}

/** A layout (folder, or an unpacked oci-archive / newer docker save): the image `ref` or the only one. */
async function fromLayout(dir: string, ref: string | undefined): Promise<SourceImage> {
  const image = await readLayoutImage(dir, ref);
  const layers = image.manifest.layers.map((d, i) => ({ file: join(dir, blobPath(d.digest)), compression: layerCompression(d.mediaType, `layer ${i}`), descriptor: d }));
  return { configBytes: image.configBytes, config: image.config, layers, refName: image.refName };
}

/** docker save's manifest.json: [{Config, RepoTags, Layers}], paths into the archive. */
async function fromDockerSave(dir: string, files: Set<string>, ref: string | undefined): Promise<SourceImage> {
  const list = arr(parseStrictJson(await readFile(join(dir, 'manifest.json')), IMAGE_JSON_MAX_BYTES, 'manifest.json'), 'manifest.json').map((e, i) => {
    const o = obj(e, `manifest.json[${i}]`);
    const tags = o.RepoTags === undefined || o.RepoTags === null ? [] : arr(o.RepoTags, `manifest.json[${i}].RepoTags`).map((t, j) => str(t, `manifest.json[${i}].RepoTags[${j}]`));
    const layers = arr(o.Layers, `manifest.json[${i}].Layers`).map((l, j) => str(l, `manifest.json[${i}].Layers[${j}]`));
    return { config: str(o.Config, `manifest.json[${i}].Config`), tags, layers };
  });
  let chosen;
  if (ref !== undefined) {
    // "name:tag" as docker names it, or the tag alone.
    const named = list.filter((e) => e.tags.some((t) => t === ref || t.slice(t.lastIndexOf(':') + 1) === ref));
    if (named.length !== 1) throw new FerryError('ERR_USAGE', `the docker save archive has ${named.length === 0 ? 'no' : 'more than one'} image tagged ${printableJson(ref)} (tags: ${list.flatMap((e) => e.tags).join(', ') || 'none'})`);
    chosen = named[0]!;
  } else {
    if (list.length !== 1) throw new FerryError('ERR_USAGE', `the docker save archive holds ${list.length} images; choose one with --image-ref <tag>`);
    chosen = list[0]!;
  }
  if (chosen.layers.length > MAX_LAYERS) throw new FerryError('ERR_TOO_LARGE', `the image has ${chosen.layers.length} layers, over ${MAX_LAYERS}`);
  const member = (p: string): string => {
    const path = checkRelativePath(p.replace(/^(\.\/)+/, ''), 'manifest.json path');
    if (!files.has(path)) throw new FerryError('ERR_NOT_FOUND', `manifest.json names ${printable(path)}, which the archive lacks`);
    return join(dir, path);
  };
  const configFile = member(chosen.config);
  const configBytes = await readFile(configFile);
  if (configBytes.length > IMAGE_JSON_MAX_BYTES) throw new FerryError('ERR_TOO_LARGE', `the image config is over ${IMAGE_JSON_MAX_BYTES} bytes`);
  // A blobs/sha256/<hex> name (the newer form) is a promise about its bytes: kept.
  const named = /^blobs\/sha256\/([0-9a-f]{64})$/.exec(chosen.config.replace(/^(\.\/)+/, ''));
  if (named && digestOf(configBytes) !== `sha256:${named[1]}`) throw new FerryError('ERR_HASH_MISMATCH', `the image config ${chosen.config} does not hash to its name`);
  const layers: SourceLayer[] = [];
  for (const l of chosen.layers) {
    const file = member(l);
    layers.push({ file, compression: await sniffCompression(file) });
  }
  const tag = chosen.tags[0];
  return { configBytes, config: parseImageConfig(configBytes), layers, refName: tag };
}

/** docker save writes layers as they are stored (usually plain tar; gzip or zstd from some builders). */
async function sniffCompression(file: string): Promise<LayerCompression> {
  const head = Buffer.alloc(4);
  const h = await open(file, 'r');
  try { await h.read(head, 0, 4, 0); } finally { await h.close(); }
  if (head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.equals(Buffer.from([0x28, 0xb5, 0x2f, 0xfd]))) return 'zstd';
  return 'none';
}

/**
 * Decompresses one layer into `out/blobs/sha256/<its sha256>`, checking the compressed blob
 * against its descriptor, the tar with layer-scan.ts, and the result against `diffId`.
 */
async function normaliseLayer(layer: SourceLayer, i: number, diffId: string, out: string): Promise<{ digest: string; size: number }> {
  const what = `layer ${i}`;
  const tmp = join(out, 'blobs', 'sha256', `.layer-${i}.tmp`);
  const read = hashing();
  const inflate = decompressor(layer.compression, what);
  try {
    const write = createWriteStream(tmp, { flags: 'wx', mode: 0o644 });
    if (inflate) await pipeline(createReadStream(layer.file), read, inflate, write);
    else await pipeline(createReadStream(layer.file), read, write);
  } catch (err) {
    if (/^(Z_|ERR__ERROR_|ERR_ZSTD)/.test(String((err as NodeJS.ErrnoException)?.code))) throw new FerryError('ERR_UNSAFE_ARCHIVE', `${what} does not decompress as ${layer.compression}: ${printable((err as Error).message)}`, { cause: err });
    throw fromFsError(err, `reading ${what}`);
  }
  const d = layer.descriptor;
  if (d) {
    if (read.size() !== d.size) throw new FerryError('ERR_SIZE', `${what} blob is ${read.size()} bytes, its descriptor says ${d.size}`);
    if (`sha256:${read.sha256()}` !== d.digest) throw new FerryError('ERR_HASH_MISMATCH', `${what} blob does not hash to ${d.digest}`);
  }
  const scanned = await scanLayerFile(tmp, what);
  const digest = `sha256:${scanned.sha256}`;
  if (digest !== diffId) throw new FerryError('ERR_HASH_MISMATCH', `${what} uncompressed is ${digest}, but the image config's diff_id says ${diffId}`);
  await rename(tmp, join(out, blobPath(digest)));
  return { digest, size: scanned.size };
}

/** The canonical manifest of a normalised image: OCI media types, uncompressed layers, no annotations. */
export function normalisedManifest(config: Descriptor, layers: { digest: string; size: number }[]): Buffer {
  return Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: MEDIA.ociManifest,
    config: { mediaType: MEDIA.ociConfig, digest: config.digest, size: config.size },
    layers: layers.map((l) => ({ mediaType: MEDIA.ociLayer, digest: l.digest, size: l.size })),
  }));
}

async function writeBlob(out: string, bytes: Buffer): Promise<string> {
  const digest = digestOf(bytes);
  await writeFile(join(out, blobPath(digest)), bytes, { mode: 0o644 });
  return digest;
}

/**
 * Imports `input` (a layout folder, an oci-archive tar or a docker save tar) as a normalised
 * layout in `outDir` (which must not exist). `ref` selects the image (its tag) and names it;
 * without it the input must hold one image, named by its own tag or else `defaultRef`.
 * `workDir` is scratch space for unpacking a tar (removed by the caller).
 */
export async function importImage(input: { from: string; outDir: string; workDir: string; ref?: string; defaultRef: string }): Promise<ImportedImage> {
  if (input.ref !== undefined && !IMAGE_REF.test(input.ref)) throw new FerryError('ERR_USAGE', `--image-ref ${printableJson(input.ref)} is not an image tag ([A-Za-z0-9._:@/+-])`);
  let source: SourceImage;
  let form: ImportedImage['form'];
  if ((await kindOf(input.from)) === 'dir') {
    source = await fromLayout(input.from, input.ref);
    form = 'oci-layout';
  } else {
    const unpacked = join(input.workDir, 'input');
    await mkdir(unpacked, { recursive: true });
    const files = await unpackInputTar(input.from, unpacked);
    if (files.has('manifest.json')) {
      source = await fromDockerSave(unpacked, files, input.ref);
      form = 'docker-save';
    } else if (files.has('oci-layout')) {
      source = await fromLayout(unpacked, input.ref);
      form = 'oci-archive';
    } else {
      throw new FerryError('ERR_USAGE', `${input.from} is neither an oci-archive (no oci-layout) nor a docker save archive (no manifest.json)`);
    }
  }
  const { config } = source;
  if (config.diffIds.length !== source.layers.length) throw new FerryError('ERR_SCHEMA', `the image config lists ${config.diffIds.length} diff_ids for ${source.layers.length} layers`);
  const ref = input.ref ?? (source.refName !== undefined && IMAGE_REF.test(source.refName) ? source.refName : input.defaultRef);

  const out = input.outDir;
  await mkdir(join(out, 'blobs', 'sha256'), { recursive: true });
  try {
    const layers: { digest: string; size: number }[] = [];
    for (const [i, layer] of source.layers.entries()) layers.push(await normaliseLayer(layer, i, config.diffIds[i]!, out));
    const configDigest = await writeBlob(out, source.configBytes);
    const manifestBytes = normalisedManifest({ mediaType: MEDIA.ociConfig, digest: configDigest, size: source.configBytes.length }, layers);
    const manifestDigest = await writeBlob(out, manifestBytes);
    const index = { schemaVersion: 2, mediaType: MEDIA.layoutIndex, manifests: [{ mediaType: MEDIA.ociManifest, digest: manifestDigest, size: manifestBytes.length, annotations: { [REF_NAME]: ref } }] };
    await writeFile(join(out, 'index.json'), JSON.stringify(index), { mode: 0o644 });
    await writeFile(join(out, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }), { mode: 0o644 });
    return { ref, manifestDigest, configDigest, layers, form };
  } catch (err) {
    await rm(out, { recursive: true, force: true });
    throw err;
  }
}
