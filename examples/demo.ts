// The end-to-end demo behind `npm run demo`: everything a newcomer needs to see ferry work, on
// this machine, in a temporary folder, with the real `ferry` command. Each step prints the
// command it runs, so the output doubles as a tutorial. `npm run demo -- --keep` keeps the folder.

import { spawnSync } from 'node:child_process';
import { mkdtemp, readlink, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sampleApp, writeTree, type TreeSpec } from '../test/helpers/repo.ts';

const FERRY = fileURLToPath(new URL('../cli/ferry.mjs', import.meta.url));
const keep = process.argv.includes('--keep');
const work = await mkdtemp(join(tmpdir(), 'ferry-demo-'));

function ferry(args: string[], expectExit = 0): string {
  process.stdout.write(`\n$ ferry ${args.join(' ')}\n`);
  const r = spawnSync(process.execPath, [FERRY, ...args], { cwd: work, encoding: 'utf8' });
  process.stdout.write(r.stdout);
  process.stderr.write(r.stderr);
  if (r.status !== expectExit) throw new Error(`ferry ${args[0]} exited ${r.status}, expected ${expectExit}`);
  return r.stdout;
}

/** The sample app plus a health probe the device runs after each switch. */
function appVersion(version: string, healthy = true): TreeSpec {
  return { ...sampleApp(version), 'health.js': `// exits 0 when this release can serve\nprocess.exit(${healthy ? 0 : 1});\n` };
}

const target = ['--platform', 'linux', '--arch', 'x64'];
const started = Date.now();
try {
  console.log(`ferry demo in ${work}`);

  console.log('\n# 1. The publisher makes a root key (kept offline), a release key and a repository.');
  ferry(['keygen', '--out', 'keys/root']);
  ferry(['keygen', '--out', 'keys/release']);
  ferry(['repo', 'init', 'repo', '--app', 'sample-app', '--root-key', 'keys/root.key', '--release-key', 'keys/release.pub']);

  console.log('\n# 2. Version 1.0.0 is published, and a device that trusts root.json installs it.');
  await writeTree(join(work, 'app-1.0.0'), appVersion('1.0.0'));
  ferry(['release', 'app-1.0.0', '--repo', 'repo', '--version', '1.0.0', '--key', 'keys/release.key', '--notes', 'first release', ...target]);
  ferry(['init', 'device-a', '--trust', 'repo/root.json', '--source', 'repo', '--health-cmd', 'node health.js', ...target]);
  ferry(['update', '--home', 'device-a']);

  console.log('\n# 3. Version 1.1.0 comes as a small delta; the device checks, then updates.');
  await writeTree(join(work, 'app-1.1.0'), appVersion('1.1.0'));
  ferry(['release', 'app-1.1.0', '--repo', 'repo', '--version', '1.1.0', '--key', 'keys/release.key', '--notes', 'faster engine', ...target]);
  ferry(['check', '--home', 'device-a']);
  ferry(['update', '--home', 'device-a']);

  console.log('\n# 4. Anyone holding root.json can check every signature and every byte of the repository.');
  ferry(['verify', 'repo', '--trust', 'repo/root.json']);

  console.log('\n# 5. An offline bundle for a USB stick; a second, air-gapped device installs from it alone.');
  ferry(['bundle', '--repo', 'repo', '--version', '1.1.0', '--out', 'stick/update-1.1.0.ferry', ...target]);
  ferry(['verify', 'stick/update-1.1.0.ferry', '--trust', 'repo/root.json']);
  ferry(['init', 'device-b', '--trust', 'repo/root.json', '--source', 'stick/update-1.1.0.ferry', ...target]);
  ferry(['update', '--home', 'device-b']);

  console.log('\n# 6. A broken 1.2.0 fails its health check on the device and is rolled back on its own.');
  await writeTree(join(work, 'app-1.2.0'), appVersion('1.2.0', false));
  ferry(['release', 'app-1.2.0', '--repo', 'repo', '--version', '1.2.0', '--key', 'keys/release.key', ...target]);
  ferry(['update', '--home', 'device-a'], 10);
  console.log(`\ndevice-a/current -> ${await readlink(join(work, 'device-a', 'current'))}`);

  console.log('\n# 7. Restore points are cleaned up, and the history says what happened.');
  ferry(['restore-points', 'cleanup', '--keep', '1', '--home', 'device-a']);
  ferry(['history', '--home', 'device-a']);
  ferry(['history', '--home', 'device-b']);
  ferry(['status', '--home', 'device-a']);

  console.log(`\ndemo finished in ${((Date.now() - started) / 1000).toFixed(1)} s`);
} finally {
  if (keep) console.log(`kept ${work}`);
  else await rm(work, { recursive: true, force: true });
}
