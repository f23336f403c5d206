// `ferry release --self`, end to end with real everything: this checkout's built ferry publishes
// itself (dist/, package.json without scripts, production node_modules from a real `npm ci`, native
// modules built) into a repository for app "ferry"; a device home installs it, the installed
// ferry runs (its own CLI, keygen, LevelDB through classic-level); a second release reaches the
// device as a delta far smaller than the full artifact. Slow: each release runs npm ci (npm's
// cache first, its registry for anything missing).

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { lstat, readFile, readlink, stat } from 'node:fs/promises';
import { join } from 'node:path';
import semver from 'semver';
import { isLink, type ManifestDoc, type TreeEntry } from '../../core/trust/metadata.ts';
import type { UpdateRecord } from '../../core/spec.ts';
import { tempDir, type TempDir } from '../helpers/repo.ts';
import { ferry, json, ok, ROOT, type Run } from '../helpers/cli.ts';
import { readPayload } from '../helpers/tamper.ts';

const self = suite('ferry release --self');

let tmp: TempDir;
const p = (...parts: string[]) => join(tmp.path, ...parts);
const target = `${process.platform}-${process.arch}`;
let pkgVersion: string;

interface ReleaseOut {
  version: string;
  target: string;
  full: { size: number; path: string };
  deltas: { from: string; size: number }[];
  self: { app: string; buildMs: number };
}

/** Runs a command with a deadline long enough for npm ci with native builds on a loaded machine. */
function slow(cmd: string, args: string[], cwd = ROOT): Run {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' }, timeout: 300_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The ferry installed in the device home, run as `node <home>/current/dist/cli/ferry.js …`. */
const installed = (...args: string[]): Run => slow(process.execPath, [p('home', 'current', 'dist', 'cli', 'ferry.js'), ...args]);

async function filesOf(version: string): Promise<TreeEntry[]> {
  const m = await readPayload<ManifestDoc>(p('repo', 'releases', version, 'manifest.json'));
  return m.targets[target]!.files;
}

self.before(async () => {
  tmp = await tempDir('ferry-self-test-');
  pkgVersion = (JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  ok(ferry('keygen', '--out', p('root')), 'keygen root');
  ok(ferry('keygen', '--out', p('release')), 'keygen release');
  ok(ferry('repo', 'init', p('repo'), '--app', 'ferry', '--root-key', p('root.key'), '--release-key', p('release.pub')), 'repo init ferry');
  ok(ferry('repo', 'init', p('other-repo'), '--app', 'sample-app', '--root-key', p('root.key'), '--release-key', p('release.pub')), 'repo init sample-app');
});

self.after(async () => {
  await tmp.cleanup();
});

self('refusals come before any build: both <app-dir> and --self, another arch, another app', () => {
  const both = ferry('release', p('repo'), '--self', '--repo', p('repo'), '--key', p('release.key'));
  assert.is(both.status, 2);
  assert.match(both.stderr, /ERR_USAGE: give one of an <app-dir>, --self or --image/);
  const noVersion = ferry('release', p('repo'), '--repo', p('repo'), '--key', p('release.key'));
  assert.is(noVersion.status, 2);
  assert.match(noVersion.stderr, /ERR_USAGE: Missing required argument: version/);
  const otherArch = process.arch === 'arm64' ? 'x64' : 'arm64';
  const cross = ferry('release', '--self', '--repo', p('repo'), '--key', p('release.key'), '--arch', otherArch);
  assert.is(cross.status, 2);
  assert.match(cross.stderr, /ERR_USAGE: --self builds native modules for this machine/);
  const wrongApp = ferry('release', '--self', '--repo', p('other-repo'), '--key', p('release.key'));
  assert.is(wrongApp.status, 3, wrongApp.stderr);
  assert.match(wrongApp.stderr, /ERR_WRONG_TARGET: .* is a repository for app "sample-app", not "ferry"/);
  assert.not.match(wrongApp.stderr, /npm ci/, 'refused before installing anything');
});

self('release --self publishes this checkout: dist/, the bin executable, production node_modules with .bin links', async () => {
  const t0 = Date.now();
  const out = json<ReleaseOut>(ok(slow(process.execPath, ['dist/cli/ferry.js', 'release', '--self', '--repo', p('repo'), '--key', p('release.key'), '--json']), 'release --self'));
  console.log(`  release --self ${out.version}: tree built in ${(out.self.buildMs / 1000).toFixed(1)} s, whole command ${((Date.now() - t0) / 1000).toFixed(1)} s, full artifact ${out.full.size} bytes`);
  assert.is(out.version, pkgVersion);
  assert.is(out.target, target);
  assert.is(out.self.app, 'ferry');
  assert.equal(out.deltas, []);

  const files = await filesOf(pkgVersion);
  const byPath = new Map(files.map((f) => [f.path, f]));
  const entry = byPath.get('dist/cli/ferry.js');
  assert.ok(entry && !isLink(entry), 'dist/cli/ferry.js is a file of the release');
  assert.is(entry.mode & 0o111, 0o111, 'the bin is executable');
  for (const needed of ['package.json', 'package-lock.json', 'node_modules/bsdiff-node/build/Release/bsdiff.node', 'node_modules/classic-level/package.json', 'node_modules/yargs/package.json']) {
    assert.ok(byPath.has(needed), `${needed} is in the release`);
  }
  // Production only: no devDependency was installed.
  for (const dev of ['typescript', 'tsx', 'uvu', '@types/node']) assert.not.ok(files.some((f) => f.path.startsWith(`node_modules/${dev}/`)), `${dev} is not in the release`);
  // npm's .bin links travel as signed relative links, the same npm makes in this checkout.
  const binLinks = files.filter((f) => f.path.startsWith('node_modules/.bin/'));
  assert.ok(binLinks.length > 0, 'node_modules/.bin has links');
  for (const link of binLinks) {
    assert.ok(isLink(link), `${link.path} is a link`);
    assert.is(link.target, await readlink(join(ROOT, link.path)), `${link.path} points where npm points it`);
  }
  assert.ok(binLinks.some((l) => l.path === 'node_modules/.bin/semver'));
});

self('a device home installs it, and the installed ferry runs: --help, keygen, its own home\'s history', async () => {
  ok(ferry('init', p('home'), '--trust', p('repo', 'root.json'), '--source', p('repo')), 'init');
  const first = json<{ status: string; record: UpdateRecord }>(ok(slow(process.execPath, ['dist/cli/ferry.js', 'update', '--home', p('home'), '--json']), 'update'));
  assert.is(first.status, 'committed');
  assert.is(first.record.to, pkgVersion);
  assert.is(first.record.kind, 'full');

  const pkg = JSON.parse(await readFile(p('home', 'current', 'package.json'), 'utf8')) as { version: string; scripts?: unknown };
  assert.is(pkg.version, pkgVersion);
  assert.is(pkg.scripts, undefined, 'the release\'s package.json has no scripts');
  assert.ok((await lstat(p('home', 'current', 'node_modules', '.bin', 'semver'))).isSymbolicLink());

  const help = ok(installed('--help'), 'installed ferry --help');
  for (const command of ['release', 'update', 'keygen', 'agent']) assert.match(help.stdout, new RegExp(`ferry ${command}`));
  // Run as an executable, the way the bin is run: the shebang and the mode survived.
  const direct = ok(slow(p('home', 'current', 'dist', 'cli', 'ferry.js'), ['--help']), 'installed ferry.js run directly');
  assert.match(direct.stdout, /Commands:/);

  const key = json<{ keyid: string }>(ok(installed('keygen', '--out', p('made-by-installed'), '--json'), 'installed keygen'));
  assert.match(key.keyid, /^[0-9a-f]{64}$/);
  assert.is((await stat(p('made-by-installed.key'))).mode & 0o777, 0o600);
  // LevelDB through the installed tree's own classic-level build.
  const history = json<UpdateRecord[]>(ok(installed('history', '--home', p('home'), '--json'), 'installed history'));
  assert.equal(history.map((h) => [h.to, h.kind, h.outcome]), [[pkgVersion, 'full', 'committed']]);
});

self('a second release --self reaches the device as a delta far smaller than the full artifact', async () => {
  const next = semver.inc(pkgVersion, 'patch')!;
  const out = json<ReleaseOut>(ok(slow(process.execPath, ['dist/cli/ferry.js', 'release', '--self', '--version', next, '--repo', p('repo'), '--key', p('release.key'), '--json']), `release --self ${next}`));
  assert.is(out.version, next);
  assert.equal(out.deltas.map((d) => d.from), [pkgVersion]);
  const delta = out.deltas[0]!.size;
  console.log(`  release --self ${next}: tree built in ${(out.self.buildMs / 1000).toFixed(1)} s, full artifact ${out.full.size} bytes, delta from ${pkgVersion} ${delta} bytes`);
  assert.ok(delta * 50 < out.full.size, `delta ${delta} bytes is under 2% of the full ${out.full.size}`);

  const second = json<{ status: string; record: UpdateRecord }>(ok(slow(process.execPath, ['dist/cli/ferry.js', 'update', '--home', p('home'), '--json']), 'update by delta'));
  assert.is(second.status, 'committed');
  assert.equal([second.record.from, second.record.to, second.record.kind], [pkgVersion, next, 'delta']);
  assert.is(second.record.bytesMoved, delta);
  const pkg = JSON.parse(await readFile(p('home', 'current', 'package.json'), 'utf8')) as { version: string };
  assert.is(pkg.version, next, 'the installed package.json names the release version');
  ok(installed('--help'), 'installed ferry --help after the delta');
});

self.run();
