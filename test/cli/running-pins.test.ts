// Running-release pins (core/device/running-pins.ts, plugins/running-release-pin.ts): ferry
// installed by hand as a ferry home (`releases/1.0.0/` holds this checkout's built ferry), a real
// `ferry share` and `ferry run` started from that release and a `ferry agent` started through
// `current`, then `ferry restore-points cleanup --keep 1` on the home with `current` at another
// version: the running release is kept and reported while the process lives, and removed by the
// next cleanup once it is stopped. A pin of a dead pid keeps nothing. Also the pure "where does
// this code run from" decision, as a table.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { cp, mkdir, readFile, rename, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runningReleaseOf, parsePin, type RunningPin } from '../../core/device/running-pins.ts';
import type { CleanupResult } from '../../core/update/housekeeping.ts';
import { tempDir, type TempDir } from '../helpers/repo.ts';
import { ferry, json, ok, ROOT } from '../helpers/cli.ts';

const where = suite('runningReleaseOf: the release a code path runs from');

const homes = (...dirs: string[]) => (dir: string) => dirs.includes(dir);

const table: [string, string, string[], { home: string; version: string } | null][] = [
  ['the built CLI of a release', '/opt/ferry/releases/1.0.0/dist/cli/ferry.js', ['/opt/ferry'], { home: '/opt/ferry', version: '1.0.0' }],
  ['a prerelease version folder', '/opt/ferry/releases/2.0.0-rc.1/dist/x.js', ['/opt/ferry'], { home: '/opt/ferry', version: '2.0.0-rc.1' }],
  ['a folder that is no ferry home', '/opt/ferry/releases/1.0.0/dist/cli/ferry.js', [], null],
  ['a version folder name that is no version', '/opt/ferry/releases/latest/dist/x.js', ['/opt/ferry'], null],
  ['a "v" prefix (installedVersions ignores it too)', '/opt/ferry/releases/v1.0.0/dist/x.js', ['/opt/ferry'], null],
  ['through `current` (not a realpath)', '/opt/ferry/current/dist/cli/ferry.js', ['/opt/ferry'], null],
  ['a checkout', '/work/main/dist/cli/ferry.js', ['/work/main'], null],
  ['a file named like a version, not a folder', '/opt/ferry/releases/1.0.0', ['/opt/ferry'], null],
  ['a relative path', 'opt/ferry/releases/1.0.0/dist/x.js', ['opt/ferry'], null],
  ['a home at the root', '/releases/1.0.0/x.js', ['/'], { home: '/', version: '1.0.0' }],
  ['ferry in the node_modules of an app home', '/srv/app/releases/3.1.0/node_modules/ferry/dist/x.js', ['/srv/app'], { home: '/srv/app', version: '3.1.0' }],
  ['nested homes: the innermost', '/a/releases/1.0.0/b/releases/2.0.0/x.js', ['/a', '/a/releases/1.0.0/b'], { home: '/a/releases/1.0.0/b', version: '2.0.0' }],
  ['nested, only the outer is a home', '/a/releases/1.0.0/b/releases/2.0.0/x.js', ['/a'], { home: '/a', version: '1.0.0' }],
];

for (const [what, path, homeDirs, expected] of table) {
  where(what, () => {
    assert.equal(runningReleaseOf(path, homes(...homeDirs)), expected);
  });
}

where('parsePin: the name must match the pid; fields typed', () => {
  const pin = { pid: 42, version: '1.0.0', command: 'share', startedAt: '2026-01-01T00:00:00.000Z' };
  assert.equal(parsePin('42.json', JSON.stringify(pin)), pin);
  assert.is(parsePin('43.json', JSON.stringify(pin)), null);
  assert.is(parsePin('42.json', JSON.stringify({ ...pin, pid: '42' })), null);
  assert.is(parsePin('42.json', JSON.stringify({ ...pin, version: 1 })), null);
  assert.is(parsePin('42.json', '{"pid": 42'), null);
});

where.run();

const cli = suite('cleanup keeps the release a running ferry executes from');

let tmp: TempDir;
let child: ChildProcess | undefined;
const p = (...parts: string[]) => join(tmp.path, ...parts);
const target = ['--platform', 'linux', '--arch', 'x64'];
const exists = (path: string) => stat(path).then(() => true, () => false);

/** A release folder of ferry that runs: this checkout's dist/ and package.json, its node_modules linked. */
async function installFerryRelease(home: string, version: string): Promise<void> {
  const dir = join(home, 'releases', version);
  await mkdir(dir, { recursive: true });
  await cp(join(ROOT, 'dist'), join(dir, 'dist'), { recursive: true });
  await cp(join(ROOT, 'package.json'), join(dir, 'package.json'));
  await symlink(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
}

/** A release folder that only has to exist. */
async function installDummyRelease(home: string, version: string): Promise<void> {
  await mkdir(join(home, 'releases', version), { recursive: true });
  await writeFile(join(home, 'releases', version, 'README'), `release ${version}\n`);
}

function cleanupJson(home: string): CleanupResult {
  return json<CleanupResult>(ok(ferry('restore-points', 'cleanup', '--home', home, '--keep', '1', '--json'), 'cleanup'));
}

/** The first line the child prints on stdout, within 30 s. */
function firstLine(c: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => reject(new Error(`no output within 30 s (stderr: ${err})`)), 30_000);
    c.stderr!.on('data', (d) => { err += d; });
    c.stdout!.on('data', (d) => {
      out += d;
      const i = out.indexOf('\n');
      if (i >= 0) {
        clearTimeout(timer);
        resolve(out.slice(0, i));
      }
    });
    c.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`exited ${code} before printing (stderr: ${err})`));
    });
  });
}

function exited(c: ChildProcess): Promise<number | null> {
  if (c.exitCode !== null || c.signalCode !== null) return Promise.resolve(c.exitCode);
  return new Promise((resolve) => c.once('exit', (code) => resolve(code)));
}

cli.before(async () => {
  tmp = await tempDir('ferry-pins-');
  ok(ferry('keygen', '--out', p('root')), 'keygen root');
  ok(ferry('keygen', '--out', p('release')), 'keygen release');
  ok(ferry('repo', 'init', p('repo'), '--app', 'ferry', '--root-key', p('root.key'), '--release-key', p('release.pub')), 'repo init');
  // ferry's own home (what cleanup runs on) and a device home the running ferry serves.
  for (const home of ['ferry-home', 'device']) ok(ferry('init', p(home), '--trust', p('repo', 'root.json'), '--source', p('repo'), ...target), `init ${home}`);
  await installFerryRelease(p('ferry-home'), '1.0.0');
  await installDummyRelease(p('ferry-home'), '1.1.0');
  await installDummyRelease(p('ferry-home'), '2.0.0');
  await symlink('releases/2.0.0', p('ferry-home', 'current'));
  // The newest restore point is of current, so --keep 1 leaves none for 1.0.0.
  ok(ferry('restore-points', 'create', '--home', p('ferry-home')), 'restore point of current');
});

cli.after(async () => {
  if (child?.pid && child.exitCode === null && child.signalCode === null) {
    process.kill(child.pid, 'SIGKILL');
    await exited(child);
  }
  await tmp.cleanup();
});

cli('a ferry share started from releases/1.0.0 pins it; cleanup keeps and reports it until the process stops', async () => {
  const home = p('ferry-home');
  child = spawn(process.execPath, [join(home, 'releases', '1.0.0', 'dist', 'cli', 'ferry.js'), 'share', '--home', p('device'), '--host', '127.0.0.1', '--port', '0', '--no-announce', '--json'], {
    cwd: tmp.path,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const pid = child.pid!;
  await firstLine(child); // it prints once it serves, after pinning

  const pin = JSON.parse(await readFile(join(home, 'run', 'pins', `${pid}.json`), 'utf8')) as RunningPin;
  assert.is(pin.pid, pid);
  assert.is(pin.version, '1.0.0');
  assert.is(pin.command, 'share');
  assert.ok(!Number.isNaN(Date.parse(pin.startedAt)));

  const first = cleanupJson(home);
  assert.ok(await exists(join(home, 'releases', '1.0.0', 'dist', 'cli', 'ferry.js')), 'the running release is still there');
  assert.equal(first.removedReleases, []);
  const kept = new Map(first.keptReleases.map((k) => [k.version, k]));
  assert.equal(kept.get('1.0.0')?.reasons, ['pinned']);
  assert.equal(kept.get('1.0.0')?.pins.map((x) => [x.pid, x.command]), [[pid, 'share']]);
  assert.equal(kept.get('1.1.0')?.reasons, ['previous']);
  assert.ok(kept.get('2.0.0')?.reasons.includes('current'));

  const human = ok(ferry('restore-points', 'cleanup', '--home', home, '--keep', '1'), 'cleanup (human)').stdout;
  assert.match(human, `kept release 1.0.0: pinned by running ferry pid ${pid} (share)`);

  process.kill(pid, 'SIGTERM');
  assert.is(await exited(child), 0, 'share stops on SIGTERM');
  assert.not.ok(await exists(join(home, 'run', 'pins', `${pid}.json`)), 'the pin is removed on exit');

  const second = cleanupJson(home);
  assert.equal(second.removedReleases, ['1.0.0']);
  assert.not.ok(await exists(join(home, 'releases', '1.0.0')), 'removed once no one runs from it');
});

cli('a ferry run started from releases/1.0.0 pins its own release, not the app it supervises (from current)', async () => {
  const home = p('ferry-home');
  await installFerryRelease(home, '1.0.0');
  child = spawn(process.execPath, [join(home, 'releases', '1.0.0', 'dist', 'cli', 'ferry.js'), 'run', '--home', home, '--listen', '127.0.0.1:0', '--settle', '1s', '--', process.execPath, '-e', 'setInterval(() => {}, 1e6)'], {
    cwd: tmp.path,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const pid = child.pid!;
  await firstLine(child); // "supervising 2.0.0 …", printed after the pin is written

  const r = cleanupJson(home);
  assert.equal(r.removedReleases, []);
  const pinned = r.keptReleases.filter((k) => k.reasons.includes('pinned'));
  assert.equal(pinned.map((k) => [k.version, k.pins.map((x) => [x.pid, x.command])]), [['1.0.0', [[pid, 'run']]]], 'only ferry itself is pinned');

  process.kill(pid, 'SIGTERM');
  assert.is(await exited(child), 0, 'run stops on SIGTERM');
  assert.not.ok(await exists(join(home, 'run', 'pins', `${pid}.json`)), 'the pin is removed on exit');
  assert.equal(cleanupJson(home).removedReleases, ['1.0.0']);
});

cli('a ferry agent started through `current` pins the release behind it, which stays pinned after current moves on', async () => {
  const home = p('ferry-home');
  await installFerryRelease(home, '1.0.0');
  const moveCurrent = async (version: string) => {
    await symlink(`releases/${version}`, p('ferry-home', 'current.new'));
    await rename(p('ferry-home', 'current.new'), p('ferry-home', 'current'));
  };
  await moveCurrent('1.0.0');
  child = spawn(process.execPath, [join(home, 'current', 'dist', 'cli', 'ferry.js'), 'agent', '--home', p('device'), '--json'], {
    cwd: tmp.path,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const pid = child.pid!;
  await firstLine(child); // its first log line comes after the pin is written
  await moveCurrent('2.0.0'); // as an update of ferry itself would

  const pin = JSON.parse(await readFile(join(home, 'run', 'pins', `${pid}.json`), 'utf8')) as RunningPin;
  assert.equal([pin.version, pin.command], ['1.0.0', 'agent']);
  const r = cleanupJson(home);
  assert.equal(r.removedReleases, []);
  assert.equal(r.keptReleases.find((k) => k.version === '1.0.0')?.reasons, ['pinned']);
  assert.ok(await exists(join(home, 'releases', '1.0.0', 'dist', 'cli', 'ferry.js')));

  process.kill(pid, 'SIGTERM');
  await exited(child);
  assert.not.ok(await exists(join(home, 'run', 'pins', `${pid}.json`)), 'the pin is removed on exit');
  assert.equal(cleanupJson(home).removedReleases, ['1.0.0']);
});

cli('a pin whose pid is gone keeps nothing, and is removed', async () => {
  const home = p('ferry-home');
  await installDummyRelease(home, '1.0.0');
  // A pid that certainly ran and is gone: a child that has exited.
  const dead = spawnSync(process.execPath, ['-e', '']).pid!;
  assert.ok(dead > 0);
  const pinFile = join(home, 'run', 'pins', `${dead}.json`);
  await mkdir(join(home, 'run', 'pins'), { recursive: true });
  await writeFile(pinFile, JSON.stringify({ pid: dead, version: '1.0.0', command: 'agent', startedAt: new Date().toISOString() }));

  const r = cleanupJson(home);
  assert.equal(r.removedReleases, ['1.0.0']);
  assert.not.ok(r.keptReleases.some((k) => k.version === '1.0.0'));
  assert.not.ok(await exists(join(home, 'releases', '1.0.0')));
  assert.not.ok(await exists(pinFile), 'the stale pin is cleaned');
});

cli.run();
