// Checking a container release's staged tree against its signed `container` field (device side,
// while staging, before any switch: ARCHITECTURE.md "Containers"; SECURITY.md "Containers" rows).
// The tree's bytes already match the signed file list; this checks that they are the image the
// publisher signed, in the form the engine will unpack, and that the device grants what it asks:
//   - oci-layout, and index.json naming exactly one manifest: the signed digest, the signed ref
//   - the manifest and config blobs present, named by their sha256, sizes as described, the
//     config the signed one; every layer an uncompressed tar (the published form), present, a
//     regular file of the described size whose sha256 is its name and its diff_id
//   - every layer scanned (layer-scan.ts): no absolute or escaping paths, no device nodes, no hard
//     links out (ERR_UNSAFE_ARCHIVE)
//   - the config's io.ferry.* labels (core/image/requests.ts) granted by ferry.json
//     container.allow (ERR_NOT_GRANTED)
// A refusal throws before the tree is renamed into releases/, so `current` and the running
// container are untouched.

import { lstat, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FerryError, fromFsError } from '../errors.ts';
import { printableJson } from '../io/printable.ts';
import type { ContainerRef } from '../trust/metadata.ts';
import { blobPath, checkLayoutMarker, layerCompression, parseImageConfig, parseImageManifest, parseIndex, readJsonBlob, REF_NAME } from './oci-layout.ts';
import { scanLayerFile } from './layer-scan.ts';
import { checkGrants, imageRequests, type ContainerGrants, type ImageRequests } from './requests.ts';

export interface VerifiedImage {
  requests: ImageRequests;
  layers: number;
}

/** Verifies the layout at `dir` as the image `signed` names (see the header); throws the stable code of the first problem. */
export async function verifyImage(dir: string, signed: ContainerRef, grants: ContainerGrants): Promise<VerifiedImage> {
  await checkLayoutMarker(dir);
  let indexBytes: Buffer;
  try {
    indexBytes = await readFile(join(dir, 'index.json'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new FerryError('ERR_NOT_FOUND', 'the image release has no index.json');
    throw fromFsError(err, 'reading index.json');
  }
  const manifests = parseIndex(indexBytes);
  if (manifests.length !== 1) throw new FerryError('ERR_SCHEMA', `index.json names ${manifests.length} manifests; an image release holds one`);
  const entry = manifests[0]!;
  if (entry.digest !== signed.manifestDigest) throw new FerryError('ERR_HASH_MISMATCH', `index.json names manifest ${entry.digest}, the release is signed for ${signed.manifestDigest}`);
  const ref = entry.annotations?.[REF_NAME];
  if (ref !== signed.ref) throw new FerryError('ERR_SCHEMA', `index.json names the image ${printableJson(ref ?? null)}, the release is signed as ${printableJson(signed.ref)}`);

  const manifest = parseImageManifest(await readJsonBlob(dir, entry, 'image manifest'));
  if (manifest.config.digest !== signed.configDigest) throw new FerryError('ERR_HASH_MISMATCH', `the manifest names config ${manifest.config.digest}, the release is signed for ${signed.configDigest}`);
  const config = parseImageConfig(await readJsonBlob(dir, manifest.config, 'image config'));
  if (config.diffIds.length !== manifest.layers.length) throw new FerryError('ERR_SCHEMA', `the image config lists ${config.diffIds.length} diff_ids for ${manifest.layers.length} layers`);
  for (const [i, layer] of manifest.layers.entries()) {
    if (layerCompression(layer.mediaType, `layer ${i}`) !== 'none') throw new FerryError('ERR_SCHEMA', `layer ${i} is ${layer.mediaType}; a published image holds uncompressed layers`);
    if (config.diffIds[i] !== layer.digest) throw new FerryError('ERR_HASH_MISMATCH', `layer ${i} is ${layer.digest}, the config's diff_id says ${config.diffIds[i]}`);
  }

  // The cheap refusal first: what the image asks of the device.
  const requests = imageRequests(config.labels);
  checkGrants(requests, grants, `image ${signed.ref}`);

  for (const [i, layer] of manifest.layers.entries()) {
    const what = `layer ${i} (${blobPath(layer.digest)})`;
    const file = join(dir, blobPath(layer.digest));
    const st = await lstat(file).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') throw new FerryError('ERR_NOT_FOUND', `${what} is not in the release`);
      throw fromFsError(err, `reading ${what}`);
    });
    if (!st.isFile()) throw new FerryError('ERR_SCHEMA', `${what} is not a regular file`);
    if (st.size !== layer.size) throw new FerryError('ERR_SIZE', `${what} is ${st.size} bytes, the manifest says ${layer.size}`);
    const scanned = await scanLayerFile(file, what);
    if (`sha256:${scanned.sha256}` !== layer.digest) throw new FerryError('ERR_HASH_MISMATCH', `${what} does not hash to its name`);
  }
  return { requests, layers: manifest.layers.length };
}
