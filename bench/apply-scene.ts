// bench/apply-scene: sets up bench/apply's two trees once and keeps them, for profiling
// `ferry update` by hand (`node --cpu-prof dist/cli/ferry.js update --home H`), which the bench
// itself cannot do because it removes its scratch dir. For each tree under `<dir>/<n>/` it leaves
// a repository with 1.0.0 and 1.1.0 (with its delta), `fresh-home` (initialised, nothing installed:
// a full update) and `old-home` (on 1.0.0: a delta update). Copy a home (`cp -a`) before each run.
// Usage: node --import tsx bench/apply-scene.ts <dir>   (after `npm run build`)

import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { TREES } from './apply.ts';
import { expectUpdate, initHome, initRepo, makeKeys, release, update } from './lib/ferry-cli.ts';

const PUBLISH_TIMEOUT_MS = 15 * 60_000;

async function main(dir: string): Promise<void> {
  const log = (line: string) => { process.stdout.write(line + '\n'); };
  await mkdir(join(dir, 'keys'), { recursive: true });
  const timeOut = join(dir, 'time.out');
  const keys = await makeKeys(join(dir, 'keys'), timeOut);
  for (const [i, tree] of TREES.entries()) {
    const t = join(dir, String(i));
    log(`${tree.name} -> ${t}`);
    await mkdir(join(t, 'scratch'), { recursive: true });
    await tree.write(join(t, 'app-1.0.0'), join(t, 'app-1.1.0'), join(t, 'scratch'), log);
    const repo = join(t, 'repo');
    await initRepo(repo, keys, timeOut);
    await release(repo, join(t, 'app-1.0.0'), '1.0.0', keys, 0, timeOut, PUBLISH_TIMEOUT_MS);
    await initHome(join(t, 'old-home'), repo, timeOut);
    expectUpdate(await update(join(t, 'old-home'), timeOut, PUBLISH_TIMEOUT_MS), '1.0.0', 'full', 'installing 1.0.0');
    await release(repo, join(t, 'app-1.1.0'), '1.1.0', keys, 1, timeOut, PUBLISH_TIMEOUT_MS);
    await initHome(join(t, 'fresh-home'), repo, timeOut);
  }
}

const dir = process.argv[2];
if (!dir) {
  process.stderr.write('usage: node --import tsx bench/apply-scene.ts <dir>\n');
  process.exitCode = 2;
} else {
  main(resolve(dir)).catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    process.exitCode = 1;
  });
}
