// The end-to-end demo behind `npm run demo`: everything a newcomer needs to see ferry work, on
// this machine, in a temporary folder, with the real `ferry` command. Each step prints the
// command it runs, so the output doubles as a tutorial.

import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sampleApp, writeTree } from '../test/helpers/repo.ts';

const FERRY = fileURLToPath(new URL('../cli/ferry.mjs', import.meta.url));
const keep = process.argv.includes('--keep');

function ferry(...args: string[]): string {
  process.stdout.write(`\n$ ferry ${args.join(' ')}\n`);
  const r = spawnSync(process.execPath, [FERRY, ...args], { cwd: work, encoding: 'utf8' });
  process.stdout.write(r.stdout);
  process.stderr.write(r.stderr);
  if (r.status !== 0) throw new Error(`ferry ${args[0]} exited ${r.status}`);
  return r.stdout;
}

const work = await mkdtemp(join(tmpdir(), 'ferry-demo-'));
const started = Date.now();
try {
  console.log(`ferry demo in ${work}`);
  console.log('\n# 1. The publisher makes a root key (kept offline) and a release key, and a repository.');
  ferry('keygen', '--out', 'keys/root');
  ferry('keygen', '--out', 'keys/release');
  ferry('repo', 'init', 'repo', '--app', 'sample-app', '--root-key', 'keys/root.key', '--release-key', 'keys/release.pub');

  console.log('\n# 2. Two versions of a sample app are published; the second carries a delta from the first.');
  await writeTree(join(work, 'app-1.0.0'), sampleApp('1.0.0'));
  await writeTree(join(work, 'app-1.1.0'), sampleApp('1.1.0'));
  ferry('release', 'app-1.0.0', '--repo', 'repo', '--version', '1.0.0', '--key', 'keys/release.key', '--notes', 'first release', '--platform', 'linux', '--arch', 'x64');
  ferry('release', 'app-1.1.0', '--repo', 'repo', '--version', '1.1.0', '--key', 'keys/release.key', '--notes', 'faster engine', '--platform', 'linux', '--arch', 'x64');

  console.log('\n# 3. Anyone holding root.json checks every signature and every byte.');
  ferry('verify', 'repo', '--trust', 'repo/root.json');

  console.log('\n# 4. An offline bundle for a USB stick: only the delta from 1.0.0, verified by the same code.');
  ferry('bundle', '--repo', 'repo', '--version', '1.1.0', '--from', '1.0.0', '--out', 'update-1.1.0.ferry', '--platform', 'linux', '--arch', 'x64');
  ferry('verify', 'update-1.1.0.ferry', '--trust', 'repo/root.json');

  console.log(`\ndemo finished in ${((Date.now() - started) / 1000).toFixed(1)} s`);
} finally {
  if (keep) console.log(`kept ${work}`);
  else await rm(work, { recursive: true, force: true });
}
