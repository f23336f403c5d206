// The device's Updater over real homes and real signed repositories: full, delta and chain
// installs, the delta-to-full fallback, health-check rollback and the attempt cap, approval and
// maintenance-window gating, channels, restore points and cleanup, the home lock, and the cache
// shared by download() and apply(). Fakes (clock, health check) are passed in; nothing is mocked.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import { chmod, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeRepo, pseudoRandomBytes, sampleApp, type TreeSpec } from '../helpers/repo.ts';
import { assertInstalled, assertTree, cleanupAll as done, fakeClock, fakeHealth, makeDevice, repoAndDevice as fresh } from '../helpers/device.ts';
import { assertCodeAsync } from '../helpers/assert-code.ts';
import { MAX_ATTEMPTS } from '../../core/update/updater.ts';
import type { ManifestDoc } from '../../core/trust/metadata.ts';
import type { UpdateRecord } from '../../core/spec.ts';

const T = 'linux-x64';
const files = (m: ManifestDoc) => m.targets[T]!.files;


/** Appends to a file of an installed (read-only by intent) release tree. */
async function tamper(path: string): Promise<void> {
  await chmod(path, 0o644);
  const bytes = await readFile(path);
  bytes[0] = bytes[0]! ^ 0xff;
  await writeFile(path, bytes);
}

const exists = (path: string) => stat(path).then(() => true, () => false);
const committed = (records: UpdateRecord[]) => records.filter((r) => r.outcome === 'committed');

// ---------------------------------------------------------------------------------------------

const install = suite('installs the latest release whole, then the next one as a delta');

install('first apply installs 1.0.0 in full; 1.1.0 comes as a delta of exactly the delta artifact size', async () => {
  const { repo, device } = await fresh();
  try {
    const r1 = await repo.release('1.0.0', sampleApp('1.0.0'), { notes: 'first cut' });
    await device.with(async (u) => {
      const info = await u.checkUpdate();
      assert.is(info.currentVersion, null);
      assert.is(info.latestVersion, '1.0.0');
      assert.is(info.updateAvailable, true);
      assert.is(info.releaseNotes, 'first cut');
      assert.is(info.releaseDate, r1.manifest.releaseDate);
      assert.is(info.mandatory, false);
      assert.is(info.securityFix, false);
      assert.is(info.channel, 'stable');
      assert.is(info.downloadSize, r1.full.size);
      assert.ok(info.downloadUrl?.endsWith(r1.full.path), `downloadUrl ${info.downloadUrl}`);

      const result = await u.apply();
      assert.is(result.status, 'committed');
      if (result.status !== 'committed') return;
      assert.is(result.record.kind, 'full');
      assert.is(result.record.from, null);
      assert.is(result.record.to, '1.0.0');
      assert.is(result.record.bytesMoved, r1.full.size);
      assert.is(result.record.errorCode, null);
      assert.is(result.record.source, `dir:${repo.repo}`);
      assert.ok(result.record.finishedAt);
      await assertInstalled(device, r1.manifest);
      assert.equal(await device.releases(), ['1.0.0']);
      assert.equal(await readdir(device.layout.staging), []);

      const again = await u.checkUpdate();
      assert.is(again.updateAvailable, false);
      assert.is(again.currentVersion, '1.0.0');
      assert.is(again.latestVersion, '1.0.0');
      assert.is(again.downloadSize, null);
      assert.equal(await u.apply(), { status: 'up-to-date', current: '1.0.0' });
    });

    const r2 = await repo.release('1.1.0', sampleApp('1.1.0'), { notes: 'second', mandatory: true });
    const delta = r2.deltas.find((d) => d.from === '1.0.0');
    assert.ok(delta && delta.size < r2.full.size, 'the repo has a delta from 1.0.0 smaller than the full artifact');
    await device.with(async (u) => {
      const info = await u.checkUpdate();
      assert.is(info.currentVersion, '1.0.0');
      assert.is(info.latestVersion, '1.1.0');
      assert.is(info.releaseNotes, 'second');
      assert.is(info.mandatory, true);
      assert.is(info.downloadSize, delta!.size);
      const result = await u.apply();
      assert.is(result.status, 'committed');
      if (result.status !== 'committed') return;
      assert.is(result.record.kind, 'delta');
      assert.is(result.record.from, '1.0.0');
      assert.is(result.record.bytesMoved, delta!.size);
      assert.not.ok(result.record.fellBackToFull);
      await assertInstalled(device, r2.manifest);
      // The old release is untouched: it is the rollback target.
      await assertTree(device.layout.release('1.0.0'), files(r1.manifest));
      assert.equal(await device.releases(), ['1.0.0', '1.1.0']);
      const history = await u.history();
      assert.equal(committed(history).map((h) => [h.to, h.kind]), [['1.0.0', 'full'], ['1.1.0', 'delta']]);
      const points = await u.listRestorePoints();
      assert.equal(points.map((p) => [p.version, p.reason]), [['1.0.0', 'before-switch']]);
    });
  } finally {
    await done(device, repo);
  }
});

install.run();

// ---------------------------------------------------------------------------------------------

const sharing = suite('copies files a delta leaves unchanged, and shares them by hard link only when the device opts in');

sharing('by default an unchanged file is a copy: the releases share nothing', async () => {
  const { repo, device } = await fresh();
  try {
    await repo.release('1.0.0', sampleApp('1.0.0'));
    await device.with((u) => u.apply());
    const r2 = await repo.release('1.1.0', sampleApp('1.1.0'));
    await device.with(async (u) => assert.is((await u.apply()).status, 'committed'));
    const [a, b] = await Promise.all([stat(join(device.layout.release('1.0.0'), 'assets/logo.txt')), stat(join(device.layout.release('1.1.0'), 'assets/logo.txt'))]);
    assert.is.not(a.ino, b.ino, 'different inodes');
    await assertInstalled(device, r2.manifest);
  } finally {
    await done(device, repo);
  }
});

sharing('with linkUnchanged an unchanged file is the same inode in both releases, still hashed as signed', async () => {
  const { repo, device } = await fresh();
  try {
    await device.setConfig({ linkUnchanged: true });
    await repo.release('1.0.0', sampleApp('1.0.0'));
    await device.with((u) => u.apply());
    const r2 = await repo.release('1.1.0', sampleApp('1.1.0'));
    await device.with(async (u) => assert.is((await u.apply()).status, 'committed'));
    const [a, b] = await Promise.all([stat(join(device.layout.release('1.0.0'), 'assets/logo.txt')), stat(join(device.layout.release('1.1.0'), 'assets/logo.txt'))]);
    assert.is(a.ino, b.ino, 'one inode, two names');
    await assertInstalled(device, r2.manifest);
  } finally {
    await done(device, repo);
  }
});

sharing.run();

const chain = suite('chains deltas through an intermediate release only when that moves fewer bytes');

chain('1.0.0 -> 1.2.0 by the chain 1.0.0->1.1.0->1.2.0 (--deltas 1), the sum of both delta sizes', async () => {
  const { repo, device } = await fresh();
  try {
    await repo.release('1.0.0', sampleApp('1.0.0'), { deltas: 1 });
    await device.with((u) => u.apply());
    const r2 = await repo.release('1.1.0', sampleApp('1.1.0'), { deltas: 1 });
    const r3 = await repo.release('1.2.0', sampleApp('1.2.0'), { deltas: 1 });
    assert.equal(r3.deltas.map((d) => d.from), ['1.1.0'], '--deltas 1: only the delta from 1.1.0');
    const bytes = r2.deltas[0]!.size + r3.deltas[0]!.size;
    assert.ok(bytes < r3.full.size, `chain ${bytes} < full ${r3.full.size}`);
    await device.with(async (u) => {
      assert.is((await u.checkUpdate()).downloadSize, bytes);
      const result = await u.apply();
      assert.is(result.status, 'committed');
      if (result.status !== 'committed') return;
      assert.is(result.record.kind, 'chain');
      assert.is(result.record.bytesMoved, bytes);
      assert.is(result.record.from, '1.0.0');
      await assertInstalled(device, r3.manifest);
      // The intermediate was built in staging only, never installed.
      assert.equal(await device.releases(), ['1.0.0', '1.2.0']);
      assert.equal(await readdir(device.layout.staging), []);
    });
  } finally {
    await done(device, repo);
  }
});

chain('takes the full artifact when the chain would move more bytes than it', async () => {
  const { repo, device } = await fresh();
  try {
    const base: TreeSpec = { 'app.js': 'console.log(1);\n', 'lib/core.bin': pseudoRandomBytes(40_000, 3) };
    await repo.release('1.0.0', base, { deltas: 1 });
    await device.with((u) => u.apply());
    // Each hop carries 120 kB of new random bytes; 1.2.0 itself holds only one such file.
    const r2 = await repo.release('1.1.0', { ...base, 'lib/b.bin': pseudoRandomBytes(120_000, 11) }, { deltas: 1 });
    const r3 = await repo.release('1.2.0', { ...base, 'lib/c.bin': pseudoRandomBytes(120_000, 13) }, { deltas: 1 });
    assert.is(r2.deltas.length, 1);
    assert.is(r3.deltas.length, 1);
    assert.ok(r2.deltas[0]!.size + r3.deltas[0]!.size > r3.full.size, 'the chain is dearer than full');
    await device.with(async (u) => {
      assert.is((await u.checkUpdate()).downloadSize, r3.full.size);
      const result = await u.apply();
      assert.is(result.status, 'committed');
      if (result.status !== 'committed') return;
      assert.is(result.record.kind, 'full');
      assert.is(result.record.bytesMoved, r3.full.size);
      await assertInstalled(device, r3.manifest);
    });
  } finally {
    await done(device, repo);
  }
});

chain.run();

// ---------------------------------------------------------------------------------------------

const fallback = suite('falls back to the full artifact when a delta base on the device was altered');

fallback('an altered base file: committed from the full artifact, fellBackToFull, tree exactly as signed', async () => {
  const { repo, device } = await fresh();
  try {
    await repo.release('1.0.0', sampleApp('1.0.0'));
    await device.with((u) => u.apply());
    const r2 = await repo.release('1.1.0', sampleApp('1.1.0'));
    const delta = r2.deltas[0]!;
    await tamper(join(device.layout.release('1.0.0'), 'lib/engine.bin'));
    await device.with(async (u) => {
      const result = await u.apply();
      assert.is(result.status, 'committed');
      if (result.status !== 'committed') return;
      assert.is(result.record.fellBackToFull, true);
      assert.is(result.record.kind, 'full');
      assert.is(result.record.bytesMoved, delta.size + r2.full.size, 'the delta was fetched, then the full artifact');
      await assertInstalled(device, r2.manifest);
      assert.equal(await readdir(device.layout.staging), []);
    });
  } finally {
    await done(device, repo);
  }
});

fallback.run();

// ---------------------------------------------------------------------------------------------

const health = suite('rolls back a release that fails its health check, and gives up after MAX_ATTEMPTS');

health('unhealthy 1.1.0: rolled back to 1.0.0 three times, then ERR_GAVE_UP with a refused record; 1.2.0 still installs', async () => {
  const { repo, device } = await fresh();
  try {
    const r1 = await repo.release('1.0.0', sampleApp('1.0.0'));
    await device.with((u) => u.apply());
    await repo.release('1.1.0', sampleApp('1.1.0'));
    const sick = fakeHealth(false);
    assert.is(MAX_ATTEMPTS, 3);
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      await device.with(async (u) => {
        const result = await u.apply();
        assert.is(result.status, 'rolled-back', `attempt ${attempt}`);
        if (result.status !== 'rolled-back') return;
        assert.is(result.record.outcome, 'rolled-back');
        assert.is(result.record.errorCode, 'ERR_UNHEALTHY');
        assert.is(result.record.from, '1.0.0');
        assert.is(result.record.to, '1.1.0');
        await assertInstalled(device, r1.manifest);
        const points = await u.listRestorePoints();
        assert.ok(points.some((p) => p.version === '1.0.0' && p.reason === 'before-switch'), 'a before-switch restore point of 1.0.0');
        const s = await u.status();
        assert.is(s.phase, 'idle');
        assert.is(s.lastError?.code, 'ERR_UNHEALTHY');
      }, { health: sick });
    }
    assert.is(sick.calls.length, MAX_ATTEMPTS);
    assert.is(sick.calls[0]!.version, '1.1.0');
    assert.is(sick.calls[0]!.dir, device.layout.current, 'the check runs against current, which points at the new release');

    await device.with(async (u) => {
      await assertCodeAsync(() => u.apply(), 'ERR_GAVE_UP');
      const history = await u.history();
      assert.is(history.filter((h) => h.outcome === 'rolled-back' && h.to === '1.1.0').length, MAX_ATTEMPTS);
      const refused = history.filter((h) => h.outcome === 'refused');
      assert.is(refused.length, 1);
      assert.is(refused[0]!.errorCode, 'ERR_GAVE_UP');
      assert.is(refused[0]!.to, '1.1.0');
      assert.is(refused[0]!.from, '1.0.0');
    }, { health: sick });
    assert.is(sick.calls.length, MAX_ATTEMPTS, 'no fourth switch was tried');
    await assertInstalled(device, r1.manifest);

    const r3 = await repo.release('1.2.0', sampleApp('1.2.0'));
    await device.with(async (u) => {
      const result = await u.apply();
      assert.is(result.status, 'committed');
      await assertInstalled(device, r3.manifest);
    }, { health: fakeHealth(true) });
  } finally {
    await done(device, repo);
  }
});

health.run();

// ---------------------------------------------------------------------------------------------

/** Today at `hour`:00 UTC: near the real time, so pointers published now are not expired. */
function todayAt(hour: number): Date {
  const d = new Date();
  d.setUTCHours(hour, 0, 0, 0);
  return d;
}

const WINDOW = { days: [], startHour: 2, endHour: 4, timezone: 'UTC' };

const gate = suite('gates a staged release on approval and the maintenance window');

gate('requireApproval: waits staged ("approval") until approve(version), then commits', async () => {
  const { repo, device } = await fresh({ requireApproval: true });
  try {
    const r1 = await repo.release('1.0.0', sampleApp('1.0.0'));
    await device.with(async (u) => {
      const result = await u.apply();
      assert.is(result.status, 'waiting');
      if (result.status !== 'waiting') return;
      assert.is(result.reason, 'approval');
      assert.is(result.version, '1.0.0');
      const s = await u.status();
      assert.is(s.phase, 'staged');
      assert.equal(s.pending, { version: '1.0.0', phase: 'staged' });
      assert.is(s.currentVersion, null);
      // Staged means complete and verified in releases/, not switched to.
      await assertTree(device.layout.release('1.0.0'), files(r1.manifest));
      assert.is(await device.current(), null);
    });
    // Still waiting in a new process; nothing fetched twice.
    await device.with(async (u) => {
      assert.is((await u.apply()).status, 'waiting');
      assert.is((await u.history()).length, 1);
      await assertCodeAsync(() => u.approve('not-a-version'), 'ERR_USAGE');
      await u.approve('1.0.0');
      const result = await u.apply();
      assert.is(result.status, 'committed');
      if (result.status === 'committed') assert.is(result.record.bytesMoved, r1.full.size, 'one record for the whole attempt');
      await assertInstalled(device, r1.manifest);
      assert.is((await u.status()).phase, 'idle');
      assert.is((await u.history()).length, 1);
    });
  } finally {
    await done(device, repo);
  }
});

gate('maintenance window closed per the clock: waits ("window"); ignoreWindow commits; an open window commits', async () => {
  const { repo, device } = await fresh({ maintenanceWindow: WINDOW });
  try {
    const r1 = await repo.release('1.0.0', sampleApp('1.0.0'));
    const noon = fakeClock(todayAt(12));
    await device.with(async (u) => {
      const result = await u.apply();
      assert.is(result.status, 'waiting');
      if (result.status === 'waiting') assert.is(result.reason, 'window');
      assert.is((await u.status()).phase, 'staged');
      assert.is(await device.current(), null);
      assert.is((await u.apply({ ignoreWindow: true })).status, 'committed');
      await assertInstalled(device, r1.manifest);
    }, { clock: noon });
    const r2 = await repo.release('1.1.0', sampleApp('1.1.0'));
    await device.with(async (u) => {
      assert.is((await u.apply()).status, 'committed', 'inside the window at 03:00 UTC');
      await assertInstalled(device, r2.manifest);
    }, { clock: fakeClock(todayAt(3)) });
  } finally {
    await done(device, repo);
  }
});

gate('a security fix ignores the closed window; a mandatory release still waits for it', async () => {
  const { repo, device } = await fresh({ maintenanceWindow: WINDOW });
  try {
    const clock = fakeClock(todayAt(12));
    await repo.release('1.0.0', sampleApp('1.0.0'));
    await device.with((u) => u.apply({ ignoreWindow: true }), { clock });
    const r2 = await repo.release('1.1.0', sampleApp('1.1.0'), { securityFix: true });
    await device.with(async (u) => {
      assert.is((await u.checkUpdate()).securityFix, true);
      assert.is((await u.apply()).status, 'committed');
      await assertInstalled(device, r2.manifest);
      assert.is((await u.status()).securityFloor, '1.1.0');
    }, { clock });
    await repo.release('1.2.0', sampleApp('1.2.0'), { mandatory: true });
    await device.with(async (u) => {
      const result = await u.apply();
      assert.is(result.status, 'waiting');
      if (result.status === 'waiting') assert.is(result.reason, 'window');
      assert.is(await device.current(), '1.1.0');
    }, { clock });
  } finally {
    await done(device, repo);
  }
});

gate('a mandatory release skips approval', async () => {
  const { repo, device } = await fresh({ requireApproval: true });
  try {
    await repo.release('1.0.0', sampleApp('1.0.0'));
    await device.with(async (u) => {
      await u.approve('1.0.0');
      assert.is((await u.apply()).status, 'committed');
    });
    const r2 = await repo.release('1.1.0', sampleApp('1.1.0'), { mandatory: true });
    await device.with(async (u) => {
      assert.is((await u.apply()).status, 'committed');
      await assertInstalled(device, r2.manifest);
    });
  } finally {
    await done(device, repo);
  }
});

gate.run();

// ---------------------------------------------------------------------------------------------

const channels = suite('follows its channel: beta takes newer stable, stable ignores beta, security reaches stable');

channels('beta and stable devices on one repository', async () => {
  const repo = await makeRepo();
  const stable = await makeDevice({ trust: await repo.trust(), sources: [repo.repo] });
  const beta = await makeDevice({ trust: await repo.trust(), sources: [repo.repo], policy: { channel: 'beta' } });
  try {
    const s1 = await repo.release('1.0.0', sampleApp('1.0.0'));
    const b1 = await repo.release('1.1.0', sampleApp('1.1.0'), { channel: 'beta' });
    await beta.with(async (u) => {
      assert.is((await u.apply()).status, 'committed');
      await assertInstalled(beta, b1.manifest);
    });
    await stable.with(async (u) => {
      assert.is((await u.apply()).status, 'committed');
      await assertInstalled(stable, s1.manifest);
      const info = await u.checkUpdate();
      assert.is(info.updateAvailable, false, 'the beta 1.1.0 is not offered to a stable device');
      assert.is(info.latestVersion, '1.0.0');
    });
    const s2 = await repo.release('1.2.0', sampleApp('1.2.0'));
    await beta.with(async (u) => {
      const info = await u.checkUpdate();
      assert.is(info.latestVersion, '1.2.0');
      assert.is(info.channel, 'stable');
      assert.is((await u.apply()).status, 'committed');
      await assertInstalled(beta, s2.manifest);
    });
    const sec = await repo.release('1.2.1', sampleApp('1.2.1', 3), { channel: 'security', securityFix: true });
    await stable.with(async (u) => {
      const info = await u.checkUpdate();
      assert.is(info.latestVersion, '1.2.1');
      assert.is(info.channel, 'security');
      assert.is(info.securityFix, true);
      assert.is((await u.apply()).status, 'committed');
      await assertInstalled(stable, sec.manifest);
    });
  } finally {
    await done(stable, beta, repo);
  }
});

channels.run();

// ---------------------------------------------------------------------------------------------

const rollback = suite('rolls back to a restore point only after re-verifying its tree');

rollback('rollback() returns to the before-switch restore point of 1.0.0', async () => {
  const { repo, device } = await fresh();
  try {
    const r1 = await repo.release('1.0.0', sampleApp('1.0.0'));
    await device.with((u) => u.apply());
    await repo.release('1.1.0', sampleApp('1.1.0'));
    await device.with((u) => u.apply());
    await device.with(async (u) => {
      const [point] = await u.listRestorePoints();
      assert.ok(point);
      const record = await u.rollback();
      assert.is(record.kind, 'rollback');
      assert.is(record.outcome, 'committed');
      assert.is(record.from, '1.1.0');
      assert.is(record.to, '1.0.0');
      assert.is(record.bytesMoved, 0);
      assert.is(record.source, `restore-point:${point!.id}`);
      await assertInstalled(device, r1.manifest);
      const points = await u.listRestorePoints();
      assert.equal(points.map((p) => [p.version, p.reason]), [['1.0.0', 'before-switch'], ['1.1.0', 'before-switch']]);
      const manual = await u.createRestorePoint();
      assert.is(manual.version, '1.0.0');
      assert.is(manual.reason, 'manual');
      assert.is((await u.listRestorePoints()).length, 3);
      await assertCodeAsync(() => u.rollback('no-such-id'), 'ERR_NOT_FOUND');
    });
  } finally {
    await done(device, repo);
  }
});

rollback('a restore point whose tree was altered: ERR_HASH_MISMATCH and nothing switched', async () => {
  const { repo, device } = await fresh();
  try {
    await repo.release('1.0.0', sampleApp('1.0.0'));
    await device.with((u) => u.apply());
    const r2 = await repo.release('1.1.0', sampleApp('1.1.0'));
    await device.with((u) => u.apply());
    await tamper(join(device.layout.release('1.0.0'), 'assets/logo.txt'));
    await device.with(async (u) => {
      await assertCodeAsync(() => u.rollback(), 'ERR_HASH_MISMATCH');
      await assertInstalled(device, r2.manifest);
      assert.not.ok((await u.history()).some((h) => h.kind === 'rollback'), 'no rollback attempt recorded as made');
      assert.is((await u.status()).phase, 'idle');
    });
  } finally {
    await done(device, repo);
  }
});

rollback('with nothing installed there is nothing to roll back to or make a point of', async () => {
  const { repo, device } = await fresh();
  try {
    await device.with(async (u) => {
      await assertCodeAsync(() => u.rollback(), 'ERR_NOT_FOUND');
      await assertCodeAsync(() => u.createRestorePoint(), 'ERR_NOT_INSTALLED');
    });
  } finally {
    await done(device, repo);
  }
});

rollback('cleanup(keep) drops old points and releases, never current or the previous version', async () => {
  const { repo, device } = await fresh();
  try {
    const rs: ManifestDoc[] = [];
    for (const v of ['1.0.0', '1.1.0', '1.2.0', '1.3.0']) {
      rs.push((await repo.release(v, sampleApp(v), { deltas: 1 })).manifest);
      await device.with(async (u) => assert.is((await u.apply()).status, 'committed'));
    }
    assert.equal(await device.releases(), ['1.0.0', '1.1.0', '1.2.0', '1.3.0'], 'keepRestorePoints 3 kept every release so far');
    await device.with(async (u) => {
      await assertCodeAsync(() => u.cleanup(0), 'ERR_USAGE');
      // The only point kept is a manual one of current: the previous version (1.2.0) must survive anyway.
      await u.createRestorePoint();
      const removed = await u.cleanup(1);
      assert.equal(removed.map((p) => p.version), ['1.0.0', '1.1.0', '1.2.0']);
      assert.equal((await u.listRestorePoints()).map((p) => [p.version, p.reason]), [['1.3.0', 'manual']]);
    });
    assert.equal(await device.releases(), ['1.2.0', '1.3.0']);
    // Each kept manifest with its kept file list (issue 14 item 5); the removed releases' lists went with them.
    assert.equal((await readdir(device.layout.manifests)).sort(), ['1.2.0.files-linux-x64.json', '1.2.0.json', '1.3.0.files-linux-x64.json', '1.3.0.json']);
    await assertInstalled(device, rs[3]!);
    await assertTree(device.layout.release('1.2.0'), files(rs[2]!));
  } finally {
    await done(device, repo);
  }
});

rollback.run();

// ---------------------------------------------------------------------------------------------

const lock = suite('holds one lock per home: a second instance is ERR_BUSY, a stale lock is taken over');

/** The lock file holds "<pid> <boot id>"; the pid is what names the holder. */
const lockPid = (text: string) => text.trim().split(' ')[0];

lock('a second Updater.open while the first is open: ERR_BUSY, and the first keeps its lock', async () => {
  const { repo, device } = await fresh();
  try {
    await repo.release('1.0.0', sampleApp('1.0.0'));
    const first = await device.open();
    try {
      await assertCodeAsync(() => device.open(), 'ERR_BUSY');
      assert.is(lockPid(await readFile(device.layout.lock, 'utf8').catch(() => 'missing')), String(process.pid), 'the lock file still names the holder');
      assert.is((await first.apply()).status, 'committed', 'the first instance still works');
    } finally {
      await first.close();
    }
    assert.not.ok(await exists(device.layout.lock), 'the lock file is removed on close');
  } finally {
    await done(device, repo);
  }
});

lock('a lock file naming a live process of another program: ERR_BUSY, lock untouched', async () => {
  const { repo, device } = await fresh();
  const sleeper = spawn('sleep', ['30'], { stdio: 'ignore' });
  try {
    await writeFile(device.layout.lock, String(sleeper.pid));
    await assertCodeAsync(() => device.open(), 'ERR_BUSY');
    assert.is(await readFile(device.layout.lock, 'utf8'), String(sleeper.pid));
  } finally {
    sleeper.kill('SIGKILL');
    await done(device, repo);
  }
});

lock('a stale lock file naming a dead pid is taken over, and released on close', async () => {
  const { repo, device } = await fresh();
  try {
    const dead = spawnSync('true');
    assert.ok(dead.pid > 0);
    await writeFile(device.layout.lock, String(dead.pid));
    const u = await device.open();
    assert.is(lockPid(await readFile(device.layout.lock, 'utf8')), String(process.pid));
    await u.close();
    assert.not.ok(await exists(device.layout.lock), 'the lock file is removed on close');
  } finally {
    await done(device, repo);
  }
});

lock.run();

// ---------------------------------------------------------------------------------------------

const cache = suite('reuses an artifact download() left in the cache, after re-verifying it');

cache('download() in one instance, apply() in the next: nothing fetched again, the attempt counts the bytes download() moved, same tree', async () => {
  const { repo, device } = await fresh();
  try {
    await repo.release('1.0.0', sampleApp('1.0.0'));
    await device.with((u) => u.apply());
    const r2 = await repo.release('1.1.0', sampleApp('1.1.0'));
    const delta = r2.manifest.targets[T]!.deltas[0]!;
    await device.with(async (u) => {
      const pkg = await u.download();
      assert.ok(pkg);
      assert.is(pkg!.version, '1.1.0');
      assert.is(pkg!.kind, 'delta');
      assert.is(pkg!.size, delta.artifact.size);
      assert.is(pkg!.checksum, delta.artifact.sha256);
      // A separate-list manifest is signed as compressed JSON (issue 14 item 5).
      assert.is(pkg!.signature.payloadType, 'application/vnd.ferry.manifest+json+br');
      assert.is((await u.status()).phase, 'idle', 'download leaves the journal idle');
      assert.is(await device.current(), '1.0.0');
    });
    const cached = await readdir(device.layout.cache);
    assert.ok(cached.includes(delta.artifact.sha256), 'the verified delta is in the cache under its sha256');
    assert.not.ok(cached.some((n) => n.endsWith('.part')), 'no partial files left');
    await device.with(async (u) => {
      assert.is((await u.checkUpdate()).downloadSize, 0, 'a cached artifact costs nothing');
      const result = await u.apply();
      assert.is(result.status, 'committed');
      if (result.status !== 'committed') return;
      assert.is(result.record.kind, 'delta');
      assert.is(result.record.bytesMoved, delta.artifact.size, 'the bytes download() moved, counted once by the attempt that used them');
      await assertInstalled(device, r2.manifest);
    });
  } finally {
    await done(device, repo);
  }
});

cache('a cached artifact damaged on disk is fetched again, not used', async () => {
  const { repo, device } = await fresh();
  try {
    await repo.release('1.0.0', sampleApp('1.0.0'));
    await device.with((u) => u.apply());
    const r2 = await repo.release('1.1.0', sampleApp('1.1.0'));
    const delta = r2.manifest.targets[T]!.deltas[0]!;
    await device.with((u) => u.download());
    await tamper(join(device.layout.cache, delta.artifact.sha256));
    await device.with(async (u) => {
      const result = await u.apply();
      assert.is(result.status, 'committed');
      if (result.status !== 'committed') return;
      assert.is(result.record.bytesMoved, 2 * delta.artifact.size, 'fetched again from the source: the damaged download and the second fetch both moved bytes');
      await assertInstalled(device, r2.manifest);
    });
  } finally {
    await done(device, repo);
  }
});

cache('an empty .part left by a kill just after it was created is written over, not a reason to fail', async () => {
  const { repo, device } = await fresh();
  try {
    const r1 = await repo.release('1.0.0', sampleApp('1.0.0'));
    await mkdir(device.layout.cache, { recursive: true });
    await writeFile(join(device.layout.cache, `${r1.full.sha256}.part`), '');
    await device.with(async (u) => assert.is((await u.apply()).status, 'committed'));
    await assertInstalled(device, r1.manifest);
  } finally {
    await done(device, repo);
  }
});

cache.run();
