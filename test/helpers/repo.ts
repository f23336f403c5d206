// Builds real signed repositories in temp folders: real ed25519 keys, real artifacts, real
// deltas. Tests, examples and benchmarks all make their fixtures through here.

import { mkdir, mkdtemp, rm, writeFile, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { readFile } from 'node:fs/promises';
import { generateKeyFiles, loadSigningKey, loadPublicKey, type SigningKey } from '../../core/trust/keys.ts';
import { initRepository } from '../../core/publish/repository.ts';
import { publishRelease, type ReleaseResult } from '../../core/publish/publish.ts';
import { createBsdiffPatcher } from '../../plugins/bsdiff/patcher.ts';
import type { Channel } from '../../core/trust/metadata.ts';

export interface TempDir {
  path: string;
  cleanup(): Promise<void>;
}

export async function tempDir(prefix = 'ferry-test-'): Promise<TempDir> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  return { path, cleanup: () => rm(path, { recursive: true, force: true }) };
}

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

/** A small app whose versions differ the way real ones do: code edited, a binary patched, a file added. */
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

export interface TestRepo {
  dir: string;
  repo: string;
  trustPath: string;
  rootKey: SigningKey;
  releaseKey: SigningKey;
  keysDir: string;
  trust(): Promise<Buffer>;
  /** Publishes a tree as `version` (written to a fresh app folder first). */
  release(version: string, tree: TreeSpec, options?: Partial<{ channel: Channel; platform: string; arch: string; deltas: number; notes: string; mandatory: boolean; securityFix: boolean; now: Date; expiresIn: number; keys: SigningKey[] }>): Promise<ReleaseResult>;
  cleanup(): Promise<void>;
}

/** A repository with one root key and one release key (threshold 1), app "sample-app". */
export async function makeRepo(options: { app?: string; dir?: string } = {}): Promise<TestRepo> {
  const tmp = options.dir ? { path: options.dir, cleanup: async () => {} } : await tempDir('ferry-repo-');
  const keysDir = join(tmp.path, 'keys');
  await mkdir(keysDir, { recursive: true });
  await generateKeyFiles(join(keysDir, 'root'));
  await generateKeyFiles(join(keysDir, 'release'));
  const rootKey = await loadSigningKey(join(keysDir, 'root.key'));
  const releaseKey = await loadSigningKey(join(keysDir, 'release.key'));
  const repo = join(tmp.path, 'repo');
  await initRepository({
    repo,
    app: options.app ?? 'sample-app',
    rootKeys: [rootKey],
    rootThreshold: 1,
    releaseKeys: [await loadPublicKey(join(keysDir, 'release.pub'))],
    releaseThreshold: 1,
    now: new Date(),
  });
  let apps = 0;
  return {
    dir: tmp.path,
    repo,
    keysDir,
    trustPath: join(repo, 'root.json'),
    rootKey,
    releaseKey,
    trust: () => readFile(join(repo, 'root.json')),
    async release(version, tree, o = {}) {
      const appDir = join(tmp.path, `app-${apps++}`);
      await writeTree(appDir, tree);
      return publishRelease({
        repo,
        appDir,
        version,
        channel: o.channel ?? 'stable',
        keys: o.keys ?? [releaseKey],
        platform: o.platform ?? 'linux',
        arch: o.arch ?? 'x64',
        ...(o.notes !== undefined ? { notes: o.notes } : {}),
        mandatory: o.mandatory ?? false,
        securityFix: o.securityFix ?? false,
        deltas: o.deltas ?? 3,
        expiresIn: o.expiresIn ?? 30 * 86400,
        now: o.now ?? new Date(),
        patcher: createBsdiffPatcher(),
      });
    },
    cleanup: tmp.cleanup,
  };
}
