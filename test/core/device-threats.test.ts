// SECURITY.md rows as a device meets them (rows 3, 5, 9, 10, 11, 20, 22): each attack or fault is
// staged against a real signed repository and a real device home, and every "refused" is checked
// the way SECURITY.md defines it: the stable error code, nothing staged or switched, the device
// still on a complete version whose every file hashes as signed, and a history record.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { copyFile, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { makeRepo, pseudoRandomBytes, sampleApp, type TreeSpec } from '../helpers/repo.ts';
import { assertInstalled, cleanupAll as done, fakeClock, makeDevice, repoAndDevice as fresh, type TestDevice } from '../helpers/device.ts';
import { assertCodeAsync } from '../helpers/assert-code.ts';
import { resignChannel, resignManifest } from '../helpers/tamper.ts';
import { generateKeyFiles, loadSigningKey } from '../../core/trust/keys.ts';
import { rotateRoot } from '../../core/publish/repository.ts';
import { tarBytes, type TarEntry } from '../helpers/tar-writer.ts';
import { digestFile, CHUNK_SIZE } from '../../core/io/hash.ts';
import { writeBundle } from '../../core/publish/bundle.ts';
import type { ErrorCode } from '../../core/errors.ts';
import type { Updater } from '../../core/update/updater.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const T = 'linux-x64';


/** The newest history record with `outcome`, asserting there is one with `code`. */
async function assertRecord(u: Updater, outcome: 'refused' | 'failed', code: ErrorCode): Promise<void> {
  const records = (await u.history()).filter((h) => h.outcome === outcome && h.errorCode === code);
  assert.ok(records.length > 0, `a ${outcome} history record with ${code} (have: ${JSON.stringify((await u.history()).map((h) => [h.outcome, h.errorCode]))})`);
  assert.ok(records[0]!.finishedAt, 'the record is finished');
}

/** Nothing of the refused version anywhere: only `versions` installed, staging empty. */
async function assertNothingStaged(device: TestDevice, versions: string[]): Promise<void> {
  assert.equal(await device.releases(), versions);
  assert.equal(await readdir(device.layout.staging), []);
  // (manifests/<refused>.json may remain: it is written before extraction and not removed; reported.)
}

// ---------------------------------------------------------------------------------------------

const row3 = suite('row 3 rollback: a replayed older channel pointer is refused, even with the database wiped');

row3('sequence-1 pointer replayed after 1.1.0 (sequence 2): ERR_DOWNGRADE, refused record, 1.1.0 intact', async () => {
  const { repo, device } = await fresh();
  try {
    await repo.release('1.0.0', sampleApp('1.0.0'));
    const pointer1 = await readFile(join(repo.repo, 'channels', 'stable.json'));
    await device.with((u) => u.apply());
    const r2 = await repo.release('1.1.0', sampleApp('1.1.0'));
    assert.is(r2.channel.sequence, 2);
    await device.with((u) => u.apply());
    await assertInstalled(device, r2.manifest);

    await writeFile(join(repo.repo, 'channels', 'stable.json'), pointer1);
    await device.with(async (u) => {
      await assertCodeAsync(() => u.apply(), 'ERR_DOWNGRADE');
      await assertCodeAsync(() => u.checkUpdate(), 'ERR_DOWNGRADE');
      await assertRecord(u, 'refused', 'ERR_DOWNGRADE');
    });
    await assertInstalled(device, r2.manifest);
    assert.equal(await device.releases(), ['1.0.0', '1.1.0']);

    // Wiping the LevelDB folder resets history, not the marks (trust/marks.json).
    await rm(device.layout.state, { recursive: true, force: true });
    await device.with(async (u) => {
      assert.is(await u.currentVersion(), '1.1.0');
      await assertCodeAsync(() => u.apply(), 'ERR_DOWNGRADE');
      await assertRecord(u, 'refused', 'ERR_DOWNGRADE');
    });
    await assertInstalled(device, r2.manifest);
  } finally {
    await done(device, repo);
  }
});

row3.run();

// ---------------------------------------------------------------------------------------------

const row4 = suite('row 4 fast-forward: rotating the release key resets the channel mark a compromised key pushed up');

row4('a compromised key signs sequence 2^40; after rotation to a new release key a genuine sequence 3 is accepted', async () => {
  const { repo, device } = await fresh();
  try {
    await repo.release('1.0.0', sampleApp('1.0.0'));
    await device.with((u) => u.apply());
    const pointer = join(repo.repo, 'channels/stable.json');
    const genuine = await readFile(pointer);
    // The stolen release key signs a pointer far ahead; the device sees it once.
    await resignChannel(repo.repo, 'stable', [repo.releaseKey], (doc) => { doc.sequence = 2 ** 40; });
    await device.with(async (u) => assert.is((await u.apply()).status, 'up-to-date'));
    // Without a rotation the genuine publisher is now locked out: its sequences are lower.
    await writeFile(pointer, genuine);
    await device.with((u) => assertCodeAsync(() => u.apply(), 'ERR_DOWNGRADE'));
    // The publisher rotates the release key (root 2) and publishes on.
    await generateKeyFiles(join(repo.keysDir, 'release2'));
    const release2 = await loadSigningKey(join(repo.keysDir, 'release2.key'));
    await rotateRoot({ repo: repo.repo, signers: [repo.rootKey], releaseKeys: [release2], releaseSigners: [release2], revoke: [repo.releaseKey.keyid], now: new Date() });
    const r2 = await repo.release('1.1.0', sampleApp('1.1.0'), { keys: [release2] });
    assert.ok(r2.channel.sequence < 2 ** 40, `genuine sequence ${r2.channel.sequence} is below the forged one`);
    await device.with(async (u) => assert.is((await u.apply()).status, 'committed'));
    await assertInstalled(device, r2.manifest);
  } finally {
    await done(device, repo);
  }
});

row4.run();

// ---------------------------------------------------------------------------------------------

const row5 = suite('row 5 indefinite freeze / bad clock: expired pointers are refused against max(clock, time floor)');

row5('a pointer that expired 60 s after release, read a day later with offlineGraceDays 0: ERR_EXPIRED', async () => {
  const { repo, device } = await fresh();
  try {
    const published = new Date();
    await repo.release('1.0.0', sampleApp('1.0.0'), { expiresIn: 60, now: published });
    await device.setConfig({ offlineGraceDays: 0 });
    assert.is((await device.config()).offlineGraceDays, 0);
    await device.with(async (u) => {
      await assertCodeAsync(() => u.checkUpdate(), 'ERR_EXPIRED');
      await assertCodeAsync(() => u.apply(), 'ERR_EXPIRED');
      await assertRecord(u, 'refused', 'ERR_EXPIRED');
    }, { clock: fakeClock(new Date(published.getTime() + 86_400_000)) });
    await assertNothingStaged(device, []);
    assert.is(await device.current(), null);
  } finally {
    await done(device, repo);
  }
});

row5('after one successful check at T, a clock set back a year does not revive the expired pointer', async () => {
  const repo = await makeRepo();
  const trust = await repo.trust();
  const device = await makeDevice({ trust, sources: [repo.repo] });
  const control = await makeDevice({ trust, sources: [repo.repo] });
  try {
    const published = new Date();
    await repo.release('1.0.0', sampleApp('1.0.0'), { expiresIn: 60, now: published });
    const yearBack = fakeClock(new Date(published.getTime() - 365 * 86_400_000));
    // Within a one-day offline grace, an hour after expiry: accepted, and the floor is now T.
    await device.setConfig({ offlineGraceDays: 1 });
    await device.with(async (u) => {
      const info = await u.checkUpdate();
      assert.is(info.updateAvailable, true);
      assert.is(info.latestVersion, '1.0.0');
    }, { clock: fakeClock(new Date(published.getTime() + 3_600_000)) });
    await device.setConfig({ offlineGraceDays: 0 });
    await device.with(async (u) => {
      await assertCodeAsync(() => u.checkUpdate(), 'ERR_EXPIRED');
      await assertCodeAsync(() => u.apply(), 'ERR_EXPIRED');
    }, { clock: yearBack });
    assert.is(await device.current(), null);
    // Control: a device that never saw a later time believes the same clock (so the floor did the work).
    await control.setConfig({ offlineGraceDays: 0 });
    await control.with(async (u) => {
      assert.is((await u.checkUpdate()).updateAvailable, true);
    }, { clock: yearBack });
  } finally {
    await done(device, control, repo);
  }
});

row5.run();

// ---------------------------------------------------------------------------------------------

const row9 = suite('row 9 mix-and-match: a v2 manifest with v1\'s artifact in its place is refused before staging');

row9('1.1.0\'s full artifact replaced by 1.0.0\'s: refused (ERR_SIZE or ERR_HASH_MISMATCH), nothing staged', async () => {
  const { repo, device } = await fresh();
  try {
    const r1 = await repo.release('1.0.0', sampleApp('1.0.0'));
    await device.with((u) => u.apply());
    const r2 = await repo.release('1.1.0', sampleApp('1.1.0'), { deltas: 0 });
    assert.equal(r2.deltas, []);
    await copyFile(join(repo.repo, r1.full.path), join(repo.repo, r2.full.path));
    let code: ErrorCode | undefined;
    await device.with(async (u) => {
      try {
        await u.apply();
      } catch (err) {
        code = (err as { code?: ErrorCode }).code;
      }
      assert.ok(code === 'ERR_SIZE' || code === 'ERR_HASH_MISMATCH', `refused for its bytes, got ${code}`);
      const record = (await u.history()).find((h) => h.to === '1.1.0');
      assert.ok(record, 'the attempt has a history record');
      assert.is(record!.errorCode, code);
      assert.ok(record!.outcome === 'refused' || record!.outcome === 'failed', `outcome ${record!.outcome}`);
      assert.is((await u.status()).phase, 'idle');
    });
    await assertNothingStaged(device, ['1.0.0']);
    assert.not.ok((await readdir(device.layout.cache)).some((n) => n.endsWith('.part') || n === r2.full.sha256), 'no bad bytes kept in the cache');
    await assertInstalled(device, r1.manifest);
  } finally {
    await done(device, repo);
  }
});

row9.run();

// ---------------------------------------------------------------------------------------------

const row10 = suite('row 10 wrong software: a bundle for another arch is refused');

row10('a linux-arm64 bundle given to a linux-x64 device: ERR_WRONG_TARGET, refused record, nothing installed', async () => {
  const { repo, device } = await fresh();
  try {
    await repo.release('1.0.0', sampleApp('1.0.0'), { arch: 'arm64' });
    const bundle = join(repo.dir, 'arm64.ferry');
    await writeBundle({ repo: repo.repo, version: '1.0.0', platform: 'linux', arch: 'arm64', out: bundle });
    await device.with(async (u) => {
      await assertCodeAsync(() => u.apply(), 'ERR_WRONG_TARGET');
      await assertRecord(u, 'refused', 'ERR_WRONG_TARGET');
    }, { sources: [bundle] });
    assert.is(await device.current(), null);
    assert.equal(await device.releases(), []);
  } finally {
    await done(device, repo);
  }
});

row10.run();

// ---------------------------------------------------------------------------------------------


function tarEntries(tree: TreeSpec): TarEntry[] {
  return Object.entries(tree).map(([name, spec]) => {
    const content = typeof spec === 'string' || Buffer.isBuffer(spec) ? spec : spec.content;
    const mode = typeof spec === 'object' && !Buffer.isBuffer(spec) ? spec.mode : 0o644;
    return { name, content, mode };
  });
}

const row11 = suite('row 11 extra or missing content: exactly the signed file set, all or nothing');

row11('a signed artifact holding one file the signed list lacks: ERR_UNSAFE_ARCHIVE, no switch', async () => {
  const { repo, device } = await fresh();
  try {
    const r1 = await repo.release('1.0.0', sampleApp('1.0.0'));
    await device.with((u) => u.apply());
    await repo.release('1.1.0', sampleApp('1.1.0'));
    // The publisher's key signs an artifact that carries one more file than the manifest lists.
    const artifact = join(repo.repo, 'releases', '1.1.0', 'linux-x64.extra.tar.gz');
    await writeFile(artifact, gzipSync(tarBytes([...tarEntries(sampleApp('1.1.0')), { name: 'lib/zz-backdoor.js', content: 'process.exit(66);\n', mode: 0o755 }])));
    const d = await digestFile(artifact, CHUNK_SIZE);
    await resignManifest(repo.repo, '1.1.0', [repo.releaseKey], (m) => {
      m.targets[T]!.full = { path: 'releases/1.1.0/linux-x64.extra.tar.gz', size: d.size, sha256: d.sha256, chunkSize: CHUNK_SIZE, chunks: d.chunks };
      m.targets[T]!.deltas = [];
      delete (m.targets[T] as { deltaPacks?: unknown }).deltaPacks;
    });
    await device.with(async (u) => {
      const info = await u.checkUpdate();
      assert.is(info.downloadSize, d.size, 'the device plans the re-signed artifact');
      const err = await assertCodeAsync(() => u.apply(), 'ERR_UNSAFE_ARCHIVE');
      assert.match(err.message, /zz-backdoor/);
      const record = (await u.history()).find((h) => h.to === '1.1.0');
      assert.is(record?.outcome, 'refused');
      assert.is(record?.errorCode, 'ERR_UNSAFE_ARCHIVE');
    });
    await assertNothingStaged(device, ['1.0.0']);
    await assertInstalled(device, r1.manifest);
  } finally {
    await done(device, repo);
  }
});

row11('the only artifact missing from the source: ERR_NOT_FOUND, failed record, no switch', async () => {
  const { repo, device } = await fresh();
  try {
    const r1 = await repo.release('1.0.0', sampleApp('1.0.0'));
    await device.with((u) => u.apply());
    const r2 = await repo.release('1.1.0', sampleApp('1.1.0'), { deltas: 0 });
    await rm(join(repo.repo, r2.full.path));
    await device.with(async (u) => {
      await assertCodeAsync(() => u.apply(), 'ERR_NOT_FOUND');
      await assertRecord(u, 'failed', 'ERR_NOT_FOUND');
    });
    await assertNothingStaged(device, ['1.0.0']);
    await assertInstalled(device, r1.manifest);
  } finally {
    await done(device, repo);
  }
});

row11.run();

// ---------------------------------------------------------------------------------------------

const row20 = suite('row 20 database and filesystem disagree: a damaged LevelDB is rebuilt and the device goes on');

row20('state/ deleted: open makes a new store, the installed releases come back as restore points, and a rollback to one works', async () => {
  const { repo, device } = await fresh();
  try {
    const r1 = await repo.release('1.0.0', sampleApp('1.0.0'));
    await device.with((u) => u.apply());
    await repo.release('1.1.0', sampleApp('1.1.0'));
    await device.with((u) => u.apply());
    await rm(device.layout.state, { recursive: true, force: true });
    const notes: string[] = [];
    await device.with(async (u) => {
      assert.is((await u.status()).currentVersion, '1.1.0');
      assert.equal((await u.listRestorePoints()).map((p) => p.version), ['1.0.0'], 'the other installed release is a restore point again');
      assert.ok(notes.some((n) => /missing and made anew/.test(n)), `a note says so: ${notes.join(' | ')}`);
      const record = await u.rollback();
      assert.is(record.outcome, 'committed');
    }, { log: (m) => notes.push(m) });
    await assertInstalled(device, r1.manifest);
  } finally {
    await done(device, repo);
  }
});

row20('every file in state/ overwritten with garbage: open succeeds, databaseRebuiltFrom set, version kept, next update works', async () => {
  const { repo, device } = await fresh();
  try {
    await repo.release('1.0.0', sampleApp('1.0.0'));
    await device.with((u) => u.apply());
    const r2 = await repo.release('1.1.0', sampleApp('1.1.0'));
    await device.with((u) => u.apply());
    const names = await readdir(device.layout.state);
    assert.ok(names.length > 0);
    for (const [i, name] of names.entries()) await writeFile(join(device.layout.state, name), pseudoRandomBytes(4096, 100 + i));
    await device.with(async (u) => {
      const s = await u.status();
      assert.ok(s.databaseRebuiltFrom, 'status says the store was rebuilt');
      assert.ok(s.databaseRebuiltFrom!.startsWith(`${device.layout.state}.damaged-`), s.databaseRebuiltFrom!);
      assert.is(s.currentVersion, '1.1.0');
      assert.is(s.phase, 'idle');
      // The installed releases other than current come back as restore points.
      assert.equal((await u.listRestorePoints()).map((p) => p.version), ['1.0.0']);
      await assertInstalled(device, r2.manifest);
    });
    const r3 = await repo.release('1.2.0', sampleApp('1.2.0'));
    await device.with(async (u) => {
      const result = await u.apply();
      assert.is(result.status, 'committed');
      if (result.status === 'committed') assert.is(result.record.kind, 'delta');
      assert.is((await u.status()).databaseRebuiltFrom, null, 'the rebuilt store opens cleanly');
    });
    await assertInstalled(device, r3.manifest);
  } finally {
    await done(device, repo);
  }
});

row20.run();

// ---------------------------------------------------------------------------------------------

const row22 = suite('row 22 second instance: one updater per home; another process gets ERR_BUSY');

row22('an Updater held open by another process: ERR_BUSY here; once it exits cleanly the home opens', async () => {
  const { repo, device } = await fresh();
  try {
    await repo.release('1.0.0', sampleApp('1.0.0'));
    const script = `
      import { Updater } from ${JSON.stringify(join(ROOT, 'core/update/updater.ts'))};
      import { createDirSource } from ${JSON.stringify(join(ROOT, 'core/ports/dir-source.ts'))};
      import { createBsdiffPatcher } from ${JSON.stringify(join(ROOT, 'plugins/bsdiff/patcher.ts'))};
      const u = await Updater.open({ home: ${JSON.stringify(device.home)}, sources: [createDirSource(${JSON.stringify(repo.repo)})], patcher: createBsdiffPatcher(), health: null });
      process.stdout.write('open\\n');
      process.stdin.once('data', async () => { await u.close(); process.stdout.write('closed\\n'); });
    `;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: ROOT, stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    const saw = (text: string) => new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`child did not print "${text}" (got ${JSON.stringify(out)})`)), 20_000);
      const on = (d: Buffer) => { out += d; if (out.includes(text)) { clearTimeout(timer); child.stdout!.off('data', on); resolve(); } };
      child.stdout!.on('data', on);
      on(Buffer.alloc(0));
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      await saw('open');
      const err = await assertCodeAsync(() => device.open(), 'ERR_BUSY');
      assert.match(err.message, new RegExp(`pid ${child.pid}`));
      assert.is(err.retryable, true);
      assert.is((await readFile(device.layout.lock, 'utf8')).split(' ')[0], String(child.pid), 'the holder keeps its lock (the file holds "<pid> <boot id>")');
      child.stdin!.write('close\n');
      await saw('closed');
      child.stdin!.end();
      assert.is(await exited, 0);
    } finally {
      child.kill('SIGKILL');
    }
    await device.with(async (u) => assert.is((await u.apply()).status, 'committed'));
  } finally {
    await done(device, repo);
  }
});

row22.run();

