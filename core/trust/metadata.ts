// The two signed documents a release publishes, and their parsers.
//   channels/<channel>.json   ChannelDoc: sequence, expiry, latest version per target, manifest hash,
//                              and optionally that version's phased rollout (percentage as integer
//                              basis points, salt, steps, the version before it); devices from
//                              before rollouts ignore it
//   releases/<v>/manifest.json ManifestDoc: release info, per target the file list, full artifact,
//                              and deltas (each op pinning its target hash, and its base hash
//                              unless it is a slim pack op: the base release's list signs that)
//                              (regular files, and symlinks that resolve inside the tree)
// A target's file list is either inline (`files`, every manifest from before issue 14 item 5 and
// `ferry release --inline-file-list`) or a separate document pinned by size and sha256
// (`fileList`, bytes made by core/trust/file-list.ts): parseSignedManifest reads what the signature
// covers, and resolveTarget turns a target into a TargetRelease from its list's bytes once they
// match the pin, so no code past the parser ever holds a release whose list is unknown or unpinned
// (ARCHITECTURE.md "Artifacts and deltas").
// Deltas come in two layouts (ARCHITECTURE.md "Artifacts and deltas"):
//   'tar'  (older publishers; wire key `deltas`): a tar of the entries, one op per signed entry
//   'pack' (wire key `deltaPacks`): the entries concatenated, each op's entry an {offset, size}
//          range of the signed artifact; unchanged files (same path, same hash in the base) have
//          no op and links are made from the signed file list, so the op list names only what
//          changed. A device that knows only 'tar' ignores `deltaPacks` and installs the full
//          artifact: manifestPayload() keeps the two apart on the wire.
// One signed manifest pins every artifact, file, link and patch of a version (SECURITY.md row 9).

import { FerryError } from '../errors.ts';
import { HEX64, NAME, arr, bool, int, obj, str, time, type JsonObject } from '../io/schema.ts';
import { checkPathSet, checkRelativePath, linkProblem } from '../io/safe-path.ts';
import { parseStrictJson } from '../io/strict-json.ts';
import { expectHash, sha256 } from '../io/hash.ts';
import * as semver from '../semver.ts';

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

/** A regular file of a release. */
export interface FileEntry extends FileRef {
  mode: number;
}

/**
 * A symbolic link of a release: relative, resolving inside the tree (SECURITY.md row 14). Only
 * releases that hold links carry this kind, so a manifest without links keeps its shape.
 */
export interface LinkEntry {
  path: string;
  type: 'symlink';
  target: string;
}

/** One entry of a release's signed file list. */
export type TreeEntry = FileEntry | LinkEntry;

export function isLink(entry: TreeEntry): entry is LinkEntry {
  return (entry as LinkEntry).type === 'symlink';
}

/** The regular files of a file list (its links left out). */
export function regularFiles(entries: readonly TreeEntry[]): FileEntry[] {
  return entries.filter((e): e is FileEntry => !isLink(e));
}

/** A 'pack' delta's entry: `size` bytes at `offset` of the delta artifact (signed as a whole). */
export interface PackRange {
  offset: number;
  size: number;
}

/** Where an op's entry is: a tar member with its own hash ('tar' layout) or a range ('pack'). */
export type EntryRef = FileRef | PackRange;

export function isPackRange(entry: EntryRef): entry is PackRange {
  return (entry as FileRef).path === undefined;
}

/**
 * How one entry of the new tree is made from the old tree and the delta artifact's entries. A
 * link is always made from its signed target alone, whether it is new, changed or the same as in
 * the old tree: it has no bytes to copy ('tar' deltas list it as a `link` op; 'pack' deltas leave
 * it to the file list). A link or file that is gone has no op.
 * A 'pack' delta of a target with a separate file list writes slim patch ops (issue 14 item 5): no
 * `baseSha256` (the device takes the base file's hash from the base release's signed list, which
 * it holds) and no `from` when it is `path` (parsed back as `path`). Every other op is whole.
 */
export type DeltaOp =
  | { op: 'copy'; path: string; from: string; sha256: string }
  | { op: 'patch'; path: string; from: string; baseSha256?: string; sha256: string; entry: EntryRef }
  | { op: 'whole'; path: string; sha256: string; entry: EntryRef }
  | { op: 'link'; path: string; target: string };

export type DeltaLayout = 'tar' | 'pack';

/**
 * How a target's file list differs from its delta base's list (a 'pack' delta of a target whose
 * list is a separate document): the paths that are gone, and every entry that is new or changed
 * (content, mode or link target). A device holding the base's list rebuilds the new list from it
 * and checks it against the signed pin (core/trust/file-list.ts rebuildFileList): a lying edit
 * only makes a list that does not hash, and the device then fetches the list itself.
 */
export interface ListEdit {
  removed: string[];
  entries: TreeEntry[];
}

export interface DeltaRef {
  from: string;
  artifact: ArtifactRef;
  ops: DeltaOp[];
  /** 'pack' for deltas read from the wire key `deltaPacks`; 'tar' (or absent) for `deltas`. */
  layout?: DeltaLayout;
  /** 'pack' deltas of a target with a separate file list: the list's edit from the base's. */
  listEdit?: ListEdit;
}

/**
 * What a container release's tree is (ARCHITECTURE.md "Containers"): the tree is an OCI image
 * layout, and this names its one image. The device checks the layout against it while staging
 * (core/image/verify-image.ts). Devices from before containers ignore the field (the parser
 * builds each target from the fields it knows) and install the layout as a plain tree.
 */
export interface ContainerRef {
  /** The image's tag (its ref name in the layout's index.json). */
  ref: string;
  /** sha256:<hex> of the image manifest: the image digest. */
  manifestDigest: string;
  /** sha256:<hex> of the image config: the image id. */
  configDigest: string;
}

export interface TargetRelease {
  /** The signed file list, always known: inline in the manifest, or read and checked against `fileList`. */
  files: TreeEntry[];
  /** Present when the list travels as its own document (releases/<v>/files-<target>.json): its pin. */
  fileList?: FileRef;
  full: ArtifactRef;
  /** Every delta of this target, both layouts (each says which). */
  deltas: DeltaRef[];
  /** Present when the tree is a container image (an OCI layout); absent for an ordinary app. */
  container?: ContainerRef;
}

/** A manifest's release information: everything but its targets. */
export interface ManifestInfo {
  type: 'ferry/manifest';
  app: string;
  version: string;
  releaseDate: string;
  releaseNotes: string;
  mandatory: boolean;
  securityFix: boolean;
}

export interface ManifestDoc extends ManifestInfo {
  targets: Record<TargetKey, TargetRelease>;
}

/**
 * A target as signed, before its file list is known: inline (already a whole TargetRelease) or
 * pinning a separate list. Only resolveTarget, which checks the list's bytes against the pin
 * first, makes a TargetRelease of the second kind.
 */
export type SignedTarget =
  | { kind: 'inline'; release: TargetRelease }
  | { kind: 'list'; fileList: FileRef; deltas: DeltaRef[]; wire: JsonObject; what: string };

/** A verified manifest's payload, its separate file lists not read yet. */
export interface SignedManifest extends ManifestInfo {
  targets: Record<TargetKey, SignedTarget>;
}

/**
 * A phased rollout of a channel's version (core/policy/rollout.ts decides on the device): only the
 * devices whose bucket, a hash of device id and salt, falls under the percentage take it. The
 * others stay, or install `previous` (the version the channel named before) when they have none.
 */
export interface Rollout {
  /** 0-100, at most two decimals; 0 halts the rollout. On the wire: `basisPoints`, 0-10000 (rolloutWire). */
  percent: number;
  /** 32 hex digits, new for each version's rollout, so the same devices are not always first. */
  salt: string;
  /** From each `at` on, `percent` applies instead (ascending by `at`). */
  steps: { at: string; percent: number }[];
  /** The channel's version before this one, for devices outside the rollout; null for a channel's first. */
  previous: { version: string; manifest: FileRef } | null;
}

export interface ChannelTarget {
  version: string;
  manifest: FileRef;
  /** Absent: every device takes `version`. Devices older than rollouts ignore this field. */
  rollout?: Rollout;
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

/** Where a version's separate file list for `target` is published: beside its manifest (core/trust/file-list.ts). */
export function fileListPath(version: string, target: TargetKey): string {
  return `releases/${version}/files-${target}.json`;
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

/** A 'pack' entry: a range of the artifact, checked to lie inside its signed size. */
function packRange(value: JsonObject[string] | undefined, what: string, artifactSize: number): PackRange {
  const o = obj(value, what);
  if (Object.keys(o).some((k) => k !== 'offset' && k !== 'size')) throw new FerryError('ERR_SCHEMA', `${what}: a pack entry has only offset and size`);
  const offset = int(o.offset, `${what}.offset`);
  const size = int(o.size, `${what}.size`);
  if (offset + size > artifactSize) throw new FerryError('ERR_SCHEMA', `${what}: bytes ${offset}..${offset + size} run past the ${artifactSize}-byte delta artifact`);
  return { offset, size };
}

/** `slim`: a pack op of a separate-list target, whose patch may leave out `baseSha256` and `from` (wireOp). */
function deltaOp(value: JsonObject[string] | undefined, what: string, layout: DeltaLayout, artifactSize: number, slim: boolean): DeltaOp {
  const o = obj(value, what);
  const path = checkRelativePath(str(o.path, `${what}.path`), what);
  const entry = (v: JsonObject[string] | undefined): EntryRef => (layout === 'tar' ? fileRef(v, `${what}.entry`) : packRange(v, `${what}.entry`, artifactSize));
  if (o.op === 'link') {
    // A pack delta makes its links from the signed file list: a link op there is not its shape.
    if (layout === 'pack') throw new FerryError('ERR_SCHEMA', `${what}: a pack delta has no link ops (links come from the file list)`);
    return { op: 'link', path, target: str(o.target, `${what}.target`) };
  }
  const sha256 = str(o.sha256, `${what}.sha256`, HEX64);
  switch (o.op) {
    case 'copy':
      return { op: 'copy', path, sha256, from: checkRelativePath(str(o.from, `${what}.from`), what) };
    case 'patch': {
      const from = slim && o.from === undefined ? path : checkRelativePath(str(o.from, `${what}.from`), what);
      if (slim && o.baseSha256 === undefined) return { op: 'patch', path, sha256, from, entry: entry(o.entry) };
      return { op: 'patch', path, sha256, from, baseSha256: str(o.baseSha256, `${what}.baseSha256`, HEX64), entry: entry(o.entry) };
    }
    case 'whole':
      return { op: 'whole', path, sha256, entry: entry(o.entry) };
    default:
      throw new FerryError('ERR_SCHEMA', `${what}.op must be copy, patch, whole${layout === 'tar' ? ' or link' : ''}`);
  }
}

function treeEntry(value: JsonObject[string] | undefined, what: string): TreeEntry {
  const o = obj(value, what);
  if (o.type !== undefined) {
    if (o.type !== 'symlink') throw new FerryError('ERR_SCHEMA', `${what}.type must be "symlink" (or absent for a regular file)`);
    if (Object.keys(o).some((k) => k !== 'path' && k !== 'type' && k !== 'target')) throw new FerryError('ERR_SCHEMA', `${what}: a symlink has only path, type and target`);
    return { path: checkRelativePath(str(o.path, `${what}.path`), what), type: 'symlink', target: str(o.target, `${what}.target`) };
  }
  const ref = fileRef(o, what);
  const mode = int(o.mode, `${what}.mode`);
  // Only permission bits: a signed manifest never asks for setuid, setgid or sticky files.
  if (mode > 0o777) throw new FerryError('ERR_SCHEMA', `${what}.mode ${mode.toString(8)} has bits beyond 0777`);
  return { ...ref, mode };
}

/** Whether `op` builds exactly `entry`: a link op its signed target, any other op its signed hash. */
function opBuilds(op: DeltaOp, entry: TreeEntry): boolean {
  if (op.path !== entry.path) return false;
  if (isLink(entry)) return op.op === 'link' && op.target === entry.target;
  return op.op !== 'link' && op.sha256 === entry.sha256;
}

const IMAGE_DIGEST = /^sha256:[0-9a-f]{64}$/;
const IMAGE_REF = /^[A-Za-z0-9](?:[A-Za-z0-9._:@/+-]{0,253}[A-Za-z0-9])?$/;

/** A target's `container`: exactly ref, manifestDigest and configDigest, each well-formed. */
function containerRef(value: JsonObject[string] | undefined, what: string, files: TreeEntry[]): ContainerRef {
  const o = obj(value, what);
  if (Object.keys(o).some((k) => k !== 'ref' && k !== 'manifestDigest' && k !== 'configDigest')) throw new FerryError('ERR_SCHEMA', `${what}: a container has only ref, manifestDigest and configDigest`);
  const ref: ContainerRef = { ref: str(o.ref, `${what}.ref`, IMAGE_REF), manifestDigest: str(o.manifestDigest, `${what}.manifestDigest`, IMAGE_DIGEST), configDigest: str(o.configDigest, `${what}.configDigest`, IMAGE_DIGEST) };
  // The tree must hold both blobs as signed files: an image release names blobs it carries.
  for (const d of [ref.manifestDigest, ref.configDigest]) {
    const path = `blobs/sha256/${d.slice(7)}`;
    const f = files.find((e) => e.path === path);
    if (!f || isLink(f) || f.sha256 !== d.slice(7)) throw new FerryError('ERR_SCHEMA', `${what}: ${d} is not a signed file of the tree (${path})`);
  }
  return ref;
}

/** A pack delta's list edit: removed paths and whole entries, each checked as the list's own entries are. */
function listEdit(value: JsonObject[string] | undefined, what: string): ListEdit {
  const o = obj(value, what);
  if (Object.keys(o).some((k) => k !== 'removed' && k !== 'entries')) throw new FerryError('ERR_SCHEMA', `${what}: a list edit has only removed and entries`);
  const removed = arr(o.removed, `${what}.removed`).map((p, i) => checkRelativePath(str(p, `${what}.removed[${i}]`), what));
  const entries = arr(o.entries, `${what}.entries`).map((e, i) => treeEntry(e, `${what}.entries[${i}]`));
  // Each path once: an edit either removes a path or gives its entry. (Not checkPathSet: a file
  // removed at `a` and a new `a/b` is a legitimate edit; the rebuilt list is checked as a whole.)
  const seen = new Set<string>();
  for (const p of [...removed, ...entries.map((e) => e.path)]) {
    if (seen.has(p)) throw new FerryError('ERR_SCHEMA', `${what}: ${p} appears twice`);
    seen.add(p);
  }
  return { removed, entries };
}

/**
 * A target's deltas. With `files` (the signed list) each delta's ops are held to it; with null
 * (a separate list not read yet) only their own shape is checked, and resolveTarget checks the
 * rest once the list is known.
 */
function targetDeltas(o: JsonObject, what: string, files: TreeEntry[] | null): DeltaRef[] {
  const separate = o.fileList !== undefined;
  const delta = (d: JsonObject[string], dw: string, layout: DeltaLayout): DeltaRef => {
    const dobj = obj(d, dw);
    const artifact = artifactRef(dobj.artifact, `${dw}.artifact`);
    const ops = arr(dobj.ops, `${dw}.ops`).map((op, j) => deltaOp(op, `${dw}.ops[${j}]`, layout, artifact.size, separate && layout === 'pack'));
    if (files && layout === 'tar') {
      // A tar delta builds exactly the signed file set: one op per entry, same paths, same hashes or targets.
      if (ops.length !== files.length || ops.some((op, j) => !opBuilds(op, files[j]!))) {
        throw new FerryError('ERR_SCHEMA', `${dw}.ops do not match the file list one to one`);
      }
    } else if (files) {
      // A pack delta lists what changed, in file-list order, at most one op per signed regular
      // file, each building exactly that file; every regular file it does not list is implied:
      // copied from the same path of the base and checked against this signed hash on the device.
      let at = 0;
      for (const op of ops) {
        while (at < files.length && files[at]!.path !== op.path) at++;
        const file = files[at++];
        if (!file || isLink(file) || !opBuilds(op, file)) throw new FerryError('ERR_SCHEMA', `${dw}.ops do not match the file list (an op for ${op.path} is out of order, doubled, or builds other bytes than signed)`);
      }
    }
    // Only a pack delta of a separate list carries an edit: an inline list needs none.
    if (dobj.listEdit !== undefined && (layout !== 'pack' || !separate)) throw new FerryError('ERR_SCHEMA', `${dw}: only a pack delta of a target with a separate file list carries listEdit`);
    return {
      from: version(dobj.from, `${dw}.from`),
      artifact,
      ops,
      ...(layout === 'pack' ? { layout } : {}),
      ...(dobj.listEdit !== undefined ? { listEdit: listEdit(dobj.listEdit, `${dw}.listEdit`) } : {}),
    };
  };
  return [
    ...arr(o.deltas, `${what}.deltas`).map((d, i) => delta(d, `${what}.deltas[${i}]`, 'tar')),
    ...(o.deltaPacks === undefined ? [] : arr(o.deltaPacks, `${what}.deltaPacks`).map((d, i) => delta(d, `${what}.deltaPacks[${i}]`, 'pack'))),
  ];
}

/**
 * A whole target from its wire object and its signed list `files` (inline, or a separate list
 * already checked against its pin): the list's path set and links, each delta against the list,
 * and the container's blobs as files of the list.
 */
function targetRelease(o: JsonObject, what: string, files: TreeEntry[], fileList: FileRef | undefined): TargetRelease {
  const listWhat = fileList ? `${what}.fileList (${fileList.path})` : `${what}.files`;
  checkPathSet(files.map((f) => f.path), listWhat);
  // Every link resolves, through any links on its way, to a file or folder of this same list
  // (SECURITY.md row 14): a signed link out of the tree is refused here, before anything is fetched.
  const unsafe = linkProblem(files);
  if (unsafe) throw new FerryError('ERR_UNSAFE_ARCHIVE', `${listWhat}: ${unsafe.path} is a symlink that ${unsafe.why}`);
  const deltas = targetDeltas(o, what, files);
  const release: TargetRelease = { files, ...(fileList ? { fileList } : {}), full: artifactRef(o.full, `${what}.full`), deltas };
  if (o.container !== undefined) release.container = containerRef(o.container, `${what}.container`, files);
  // JSON.stringify of a parsed manifest gives its wire form again (each delta under its layout's
  // key), wherever it is done; not enumerable, so the parsed values stay exactly what was written.
  Object.defineProperty(release, 'toJSON', { value: () => wireTarget(release), enumerable: false });
  return release;
}

/**
 * A target as signed: `files` inline (parsed whole, as every manifest was before issue 14 item 5),
 * or `fileList`, a pin of a separate list, with everything that does not need the list checked
 * now (so a malformed manifest is refused before any list is read).
 */
function signedTarget(value: JsonObject[string] | undefined, what: string, v: string, key: TargetKey): SignedTarget {
  const o = obj(value, what);
  if (o.fileList === undefined) {
    const files = arr(o.files, `${what}.files`).map((f, i) => treeEntry(f, `${what}.files[${i}]`));
    return { kind: 'inline', release: targetRelease(o, what, files, undefined) };
  }
  if (o.files !== undefined) throw new FerryError('ERR_SCHEMA', `${what}: a target carries files or fileList, not both`);
  const fileList = fileRef(o.fileList, `${what}.fileList`);
  // One name per version and target, as a pointer's manifest has (what peers serve and devices keep).
  if (fileList.path !== fileListPath(v, key)) throw new FerryError('ERR_SCHEMA', `${what}.fileList.path must be ${fileListPath(v, key)}`);
  const deltas = targetDeltas(o, what, null);
  artifactRef(o.full, `${what}.full`);
  if (o.container !== undefined) obj(o.container, `${what}.container`);
  return { kind: 'list', fileList, deltas, wire: o, what };
}

export const FILE_LIST_TYPE = 'ferry/file-list';

/**
 * The entries of a separate list document (core/trust/file-list.ts makes its bytes), read only once
 * its bytes are the pinned ones: another size is ERR_SIZE, another hash ERR_HASH_MISMATCH, and
 * nothing of unpinned bytes is parsed. Each entry then gets the checks an inline list's entries get.
 * The pin's size bounds the parse (no cap of its own: a big legitimate list is as valid as a small one).
 */
export function parseFileList(bytes: Uint8Array, pin: FileRef): TreeEntry[] {
  if (bytes.length !== pin.size) throw new FerryError('ERR_SIZE', `${pin.path} is ${bytes.length} bytes, the manifest pins ${pin.size}`);
  expectHash(sha256(bytes), pin.sha256, pin.path);
  const o = obj(parseStrictJson(bytes, pin.size, pin.path), pin.path);
  if (o.type !== FILE_LIST_TYPE) throw new FerryError('ERR_SCHEMA', `${pin.path}: type must be "${FILE_LIST_TYPE}"`);
  if (Object.keys(o).some((k) => k !== 'type' && k !== 'files')) throw new FerryError('ERR_SCHEMA', `${pin.path}: a file list has only type and files`);
  return arr(o.files, `${pin.path}.files`).map((f, i) => treeEntry(f, `${pin.path}.files[${i}]`));
}

/**
 * A whole TargetRelease from a signed target and, for a separate list, the list's bytes: they are
 * held to the pin (parseFileList), then the list gets every check an inline list gets (path set,
 * links, the deltas' ops, the container's blobs). The only way to a TargetRelease of a separate
 * list: no caller can hand in entries that did not come from pinned bytes. An inline target is
 * already whole (its bytes are ignored).
 */
export function resolveTarget(t: SignedTarget, listBytes: Uint8Array | undefined): TargetRelease {
  if (t.kind === 'inline') return t.release;
  if (!listBytes) throw new FerryError('ERR_NOT_FOUND', `${t.fileList.path} (the file list the manifest pins) is missing`);
  return targetRelease(t.wire, t.what, parseFileList(listBytes, t.fileList), t.fileList);
}

/**
 * An op as the wire holds it: a slim patch op (no `baseSha256`) leaves out `from` when it is
 * `path`, which the parser reads back as `path`; every other op is written whole.
 */
function wireOp(op: DeltaOp): DeltaOp | Omit<DeltaOp, 'from'> {
  if (op.op !== 'patch' || op.baseSha256 !== undefined || op.from !== op.path) return op;
  const { from: _from, ...rest } = op;
  return rest;
}

/** A target as the wire holds it: 'tar' deltas under `deltas`, 'pack' ones under `deltaPacks`, no `layout`. */
function wireTarget(t: TargetRelease): Record<string, unknown> {
  const wire = (d: DeltaRef) => ({ from: d.from, artifact: d.artifact, ops: d.ops.map(wireOp), ...(d.listEdit ? { listEdit: d.listEdit } : {}) });
  const packs = t.deltas.filter((d) => d.layout === 'pack');
  // A separate list is signed by its pin alone (its bytes are files-<target>.json).
  return { ...(t.fileList ? { fileList: t.fileList } : { files: t.files }), full: t.full, deltas: t.deltas.filter((d) => d.layout !== 'pack').map(wire), ...(packs.length > 0 ? { deltaPacks: packs.map(wire) } : {}), ...(t.container ? { container: t.container } : {}) };
}

/**
 * The signed payload of `doc` as JSON: each delta under the wire key of its layout ('tar' under
 * `deltas`, 'pack' under `deltaPacks`, with `layout` left out), so what parseManifestPayload
 * reads back is `doc` again and a device that knows only 'tar' still parses the manifest.
 */
export function manifestPayload(doc: ManifestDoc): Buffer {
  const targets: Record<string, unknown> = {};
  for (const [key, t] of Object.entries(doc.targets)) targets[key] = wireTarget(t);
  return Buffer.from(JSON.stringify({ ...doc, targets }));
}

/** The signed payload of a manifest, each separate file list as its pin (not read yet). */
export function parseSignedManifest(payload: Uint8Array): SignedManifest {
  const o = obj(parseStrictJson(payload, MANIFEST_MAX_BYTES, 'manifest'), 'manifest');
  if (o.type !== 'ferry/manifest') throw new FerryError('ERR_SCHEMA', 'manifest: type must be "ferry/manifest"');
  const v = version(o.version, 'manifest.version');
  const targets: Record<TargetKey, SignedTarget> = {};
  for (const [key, t] of Object.entries(obj(o.targets, 'manifest.targets'))) {
    str(key, 'manifest target', /^[a-z0-9_]{1,32}-[a-z0-9_]{1,32}$/);
    targets[key] = signedTarget(t, `manifest.targets.${key}`, v, key);
  }
  return {
    type: 'ferry/manifest',
    app: str(o.app, 'manifest.app', NAME),
    version: v,
    releaseDate: time(o.releaseDate, 'manifest.releaseDate'),
    releaseNotes: str(o.releaseNotes, 'manifest.releaseNotes'),
    mandatory: bool(o.mandatory, 'manifest.mandatory'),
    securityFix: bool(o.securityFix, 'manifest.securityFix'),
    targets,
  };
}

/** A signed manifest's release information alone. */
export function manifestInfo(m: SignedManifest | ManifestDoc): ManifestInfo {
  return { type: m.type, app: m.app, version: m.version, releaseDate: m.releaseDate, releaseNotes: m.releaseNotes, mandatory: m.mandatory, securityFix: m.securityFix };
}

/**
 * A manifest payload whose every target has its list inline, as a whole ManifestDoc; a target
 * with a separate list is ERR_SCHEMA here (resolveTarget with its list's bytes instead).
 */
export function parseManifestPayload(payload: Uint8Array): ManifestDoc {
  const signed = parseSignedManifest(payload);
  const targets: Record<TargetKey, TargetRelease> = {};
  for (const [key, t] of Object.entries(signed.targets)) {
    if (t.kind !== 'inline') throw new FerryError('ERR_SCHEMA', `manifest.targets.${key}: its file list is a separate document (${t.fileList.path}), not inline`);
    targets[key] = t.release;
  }
  return { ...manifestInfo(signed), targets };
}

/** 0-100 with at most two decimals (core/policy/rollout.ts has BUCKETS = 10,000 buckets). */
export function isRolloutPercent(value: unknown): value is number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > 100) return false;
  // 12.34 * 100 is 1234.0000000000002 in binary floating point: two decimals within rounding.
  return Math.abs(value * 100 - Math.round(value * 100)) < 1e-6;
}

/**
 * A rollout as the signed pointer holds it. Signed metadata carries integers only (strict JSON,
 * SECURITY.md row 13; a device from before rollouts refuses a whole pointer holding 12.5), so a
 * percentage travels as basis points, hundredths of a percent: 12.5% is 1250.
 */
export function rolloutWire(r: Rollout): Record<string, unknown> {
  const bp = (percent: number) => Math.round(percent * 100);
  return { basisPoints: bp(r.percent), salt: r.salt, steps: r.steps.map((s) => ({ at: s.at, basisPoints: bp(s.percent) })), previous: r.previous };
}

/** The signed payload of a channel pointer: each rollout in its wire form (rolloutWire). */
export function channelPayload(doc: ChannelDoc): Buffer {
  const targets: Record<string, unknown> = {};
  for (const [key, t] of Object.entries(doc.targets)) targets[key] = t.rollout ? { version: t.version, manifest: t.manifest, rollout: rolloutWire(t.rollout) } : { version: t.version, manifest: t.manifest };
  return Buffer.from(JSON.stringify({ ...doc, targets }));
}

function rolloutPercent(value: JsonObject[string] | undefined, what: string): number {
  return int(value, what, 0, 10_000) / 100;
}

const SALT = /^[0-9a-f]{32}$/;

/**
 * A target's rollout (SECURITY.md, fleet rows: it is signed with the rest of the pointer). Every
 * field is required; steps strictly ascending by time; `previous` names a lower version and pins
 * its manifest like a pointer does.
 */
function rollout(value: JsonObject[string] | undefined, what: string, rolled: string): Rollout {
  const o = obj(value, what);
  const percent = rolloutPercent(o.basisPoints, `${what}.basisPoints`);
  const salt = str(o.salt, `${what}.salt`, SALT);
  const steps = arr(o.steps, `${what}.steps`).map((s, i) => {
    const so = obj(s, `${what}.steps[${i}]`);
    return { at: time(so.at, `${what}.steps[${i}].at`), percent: rolloutPercent(so.basisPoints, `${what}.steps[${i}].basisPoints`) };
  });
  for (let i = 1; i < steps.length; i++) {
    if (Date.parse(steps[i]!.at) <= Date.parse(steps[i - 1]!.at)) throw new FerryError('ERR_SCHEMA', `${what}.steps must be in ascending order of time (step ${i} is not after step ${i - 1})`);
  }
  if (o.previous === undefined) throw new FerryError('ERR_SCHEMA', `${what}.previous must be an object or null`);
  let previous: Rollout['previous'] = null;
  if (o.previous !== null) {
    const po = obj(o.previous, `${what}.previous`);
    const pv = version(po.version, `${what}.previous.version`);
    if (!semver.lt(pv, rolled)) throw new FerryError('ERR_SCHEMA', `${what}.previous.version ${pv} must be below ${rolled}, the version rolling out`);
    const manifest = fileRef(po.manifest, `${what}.previous.manifest`);
    if (manifest.path !== manifestPath(pv)) throw new FerryError('ERR_SCHEMA', `${what}.previous.manifest.path must be ${manifestPath(pv)}`);
    previous = { version: pv, manifest };
  }
  const parsed: Rollout = { percent, salt, steps, previous };
  // JSON.stringify of a parsed pointer gives the wire form again, wherever it is done (as a
  // parsed manifest's targets do); not enumerable, so the parsed values stay exactly as read.
  Object.defineProperty(parsed, 'toJSON', { value: () => rolloutWire(parsed), enumerable: false });
  return parsed;
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
    // Absent: the target parses exactly as before rollouts existed (no `rollout` key at all).
    targets[key] = to.rollout === undefined ? { version: v, manifest } : { version: v, manifest, rollout: rollout(to.rollout, `channel.targets.${key}.rollout`, v) };
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
