// Which old blob each new blob of an image release is patched from (ARCHITECTURE.md "Containers").
// A changed layer has a new name (blobs/sha256/<its new hash>), so the per-file delta finds no
// file at its path in the old tree; the old layer at the same position of the old manifest is its
// nearest relative (an app layer rebuilt is mostly the same files), the old config the new
// config's and the old manifest the new manifest's. core/delta/make-delta.ts takes the map.

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { blobPath, parseImageManifest } from '../image/oci-layout.ts';
import type { ContainerRef } from '../trust/metadata.ts';

/** New blob path → old blob path, for the blobs the two images hold at the same position. */
export async function imageDeltaBases(oldDir: string, oldImage: ContainerRef, newDir: string, newImage: ContainerRef): Promise<Map<string, string>> {
  const manifestOf = async (dir: string, digest: string) => parseImageManifest(await readFile(join(dir, blobPath(digest))));
  const oldM = await manifestOf(oldDir, oldImage.manifestDigest);
  const newM = await manifestOf(newDir, newImage.manifestDigest);
  const bases = new Map<string, string>([
    [blobPath(newImage.manifestDigest), blobPath(oldImage.manifestDigest)],
    [blobPath(newM.config.digest), blobPath(oldM.config.digest)],
  ]);
  newM.layers.forEach((layer, i) => {
    const old = oldM.layers[i];
    if (old && !bases.has(blobPath(layer.digest))) bases.set(blobPath(layer.digest), blobPath(old.digest));
  });
  return bases;
}
