// Reads the image of an installed image release: releases/<version>/ IS an OCI image layout
// (ARCHITECTURE.md "Containers"), already verified blob by blob while it was staged. This finds the
// one image in it (its tag for `umoci unpack --image <layout>:<tag>`, its manifest digest) and the
// image's own config (Env, Cmd, labels …) that runtime-spec.ts turns into a runtime config. The
// layout is read by core/image/oci-layout.ts, the same strict reader the staging check uses, so the
// device never reads an image one way to verify it and another way to run it.

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FerryError, fromFsError } from '../../core/errors.ts';
import { parseIndex, readLayoutImage as readOciImage, REF_NAME } from '../../core/image/oci-layout.ts';
import type { ImageConfig } from './runtime-spec.ts';

export interface LayoutImage {
  /** The tag umoci selects the image by. */
  ref: string;
  /** sha256:… of the image manifest. */
  manifestDigest: string;
  config: ImageConfig;
}

/**
 * The image of layout `dir`: the index's only image, or the one tagged `preferRef` (the release's
 * version) when there are several. ERR_USAGE when it cannot tell which, ERR_SCHEMA when the image
 * has no tag.
 */
export async function readLayoutImage(dir: string, preferRef?: string): Promise<LayoutImage> {
  let index: Buffer;
  try {
    index = await readFile(join(dir, 'index.json'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new FerryError('ERR_NOT_FOUND', `${dir}/index.json missing: is this release an OCI image layout?`);
    throw fromFsError(err, `reading ${dir}/index.json`);
  }
  const image = await readOciImage(dir, parseIndex(index).length === 1 ? undefined : preferRef);
  const ref = image.refName;
  if (!ref) throw new FerryError('ERR_SCHEMA', `${dir}/index.json: the image has no ${REF_NAME} annotation (tag)`);
  // The config's bytes passed core's strict JSON reader and match their digest; runtime-spec.ts
  // reads the fields of its `config` object that core does not keep (Env, Cmd, User …).
  const runtime = (JSON.parse(image.configBytes.toString('utf8')) as { config?: ImageConfig | null }).config ?? {};
  return { ref, manifestDigest: image.descriptor.digest, config: runtime };
}
