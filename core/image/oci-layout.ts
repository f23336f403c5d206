// Reading an OCI image layout (ARCHITECTURE.md "Containers"): the `oci-layout` file, index.json,
// the image manifest, its config and its layer descriptors, each parsed strictly (strict JSON,
// SECURITY.md row 13; size caps before anything is read, row 6). Digests are sha256 only, so a
// blob's file name is its hash and can be checked as one. Media types of both OCI and Docker
// v2 schema2 are understood; a multi-platform index, non-distributable ("foreign") layers and
// other digest algorithms are refused with the reason. Used by the publisher (import-image.ts) and
// by the device (verify-image.ts), which reads the layout it was signed as.

import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FerryError, fromFsError } from '../errors.ts';
import { sha256 } from '../io/hash.ts';
import { arr, int, obj, str, type JsonObject } from '../io/schema.ts';
import { parseStrictJson, type Json } from '../io/strict-json.ts';
import { printableJson } from '../io/printable.ts';

/** index.json, manifests and configs: small documents, read whole under this cap. */
export const IMAGE_JSON_MAX_BYTES = 4 * 1024 * 1024;
/** Docker's own limit is 127 layers; a few more for other builders. */
export const MAX_LAYERS = 256;

export const MEDIA = {
  layoutIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
} as const;

/** The annotation naming an image in a layout's index.json (its tag). */
export const REF_NAME = 'org.opencontainers.image.ref.name';

export type LayerCompression = 'none' | 'gzip' | 'zstd';

const LAYER_TYPES: Record<string, LayerCompression> = {
  'application/vnd.oci.image.layer.v1.tar': 'none',
  'application/vnd.oci.image.layer.v1.tar+gzip': 'gzip',
  'application/vnd.oci.image.layer.v1.tar+zstd': 'zstd',
  'application/vnd.docker.image.rootfs.diff.tar': 'none',
  'application/vnd.docker.image.rootfs.diff.tar.gzip': 'gzip',
  'application/vnd.docker.image.rootfs.diff.tar.zstd': 'zstd',
};
const MANIFEST_TYPES = new Set<string>([MEDIA.ociManifest, MEDIA.dockerManifest]);
const CONFIG_TYPES = new Set<string>([MEDIA.ociConfig, MEDIA.dockerConfig]);

/** "sha256:<64 hex>": the only digest form accepted (a file name must be its hash). */
export const DIGEST = /^sha256:[0-9a-f]{64}$/;

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

export interface ImageManifest {
  mediaType: string;
  config: Descriptor;
  layers: Descriptor[];
}

export interface ImageConfig {
  labels: Record<string, string>;
  /** rootfs.diff_ids: the sha256 of each layer's uncompressed tar, in layer order. */
  diffIds: string[];
}

/** The layout path of a blob: blobs/sha256/<hex>. */
export function blobPath(digest: string): string {
  if (!DIGEST.test(digest)) throw new FerryError('ERR_SCHEMA', `digest ${printableJson(digest.slice(0, 80))} is not sha256:<64 hex>`);
  return `blobs/sha256/${digest.slice('sha256:'.length)}`;
}

export function digestOf(bytes: Uint8Array): string {
  return `sha256:${sha256(bytes)}`;
}

/** How a layer media type is compressed; refuses non-distributable and unknown layer types. */
export function layerCompression(mediaType: string, what: string): LayerCompression {
  const c = LAYER_TYPES[mediaType];
  if (c === undefined) {
    const why = /nondistributable|foreign/.test(mediaType) ? 'a non-distributable layer (its bytes are not in the image)' : 'not a layer media type ferry knows';
    throw new FerryError('ERR_SCHEMA', `${what} has media type ${printableJson(mediaType.slice(0, 120))}: ${why}`);
  }
  return c;
}

function stringMap(value: Json | undefined, what: string): Record<string, string> {
  if (value === undefined || value === null) return {};
  const o = obj(value, what);
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(o)) out[k] = str(v, `${what}.${k}`);
  return out;
}

export function parseDescriptor(value: Json | undefined, what: string): Descriptor {
  const o = obj(value, what);
  const d: Descriptor = { mediaType: str(o.mediaType, `${what}.mediaType`), digest: str(o.digest, `${what}.digest`), size: int(o.size, `${what}.size`) };
  if (!DIGEST.test(d.digest)) throw new FerryError('ERR_SCHEMA', `${what}.digest must be sha256:<64 hex> (ferry accepts sha256 digests only)`);
  if (o.annotations !== undefined) d.annotations = stringMap(o.annotations, `${what}.annotations`);
  return d;
}

function json(bytes: Uint8Array, what: string): JsonObject {
  const value = parseStrictJson(bytes, IMAGE_JSON_MAX_BYTES, what);
  refuseCaseTwins(value, what);
  return obj(value, what);
}

/**
 * Go's encoding/json (umoci, podman) matches object keys to fields case-insensitively and the last
 * match wins, so {"manifests":[A],"Manifests":[B]} is A here and B to umoci: the device would verify
 * and scan one image and the engine unpack another. Keys of one object that are equal under case
 * folding are refused (ERR_SCHEMA), so both readers see the same document. The fold (upper, then
 * lower) also maps U+017F and U+212A, which Go folds to "s" and "k".
 */
function refuseCaseTwins(value: Json, what: string): void {
  if (Array.isArray(value)) {
    for (const v of value) refuseCaseTwins(v, what);
    return;
  }
  if (value === null || typeof value !== 'object') return;
  const seen = new Map<string, string>();
  for (const [key, v] of Object.entries(value)) {
    const folded = key.toUpperCase().toLowerCase();
    const twin = seen.get(folded);
    if (twin !== undefined) throw new FerryError('ERR_SCHEMA', `${what}: keys ${printableJson(twin)} and ${printableJson(key)} differ only in case (other readers take one for the other)`);
    seen.set(folded, key);
    refuseCaseTwins(v, what);
  }
}

/** index.json: its image manifests (a nested index, a multi-platform image, is refused). */
export function parseIndex(bytes: Uint8Array): Descriptor[] {
  const o = json(bytes, 'index.json');
  if (o.schemaVersion !== 2) throw new FerryError('ERR_SCHEMA', 'index.json: schemaVersion must be 2');
  const manifests = arr(o.manifests, 'index.json manifests').map((m, i) => parseDescriptor(m, `index.json manifests[${i}]`));
  for (const [i, m] of manifests.entries()) {
    if (m.mediaType === MEDIA.layoutIndex || m.mediaType === MEDIA.dockerList) {
      throw new FerryError('ERR_USAGE', `index.json manifests[${i}] is a multi-platform index; give a layout of one platform's image (e.g. skopeo copy --override-arch)`);
    }
    if (!MANIFEST_TYPES.has(m.mediaType)) throw new FerryError('ERR_SCHEMA', `index.json manifests[${i}] has media type ${printableJson(m.mediaType)}, not an image manifest`);
  }
  return manifests;
}

/** An image manifest (OCI or Docker v2 schema2), sha256 descriptors, at most MAX_LAYERS layers. */
export function parseImageManifest(bytes: Uint8Array, what = 'image manifest'): ImageManifest {
  const o = json(bytes, what);
  if (o.schemaVersion !== 2) throw new FerryError('ERR_SCHEMA', `${what}: schemaVersion must be 2`);
  // OCI lets mediaType be absent in the manifest itself; the descriptor that named it said which.
  const mediaType = o.mediaType === undefined ? MEDIA.ociManifest : str(o.mediaType, `${what}.mediaType`);
  if (!MANIFEST_TYPES.has(mediaType)) throw new FerryError('ERR_SCHEMA', `${what}.mediaType ${printableJson(mediaType)} is not an image manifest`);
  const config = parseDescriptor(o.config, `${what}.config`);
  if (!CONFIG_TYPES.has(config.mediaType)) throw new FerryError('ERR_SCHEMA', `${what}.config has media type ${printableJson(config.mediaType)}, not an image config`);
  const layers = arr(o.layers, `${what}.layers`).map((l, i) => parseDescriptor(l, `${what}.layers[${i}]`));
  if (layers.length > MAX_LAYERS) throw new FerryError('ERR_TOO_LARGE', `${what} has ${layers.length} layers, over ${MAX_LAYERS}`);
  for (const [i, l] of layers.entries()) layerCompression(l.mediaType, `${what}.layers[${i}]`);
  return { mediaType, config, layers };
}

/** The parts of an image config ferry reads: labels (io.ferry.* requests) and the diff_ids. */
export function parseImageConfig(bytes: Uint8Array, what = 'image config'): ImageConfig {
  const o = json(bytes, what);
  const rootfs = obj(o.rootfs, `${what}.rootfs`);
  if (rootfs.type !== 'layers') throw new FerryError('ERR_SCHEMA', `${what}.rootfs.type must be "layers"`);
  const diffIds = arr(rootfs.diff_ids, `${what}.rootfs.diff_ids`).map((d, i) => str(d, `${what}.rootfs.diff_ids[${i}]`, DIGEST));
  const cfg = o.config === undefined || o.config === null ? {} : obj(o.config, `${what}.config`);
  return { labels: stringMap(cfg.Labels, `${what}.config.Labels`), diffIds };
}

/** The one manifest of `manifests` named `ref` (its ref.name annotation), or the only one when no ref is given. */
export function selectManifest(manifests: Descriptor[], ref: string | undefined, where: string): Descriptor {
  if (ref !== undefined) {
    const named = manifests.filter((m) => m.annotations?.[REF_NAME] === ref);
    if (named.length === 1) return named[0]!;
    const refs = manifests.map((m) => m.annotations?.[REF_NAME]).filter((r) => r !== undefined);
    throw new FerryError('ERR_USAGE', `${where} has ${named.length === 0 ? 'no' : 'more than one'} image tagged ${printableJson(ref)} (tags: ${refs.map((r) => printableJson(r)).join(', ') || 'none'})`);
  }
  if (manifests.length !== 1) throw new FerryError('ERR_USAGE', `${where} holds ${manifests.length} images; choose one with --image-ref <tag>`);
  return manifests[0]!;
}

/**
 * Reads blob `d` of the layout at `dir` whole (a JSON document: at most IMAGE_JSON_MAX_BYTES),
 * checking its size and sha256 against the descriptor. ERR_NOT_FOUND when it is absent.
 */
export async function readJsonBlob(dir: string, d: Descriptor, what: string): Promise<Buffer> {
  if (d.size > IMAGE_JSON_MAX_BYTES) throw new FerryError('ERR_TOO_LARGE', `${what} is ${d.size} bytes, over the ${IMAGE_JSON_MAX_BYTES}-byte cap`);
  const path = join(dir, blobPath(d.digest));
  let bytes: Buffer;
  try {
    const h = await open(path, 'r');
    try {
      const st = await h.stat();
      if (!st.isFile()) throw new FerryError('ERR_SCHEMA', `${what} (${blobPath(d.digest)}) is not a regular file`);
      if (st.size !== d.size) throw new FerryError('ERR_SIZE', `${what} is ${st.size} bytes, its descriptor says ${d.size}`);
      bytes = await h.readFile();
    } finally {
      await h.close();
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new FerryError('ERR_NOT_FOUND', `${what} ${d.digest} is not in the layout (${blobPath(d.digest)})`);
    throw fromFsError(err, `reading ${what}`);
  }
  if (bytes.length !== d.size) throw new FerryError('ERR_SIZE', `${what} is ${bytes.length} bytes, its descriptor says ${d.size}`);
  if (digestOf(bytes) !== d.digest) throw new FerryError('ERR_HASH_MISMATCH', `${what} does not hash to ${d.digest}`);
  return bytes;
}

/** The oci-layout marker file: imageLayoutVersion 1.0.0. */
export async function checkLayoutMarker(dir: string): Promise<void> {
  let bytes: Buffer;
  try {
    bytes = await readFile(join(dir, 'oci-layout'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new FerryError('ERR_NOT_FOUND', `${dir} is not an OCI image layout (no oci-layout file)`);
    throw fromFsError(err, `reading ${dir}/oci-layout`);
  }
  const o = json(bytes, 'oci-layout');
  if (o.imageLayoutVersion !== '1.0.0') throw new FerryError('ERR_SCHEMA', 'oci-layout: imageLayoutVersion must be "1.0.0"');
}

export interface LayoutImage {
  /** The manifest's descriptor in index.json. */
  descriptor: Descriptor;
  manifestBytes: Buffer;
  manifest: ImageManifest;
  configBytes: Buffer;
  config: ImageConfig;
  /** The ref.name annotation of the manifest in index.json, if any. */
  refName: string | undefined;
}

/**
 * Reads the image `ref` (or the only image) of the layout at `dir`: marker, index, manifest and
 * config, each JSON blob checked against its digest and size, and the config's diff_ids one per
 * layer. Layers are not read here (they can be large): their descriptors are returned.
 */
export async function readLayoutImage(dir: string, ref?: string): Promise<LayoutImage> {
  await checkLayoutMarker(dir);
  let indexBytes: Buffer;
  try {
    indexBytes = await readFile(join(dir, 'index.json'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new FerryError('ERR_NOT_FOUND', `${dir} has no index.json`);
    throw fromFsError(err, `reading ${dir}/index.json`);
  }
  const descriptor = selectManifest(parseIndex(indexBytes), ref, dir);
  const manifestBytes = await readJsonBlob(dir, descriptor, 'image manifest');
  const manifest = parseImageManifest(manifestBytes);
  if (manifest.mediaType !== descriptor.mediaType) {
    throw new FerryError('ERR_SCHEMA', `image manifest says ${manifest.mediaType}, index.json says ${descriptor.mediaType}`);
  }
  const configBytes = await readJsonBlob(dir, manifest.config, 'image config');
  const config = parseImageConfig(configBytes);
  if (config.diffIds.length !== manifest.layers.length) {
    throw new FerryError('ERR_SCHEMA', `image config lists ${config.diffIds.length} diff_ids for ${manifest.layers.length} layers`);
  }
  return { descriptor, manifestBytes, manifest, configBytes, config, refName: descriptor.annotations?.[REF_NAME] };
}
