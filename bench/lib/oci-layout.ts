// Reads OCI image layouts for bench/container with the bench's own code (not ferry's image
// reader), so the check of what a device installed does not trust ferry: the image a layout's
// index names (manifest, config, layers), the blob files a layout holds, and a full verification
// of an installed image (every blob named by its sha256, each layer's uncompressed content hashing
// to the config's diff_id, the config the one the publisher built).

import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { createGunzip } from 'node:zlib';

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

export interface ImageInLayout {
  manifestDigest: string;
  manifestBytes: number;
  config: Descriptor;
  layers: Descriptor[];
  diffIds: string[];
}

export const blobFile = (layout: string, digest: string) => join(layout, 'blobs', 'sha256', digest.replace(/^sha256:/, ''));

/** The one image a layout's index.json names. */
export async function readImage(layout: string): Promise<ImageInLayout> {
  const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as { manifests: Descriptor[] };
  if (index.manifests.length !== 1) throw new Error(`${layout}: index.json names ${index.manifests.length} images, want 1`);
  const entry = index.manifests[0]!;
  const manifest = JSON.parse(await readFile(blobFile(layout, entry.digest), 'utf8')) as { config: Descriptor; layers: Descriptor[] };
  const config = JSON.parse(await readFile(blobFile(layout, manifest.config.digest), 'utf8')) as { rootfs: { diff_ids: string[] } };
  return { manifestDigest: entry.digest, manifestBytes: entry.size, config: manifest.config, layers: manifest.layers, diffIds: config.rootfs.diff_ids };
}

/** Every blob file of a layout: digest → size. */
export async function layoutBlobs(layout: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  const dir = join(layout, 'blobs', 'sha256');
  for (const name of await readdir(dir)) out.set(`sha256:${name}`, (await stat(join(dir, name))).size);
  return out;
}

async function sha256Of(path: string, gunzip: boolean): Promise<string> {
  const hash = createHash('sha256');
  const input = createReadStream(path);
  const stream = gunzip ? input.pipe(createGunzip()) : input;
  for await (const chunk of stream) hash.update(chunk as Buffer);
  return `sha256:${hash.digest('hex')}`;
}

/**
 * Throws unless `layout` holds a complete image whose config is `wantConfig` (the publisher's
 * config blob digest) and whose layers, uncompressed, hash to that config's diff_ids. Layers may
 * be gzip (as built) or plain tar (as ferry --image stores them): both are the same image.
 */
export async function verifyInstalledImage(layout: string, wantConfig: string): Promise<ImageInLayout> {
  const image = await readImage(layout);
  if (image.config.digest !== wantConfig) throw new Error(`${layout}: image config ${image.config.digest}, want ${wantConfig}`);
  for (const d of [{ digest: image.manifestDigest }, image.config]) {
    const got = await sha256Of(blobFile(layout, d.digest), false);
    if (got !== d.digest) throw new Error(`${layout}: blob ${d.digest} hashes to ${got}`);
  }
  if (image.layers.length !== image.diffIds.length) throw new Error(`${layout}: ${image.layers.length} layers, config lists ${image.diffIds.length}`);
  for (const [i, layer] of image.layers.entries()) {
    const file = blobFile(layout, layer.digest);
    if ((await sha256Of(file, false)) !== layer.digest) throw new Error(`${layout}: layer ${layer.digest} does not hash to its name`);
    const gz = /gzip/.test(layer.mediaType);
    const diffId = gz ? await sha256Of(file, true) : layer.digest;
    if (diffId !== image.diffIds[i]) throw new Error(`${layout}: layer ${i} is ${diffId} uncompressed, the config says ${image.diffIds[i]}`);
  }
  return image;
}
