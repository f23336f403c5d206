// The two signed documents a release publishes, and their parsers.
//   channels/<channel>.json   ChannelDoc: sequence, expiry, latest version per target, manifest hash
//   releases/<v>/manifest.json ManifestDoc: release info, per target the file list, full artifact,
//                              and deltas (each op pinning its base and target hashes)
// One signed manifest pins every artifact, file and patch of a version (THREATS.md row 9).

import { FerryError } from '../errors.ts';
import { HEX64, NAME, arr, bool, int, obj, str, time, type JsonObject } from '../io/schema.ts';
import { checkPathSet, checkRelativePath } from '../io/safe-path.ts';
import { parseStrictJson } from '../io/strict-json.ts';
import semver from 'semver';

export const CHANNEL_MAX_BYTES = 512 * 1024;
export const MANIFEST_MAX_BYTES = 16 * 1024 * 1024;

export const CHANNELS = ['stable', 'beta', 'nightly', 'security'] as const;
export type Channel = (typeof CHANNELS)[number];

export function isChannel(value: string): value is Channel {
  return (CHANNELS as readonly string[]).includes(value);
}

/** "linux-x64": platform and arch joined by the one dash neither may contain. */
export type TargetKey = string;
const PLATFORM = /^[a-z0-9_]{1,32}$/;

export function targetKey(platform: string, arch: string): TargetKey {
  if (!PLATFORM.test(platform) || !PLATFORM.test(arch)) throw new FerryError('ERR_USAGE', `platform "${platform}" and arch "${arch}" must be [a-z0-9_]`);
  return `${platform}-${arch}`;
}

export interface FileRef {
  path: string;
  size: number;
  sha256: string;
}

export interface ArtifactRef extends FileRef {
  chunkSize: number;
  chunks: string[];
}

export interface FileEntry extends FileRef {
  mode: number;
}

/** How one file of the new tree is made from the old tree and the delta artifact's entries. */
export type DeltaOp =
  | { op: 'copy'; path: string; from: string; sha256: string }
  | { op: 'patch'; path: string; from: string; baseSha256: string; sha256: string; entry: FileRef }
  | { op: 'whole'; path: string; sha256: string; entry: FileRef };

export interface DeltaRef {
  from: string;
  artifact: ArtifactRef;
  ops: DeltaOp[];
}

export interface TargetRelease {
  files: FileEntry[];
  full: ArtifactRef;
  deltas: DeltaRef[];
}

export interface ManifestDoc {
  type: 'ferry/manifest';
  app: string;
  version: string;
  releaseDate: string;
  releaseNotes: string;
  mandatory: boolean;
  securityFix: boolean;
  targets: Record<TargetKey, TargetRelease>;
}

export interface ChannelTarget {
  version: string;
  manifest: FileRef;
}

export interface ChannelDoc {
  type: 'ferry/channel';
  app: string;
  channel: Channel;
  sequence: number;
  expires: string;
  targets: Record<TargetKey, ChannelTarget>;
}

export function manifestPath(version: string): string {
  return `releases/${version}/manifest.json`;
}

export function channelPath(channel: Channel): string {
  return `channels/${channel}.json`;
}

function version(value: JsonObject[string] | undefined, what: string): string {
  const v = str(value, what);
  if (semver.valid(v) !== v) throw new FerryError('ERR_SCHEMA', `${what} "${v}" is not a semver version`);
  return v;
}

function fileRef(value: JsonObject[string] | undefined, what: string): FileRef {
  const o = obj(value, what);
  return { path: checkRelativePath(str(o.path, `${what}.path`), what), size: int(o.size, `${what}.size`), sha256: str(o.sha256, `${what}.sha256`, HEX64) };
}

function artifactRef(value: JsonObject[string] | undefined, what: string): ArtifactRef {
  const o = obj(value, what);
  const ref = fileRef(o, what);
  const chunkSize = int(o.chunkSize, `${what}.chunkSize`, 1);
  const chunks = arr(o.chunks, `${what}.chunks`).map((c, i) => str(c, `${what}.chunks[${i}]`, HEX64));
  if (chunks.length !== Math.max(1, Math.ceil(ref.size / chunkSize))) throw new FerryError('ERR_SCHEMA', `${what}: ${chunks.length} chunk hashes for ${ref.size} bytes`);
  return { ...ref, chunkSize, chunks };
}

function deltaOp(value: JsonObject[string] | undefined, what: string): DeltaOp {
  const o = obj(value, what);
  const path = checkRelativePath(str(o.path, `${what}.path`), what);
  const sha256 = str(o.sha256, `${what}.sha256`, HEX64);
  switch (o.op) {
    case 'copy':
      return { op: 'copy', path, sha256, from: checkRelativePath(str(o.from, `${what}.from`), what) };
    case 'patch':
      return { op: 'patch', path, sha256, from: checkRelativePath(str(o.from, `${what}.from`), what), baseSha256: str(o.baseSha256, `${what}.baseSha256`, HEX64), entry: fileRef(o.entry, `${what}.entry`) };
    case 'whole':
      return { op: 'whole', path, sha256, entry: fileRef(o.entry, `${what}.entry`) };
    default:
      throw new FerryError('ERR_SCHEMA', `${what}.op must be copy, patch or whole`);
  }
}

function targetRelease(value: JsonObject[string] | undefined, what: string): TargetRelease {
  const o = obj(value, what);
  const files = arr(o.files, `${what}.files`).map((f, i): FileEntry => {
    const ref = fileRef(f, `${what}.files[${i}]`);
    const mode = int(obj(f, `${what}.files[${i}]`).mode, `${what}.files[${i}].mode`);
    // Only permission bits: a signed manifest never asks for setuid, setgid or sticky files.
    if (mode > 0o777) throw new FerryError('ERR_SCHEMA', `${what}.files[${i}].mode ${mode.toString(8)} has bits beyond 0777`);
    return { ...ref, mode };
  });
  checkPathSet(files.map((f) => f.path), `${what}.files`);
  const deltas = arr(o.deltas, `${what}.deltas`).map((d, i): DeltaRef => {
    const dw = `${what}.deltas[${i}]`;
    const dobj = obj(d, dw);
    const ops = arr(dobj.ops, `${dw}.ops`).map((op, j) => deltaOp(op, `${dw}.ops[${j}]`));
    // A delta builds exactly the signed file set: one op per file, same paths, same hashes.
    if (ops.length !== files.length || ops.some((op, j) => op.path !== files[j]!.path || op.sha256 !== files[j]!.sha256)) {
      throw new FerryError('ERR_SCHEMA', `${dw}.ops do not match the file list one to one`);
    }
    return { from: version(dobj.from, `${dw}.from`), artifact: artifactRef(dobj.artifact, `${dw}.artifact`), ops };
  });
  return { files, full: artifactRef(o.full, `${what}.full`), deltas };
}

export function parseManifestPayload(payload: Uint8Array): ManifestDoc {
  const o = obj(parseStrictJson(payload, MANIFEST_MAX_BYTES, 'manifest'), 'manifest');
  if (o.type !== 'ferry/manifest') throw new FerryError('ERR_SCHEMA', 'manifest: type must be "ferry/manifest"');
  const targets: Record<TargetKey, TargetRelease> = {};
  for (const [key, t] of Object.entries(obj(o.targets, 'manifest.targets'))) {
    str(key, 'manifest target', /^[a-z0-9_]{1,32}-[a-z0-9_]{1,32}$/);
    targets[key] = targetRelease(t, `manifest.targets.${key}`);
  }
  return {
    type: 'ferry/manifest',
    app: str(o.app, 'manifest.app', NAME),
    version: version(o.version, 'manifest.version'),
    releaseDate: time(o.releaseDate, 'manifest.releaseDate'),
    releaseNotes: str(o.releaseNotes, 'manifest.releaseNotes'),
    mandatory: bool(o.mandatory, 'manifest.mandatory'),
    securityFix: bool(o.securityFix, 'manifest.securityFix'),
    targets,
  };
}

export function parseChannelPayload(payload: Uint8Array): ChannelDoc {
  const o = obj(parseStrictJson(payload, CHANNEL_MAX_BYTES, 'channel'), 'channel');
  if (o.type !== 'ferry/channel') throw new FerryError('ERR_SCHEMA', 'channel: type must be "ferry/channel"');
  const channel = str(o.channel, 'channel.channel');
  if (!isChannel(channel)) throw new FerryError('ERR_SCHEMA', `channel.channel "${channel}" is not one of ${CHANNELS.join(', ')}`);
  const targets: Record<TargetKey, ChannelTarget> = {};
  for (const [key, t] of Object.entries(obj(o.targets, 'channel.targets'))) {
    str(key, 'channel target', /^[a-z0-9_]{1,32}-[a-z0-9_]{1,32}$/);
    const to = obj(t, `channel.targets.${key}`);
    const v = version(to.version, `channel.targets.${key}.version`);
    const manifest = fileRef(to.manifest, `channel.targets.${key}.manifest`);
    if (manifest.path !== manifestPath(v)) throw new FerryError('ERR_SCHEMA', `channel.targets.${key}.manifest.path must be ${manifestPath(v)}`);
    targets[key] = { version: v, manifest };
  }
  return {
    type: 'ferry/channel',
    app: str(o.app, 'channel.app', NAME),
    channel,
    sequence: int(o.sequence, 'channel.sequence', 1),
    expires: time(o.expires, 'channel.expires'),
    targets,
  };
}
