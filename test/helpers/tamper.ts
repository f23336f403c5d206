// What an attacker (or a broken mirror) does to a repository on disk: flip bytes, truncate and
// extend files, swap documents, and re-sign metadata with whatever keys they hold. Also a
// snapshot of a folder (path, kind, mode, sha256) to prove a refused operation changed nothing.

import { lstat, readdir, readFile, truncate, appendFile, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { encodeEnvelope, PAYLOAD_TYPES, signEnvelope } from '../../core/trust/dsse.ts';
import { sha256 } from '../../core/io/hash.ts';
import { channelPath, manifestPath, CHANNELS, type Channel, type ChannelDoc, type ManifestDoc } from '../../core/trust/metadata.ts';
import type { SigningKey } from '../../core/trust/keys.ts';
import { compressManifestPayload, manifestJson } from '../../core/trust/manifest-envelope.ts';

/** Every entry under `dir` as "path kind mode sha256", sorted: equal snapshots mean equal trees. */
export async function snapshotDir(dir: string): Promise<string[]> {
  const out: string[] = [];
  async function walk(rel: string): Promise<void> {
    for (const name of (await readdir(join(dir, rel))).sort()) {
      const path = rel ? `${rel}/${name}` : name;
      const st = await lstat(join(dir, path));
      const mode = (st.mode & 0o7777).toString(8);
      if (st.isDirectory()) {
        out.push(`${path}/ dir ${mode}`);
        await walk(path);
      } else if (st.isFile()) {
        out.push(`${path} file ${mode} ${sha256(await readFile(join(dir, path)))}`);
      } else {
        out.push(`${path} other ${mode}`);
      }
    }
  }
  await walk('');
  return out;
}

/** XORs one byte of a file (default: the middle one) with 0x01. */
export async function flipByte(file: string, offset?: number): Promise<void> {
  const bytes = await readFile(file);
  const at = offset ?? Math.floor(bytes.length / 2);
  bytes[at] = bytes[at]! ^ 0x01;
  await writeFile(file, bytes);
}

export async function truncateBy(file: string, n: number): Promise<void> {
  const { size } = await lstat(file);
  await truncate(file, size - n);
}

export async function extendBy(file: string, n: number): Promise<void> {
  await appendFile(file, Buffer.alloc(n, 0x42));
}

/**
 * The decoded payload of a DSSE envelope file. A manifest whose file lists are separate documents
 * (issue 14 item 5) comes back in the inline form, each list read from beside the manifest: what a
 * test inspects is the signed list, and what it re-signs is a valid (inline) manifest.
 */
export async function readPayload<T>(file: string): Promise<T> {
  const doc = await wirePayload<T>(file);
  if ((doc as { type?: unknown }).type === 'ferry/manifest') await inlineFileLists(doc as unknown as WireManifest, file);
  return doc;
}

/**
 * The JSON payload of a DSSE envelope file exactly as signed (a separate file list stays a pin): a
 * compressed manifest payload (issue 14 item 5) decoded by core/trust/manifest-envelope.ts.
 */
export async function wirePayload<T>(file: string): Promise<T> {
  const env = JSON.parse(await readFile(file, 'utf8')) as { payloadType: string; payload: string };
  const raw = Buffer.from(env.payload, 'base64');
  const json = env.payloadType === PAYLOAD_TYPES.manifestBrotli ? manifestJson(env.payloadType, raw, file) : raw;
  return JSON.parse(json.toString('utf8')) as T;
}

/** The payload type of a DSSE envelope file. */
export async function payloadTypeOf(file: string): Promise<string> {
  return (JSON.parse(await readFile(file, 'utf8')) as { payloadType: string }).payloadType;
}

interface WireOp {
  op: string;
  path: string;
  from?: string;
  baseSha256?: string;
}

interface WireManifest {
  targets: Record<string, { files?: unknown; fileList?: { path: string }; deltaPacks?: { from: string; listEdit?: unknown; ops: WireOp[] }[] }>;
}

/**
 * The signed list of `version` for `target` beside `file` (a repository's releases/<v>/manifest.json
 * or a device's manifests/<v>.json), inline or separate; undefined when it is not there.
 */
async function baseList(file: string, version: string, target: string): Promise<{ path: string; sha256?: string }[] | undefined> {
  const base = basename(file) === 'manifest.json' ? join(dirname(dirname(file)), version, 'manifest.json') : join(dirname(file), `${version}.json`);
  const doc = await readPayload<WireManifest>(base).catch(() => undefined);
  return doc?.targets[target]?.files as { path: string; sha256?: string }[] | undefined;
}

/**
 * Turns each separate list of `doc` into inline `files`, read from beside `file`: a repository's
 * releases/<v>/files-<target>.json, or a device's kept manifests/<v>.files-<target>.json.
 */
async function inlineFileLists(doc: WireManifest, file: string): Promise<void> {
  for (const [key, t] of Object.entries(doc.targets ?? {})) {
    if (!t.fileList) continue;
    const name = basename(t.fileList.path);
    const text = await readFile(join(dirname(file), name), 'utf8').catch(() => readFile(join(dirname(file), `${basename(file, '.json')}.${name}`), 'utf8'));
    t.files = (JSON.parse(text) as { files: unknown }).files;
    delete t.fileList;
    for (const d of t.deltaPacks ?? []) {
      delete d.listEdit;
      // Slim patch ops (no base hash) belong to separate lists: the inline form gets them whole,
      // each base hash from the base's signed list (left slim when the base is not beside it).
      const slim = (d.ops ?? []).filter((op) => op.op === 'patch' && op.baseSha256 === undefined);
      if (slim.length === 0) continue;
      const hashes = new Map((await baseList(file, d.from, key))?.map((f) => [f.path, f.sha256]));
      for (const op of slim) {
        const from = op.from ?? op.path;
        const sha = hashes.get(from);
        if (sha) Object.assign(op, { from, baseSha256: sha });
      }
    }
  }
}

/** Rewrites channels/<channel>.json with `mutate` applied to its payload, signed by `keys`. */
export async function resignChannel(repo: string, channel: Channel, keys: SigningKey[], mutate: (doc: ChannelDoc) => void = () => {}): Promise<ChannelDoc> {
  const file = join(repo, channelPath(channel));
  const doc = await readPayload<ChannelDoc>(file);
  mutate(doc);
  await writeFile(file, encodeEnvelope(signEnvelope(PAYLOAD_TYPES.channel, Buffer.from(JSON.stringify(doc)), keys)));
  return doc;
}

/**
 * Rewrites a manifest with `mutate` applied, signed by `keys`, and re-pins every channel naming
 * that version in a new pointer (sequence + 1, also signed by `keys`): a validly signed but wrong
 * release, as a compromised or buggy publisher would produce. Returns the new manifest.
 */
export async function resignManifest(repo: string, version: string, keys: SigningKey[], mutate: (doc: ManifestDoc) => void, options: { wire?: boolean } = {}): Promise<ManifestDoc> {
  const file = join(repo, manifestPath(version));
  // `wire`: the payload exactly as signed (a separate file list stays a pin), not inlined, and
  // signed again under the type it had (compressed stays compressed); inlined: a plain manifest.
  const doc = options.wire ? await wirePayload<ManifestDoc>(file) : await readPayload<ManifestDoc>(file);
  mutate(doc);
  const json = Buffer.from(JSON.stringify(doc));
  const compressed = options.wire && (await payloadTypeOf(file)) === PAYLOAD_TYPES.manifestBrotli;
  const bytes = encodeEnvelope(compressed ? signEnvelope(PAYLOAD_TYPES.manifestBrotli, compressManifestPayload(json, 5), keys) : signEnvelope(PAYLOAD_TYPES.manifest, json, keys));
  await writeFile(file, bytes);
  const pin = { path: manifestPath(version), size: bytes.length, sha256: sha256(bytes) };
  for (const ch of CHANNELS) {
    const chFile = join(repo, channelPath(ch));
    const exists = await lstat(chFile).then(() => true, () => false);
    if (!exists) continue;
    const chDoc = await readPayload<ChannelDoc>(chFile);
    if (!Object.values(chDoc.targets).some((t) => t.version === version)) continue;
    await resignChannel(repo, ch, keys, (d) => {
      d.sequence += 1;
      for (const t of Object.values(d.targets)) if (t.version === version) t.manifest = pin;
    });
  }
  return doc;
}
