// The device's command line, run as users run it (`node dist/cli/ferry.js …` in a child process):
// init against a repository, check/update/history/status/restore-points/rollback with --json,
// a device fed only by a .ferry bundle, and the documented exit code for a busy home.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import { mkdir, readlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { UpdateInfo, UpdateRecord, RestorePoint } from '../../core/spec.ts';
import type { DeviceStatus } from '../../core/update/updater.ts';
import { regularFiles, type ManifestDoc } from '../../core/trust/metadata.ts';
import { hashTree } from '../helpers/device.ts';
import { sampleApp, tempDir, writeTree, type TempDir } from '../helpers/repo.ts';
import { ferry, json, ok, ROOT } from '../helpers/cli.ts';
import { readPayload } from '../helpers/tamper.ts';


let tmp: TempDir;
const p = (...parts: string[]) => join(tmp.path, ...parts);
const target = ['--platform', 'linux', '--arch', 'x64'];

/** current's target and every file's sha256 against the signed manifest of `version`. */
async function assertCurrent(home: string, version: string): Promise<void> {
  assert.is(await readlink(join(home, 'current')), `releases/${version}`);
  const m = await readPayload<ManifestDoc>(p('repo', 'releases', version, 'manifest.json'));
  const files = regularFiles(m.targets['linux-x64']!.files);
  const got = await hashTree(join(home, 'current'));
  assert.equal([...got.keys()].sort(), files.map((f) => f.path).sort());
  for (const f of files) assert.is(got.get(f.path)?.sha256, f.sha256, `${version}/${f.path}`);
}

const cli = suite('the device CLI, end to end');

cli.before(async () => {
  tmp = await tempDir('ferry-device-cli-');
  await writeTree(p('app-1.0.0'), sampleApp('1.0.0'));
  await writeTree(p('app-1.1.0'), sampleApp('1.1.0'));
  ok(ferry('keygen', '--out', p('root')), 'keygen root');
  ok(ferry('keygen', '--out', p('release')), 'keygen release');
  ok(ferry('repo', 'init', p('repo'), '--app', 'sample-app', '--root-key', p('root.key'), '--release-key', p('release.pub')), 'repo init');
  ok(ferry('release', p('app-1.0.0'), '--repo', p('repo'), '--version', '1.0.0', '--key', p('release.key'), '--notes', 'first', ...target), 'release 1.0.0');
});

cli.after(async () => {
  await tmp.cleanup();
});

cli('init, then check --json prints UpdateInfo with the spec field names', async () => {
  ok(ferry('init', p('home'), '--trust', p('repo', 'root.json'), '--source', p('repo'), ...target), 'init');
  const info = json<UpdateInfo>(ok(ferry('check', '--home', p('home'), '--json'), 'check'));
  assert.equal(Object.keys(info).sort(), ['channel', 'checksum', 'currentVersion', 'downloadSize', 'downloadUrl', 'latestVersion', 'mandatory', 'releaseDate', 'releaseNotes', 'securityFix', 'signature', 'updateAvailable']);
  assert.match(info.checksum ?? '', /^[0-9a-f]{64}$/);
  assert.ok((info.signature?.length ?? 0) > 0 && /^[0-9a-f]{64}$/.test(info.signature![0]!.keyid));
  assert.is(info.currentVersion, null);
  assert.is(info.latestVersion, '1.0.0');
  assert.is(info.updateAvailable, true);
  assert.is(info.releaseNotes, 'first');
  assert.is(info.channel, 'stable');
  assert.ok((info.downloadSize ?? 0) > 0);
});

cli('update installs 1.0.0; after release 1.1.0 update says delta; history --json has 2 committed records', async () => {
  ok(ferry('update', '--home', p('home')), 'update 1.0.0');
  await assertCurrent(p('home'), '1.0.0');
  ok(ferry('release', p('app-1.1.0'), '--repo', p('repo'), '--version', '1.1.0', '--key', p('release.key'), ...target), 'release 1.1.0');
  const run = ok(ferry('update', '--home', p('home')), 'update 1.1.0');
  assert.match(run.stdout, /1\.0\.0 -> 1\.1\.0 \(delta/);
  await assertCurrent(p('home'), '1.1.0');
  const history = json<UpdateRecord[]>(ok(ferry('history', '--home', p('home'), '--json'), 'history'));
  assert.equal(history.filter((h) => h.outcome === 'committed').map((h) => [h.from, h.to, h.kind]).sort(), [[null, '1.0.0', 'full'], ['1.0.0', '1.1.0', 'delta']].sort());
  assert.is(history.length, 2);
});

cli('status --json and restore-points list --json describe the device', () => {
  const s = json<DeviceStatus>(ok(ferry('status', '--home', p('home'), '--json'), 'status'));
  assert.is(s.currentVersion, '1.1.0');
  assert.is(s.phase, 'idle');
  assert.is(s.app, 'sample-app');
  assert.is(s.pending, null);
  assert.is(s.restorePoints, 1);
  const points = json<RestorePoint[]>(ok(ferry('restore-points', 'list', '--home', p('home'), '--json'), 'restore-points list'));
  assert.equal(points.map((pt) => [pt.version, pt.reason]), [['1.0.0', 'before-switch']]);
});

cli('rollback exits 0 and current goes back to 1.0.0', async () => {
  const record = json<UpdateRecord>(ok(ferry('rollback', '--home', p('home'), '--json'), 'rollback'));
  assert.is(record.kind, 'rollback');
  assert.is(record.outcome, 'committed');
  await assertCurrent(p('home'), '1.0.0');
});

cli('a bundle made by `ferry bundle`, as the only source of a second device, installs', async () => {
  ok(ferry('bundle', '--repo', p('repo'), '--version', '1.1.0', '--out', p('update.ferry'), ...target), 'bundle');
  ok(ferry('init', p('home2'), '--trust', p('repo', 'root.json'), '--source', p('update.ferry'), ...target), 'init home2');
  const run = ok(ferry('update', '--home', p('home2')), 'update from bundle');
  assert.match(run.stdout, /nothing -> 1\.1\.0 \(full/);
  await assertCurrent(p('home2'), '1.1.0');
});

cli('a home locked by a live process: exit code 7 and ERR_BUSY', async () => {
  const sleeper = spawn('sleep', ['30'], { stdio: 'ignore' });
  try {
    await writeFile(p('home', 'lock'), String(sleeper.pid));
    const run = ferry('status', '--home', p('home'), '--json');
    assert.is(run.status, 7, run.stderr);
    const err = JSON.parse(run.stderr) as { error: { code: string; exitCode: number } };
    assert.is(err.error.code, 'ERR_BUSY');
    assert.is(err.error.exitCode, 7);
    const update = ferry('update', '--home', p('home'));
    assert.is(update.status, 7);
    assert.match(update.stderr, /ERR_BUSY/);
  } finally {
    sleeper.kill('SIGKILL');
  }
});

cli('download, then update: the history record of the update counts the bytes the download moved', async () => {
  ok(ferry('init', p('home3'), '--trust', p('repo', 'root.json'), '--source', p('repo'), ...target), 'init home3');
  const pkg = json<{ version: string; size: number }>(ok(ferry('download', '--home', p('home3'), '--json'), 'download'));
  assert.is(pkg.version, '1.1.0');
  const result = json<{ status: string; record: UpdateRecord }>(ok(ferry('update', '--home', p('home3'), '--json'), 'update'));
  assert.is(result.status, 'committed');
  assert.is(result.record.bytesMoved, pkg.size, 'the bytes fetched by download are counted by the attempt');
  assert.is(result.record.source, `dir:${p('repo')}`, 'and so is their source');
  const again = json<UpdateRecord[]>(ok(ferry('history', '--home', p('home3'), '--json'), 'history'));
  assert.is(again.reduce((n, r) => n + r.bytesMoved, 0), pkg.size, 'counted once, not twice');
});

cli('a release waiting for approval prints a hint with this home that works when pasted into a shell', async () => {
  const home = p('a home with spaces');
  ok(ferry('init', home, '--trust', p('repo', 'root.json'), '--source', p('repo'), '--require-approval', ...target), 'init');
  const run = ok(ferry('update', '--home', home), 'update');
  const hint = /approve it with: (.+)$/m.exec(run.stdout)?.[1];
  assert.ok(hint, `a hint in: ${run.stdout}`);
  assert.ok(hint!.includes(`'${home}'`), `the home is named and quoted: ${hint}`);
  const shim = p('bin', 'ferry');
  await mkdir(p('bin'), { recursive: true });
  await writeFile(shim, `#!/bin/sh\nexec "${process.execPath}" "${join(ROOT, 'dist', 'cli', 'ferry.js')}" "$@"\n`, { mode: 0o755 });
  const pasted = spawnSync('bash', ['-c', hint!], { encoding: 'utf8', env: { ...process.env, PATH: `${p('bin')}:${process.env.PATH}` } });
  assert.is(pasted.status, 0, pasted.stderr);
  ok(ferry('update', '--home', home), 'update after approval');
  await assertCurrent(home, '1.1.0');
});

cli.run();
