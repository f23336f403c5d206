// The publisher's command line, run as users run it (`node dist/cli/ferry.js …` in a child process):
// keys, a repository, releases with deltas, verification, bundles, and the documented exit codes
// (cli/exit-codes.ts) for refusals, version conflicts and usage errors.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { copyFile, cp, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { ManifestDoc } from '../../core/trust/metadata.ts';
import type { VerifyReport } from '../../core/trust/verify-repo.ts';
import { sampleApp, tempDir, writeTree, type TempDir } from '../helpers/repo.ts';
import { ferry, json, ok } from '../helpers/cli.ts';
import { flipByte, readPayload } from '../helpers/tamper.ts';


const cli = suite<{ tmp?: TempDir }>('the publisher CLI, end to end');

let tmp: TempDir;
const p = (...parts: string[]) => join(tmp.path, ...parts);
const target = ['--platform', 'linux', '--arch', 'x64'];

cli.before(async () => {
  tmp = await tempDir('ferry-cli-');
  await writeTree(p('app-1.0.0'), sampleApp('1.0.0'));
  await writeTree(p('app-1.1.0'), sampleApp('1.1.0'));
});

cli.after(async () => {
  await tmp.cleanup();
});

cli('keygen writes a 0600 secret key and its public halves', async () => {
  for (const name of ['root', 'release', 'root2']) {
    const run = ok(ferry('keygen', '--out', p(`${name}`), '--json'), `keygen ${name}`);
    const out = json<{ keyid: string; files: string[] }>(run);
    assert.match(out.keyid, /^[0-9a-f]{64}$/);
    assert.equal(out.files, [p(`${name}.key`), p(`${name}.pub`), p(`${name}.pem`)]);
    assert.is((await stat(p(`${name}.key`))).mode & 0o777, 0o600);
    const pub = JSON.parse(await readFile(p(`${name}.pub`), 'utf8')) as { keyid: string };
    assert.is(pub.keyid, out.keyid);
  }
  // Never overwrites a key.
  const again = ferry('keygen', '--out', p('root'));
  assert.is(again.status, 2);
  assert.match(again.stderr, /ERR_USAGE/);
});

cli('repo init creates a repository with root 1', async () => {
  ok(ferry('repo', 'init', p('repo'), '--app', 'sample-app', '--root-key', p('root.key'), '--release-key', p('release.pub')), 'repo init');
  await copyFile(p('repo', 'root.json'), p('trust-v1.json'));
  const root = await readPayload<{ version: number; app: string }>(p('repo', 'root.json'));
  assert.is(root.version, 1);
  assert.is(root.app, 'sample-app');
  assert.ok((await readFile(p('repo', 'root', '1.json'))).equals(await readFile(p('repo', 'root.json'))));
});

cli('release twice with --deltas: the second carries a delta from the first', async () => {
  const first = json<{ sequence: number; deltas: unknown[] }>(ok(ferry('release', p('app-1.0.0'), '--repo', p('repo'), '--version', '1.0.0', '--key', p('release.key'), '--deltas', '3', ...target, '--json'), 'release 1.0.0'));
  assert.is(first.sequence, 1);
  assert.equal(first.deltas, []);
  const second = json<{ sequence: number; target: string; deltas: { from: string; size: number }[]; full: { size: number } }>(
    ok(ferry('release', p('app-1.1.0'), '--repo', p('repo'), '--version', '1.1.0', '--key', p('release.key'), '--deltas', '3', ...target, '--json'), 'release 1.1.0'),
  );
  assert.is(second.sequence, 2);
  assert.is(second.target, 'linux-x64');
  assert.equal(second.deltas.map((d) => d.from), ['1.0.0']);
  assert.ok(second.deltas[0]!.size < second.full.size);
});

cli('verify exits 0, and --json reports ok:true with both releases', () => {
  const human = ok(ferry('verify', p('repo'), '--trust', p('trust-v1.json')), 'verify');
  assert.match(human.stdout, /^OK: repository/);
  const report = json<VerifyReport>(ok(ferry('verify', p('repo'), '--trust', p('trust-v1.json'), '--json'), 'verify --json'));
  assert.is(report.ok, true);
  assert.equal(report.problems, []);
  assert.equal(report.releases.map((r) => r.version), ['1.0.0', '1.1.0']);
  assert.is(report.rootVersion, 1);
});

cli('bundle --from writes a delta bundle that verify accepts', () => {
  const out = json<{ files: string[]; channel: string }>(ok(ferry('bundle', '--repo', p('repo'), '--version', '1.1.0', '--from', '1.0.0', '--out', p('update.ferry'), ...target, '--json'), 'bundle'));
  assert.is(out.channel, 'stable');
  assert.ok(out.files.some((f) => f.endsWith('linux-x64.from-1.0.0.delta')));
  const report = json<VerifyReport>(ok(ferry('verify', p('update.ferry'), '--trust', p('trust-v1.json'), '--json'), 'verify bundle'));
  assert.is(report.ok, true);
  assert.equal(report.releases.map((r) => r.version), ['1.1.0']);
  assert.ok(report.releases[0]!.artifacts.some((a) => a.status === 'ok' && a.path.endsWith('.delta')));
});

cli('a tampered artifact makes verify exit 3 and name ERR_HASH_MISMATCH', async () => {
  await cp(p('repo'), p('repo-tampered'), { recursive: true });
  const m = await readPayload<ManifestDoc>(p('repo-tampered', 'releases', '1.1.0', 'manifest.json'));
  await flipByte(p('repo-tampered', m.targets['linux-x64']!.full.path));
  const run = ferry('verify', p('repo-tampered'), '--trust', p('trust-v1.json'));
  assert.is(run.status, 3);
  assert.match(run.stdout, /^FAILED: repository/);
  assert.match(run.stdout, /problem ERR_HASH_MISMATCH/);
  const asJson = ferry('verify', p('repo-tampered'), '--trust', p('trust-v1.json'), '--json');
  assert.is(asJson.status, 3);
  assert.equal(json<VerifyReport>(asJson).problems.map((x) => x.code), ['ERR_HASH_MISMATCH']);
});

cli('releasing an existing version exits 5', () => {
  const same = ferry('release', p('app-1.1.0'), '--repo', p('repo'), '--version', '1.1.0', '--key', p('release.key'), ...target);
  assert.is(same.status, 5);
  assert.match(same.stderr, /ferry: ERR_VERSION: 1\.1\.0 is not greater than 1\.1\.0/);
  const elsewhere = ferry('release', p('app-1.1.0'), '--repo', p('repo'), '--version', '1.1.0', '--channel', 'beta', '--key', p('release.key'), ...target, '--json');
  assert.is(elsewhere.status, 5);
  const err = JSON.parse(elsewhere.stderr) as { error: { code: string; exitCode: number } };
  assert.equal(err.error, { ...err.error, code: 'ERR_ALREADY_PUBLISHED', exitCode: 5 });
});

cli('a missing --repo exits 2 with ERR_USAGE', () => {
  const run = ferry('release', p('app-1.1.0'), '--version', '1.2.0', '--key', p('release.key'));
  assert.is(run.status, 2);
  assert.match(run.stderr, /ERR_USAGE/);
  assert.match(run.stderr, /repo/);
});

cli('repo rotate adds a root key; verify from the OLD root.json walks the chain to root 2', async () => {
  ok(ferry('repo', 'rotate', p('repo'), '--key', p('root.key'), '--key', p('root2.key'), '--root-key', p('root.pub'), '--root-key', p('root2.pub')), 'repo rotate');
  const root2 = await readPayload<{ version: number; roles: { root: { keyids: string[] } } }>(p('repo', 'root.json'));
  assert.is(root2.version, 2);
  assert.is(root2.roles.root.keyids.length, 2);
  const report = json<VerifyReport>(ok(ferry('verify', p('repo'), '--trust', p('trust-v1.json'), '--json'), 'verify after rotate'));
  assert.is(report.ok, true);
  assert.is(report.trustedRootVersion, 1);
  assert.is(report.rootVersion, 2);
  // A rotation signed only by a key root 2 does not hold is refused (exit 3), root.json unchanged.
  ok(ferry('keygen', '--out', p('root3')), 'keygen root3');
  const alone = ferry('repo', 'rotate', p('repo'), '--key', p('root3.key'), '--root-key', p('root3.pub'));
  assert.is(alone.status, 3);
  assert.match(alone.stderr, /ERR_THRESHOLD/);
  assert.is((await readPayload<{ version: number }>(p('repo', 'root.json'))).version, 2);
});

cli.run();
