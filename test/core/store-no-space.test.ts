// SECURITY.md row 23, the store on a full disk: a device home on a tmpfs with a handful of free
// inodes (LevelDB needs a few new files to open) must say ERR_NO_SPACE (exit 8) and keep its
// store, never take the failure for damage and move the store aside (losing history, approvals
// and an update in progress). Needs root and tmpfs; prints SKIP otherwise.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initDevice } from '../../core/device/init.ts';
import { createDirSource } from '../../core/ports/dir-source.ts';
import { Updater } from '../../core/update/updater.ts';
import { createBsdiffPatcher } from '../../plugins/bsdiff/patcher.ts';
import { makeRepo, sampleApp } from '../helpers/repo.ts';
import { ferry } from '../helpers/crash.ts';
import { canMountTmpfs } from '../helpers/tmpfs.ts';

const why = canMountTmpfs();
if (why) {
  console.log(`SKIP: store on a full disk (tmpfs): ${why}`);
} else {
  const test = suite('the store on a disk out of inodes');

  test('with 0 to 6 inodes free, ferry status either works or says ERR_NO_SPACE (exit 8); the store is never moved aside and history survives', async () => {
    const mnt = mkdtempSync(join(tmpdir(), 'ferry-store-full-'));
    const repo = await makeRepo();
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64m,nr_inodes=4000,mode=0755', 'tmpfs', mnt], { stdio: 'pipe' });
    try {
      await repo.release('1.0.0', sampleApp('1.0.0'));
      const home = join(mnt, 'home');
      await initDevice({ home, trustBytes: await repo.trust(), sources: [repo.repo], platform: 'linux', arch: 'x64' });
      const u = await Updater.open({ home, sources: [createDirSource(repo.repo)], patcher: createBsdiffPatcher(), health: null });
      try {
        assert.is((await u.apply()).status, 'committed');
      } finally {
        await u.close();
      }

      // Every inode taken by empty files, then `free` of them given back before each run.
      const filler = join(mnt, 'filler');
      mkdirSync(filler);
      let n = 0;
      for (; n < 10_000; n++) {
        try { writeFileSync(join(filler, String(n)), ''); } catch { break; }
      }
      assert.ok(n < 10_000, 'the inodes ran out');
      const outcomes: string[] = [];
      for (let free = 0; free <= 6; free++) {
        for (let i = 0; i < free && n > 0; i++) rmSync(join(filler, String(--n)));
        const run = await ferry(['status', '--home', home, '--json']);
        const code = run.code === 0 ? 'ok' : (JSON.parse(run.stderr.trim().split('\n').pop() ?? '{}') as { error?: { code?: string } }).error?.code ?? `exit ${run.code}`;
        outcomes.push(`${free}:${code}`);
        assert.ok(run.code === 0 || (run.code === 8 && code === 'ERR_NO_SPACE'), `with ${free} free inodes: exit ${run.code} ${run.stderr.trim()}`);
        assert.equal(readdirSync(home).filter((f) => f.startsWith('state.damaged')), [], `with ${free} free inodes the store stays where it is`);
        // Give the inodes back to the filler so the next round starts from "full" again.
        for (let i = 0; i < free; i++) {
          try { writeFileSync(join(filler, String(n)), ''); n++; } catch { break; }
        }
      }
      assert.ok(outcomes.some((o) => o.endsWith('ERR_NO_SPACE')), `at least one run met the full disk: ${outcomes.join(' ')}`);

      rmSync(filler, { recursive: true, force: true });
      const history = await ferry(['history', '--home', home, '--json']);
      assert.is(history.code, 0, history.stderr);
      const records = JSON.parse(history.stdout) as { to: string; outcome: string }[];
      assert.ok(records.some((r) => r.to === '1.0.0' && r.outcome === 'committed'), 'the install of 1.0.0 is still in history');
    } finally {
      spawnSync('umount', [mnt], { stdio: 'pipe' });
      rmSync(mnt, { recursive: true, force: true });
      await repo.cleanup();
    }
  });

  test.run();
}
