// Reads the image of an installed image release: releases/<version>/ IS an OCI image layout
// (ARCHITECTURE.md "Containers"), already verified blob by blob while it was staged. This finds the
// one image in it (its tag for `umoci unpack --image <layout>:<tag>`, its manifest digest) and the
// image's own config (Env, Cmd, labels …) that runtime-spec.ts turns into a runtime config.

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FerryError } from '../../core/errors.ts';
import type { ImageConfig } from './runtime-spec.ts';

const REF_NAME = 'org.opencontainers.image.ref.name';
const DIGEST = /^sha256:[0-9a-f]{64}$/;

interface Descriptor {
  mediaType?: string;
  digest: string;
  size?: number;
  annotations?: Record<string, string>;
}

export interface LayoutImage {
  /** The tag umoci selects the image by. */
  ref: string;
  /** sha256:… of the image manifest. */
  manifestDigest: string;
  config: ImageConfig;
}

async function json(path: string, what: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new FerryError('ERR_NOT_FOUND', `${what} missing (${path}): is this release an OCI image layout?`);
    throw err;
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new FerryError('ERR_JSON', `${what} is not JSON (${path})`, { cause: err });
  }
}

function blobPath(layout: string, d: Descriptor, what: string): string {
  if (typeof d?.digest !== 'string' || !DIGEST.test(d.digest)) throw new FerryError('ERR_SCHEMA', `${what}: digest is not sha256:<64 hex>`);
  return join(layout, 'blobs', 'sha256', d.digest.slice('sha256:'.length));
}

/**
 * The image of layout `dir`: the index's only image, or the one tagged `preferRef` (the release's
 * version) when there are several. ERR_SCHEMA when it cannot tell which, or an entry has no tag.
 */
export async function readLayoutImage(dir: string, preferRef?: string): Promise<LayoutImage> {
  const index = (await json(join(dir, 'index.json'), 'index.json')) as { manifests?: Descriptor[] };
  const manifests = Array.isArray(index?.manifests) ? index.manifests : [];
  const chosen = manifests.length === 1 ? manifests[0] : manifests.find((m) => m.annotations?.[REF_NAME] === preferRef);
  if (!chosen) throw new FerryError('ERR_SCHEMA', `${dir}/index.json lists ${manifests.length} images and none is tagged ${preferRef ?? '(no tag asked)'}`);
  const ref = chosen.annotations?.[REF_NAME];
  if (!ref) throw new FerryError('ERR_SCHEMA', `${dir}/index.json: the image has no ${REF_NAME} annotation (tag)`);
  const manifest = (await json(blobPath(dir, chosen, 'index.json manifest'), 'image manifest')) as { config?: Descriptor };
  const configBlob = (await json(blobPath(dir, manifest.config as Descriptor, 'manifest config'), 'image config')) as { config?: ImageConfig };
  return { ref, manifestDigest: chosen.digest, config: configBlob.config ?? {} };
}
