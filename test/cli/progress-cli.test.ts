// Progress from the real command (`node dist/cli/ferry.js update`, stderr not a terminal): plain lines
// naming the artifact and its size on stderr, stdout still the result; with --json no progress.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { regularFiles, type ManifestDoc } from '../../core/trust/metadata.ts';
import { formatBytes } from '../../cli/format.ts';
import { sampleApp, tempDir, writeTree, type TempDir } from '../helpers/repo.ts';
import { ferry, json, ok } from '../helpers/cli.ts';
import { readPayload } from '../helpers/tamper.ts';

let tmp: TempDir;
const p = (...parts: string[]) => join(tmp.path, ...parts);
const target = ['--platform', 'linux', '--arch', 'x64'];

const cli = suite('progress output of ferry update');

cli.before(async () => {
  tmp = await tempDir('ferry-progress-cli-');
  await writeTree(p('app-1.0.0'), sampleApp('1.0.0'));
  ok(ferry('keygen', '--out', p('root')), 'keygen root');
  ok(ferry('keygen', '--out', p('release')), 'keygen release');
  ok(ferry('repo', 'init', p('repo'), '--app', 'sample-app', '--root-key', p('root.key'), '--release-key', p('release.pub')), 'repo init');
  ok(ferry('release', p('app-1.0.0'), '--repo', p('repo'), '--version', '1.0.0', '--key', p('release.key'), ...target), 'release 1.0.0');
  for (const home of ['home', 'home-json']) ok(ferry('init', p(home), '--trust', p('repo', 'root.json'), '--source', p('repo'), ...target), `init ${home}`);
});

cli.after(async () => {
  await tmp.cleanup();
});

cli('not a terminal: a download line naming the artifact and its size on stderr; --json: none', async () => {
  const m = await readPayload<ManifestDoc>(p('repo', 'releases', '1.0.0', 'manifest.json'));
  const artifact = m.targets['linux-x64']!.full;
  const run = ok(ferry('update', '--home', p('home')), 'update');
  assert.match(run.stdout, /nothing -> 1\.0\.0/);
  assert.not.match(run.stderr, /\r/, 'no redraws off a terminal');
  const lines = run.stderr.split('\n');
  assert.ok(lines.some((l) => l.startsWith(`downloaded ${artifact.path} from `) && l.includes(formatBytes(artifact.size))), `a download line for ${artifact.path} (${formatBytes(artifact.size)}) in:\n${run.stderr}`);
  assert.ok(lines.includes('staging 1.0.0'), run.stderr);

  const quiet = ok(ferry('update', '--home', p('home-json'), '--json'), 'update --json');
  assert.is(json<{ status: string }>(quiet).status, 'committed');
  assert.not.match(quiet.stderr, /download|stag|cached/, `no progress with --json, got: ${quiet.stderr}`);
});

cli('a delta update shows patching from the old version to the new one, in bytes of the new tree', async () => {
  await writeTree(p('app-1.1.0'), sampleApp('1.1.0'));
  ok(ferry('release', p('app-1.1.0'), '--repo', p('repo'), '--version', '1.1.0', '--key', p('release.key'), ...target), 'release 1.1.0');
  const m = await readPayload<ManifestDoc>(p('repo', 'releases', '1.1.0', 'manifest.json'));
  const treeBytes = regularFiles(m.targets['linux-x64']!.files).reduce((n, f) => n + f.size, 0);
  const run = ok(ferry('update', '--home', p('home')), 'update to 1.1.0');
  assert.match(run.stdout, /1\.0\.0 -> 1\.1\.0/);
  const lines = run.stderr.split('\n');
  assert.ok(lines.includes('patching 1.0.0 → 1.1.0'), `a patching start line in:\n${run.stderr}`);
  assert.ok(lines.some((l) => /^patched 1\.0\.0 → 1\.1\.0 in \d+\.\ds$/.test(l)), `a patched line in:\n${run.stderr}`);
  assert.not.ok(lines.some((l) => l.startsWith('staging 1.1.0')), 'a delta is reported as patching, not as extraction');
  const h = json<{ to: string; kind: string }[]>(ok(ferry('history', '--home', p('home'), '--json'), 'history'));
  assert.is(h.find((r) => r.to === '1.1.0')?.kind, 'delta', `the update was a delta (tree ${treeBytes} bytes)`);
});

cli.run();
