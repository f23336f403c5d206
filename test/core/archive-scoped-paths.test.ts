// A release tree whose top level holds an npm scope folder (`@scope/pkg/...`, what a bundled
// node_modules or a vendored workspace looks like): node-tar's create() reads any path starting
// with "@" as "append the entries of this tar file", so publishing such a tree failed with
// ERR_NOT_FOUND. core/publish/archive.ts adds each path to node-tar's Pack itself.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { list } from 'tar';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { packFiles } from '../../core/publish/archive.ts';
import { scanTree } from '../../core/publish/tree.ts';
import { extractArchive, type ExpectedEntry } from '../../core/io/extract.ts';
import { assertInstalled, cleanupAll, repoAndDevice } from '../helpers/device.ts';
import { tempDir, writeTree } from '../helpers/repo.ts';

const scoped = suite('a top-level @scope folder in a release tree');

const tree = (version: string) => ({
  'server.js': `export const VERSION = '${version}';\n`,
  '@scope/pkg/index.js': `module.exports = '${version}';\n`,
  '@scope/pkg/package.json': '{"name":"@scope/pkg"}\n',
  '@other/x.txt': 'same in every version\n',
});

scoped('is archived under its own path, and a tar delta of it extracts against the signed list', async () => {
  const tmp = await tempDir('ferry-scoped-');
  try {
    const dir = join(tmp.path, 'tree');
    await writeTree(dir, tree('1.0.0'));
    const files = await scanTree(dir);
    const archive = join(tmp.path, 'entries.tar');
    await packFiles(dir, files.map((f) => f.path), archive, false);
    const paths: string[] = [];
    await list({ file: archive, onReadEntry: (e) => { paths.push(e.path); } });
    assert.equal(paths, ['@other/x.txt', '@scope/pkg/index.js', '@scope/pkg/package.json', 'server.js']);
    const out = join(tmp.path, 'out');
    await mkdir(out);
    const extracted = await extractArchive(archive, out, new Map<string, ExpectedEntry>(files.map((f) => [f.path, f as ExpectedEntry])));
    assert.is(extracted.length, 4);
  } finally {
    await tmp.cleanup();
  }
});

scoped('publishes, installs in full, and updates by delta', async () => {
  const { repo, device } = await repoAndDevice();
  try {
    const r1 = await repo.release('1.0.0', tree('1.0.0'));
    await device.with(async (u) => assert.is((await u.apply()).status, 'committed'));
    await assertInstalled(device, r1.manifest);
    const r2 = await repo.release('1.1.0', tree('1.1.0'));
    await device.with(async (u) => {
      const result = await u.apply();
      assert.is(result.status, 'committed');
      if (result.status === 'committed') assert.is(result.record.kind, 'delta');
    });
    await assertInstalled(device, r2.manifest);
  } finally {
    await cleanupAll(device, repo);
  }
});

scoped.run();
