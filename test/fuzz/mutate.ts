// A small deterministic mutation engine for the fuzz targets: one seeded PRNG per case (so any
// case is replayed from its seed and index alone), byte mutators that know nothing of the format,
// and structure-aware mutators for JSON (signed metadata) and tar (artifacts, bundles) that reach
// past the first syntax check into the code that decides what a document means or where a file
// lands. Every mutator returns a new buffer; the seed inputs are never changed.

import { brotliCompressSync, brotliDecompressSync, constants as zlibConstants, gunzipSync, gzipSync } from 'node:zlib';
import { brotliDecoder } from '../../core/io/brotli.ts';
import { seeded } from '../helpers/crash.ts';

// ---------------------------------------------------------------------------------------------
// Randomness

export interface Rng {
  /** A float in [0, 1). */
  next(): number;
  /** An integer in [0, n) (0 when n <= 0). */
  int(n: number): number;
  pick<T>(items: readonly T[]): T;
  chance(p: number): boolean;
}

export function makeRng(seed: number): Rng {
  const next = seeded(seed);
  const int = (n: number) => (n <= 0 ? 0 : Math.floor(next() * n));
  return {
    next,
    int,
    pick: <T>(items: readonly T[]): T => {
      if (items.length === 0) throw new Error('mutate: pick from an empty list');
      return items[int(items.length)]!;
    },
    chance: (p) => next() < p,
  };
}

/** The seed of one case: a hash of the run's seed, the target and the case index (FNV-1a). */
export function caseSeed(seed: number, target: string, index: number): number {
  let h = 0x811c9dc5;
  for (const c of `${seed >>> 0}:${target}:${index}`) h = Math.imul(h ^ c.charCodeAt(0), 0x01000193) >>> 0;
  return h;
}

/** How many mutations to stack: usually one or two, sometimes up to five. */
export function stackDepth(r: Rng): number {
  let n = 1;
  while (n < 5 && r.chance(0.4)) n++;
  return n;
}

// ---------------------------------------------------------------------------------------------
// Bytes

const INTERESTING_BYTES = [0x00, 0xff, 0x7f, 0x80, 0x20, 0x2e, 0x2f, 0x22, 0x5c, 0x30, 0x37, 0x0a];

function range(r: Rng, length: number): [number, number] {
  const start = r.int(length + 1);
  const len = 1 + r.int(Math.min(64, Math.max(1, length - start)));
  return [start, Math.min(length, start + len)];
}

export const byteMutators: Record<string, (r: Rng, input: Buffer, others: readonly Buffer[]) => Buffer> = {
  flipBit(r, input) {
    if (input.length === 0) return Buffer.from([r.int(256)]);
    const out = Buffer.from(input);
    const at = r.int(out.length);
    out[at] = out[at]! ^ (1 << r.int(8));
    return out;
  },
  setInteresting(r, input) {
    if (input.length === 0) return Buffer.from([r.pick(INTERESTING_BYTES)]);
    const out = Buffer.from(input);
    const at = r.int(out.length);
    const n = 1 + r.int(4);
    for (let i = at; i < Math.min(out.length, at + n); i++) out[i] = r.pick(INTERESTING_BYTES);
    return out;
  },
  insertRandom(r, input) {
    const at = r.int(input.length + 1);
    const junk = Buffer.from(Array.from({ length: 1 + r.int(32) }, () => (r.chance(0.5) ? r.pick(INTERESTING_BYTES) : r.int(256))));
    return Buffer.concat([input.subarray(0, at), junk, input.subarray(at)]);
  },
  deleteRange(r, input) {
    const [a, b] = range(r, input.length);
    return Buffer.concat([input.subarray(0, a), input.subarray(b)]);
  },
  duplicateRange(r, input) {
    const [a, b] = range(r, input.length);
    const at = r.int(input.length + 1);
    return Buffer.concat([input.subarray(0, at), input.subarray(a, b), input.subarray(at)]);
  },
  truncate(r, input) {
    return Buffer.from(input.subarray(0, r.int(input.length)));
  },
  splice(r, input, others) {
    const other = others.length > 0 ? r.pick(others) : input;
    return Buffer.concat([input.subarray(0, r.int(input.length + 1)), other.subarray(r.int(other.length + 1))]);
  },
};

/** One to five format-blind mutations of `input`, optionally splicing in another seed input. */
export function mutateBytes(r: Rng, input: Buffer, others: readonly Buffer[] = []): Buffer {
  let out = input;
  for (let i = stackDepth(r); i > 0; i--) out = byteMutators[r.pick(Object.keys(byteMutators))]!(r, out, others);
  return out;
}

// ---------------------------------------------------------------------------------------------
// JSON: a tree whose leaves and keys are raw text, so a mutation can write what no serializer
// would (duplicate keys, unsafe numbers, lone surrogate escapes, non-canonical base64).

export type JNode = { t: 'obj'; entries: [string, JNode][] } | { t: 'arr'; items: JNode[] } | { t: 'raw'; text: string };

export function toNode(value: unknown): JNode {
  if (Array.isArray(value)) return { t: 'arr', items: value.map(toNode) };
  if (value !== null && typeof value === 'object') return { t: 'obj', entries: Object.entries(value).map(([k, v]) => [JSON.stringify(k), toNode(v)]) };
  return { t: 'raw', text: JSON.stringify(value) };
}

/** Writes the tree back as JSON text. Recursive: seed documents are shallow, and deep nesting is injected as raw text. */
export function render(node: JNode, indent: string | null = null, level = 0): string {
  const nl = indent === null ? '' : '\n' + indent.repeat(level + 1);
  const close = indent === null ? '' : '\n' + indent.repeat(level);
  const sep = indent === null ? ':' : ': ';
  switch (node.t) {
    case 'raw': return node.text;
    case 'arr': return node.items.length === 0 ? '[]' : `[${node.items.map((n) => nl + render(n, indent, level + 1)).join(',')}${close}]`;
    case 'obj': return node.entries.length === 0 ? '{}' : `{${node.entries.map(([k, v]) => nl + k + sep + render(v, indent, level + 1)).join(',')}${close}}`;
  }
}

/** A place in the tree that can be read and replaced. */
interface Slot {
  get(): JNode;
  set(node: JNode): void;
  /** The object holding this slot and its index there, when the slot is an object member. */
  member?: { obj: Extract<JNode, { t: 'obj' }>; index: number };
}

function slots(root: { node: JNode }): Slot[] {
  const out: Slot[] = [{ get: () => root.node, set: (n) => { root.node = n; } }];
  const walk = (node: JNode): void => {
    if (node.t === 'arr') {
      node.items.forEach((child, i) => { out.push({ get: () => node.items[i]!, set: (n) => { node.items[i] = n; } }); walk(child); });
    } else if (node.t === 'obj') {
      node.entries.forEach((entry, i) => {
        out.push({ get: () => node.entries[i]![1], set: (n) => { node.entries[i]![1] = n; }, member: { obj: node, index: i } });
        walk(entry[1]);
      });
    }
  };
  walk(root.node);
  return out;
}

const isString = (n: JNode) => n.t === 'raw' && n.text.startsWith('"');
const isNumber = (n: JNode) => n.t === 'raw' && /^-?\d/.test(n.text);
const isBase64 = (n: JNode) => n.t === 'raw' && /^"[A-Za-z0-9+/]{8,}={0,2}"$/.test(n.text);

const NUMBERS = [
  '9007199254740993', '9007199254740992', '9007199254740991', '-9007199254740993', '-1', '0', '-0', '1', '2',
  '1.5', '1.0', '1e3', '1E400', '-1e-7', '4294967296', '18446744073709551616', '00', '01', '+1', '.5', '1.',
  'NaN', 'Infinity', '-', '0x10', '1' + '0'.repeat(400), '65', '511', '512', '2049',
];

const STRINGS = [
  '"\\ud800"', '"a\\udc00b"', '"\\ud800\\udc00"', '"a\\u0000b"', '"a\u0000b"', '"\\\\"', '"..\\\\..\\\\x"',
  '"../../x"', '"../x"', '"/etc/passwd"', '"a/./b"', '"a//b"', '"a/"', '""', '"."', '".."', `"${'a'.repeat(300)}"`,
  `"${'a/'.repeat(40)}b"`, '"__proto__"', '"constructor"', '"\\u002e\\u002e/x"', '"\\x41"', '"\\u12"', '"\t"',
  '"1.0.0"', '"99.0.0"', '"1.1.0-rc.1"', '"01.1.0"', '"stable"', '"security"', '"linux-x64"', '"Linux-x64"',
  '"2000-01-01T00:00:00Z"', '"9999-12-31T23:59:59.999Z"', '"2024-02-30T00:00:00Z"', '"ferry/manifest"', '"ferry/root"',
  '"ferry/channel"', '"application/vnd.ferry.manifest+json"', '"' + '0'.repeat(64) + '"', '"' + 'f'.repeat(64) + '"',
];

const TYPE_SWAPS = ['null', 'true', 'false', '0', '""', '[]', '{}', '"x"', '[1]', '{"a":1}', '[null]'];

const KEYS = ['"__proto__"', '"constructor"', '""', '"\\u0074ype"', '"type"', '"version"', '"path"', '"targets"', '"files"', '"sig"', '"keyid"', '"payload"', '"signatures"', '"Type"'];

function base64Variant(r: Rng, text: string): string {
  const inner = text.slice(1, -1);
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  switch (r.int(9)) {
    case 0: return `"${inner.replace(/=+$/, '')}"`; // padding stripped
    case 1: { const at = r.int(inner.length); return `"${inner.slice(0, at)}\\n${inner.slice(at)}"`; } // a newline Buffer.from skips
    case 2: return `"${inner.replace(/\+/g, '-').replace(/\//g, '_')}"`; // base64url
    case 3: { // the last data character bumped: same bytes, non-zero padding bits (when padded)
      const m = /^(.*)(.)(=+)$/.exec(inner);
      if (!m) return `"${inner}="`;
      const next = alphabet[(alphabet.indexOf(m[2]!) + 1) % 64]!;
      return `"${m[1]}${next}${m[3]}"`;
    }
    case 4: return `"${inner} "`;
    case 5: return `"!${inner.slice(1)}"`;
    case 6: return '""';
    case 7: { const at = r.int(inner.length); return `"${inner.slice(0, at)}${r.pick([...alphabet])}${inner.slice(at + 1)}"`; }
    default: return `"${inner}===="`;
  }
}

function deepNesting(r: Rng): string {
  const depth = r.pick([63, 64, 65, 66, 200, 5000, 100_000]);
  return r.chance(0.5) ? '['.repeat(depth) + ']'.repeat(depth) : '{"a":'.repeat(depth) + '1' + '}'.repeat(depth);
}

type JsonMutator = (r: Rng, all: Slot[]) => void;

function pickSlot(r: Rng, all: Slot[], prefer: (n: JNode) => boolean): Slot {
  const preferred = all.filter((s) => prefer(s.get()));
  return preferred.length > 0 && r.chance(0.8) ? r.pick(preferred) : r.pick(all);
}

export const jsonMutators: Record<string, JsonMutator> = {
  duplicateKey(r, all) {
    const members = all.filter((s) => s.member);
    if (members.length === 0) return;
    const { obj, index } = r.pick(members).member!;
    const [key, value] = obj.entries[index]!;
    const copy: [string, JNode] = [r.chance(0.3) ? key.replace(/^"(.)/, (_, c: string) => `"\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`) : key, r.chance(0.5) ? structuredClone(value) : { t: 'raw', text: r.pick(TYPE_SWAPS) }];
    obj.entries.splice(r.int(obj.entries.length + 1), 0, copy);
  },
  number(r, all) {
    pickSlot(r, all, isNumber).set({ t: 'raw', text: r.pick(NUMBERS) });
  },
  nearbyNumber(r, all) {
    const slot = pickSlot(r, all, isNumber);
    const n = slot.get();
    if (n.t !== 'raw' || !/^-?\d+$/.test(n.text)) return slot.set({ t: 'raw', text: r.pick(NUMBERS) });
    const v = BigInt(n.text.replace(/^-0$/, '0'));
    slot.set({ t: 'raw', text: String(r.pick([v + 1n, v - 1n, v * 2n, -v, v + 2n ** 53n, v * 1024n])) });
  },
  deepNesting(r, all) {
    r.pick(all).set({ t: 'raw', text: deepNesting(r) });
  },
  wrongType(r, all) {
    r.pick(all).set({ t: 'raw', text: r.pick(TYPE_SWAPS) });
  },
  string(r, all) {
    pickSlot(r, all, isString).set({ t: 'raw', text: r.pick(STRINGS) });
  },
  editString(r, all) {
    const slot = pickSlot(r, all, isString);
    const n = slot.get();
    if (n.t !== 'raw' || !isString(n)) return;
    const inner = n.text.slice(1, -1);
    const at = r.int(inner.length + 1);
    const piece = r.pick(['../', '/', '\\\\', '\\u0000', '\\ud800', '\\udfff', '.', '..', '\\"', '\\u00e9', 'é', '\\t', '-', '+']);
    slot.set({ t: 'raw', text: `"${inner.slice(0, at)}${piece}${inner.slice(at)}"` });
  },
  base64(r, all) {
    const targets = all.filter((s) => isBase64(s.get()));
    if (targets.length === 0) return;
    const slot = r.pick(targets);
    slot.set({ t: 'raw', text: base64Variant(r, (slot.get() as { text: string }).text) });
  },
  renameKey(r, all) {
    const members = all.filter((s) => s.member);
    if (members.length === 0) return;
    const { obj, index } = r.pick(members).member!;
    const sibling = r.pick(obj.entries)[0];
    obj.entries[index]![0] = r.chance(0.3) ? sibling : r.pick(KEYS);
  },
  removeMember(r, all) {
    const members = all.filter((s) => s.member);
    if (members.length === 0) return;
    const { obj, index } = r.pick(members).member!;
    obj.entries.splice(index, 1);
  },
  addMember(r, all) {
    const objs = all.map((s) => s.get()).filter((n): n is Extract<JNode, { t: 'obj' }> => n.t === 'obj');
    if (objs.length === 0) return;
    r.pick(objs).entries.push([r.pick(KEYS), { t: 'raw', text: r.pick([...TYPE_SWAPS, ...STRINGS.slice(0, 8)]) }]);
  },
  arrayItems(r, all) {
    const arrs = all.map((s) => s.get()).filter((n): n is Extract<JNode, { t: 'arr' }> => n.t === 'arr');
    if (arrs.length === 0) return;
    const a = r.pick(arrs);
    if (a.items.length === 0) { a.items.push({ t: 'raw', text: r.pick(TYPE_SWAPS) }); return; }
    const i = r.int(a.items.length);
    switch (r.int(5)) {
      case 0: a.items.splice(r.int(a.items.length + 1), 0, structuredClone(a.items[i]!)); break; // duplicate
      case 4: { // flood, bounded so stacked floods cannot grow a document past a few MB
        if (render(all[0]!.get()).length > 1_000_000) break;
        const copies = Math.min(r.pick([10, 100, 1000]), Math.floor(4_000_000 / render(a.items[i]!).length));
        a.items.push(...Array.from({ length: copies }, () => structuredClone(a.items[i]!)));
        break;
      }
      case 1: a.items.splice(i, 1); break; // remove
      case 2: { const j = r.int(a.items.length); [a.items[i], a.items[j]] = [a.items[j]!, a.items[i]!]; break; } // swap
      default: a.items.length = 0; // empty
    }
  },
  graft(r, all) {
    // Copies one subtree over another: a right-shaped value in the wrong place. A copy, never a
    // shared node: grafting a node into its own subtree must not make a cycle.
    const from = structuredClone(r.pick(all).get());
    r.pick(all).set(from);
  },
};

/** How the mutated tree is written back: compact, indented, or with framing junk. */
function frame(r: Rng, text: string): Buffer {
  switch (r.int(10)) {
    case 0: return Buffer.from('\uFEFF' + text);
    case 1: return Buffer.from(text + r.pick(['\n', ' ', '\u0000', 'x', '}', ',', '\n{}']));
    case 2: return Buffer.from(r.pick([' ', '\n', '\t', '\r\n', '\u00a0']) + text);
    case 3: { // an invalid UTF-8 sequence (lone surrogate as CESU-8, overlong "/", a stray 0xff) inside a string
      const at = text.indexOf('"', r.int(text.length));
      const bad = Buffer.from(r.pick([[0xed, 0xa0, 0x80], [0xc0, 0xaf], [0xff], [0xe2, 0x82]]));
      if (at < 0) return Buffer.concat([Buffer.from(text), bad]);
      return Buffer.concat([Buffer.from(text.slice(0, at + 1)), bad, Buffer.from(text.slice(at + 1))]);
    }
    default: return Buffer.from(text);
  }
}

/** One to five structural mutations of a JSON document (which must parse with JSON.parse). */
export function mutateJson(r: Rng, input: Buffer | string): Buffer {
  const root = { node: toNode(JSON.parse(input.toString())) };
  for (let i = stackDepth(r); i > 0; i--) jsonMutators[r.pick(Object.keys(jsonMutators))]!(r, slots(root));
  return frame(r, render(root.node, r.chance(0.5) ? '  ' : null));
}

/**
 * Many signatures under one key id, each a different well-formed 64-byte value (canonical base64,
 * scalar below the group order), so every one of them reaches the ed25519 check.
 */
export function floodSignatures(r: Rng, envelope: Buffer): Buffer {
  const doc = JSON.parse(envelope.toString()) as { signatures: { keyid: string; sig: string }[] };
  const keyid = doc.signatures[0]?.keyid ?? '0'.repeat(64);
  const count = r.pick([10, 100, 1000, 3000]);
  const forged = Array.from({ length: count }, () => {
    const sig = Buffer.from(Array.from({ length: 64 }, () => r.int(256)));
    sig[63] = sig[63]! & 0x0f;
    return { keyid, sig: sig.toString('base64') };
  });
  doc.signatures = r.chance(0.5) ? [...forged, ...doc.signatures] : [...doc.signatures, ...forged];
  return Buffer.from(JSON.stringify(doc));
}

/** Applies `fn` to the payload of a DSSE envelope and re-encodes it (the signatures are left as they were). */
export function withPayload(envelope: Buffer, fn: (payload: Buffer) => Buffer): Buffer {
  const doc = JSON.parse(envelope.toString()) as { payload: string };
  doc.payload = fn(Buffer.from(doc.payload, 'base64')).toString('base64');
  return Buffer.from(JSON.stringify(doc, null, 2) + '\n');
}

// ---------------------------------------------------------------------------------------------
// Tar: 512-byte ustar headers located by walking the archive, rewritten field by field with the
// checksum recomputed (mostly), so the parser accepts the header and the extractor sees the lie.

const BLOCK = 512;

export interface TarContext {
  /** An absolute path inside the fuzz sandbox: where an absolute or linked name would escape to. */
  escapeDir: string;
}

interface HeaderAt {
  offset: number;
  size: number;
  name: string;
}

function readOctal(h: Buffer, at: number, width: number): number {
  const text = h.subarray(at, at + width).toString('latin1').replace(/[\0 ]+$/g, '').trim();
  const n = parseInt(text || '0', 8);
  return Number.isFinite(n) ? n : 0;
}

/** The headers of `tar` in order (stops at the end blocks or at a header that runs past the end). */
export function tarHeaders(tar: Buffer): HeaderAt[] {
  const out: HeaderAt[] = [];
  let off = 0;
  while (off + BLOCK <= tar.length && out.length < 10_000) {
    const h = tar.subarray(off, off + BLOCK);
    if (h.every((b) => b === 0)) break;
    const size = readOctal(h, 124, 12);
    out.push({ offset: off, size, name: h.subarray(0, 100).toString('utf8').replace(/\0.*$/s, '') });
    off += BLOCK + Math.ceil(size / BLOCK) * BLOCK;
  }
  return out;
}

/** Writes the header checksum (sum of the header with the checksum field as spaces). */
export function fixChecksum(h: Buffer): void {
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'latin1');
}

function writeField(h: Buffer, at: number, width: number, value: Buffer | string): void {
  const bytes = Buffer.isBuffer(value) ? value : Buffer.from(value, 'utf8');
  h.fill(0, at, at + width);
  bytes.copy(h, at, 0, Math.min(width, bytes.length));
}

function octalField(value: number, width: number): string {
  return value.toString(8).padStart(width - 1, '0') + '\0';
}

/** A fresh ustar header (checksum fixed) for an inserted entry. */
export function makeHeader(name: string, type: string, size: number, linkname = '', mode = 0o644): Buffer {
  const h = Buffer.alloc(BLOCK);
  writeField(h, 0, 100, name);
  h.write(octalField(mode, 8), 100, 8, 'latin1');
  h.write(octalField(0, 8), 108, 8, 'latin1');
  h.write(octalField(0, 8), 116, 8, 'latin1');
  h.write(octalField(size, 12), 124, 12, 'latin1');
  h.write(octalField(0, 12), 136, 12, 'latin1');
  h.write(type, 156, 1, 'latin1');
  writeField(h, 157, 100, linkname);
  h.write('ustar\0' + '00', 257, 8, 'latin1');
  fixChecksum(h);
  return h;
}

function entryBytes(header: Buffer, data: Buffer): Buffer {
  return Buffer.concat([header, data, Buffer.alloc((BLOCK - (data.length % BLOCK)) % BLOCK)]);
}

function hostileName(r: Rng, ctx: TarContext, names: string[]): string {
  const other = names.length > 0 ? r.pick(names) : 'x';
  // At most five "..": even in a build whose checks are broken, an escape lands inside the
  // sandbox (sandbox.ts puts dest deep enough), never in a folder another process uses.
  const ups = '../'.repeat(1 + r.int(5));
  return r.pick([
    `${ups}fuzz-escape`, `a/${ups}fuzz-escape`, `./${other}`, `${ctx.escapeDir}/abs-escape`, '/fuzz-abs-escape-never-written', '', '.', '..', '/',
    other, `${other}/sub`, `${other}/`, other.split('/')[0] ?? 'x', `${other}\\..\\..\\fuzz-escape`, `x\u0000${ups}fuzz-escape`, 'a'.repeat(100),
    `${'d/'.repeat(40)}f`, 'root.json', 'root/3.json', 'channels/stable.json', 'releases/../root.json', 'releases/1.1.0/manifest.json',
    'lib', 'lib/engine.bin', '\u00e9',
  ]);
}

function paxRecords(r: Rng, ctx: TarContext, names: string[]): Buffer {
  const record = (kv: string) => {
    // "<len> key=value\n" where len counts itself.
    let len = kv.length + 3;
    while (`${len} ${kv}\n`.length !== len) len = `${len} ${kv}\n`.length;
    return `${len} ${kv}\n`;
  };
  const pick = r.int(8);
  switch (pick) {
    case 0: return Buffer.from(record(`path=${hostileName(r, ctx, names)}`));
    case 1: return Buffer.from(record(`linkpath=${r.pick([ctx.escapeDir, '../../fuzz-escape', '/etc'])}`));
    case 2: return Buffer.from(record(`size=${r.pick(['0', '1', '99999999999', '-1', '1e3', 'x', '18446744073709551616'])}`));
    case 3: return Buffer.from(record(`path=${'a/'.repeat(300 + r.int(300))}b`));
    case 4: return Buffer.from(r.pick(['5 path=x\n', '99999999999 path=x\n', 'path=x\n', '0 \n', '12 path=a\u0000b\n', '3 x\n']));
    case 5: return Buffer.from(record(`uid=${r.pick(['0', '-1', '4294967296'])}`) + record(`mode=${r.pick(['4755', '7777'])}`));
    case 6: return Buffer.from(record(`mtime=${r.pick(['-1', '1e308', 'nan', '99999999999999999999'])}`));
    default: return Buffer.from(record(`path=${hostileName(r, ctx, names)}`) + record(`size=${r.int(4096)}`));
  }
}

type TarMutator = (r: Rng, tar: Buffer, headers: HeaderAt[], ctx: TarContext) => Buffer;

function withHeader(r: Rng, tar: Buffer, headers: HeaderAt[], edit: (h: Buffer, at: HeaderAt) => void, fix = 0.9): Buffer {
  if (headers.length === 0) return tar;
  const out = Buffer.from(tar);
  const at = r.pick(headers);
  const h = out.subarray(at.offset, at.offset + BLOCK);
  edit(h, at);
  if (r.chance(fix)) fixChecksum(h);
  return out;
}

function insertAt(r: Rng, tar: Buffer, headers: HeaderAt[], bytes: Buffer, before?: HeaderAt): Buffer {
  const at = before?.offset ?? (headers.length > 0 && r.chance(0.8) ? r.pick(headers).offset : r.int(Math.floor(tar.length / BLOCK) + 1) * BLOCK);
  return Buffer.concat([tar.subarray(0, at), bytes, tar.subarray(at)]);
}

function entrySpan(tar: Buffer, at: HeaderAt): [number, number] {
  return [at.offset, Math.min(tar.length, at.offset + BLOCK + Math.ceil(at.size / BLOCK) * BLOCK)];
}

export const tarMutators: Record<string, TarMutator> = {
  size(r, tar, headers) {
    return withHeader(r, tar, headers, (h, at) => {
      const choice = r.int(6);
      if (choice === 0) { // base-256 (GNU) encoding of a size
        const b = Buffer.alloc(12);
        b[0] = 0x80;
        b.writeUIntBE(r.pick([0, at.size, 2 ** 33, 2 ** 40 - 1]), 6, 6);
        b.copy(h, 124);
        return;
      }
      if (choice === 1) { writeField(h, 124, 12, r.pick(['99999999999', '        ', '', '0x10', '-1', '7777777777777'])); return; }
      h.write(octalField(Math.max(0, r.pick([0, 1, at.size - 1, at.size + 1, at.size + BLOCK, at.size * 2, 0o77777777777])), 12), 124, 12, 'latin1');
    });
  },
  typeflag(r, tar, headers) {
    return withHeader(r, tar, headers, (h) => { h.write(r.pick(['0', '\0', '1', '2', '3', '4', '5', '6', '7', 'x', 'g', 'L', 'K', 'V', 'M', 'S', 'D', 'A', '\u00ff']), 156, 1, 'latin1'); });
  },
  checksum(r, tar, headers) {
    return withHeader(r, tar, headers, (h) => { writeField(h, 148, 8, r.pick(['0000000\0', '        ', '\0\0\0\0\0\0\0\0', '7777777\0', String(r.int(99999))])); }, 0);
  },
  name(r, tar, headers, ctx) {
    const names = headers.map((x) => x.name);
    return withHeader(r, tar, headers, (h) => { writeField(h, 0, 100, hostileName(r, ctx, names)); });
  },
  prefix(r, tar, headers, ctx) {
    // The ustar prefix field (345..500) is joined in front of the name.
    return withHeader(r, tar, headers, (h) => { writeField(h, 345, 155, r.pick(['..', ctx.escapeDir, '/', 'a'.repeat(155), 'lib', '.'])); });
  },
  link(r, tar, headers, ctx) {
    return withHeader(r, tar, headers, (h) => {
      h.write(r.pick(['1', '2']), 156, 1, 'latin1');
      writeField(h, 157, 100, r.pick([ctx.escapeDir, `${ctx.escapeDir}/abs-escape`, '../../fuzz-escape', '..', '/etc/passwd', headers[0]?.name ?? 'x']));
    });
  },
  mode(r, tar, headers) {
    return withHeader(r, tar, headers, (h) => { h.write(octalField(r.pick([0o4755, 0o2755, 0o1777, 0o7777, 0, 0o777]), 8), 100, 8, 'latin1'); });
  },
  headerBytes(r, tar, headers) {
    // Format-blind damage confined to one header, usually with a valid checksum after it.
    return withHeader(r, tar, headers, (h) => {
      for (let i = 1 + r.int(4); i > 0; i--) h[r.int(BLOCK)] = r.chance(0.5) ? r.pick(INTERESTING_BYTES) : r.int(256);
    }, 0.7);
  },
  pax(r, tar, headers, ctx) {
    const body = paxRecords(r, ctx, headers.map((x) => x.name));
    const type = r.chance(0.85) ? 'x' : 'g';
    return insertAt(r, tar, headers, entryBytes(makeHeader('PaxHeader/fuzz', type, body.length), body));
  },
  gnuLongName(r, tar, headers, ctx) {
    const name = Buffer.from(r.chance(0.5) ? hostileName(r, ctx, headers.map((x) => x.name)) : `${'long/'.repeat(40)}name`);
    return insertAt(r, tar, headers, entryBytes(makeHeader('././@LongLink', r.pick(['L', 'K']), name.length + 1), Buffer.concat([name, Buffer.from([0])])));
  },
  linkThenFile(r, tar, headers, ctx) {
    // The classic escape: a link named like a folder, then a file "through" it.
    const dir = r.pick(['lib', 'assets', 'releases', 'channels', 'escape']);
    const link = makeHeader(dir, r.pick(['1', '2']), 0, r.pick([ctx.escapeDir, '..', '../..']), 0o777);
    const data = Buffer.from('fuzz\n');
    const file = makeHeader(`${dir}/${r.pick(['fuzz-escape', 'engine.bin', 'stable.json'])}`, '0', data.length);
    return insertAt(r, tar, headers, Buffer.concat([entryBytes(link, Buffer.alloc(0)), entryBytes(file, data)]));
  },
  special(r, tar, headers, ctx) {
    const name = hostileName(r, ctx, headers.map((x) => x.name));
    return insertAt(r, tar, headers, entryBytes(makeHeader(name || 'dev', r.pick(['3', '4', '6', '7']), 0, '', r.pick([0o644, 0o4755])), Buffer.alloc(0)));
  },
  duplicateEntry(r, tar, headers) {
    if (headers.length === 0) return tar;
    const [a, b] = entrySpan(tar, r.pick(headers));
    return insertAt(r, tar, headers, Buffer.from(tar.subarray(a, b)));
  },
  removeEntry(r, tar, headers) {
    if (headers.length === 0) return tar;
    const [a, b] = entrySpan(tar, r.pick(headers));
    return Buffer.concat([tar.subarray(0, a), tar.subarray(b)]);
  },
  endBlocks(r, tar, headers) {
    const last = headers.at(-1);
    const end = last ? entrySpan(tar, last)[1] : 0;
    switch (r.int(3)) {
      case 0: return Buffer.from(tar.subarray(0, end)); // no end-of-archive blocks
      case 1: return Buffer.concat([tar.subarray(0, end), Buffer.alloc(BLOCK)]); // only one
      default: return Buffer.concat([tar, Buffer.from(makeHeader('after-end', '0', 5)), Buffer.from('late\n')]); // data after the end
    }
  },
  truncateInEntry(r, tar, headers) {
    if (headers.length === 0) return tar;
    const [a, b] = entrySpan(tar, r.pick(headers));
    return Buffer.from(tar.subarray(0, a + r.int(b - a)));
  },
};

/** One to five tar-aware mutations (with an occasional format-blind one). */
export function mutateTar(r: Rng, tar: Buffer, ctx: TarContext): Buffer {
  let out = tar;
  for (let i = stackDepth(r); i > 0; i--) {
    out = r.chance(0.1) ? mutateBytes(r, out) : tarMutators[r.pick(Object.keys(tarMutators))]!(r, out, tarHeaders(out), ctx);
  }
  return out;
}

/** Replaces the content of one entry with `fn(content)`, fixing its size and checksum. */
export function mutateTarEntry(r: Rng, tar: Buffer, choose: (name: string) => boolean, fn: (content: Buffer, name: string) => Buffer): Buffer {
  const headers = tarHeaders(tar).filter((h) => choose(h.name));
  if (headers.length === 0) return tar;
  const at = r.pick(headers);
  const [a, b] = entrySpan(tar, at);
  const header = Buffer.from(tar.subarray(a, a + BLOCK));
  const content = fn(Buffer.from(tar.subarray(a + BLOCK, a + BLOCK + at.size)), at.name);
  header.write(octalField(content.length, 12), 124, 12, 'latin1');
  fixChecksum(header);
  return Buffer.concat([tar.subarray(0, a), entryBytes(header, content), tar.subarray(b)]);
}

/** A gzipped tar: usually unpacked, mutated as a tar and packed again; sometimes damaged as gzip. */
export function mutateTarGz(r: Rng, gz: Buffer, ctx: TarContext, others: readonly Buffer[] = []): Buffer {
  if (r.chance(0.25)) return mutateBytes(r, gz, others);
  const tar = mutateTar(r, gunzipSync(gz), ctx);
  // A plain tar where a .tar.gz is expected is also worth a try: node-tar sniffs the format.
  return r.chance(0.1) ? tar : gzipSync(tar, { level: 1 });
}

/**
 * A brotli tar (full artifacts since issue 14): usually unpacked, mutated as a tar and packed again
 * (fast quality; sometimes in a large-window stream); sometimes damaged as brotli, or handed over
 * as a plain or gzipped tar where brotli is expected (the decoder is the signed path's, never sniffed).
 */
export function mutateTarBr(r: Rng, br: Buffer, ctx: TarContext, others: readonly Buffer[] = []): Buffer {
  if (r.chance(0.25)) return mutateBytes(r, br, others);
  const tar = mutateTar(r, brotliDecompressSync(br, brotliDecoder()), ctx);
  if (r.chance(0.05)) return tar;
  if (r.chance(0.05)) return gzipSync(tar, { level: 1 });
  const large = r.chance(0.2) ? { [zlibConstants.BROTLI_PARAM_LARGE_WINDOW]: 1, [zlibConstants.BROTLI_PARAM_LGWIN]: 26 } : {};
  return brotliCompressSync(tar, { params: { [zlibConstants.BROTLI_PARAM_QUALITY]: 1, ...large } });
}
