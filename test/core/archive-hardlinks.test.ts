// Hard-linked files in a release tree (node-gyp leaves such pairs in node_modules/*/build): the
// deterministic archive stores each as a whole regular file, so extraction, which admits no
// hard-link entries (SECURITY.md row 14), takes the artifact with its signed file list.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { link, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { list } from 'tar';
import { packFiles } from '../../core/publish/archive.ts';
import { scanTree } from '../../core/publish/tree.ts';
import { extractArchive, type ExpectedEntry } from '../../core/io/extract.ts';
import { tempDir, type TempDir } from '../helpers/repo.ts';

const hardlinks = suite('archives of trees with hard links');

let tmp: TempDir;

hardlinks.before(async () => {
  tmp = await tempDir('ferry-hardlinks-');
});

hardlinks.after(async () => {
  await tmp.cleanup();
});

hardlinks('a hard-linked pair is archived as two regular files and extracts against its signed list', async () => {
  const tree = join(tmp.path, 'tree');
  await mkdir(join(tree, 'build', 'Release', 'obj.target'), { recursive: true });
  await writeFile(join(tree, 'build', 'Release', 'addon.node'), 'native bytes\n');
  await link(join(tree, 'build', 'Release', 'addon.node'), join(tree, 'build', 'Release', 'obj.target', 'addon.node'));
  await writeFile(join(tree, 'index.js'), 'export {};\n');

  const files = await scanTree(tree);
  assert.equal(files.map((f) => f.path), ['build/Release/addon.node', 'build/Release/obj.target/addon.node', 'index.js']);
  const archive = join(tmp.path, 'full.tar.gz');
  await packFiles(tree, files.map((f) => f.path), archive, true);

  const types: string[] = [];
  await list({ file: archive, onReadEntry: (e) => { types.push(`${e.path} ${e.type}`); } });
  assert.equal(types, ['build/Release/addon.node File', 'build/Release/obj.target/addon.node File', 'index.js File']);

  const expected = new Map<string, ExpectedEntry>(files.map((f) => [f.path, f as ExpectedEntry]));
  const out = join(tmp.path, 'out');
  await mkdir(out);
  const extracted = await extractArchive(archive, out, expected);
  assert.is(extracted.length, 3);
  assert.is(await readFile(join(out, 'build', 'Release', 'obj.target', 'addon.node'), 'utf8'), 'native bytes\n');
});

hardlinks.run();
