// App folders to publish: a tree written from a plain object, and a small sample app whose
// versions differ the way real ones do (code edited, a binary patched, a file added), so deltas
// between them are real deltas.

import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';

/** Relative path → content, or content with a file mode (0o644 when not given). */
export type TreeSpec = Record<string, string | Buffer | { content: string | Buffer; mode: number }>;

/** Writes files (creating folders) under `dir`. */
export async function writeTree(dir: string, files: TreeSpec): Promise<void> {
  for (const [path, spec] of Object.entries(files)) {
    const full = join(dir, path);
    await mkdir(dirname(full), { recursive: true });
    const content = typeof spec === 'string' || Buffer.isBuffer(spec) ? spec : spec.content;
    await writeFile(full, content);
    await chmod(full, typeof spec === 'object' && !Buffer.isBuffer(spec) ? spec.mode : 0o644);
  }
}

/** Deterministic pseudo-random bytes (xorshift), so a "binary" differs a little between versions. */
export function pseudoRandomBytes(size: number, seed: number): Buffer {
  const out = Buffer.alloc(size);
  let x = (seed | 0) || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** A small app for `version`; `n` (the minor version by default) says how far it has drifted from n = 0. */
export function sampleApp(version: string, n = Number(version.split('.')[1] ?? 0)): TreeSpec {
  const binary = pseudoRandomBytes(200_000, 7);
  for (let i = 0; i < n; i++) binary.writeUInt32LE(0xdeadbeef + i, 1000 + i * 4096);
  const tree: TreeSpec = {
    'package.json': JSON.stringify({ name: 'sample-app', version }, null, 2) + '\n',
    'server.js': { content: `// sample app\nexport const VERSION = '${version}';\n`, mode: 0o755 },
    'lib/engine.bin': binary,
    'lib/util.js': `export const answer = ${40 + n};\n`.repeat(50),
    'assets/logo.txt': 'ferry\n',
  };
  if (n > 0) tree[`lib/feature-${n}.js`] = `export const feature = ${n};\n`;
  return tree;
}
