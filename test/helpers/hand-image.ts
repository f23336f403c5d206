// Image layouts and image archives written by hand for the container tests: a normalised layout
// from raw layer tars (so a test can sign an image whose layer no well-behaved builder would
// make: traversal, device nodes), and the two archive forms `ferry release --image` takes besides
// a folder — a `docker save` tar (legacy <id>/layer.tar or the newer blobs/sha256 form) and an
// oci-archive — made from a layout with test/helpers/tar-writer.ts, not with the code under test.

import { createHash } from 'node:crypto';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { tarBytes, type TarEntry } from './tar-writer.ts';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

export interface HandImage {
  ref: string;
  manifestDigest: string;
  configDigest: string;
}

/**
 * Writes a normalised OCI layout (uncompressed layers, OCI media types, one image tagged `ref`) of
 * `layers` (raw tar bytes, written as they are) and a config with those diff_ids and `labels`.
 */
export async function handLayout(out: string, input: {
  ref: string;
  layers: Buffer[];
  labels?: Record<string, string>;
  /** How each layer is stored (default: as it is, media type …layer.v1.tar): e.g. gzipped, +gzip. */
  store?: (tar: Buffer) => { bytes: Buffer; mediaType: string };
  /** The config's diff_ids (default: the layers' sha256s). */
  diffIds?: string[];
}): Promise<HandImage> {
  const blobs = join(out, 'blobs', 'sha256');
  await mkdir(blobs, { recursive: true });
  const put = async (b: Buffer) => {
    const h = sha(b);
    await writeFile(join(blobs, h), b, { mode: 0o644 });
    return { digest: `sha256:${h}`, size: b.length };
  };
  const layers = [];
  for (const l of input.layers) {
    const stored = input.store?.(l) ?? { bytes: l, mediaType: 'application/vnd.oci.image.layer.v1.tar' };
    layers.push({ mediaType: stored.mediaType, ...(await put(stored.bytes)) });
  }
  const config = Buffer.from(JSON.stringify({
    architecture: 'amd64',
    os: 'linux',
    config: { Cmd: ['/bin/server'], Labels: input.labels ?? {} },
    rootfs: { type: 'layers', diff_ids: input.diffIds ?? input.layers.map((l) => `sha256:${sha(l)}`) },
  }));
  const c = await put(config);
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...c },
    layers,
  }));
  const m = await put(manifest);
  await writeFile(join(out, 'index.json'), JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...m, annotations: { 'org.opencontainers.image.ref.name': input.ref } }] }), { mode: 0o644 });
  await writeFile(join(out, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }), { mode: 0o644 });
  return { ref: input.ref, manifestDigest: m.digest, configDigest: c.digest };
}

interface LayoutParts {
  config: Buffer;
  configHex: string;
  /** Each layer's bytes as stored in the layout (gzip from umoci) and uncompressed. */
  layers: { stored: Buffer; tar: Buffer }[];
}

/** The one image of the layout at `dir`, read plainly (JSON.parse, no checks: the input side of a test). */
async function layoutParts(dir: string): Promise<LayoutParts> {
  const blob = (d: string) => readFile(join(dir, 'blobs', 'sha256', d.replace(/^sha256:/, '')));
  const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
  const manifest = JSON.parse((await blob(index.manifests[0]!.digest)).toString('utf8')) as { config: { digest: string }; layers: { digest: string; mediaType: string }[] };
  const layers = [];
  for (const l of manifest.layers) {
    const stored = await blob(l.digest);
    layers.push({ stored, tar: l.mediaType.endsWith('gzip') ? gunzipSync(stored) : stored });
  }
  return { config: await blob(manifest.config.digest), configHex: manifest.config.digest.replace(/^sha256:/, ''), layers };
}

/**
 * A `docker save` tar of the image in the layout at `dir`, tagged `repoTag` ("name:tag"):
 * 'legacy' as docker before 25 wrote it (<config hex>.json, <id>/layer.tar uncompressed, repositories),
 * 'blobs' as docker 25+ writes it (blobs/sha256/<hex> for config and layers, and manifest.json).
 */
export async function dockerSaveTar(dir: string, repoTag: string, outFile: string, form: 'legacy' | 'blobs'): Promise<void> {
  const parts = await layoutParts(dir);
  const entries: TarEntry[] = [];
  const layerPaths: string[] = [];
  for (const [i, l] of parts.layers.entries()) {
    const id = sha(Buffer.concat([Buffer.from(String(i)), l.tar])).slice(0, 64);
    const path = form === 'legacy' ? `${id}/layer.tar` : `blobs/sha256/${sha(l.tar)}`;
    if (form === 'legacy') {
      entries.push({ name: `${id}/`, type: 'dir' }, { name: `${id}/VERSION`, content: '1.0' });
    }
    entries.push({ name: path, content: l.tar });
    layerPaths.push(path);
  }
  const configPath = form === 'legacy' ? `${parts.configHex}.json` : `blobs/sha256/${parts.configHex}`;
  entries.push({ name: configPath, content: parts.config });
  entries.push({ name: 'manifest.json', content: JSON.stringify([{ Config: configPath, RepoTags: [repoTag], Layers: layerPaths }]) });
  if (form === 'legacy') {
    const [name, tag] = [repoTag.slice(0, repoTag.lastIndexOf(':')), repoTag.slice(repoTag.lastIndexOf(':') + 1)];
    entries.push({ name: 'repositories', content: JSON.stringify({ [name]: { [tag]: layerPaths.at(-1)!.split('/')[0] } }) });
  }
  await writeFile(outFile, tarBytes(entries));
}

/** An oci-archive: the layout folder's files in one tar (what `skopeo copy … oci-archive:` makes). */
export async function ociArchiveTar(dir: string, outFile: string): Promise<void> {
  const entries: TarEntry[] = [{ name: 'oci-layout', content: await readFile(join(dir, 'oci-layout')) }, { name: 'index.json', content: await readFile(join(dir, 'index.json')) }];
  for (const name of await readdir(join(dir, 'blobs', 'sha256'))) entries.push({ name: `blobs/sha256/${name}`, content: await readFile(join(dir, 'blobs', 'sha256', name)) });
  await writeFile(outFile, tarBytes(entries));
}
