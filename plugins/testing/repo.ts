// A real signed repository in a temp folder: real ed25519 keys (one root key, one release key,
// threshold 1), real artifacts, real bsdiff deltas, made by the same publishing code `ferry repo
// init` and `ferry release` run. A transport author serves `repo` over their transport and points
// a device, `ferry verify` or the conformance suite at it.

import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generateKeyFiles, loadPublicKey, loadSigningKey, type SigningKey } from '../../core/trust/keys.ts';
import { initRepository } from '../../core/publish/repository.ts';
import { publishRelease, type ReleaseResult } from '../../core/publish/publish.ts';
import type { Channel } from '../../core/trust/metadata.ts';
import { createBsdiffPatcher } from '../bsdiff/patcher.ts';
import { writeTree, type TreeSpec } from './sample-app.ts';
import { tempDir } from './temp-dir.ts';

/** The brotli quality of a test repository's artifacts unless a release asks otherwise. */
const TEST_COMPRESSION_LEVEL = 5;

export interface ReleaseOptions {
  channel: Channel;
  platform: string;
  arch: string;
  /** How many earlier releases get a delta to this one. */
  deltas: number;
  notes: string;
  mandatory: boolean;
  securityFix: boolean;
  now: Date;
  /** Seconds the channel pointer stays valid. */
  expiresIn: number;
  /** Release keys that sign (the repository's own release key by default). */
  keys: SigningKey[];
  /**
   * Brotli quality of the artifacts. A test repository favours speed: 5 unless told (the
   * publisher's own default is 11, the smallest and slowest; core/io/brotli.ts).
   */
  compressionLevel: number;
  /** The file list inside the manifest, as before separate lists (`ferry release --inline-file-list`). */
  inlineFileList: boolean;
}

export interface TestRepo {
  /** The temp folder holding keys/, repo/ and the app folders published. */
  dir: string;
  /** The repository folder: what a transport serves. */
  repo: string;
  /** repo/root.json: the trust a device is initialised with. */
  trustPath: string;
  rootKey: SigningKey;
  releaseKey: SigningKey;
  /** root.key/.pub and release.key/.pub. */
  keysDir: string;
  /** The bytes of root.json. */
  trust(): Promise<Buffer>;
  /** Publishes a tree as `version` (written to a fresh app folder first). */
  release(version: string, tree: TreeSpec, options?: Partial<ReleaseOptions>): Promise<ReleaseResult>;
  /** Removes the temp folder (nothing, when `dir` was given to makeRepo). */
  cleanup(): Promise<void>;
}

/** A repository with one root key and one release key (threshold 1), app "sample-app" by default. */
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
        compressionLevel: o.compressionLevel ?? TEST_COMPRESSION_LEVEL,
        inlineFileList: o.inlineFileList ?? false,
      });
    },
    cleanup: tmp.cleanup,
  };
}
