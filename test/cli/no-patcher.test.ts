// A device without a compiler: bsdiff-node is a native module, and `npm install --ignore-scripts`
// (or a machine with no build tools) leaves it unbuilt. ferry must still work there: it loads
// bsdiff-node only to make a patch or apply an old BSDIFF40 one (plugins/bsdiff/patcher.ts), a
// device applies FERRYBD1 deltas without it (core/delta/patch-apply.ts, pure TypeScript), and a
// release that asks for deltas fails with ERR_NO_PATCHER and a hint, never a stack trace.
//
// The machine is real: a copy of dist/ and package.json beside a node_modules/ holding links to
// every package of this checkout except bsdiff-node, which is a copy of the real package without
// its build/ folder — exactly what an install that skipped its build script leaves. That copy's
// CLI runs in child processes; the checkout's CLI (with bsdiff) is the control.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { cp, mkdir, readdir, readFile, readlink, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { UpdateRecord } from '../../core/spec.ts';
import { sampleApp, tempDir, writeTree, type TempDir } from '../helpers/repo.ts';
import { ferry, json, ok, ROOT, type Run } from '../helpers/cli.ts';
import { wirePayload } from '../helpers/tamper.ts';

let tmp: TempDir;
const p = (...parts: string[]) => join(tmp.path, ...parts);
const target = ['--platform', 'linux', '--arch', 'x64'];

/** The `ferry` of the install without bsdiff. */
function bare(...args: string[]): Run {
  const r = spawnSync(process.execPath, [p('install', 'dist', 'cli', 'ferry.js'), ...args], { cwd: tmp.path, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' }, timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** An install of this checkout's build whose bsdiff-node was never built. */
async function installWithoutBsdiff(dir: string): Promise<void> {
  await cp(join(ROOT, 'dist'), join(dir, 'dist'), { recursive: true });
  await cp(join(ROOT, 'package.json'), join(dir, 'package.json'));
  await mkdir(join(dir, 'node_modules'));
  for (const name of await readdir(join(ROOT, 'node_modules'))) {
    if (name === 'bsdiff-node' || name === '.bin' || name.startsWith('.package-lock')) continue;
    await symlink(join(ROOT, 'node_modules', name), join(dir, 'node_modules', name));
  }
  await cp(join(ROOT, 'node_modules', 'bsdiff-node'), join(dir, 'node_modules', 'bsdiff-node'), {
    recursive: true,
    filter: (src) => !src.startsWith(join(ROOT, 'node_modules', 'bsdiff-node', 'build')),
  });
}

/** A device home on 1.0.0, made and updated by the checkout's CLI. */
function deviceOnOld(home: string): void {
  ok(ferry('init', home, '--trust', p('repo', 'root.json'), '--source', p('repo'), ...target), `init ${home}`);
  ok(ferry('update', '--home', home), `update ${home} to 1.0.0`);
}

function lastRecord(home: string): UpdateRecord {
  const records = json<UpdateRecord[]>(ok(ferry('history', '--home', home, '--json'), 'history'));
  return records.find((r) => r.to === '1.1.0')!;
}

const noPatcher = suite('ferry on a machine where bsdiff-node is not built');

noPatcher.before(async () => {
  tmp = await tempDir('ferry-no-patcher-');
  await installWithoutBsdiff(p('install'));
  await writeTree(p('app-1.0.0'), sampleApp('1.0.0'));
  await writeTree(p('app-1.1.0'), sampleApp('1.1.0'));
  await writeTree(p('app-1.2.0'), sampleApp('1.2.0'));
  ok(ferry('keygen', '--out', p('root')), 'keygen root');
  ok(ferry('keygen', '--out', p('release')), 'keygen release');
  ok(ferry('repo', 'init', p('repo'), '--app', 'sample-app', '--root-key', p('root.key'), '--release-key', p('release.pub')), 'repo init');
  ok(ferry('release', p('app-1.0.0'), '--repo', p('repo'), '--version', '1.0.0', '--key', p('release.key'), ...target), 'release 1.0.0');
  deviceOnOld(p('bare-home'));
  deviceOnOld(p('control-home'));
  // Published with bsdiff, so the repository offers a delta from 1.0.0.
  ok(ferry('release', p('app-1.1.0'), '--repo', p('repo'), '--version', '1.1.0', '--key', p('release.key'), '--deltas', '1', ...target), 'release 1.1.0');
});

noPatcher.after(async () => {
  await tmp.cleanup();
});

noPatcher('the install really has no usable bsdiff-node: loading it fails there', () => {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', "await import('bsdiff-node')"], { cwd: p('install'), encoding: 'utf8', timeout: 30_000 });
  assert.is.not(r.status, 0, 'bsdiff-node loads in the install; the test would prove nothing');
  assert.match(r.stderr, /bsdiff\.node/);
});

noPatcher('ferry --help works', () => {
  const r = bare('--help');
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stdout, /ferry update/);
  assert.match(r.stdout, /ferry release/);
});

noPatcher('commands that need no patcher work: status and check', () => {
  const status = bare('status', '--home', p('bare-home'), '--json');
  assert.is(status.status, 0, status.stderr);
  assert.is(json<{ currentVersion: string }>(status).currentVersion, '1.0.0');
  const check = bare('check', '--home', p('bare-home'), '--json');
  assert.is(check.status, 0, check.stderr);
  assert.is(json<{ latestVersion: string }>(check).latestVersion, '1.1.0');
});

noPatcher('control: with bsdiff, the same update is a delta', async () => {
  ok(ferry('update', '--home', p('control-home')), 'update with bsdiff');
  const record = lastRecord(p('control-home'));
  assert.is(record.kind, 'delta');
  assert.is(record.fellBackToFull, undefined);
});

noPatcher('issue 14 item 1: an update whose plan is a delta applies it without bsdiff-node (FERRYBD1 patches are applied in pure TypeScript), and commits as a delta', async () => {
  const payload = await wirePayload<{ targets: Record<string, { deltaPacks: { ops: { op: string }[] }[] }> }>(p('repo', 'releases', '1.1.0', 'manifest.json'));
  const ops = payload.targets['linux-x64']!.deltaPacks[0]!.ops;
  assert.ok(ops.some((op) => op.op === 'patch'), `the delta holds a patch, or this proves nothing (ops: ${ops.map((op) => op.op).join(', ')})`);
  const r = bare('update', '--home', p('bare-home'));
  assert.is(r.status, 0, r.stderr);
  assert.not.match(r.stderr, /ERR_NO_PATCHER/);
  assert.not.match(r.stdout, /after a failed delta/);
  assert.is(await readlink(p('bare-home', 'current')), 'releases/1.1.0');
  const record = lastRecord(p('bare-home'));
  assert.is(record.outcome, 'committed');
  assert.is(record.kind, 'delta');
  assert.is(record.fellBackToFull, undefined);
});

noPatcher('a release that asks for deltas fails with ERR_NO_PATCHER (exit 2) and a hint, and publishes nothing', () => {
  const r = bare('release', p('app-1.2.0'), '--repo', p('repo'), '--version', '1.2.0', '--key', p('release.key'), '--deltas', '1', ...target);
  assert.is(r.status, 2, r.stderr);
  assert.match(r.stderr, /^ferry: ERR_NO_PATCHER: /);
  assert.match(r.stderr, /--deltas 0/);
  assert.not.match(r.stderr, /\n\s+at /, 'no stack trace');
  const check = bare('check', '--home', p('bare-home'), '--json');
  assert.is(json<{ latestVersion: string }>(check).latestVersion, '1.1.0', 'the failed release left the channel as it was');
});

noPatcher('the same release with --deltas 0 is published without bsdiff', () => {
  const r = bare('release', p('app-1.2.0'), '--repo', p('repo'), '--version', '1.2.0', '--key', p('release.key'), '--deltas', '0', ...target);
  assert.is(r.status, 0, r.stderr);
  const check = bare('check', '--home', p('bare-home'), '--json');
  assert.is(json<{ latestVersion: string }>(check).latestVersion, '1.2.0');
});

noPatcher.run();
