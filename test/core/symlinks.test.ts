// Symlinks in release trees (SECURITY.md row 14): a relative link that resolves inside the tree is
// signed with its target, packed into the full artifact, carried by deltas, made last when staged
// and re-verified by readlink; a link out of the tree (absolute, or climbing above the root,
// also through another link) is refused at release (ERR_UNSUPPORTED_FILE) and on the device
// (ERR_UNSAFE_ARCHIVE). The last suite publishes a real node_modules tree made by `npm install`
// of a local package folder (offline), installs it on a device and updates it by delta.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import { cp, lstat, mkdir, readdir, readFile, readlink, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { publishRelease, type ReleaseResult } from '../../core/publish/publish.ts';
import { scanTree } from '../../core/publish/tree.ts';
import { archiveCoder, extractArchive } from '../../core/io/extract.ts';
import { applyDelta } from '../../core/delta/apply-delta.ts';
import { makeDelta } from '../../core/delta/make-delta.ts';
import { verifyTree } from '../../core/device/verify-tree.ts';
import { linkProblem } from '../../core/io/safe-path.ts';
import { sha256 } from '../../core/io/hash.ts';
import { isLink, parseManifestPayload, type DeltaOp, type TreeEntry } from '../../core/trust/metadata.ts';
import { createBsdiffPatcher } from '../../plugins/bsdiff/patcher.ts';
import { createDirSource } from '../../core/ports/dir-source.ts';
import { verifyRepository } from '../../core/trust/verify-repo.ts';
import { makeRepo, pseudoRandomBytes, tempDir, writeTree, type TempDir, type TestRepo } from '../helpers/repo.ts';
import { assertInstalled, cleanupAll, makeDevice } from '../helpers/device.ts';
import { assertCode, assertCodeAsync } from '../helpers/assert-code.ts';
import { readPayload, snapshotDir } from '../helpers/tamper.ts';
import { tarBytes } from '../helpers/tar-writer.ts';

const execFileP = promisify(execFile);
const T = 'linux-x64';
const patcher = createBsdiffPatcher();

/** Publishes `appDir` as `version` to `t`'s repository, as `ferry release` does. */
function publishDir(t: TestRepo, appDir: string, version: string): Promise<ReleaseResult> {
  return publishRelease({
    repo: t.repo, appDir, version, channel: 'stable', keys: [t.releaseKey], platform: 'linux', arch: 'x64',
    deltas: 3, expiresIn: 86400, now: new Date(), patcher,
  });
}

/** A small app with links: a link to a file, a link to a link, a link to a folder, one using "..". */
async function linkedApp(dir: string, version: string): Promise<void> {
  await writeTree(dir, {
    'server.js': { content: `export const VERSION = '${version}';\n`, mode: 0o755 },
    'lib/util.js': 'export const answer = 42;\n'.repeat(40),
    'lib/deep/data.txt': 'data\n',
  });
  await symlink('server.js', join(dir, 'main.js'));
  await symlink('main.js', join(dir, 'entry.js'));
  await symlink('lib/deep', join(dir, 'data'));
  await mkdir(join(dir, 'bin'));
  await symlink('../lib/util.js', join(dir, 'bin', 'util'));
}

const file = (path: string, content = path) => ({ path, size: Buffer.byteLength(content), sha256: sha256(content), mode: 0o644 });
const link = (path: string, target: string): TreeEntry => ({ path, type: 'symlink', target });

// ---------------------------------------------------------------------------------------------

const resolve = suite('a link target is resolved the way the kernel does, on the signed list');

resolve('accepts links to a file, a folder, another link, and ".." that stays inside', () => {
  const entries: TreeEntry[] = [
    file('a/b/c.txt'), file('top.txt'),
    link('a/up', '../top.txt'), link('a/b/dir', '..'), link('l1', 'l2'), link('l2', 'a/b/c.txt'),
    link('here', '.'), link('via', 'a/b/dir/b/./c.txt'),
  ];
  assert.is(linkProblem(entries), null);
  assert.is(linkProblem([file('x')]), null, 'no link, nothing to judge');
});

resolve('refuses absolute targets and ".." above the root, also through another link', () => {
  const cases: [string, TreeEntry[], RegExp][] = [
    ['absolute', [file('x'), link('l', '/etc/passwd')], /absolute/],
    ['".." above the root', [file('x'), link('a/l', '../../x')], /outside the tree/],
    ['out and back in by name', [file('x'), link('a/l', '../../app/x')], /outside the tree/],
    // Lexically a/r/.. is "a", inside; but a/r is a link to the root, so ".." from it is the root's parent.
    ['".." after a link to the root', [file('a/x'), link('a/r', '..'), link('l', 'a/r/../a/x')], /outside the tree/],
    ['a link to a link that leaves', [file('x'), link('l1', 'l2'), link('l2', '../x')], /outside the tree/],
  ];
  for (const [what, entries, why] of cases) {
    const p = linkProblem(entries);
    assert.ok(p, `${what}: refused`);
    assert.match(p!.why, why, what);
  }
});

resolve('refuses dangling links, loops, links through a file and malformed targets', () => {
  const cases: [string, TreeEntry[], RegExp][] = [
    ['dangling', [file('x'), link('l', 'nope')], /dangling/],
    ['loop', [file('x'), link('l1', 'l2'), link('l2', 'l1')], /loops/],
    ['self loop', [file('x'), link('l', 'l')], /loops/],
    ['through a file', [file('x'), link('l', 'x/y')], /through the file/],
    ['empty', [file('x'), link('l', '')], /empty target/],
    ['empty segment', [file('x'), link('l', 'a//x')], /empty segment/],
    ['NUL', [file('x'), link('l', 'x\0')], /NUL/],
  ];
  for (const [what, entries, why] of cases) {
    const p = linkProblem(entries);
    assert.ok(p, `${what}: refused`);
    assert.match(p!.why, why, what);
  }
});

resolve.run();

// ---------------------------------------------------------------------------------------------

const manifest = suite('a signed manifest carries links as their own entry kind');

function manifestWith(files: unknown[], ops?: unknown[]): Buffer {
  const h = sha256('x');
  return Buffer.from(JSON.stringify({
    type: 'ferry/manifest', app: 'demo', version: '1.1.0', releaseDate: '2024-05-01T12:00:00.000Z', releaseNotes: '', mandatory: false, securityFix: false,
    targets: {
      [T]: {
        files,
        full: { path: 'releases/1.1.0/full.tar.gz', size: 10, sha256: h, chunkSize: 1024, chunks: [h] },
        deltas: ops ? [{ from: '1.0.0', artifact: { path: 'releases/1.1.0/d.tar', size: 10, sha256: h, chunkSize: 1024, chunks: [h] }, ops }] : [],
      },
    },
  }));
}

manifest('parses { path, type: "symlink", target } beside regular files, and a link op in a delta', () => {
  const f = file('bin/app');
  const doc = parseManifestPayload(manifestWith([f, { path: 'run', type: 'symlink', target: 'bin/app' }], [
    { op: 'copy', path: 'bin/app', from: 'bin/app', sha256: f.sha256 },
    { op: 'link', path: 'run', target: 'bin/app' },
  ]));
  assert.equal(doc.targets[T]!.files, [f, { path: 'run', type: 'symlink', target: 'bin/app' }]);
  assert.equal(doc.targets[T]!.deltas[0]!.ops[1], { op: 'link', path: 'run', target: 'bin/app' });
});

manifest('refuses a signed link out of the tree, absolute or by "..", before anything is fetched (ERR_UNSAFE_ARCHIVE)', () => {
  const f = file('bin/app');
  for (const target of ['/etc/passwd', '../../outside', 'bin/../../outside']) {
    const err = assertCode(() => parseManifestPayload(manifestWith([f, { path: 'run', type: 'symlink', target }])), 'ERR_UNSAFE_ARCHIVE');
    assert.match(err.message, /run is a symlink/);
  }
});

manifest('refuses malformed link entries and link ops that do not build the signed link (ERR_SCHEMA)', () => {
  const f = file('bin/app');
  const run = { path: 'run', type: 'symlink', target: 'bin/app' };
  assertCode(() => parseManifestPayload(manifestWith([f, { ...run, type: 'hardlink' }])), 'ERR_SCHEMA');
  assertCode(() => parseManifestPayload(manifestWith([f, { ...run, mode: 0o777 }])), 'ERR_SCHEMA');
  assertCode(() => parseManifestPayload(manifestWith([f, { path: 'run', type: 'symlink' }])), 'ERR_SCHEMA');
  // A signed entry under a signed link would be written through it: refused as a path clash.
  assertCode(() => parseManifestPayload(manifestWith([f, { path: 'lib', type: 'symlink', target: 'bin' }, file('lib/x')])), 'ERR_SCHEMA');
  const copy = { op: 'copy', path: 'bin/app', from: 'bin/app', sha256: f.sha256 };
  for (const ops of [
    [copy, { op: 'link', path: 'run', target: 'elsewhere' }],
    [copy, { op: 'copy', path: 'run', from: 'bin/app', sha256: f.sha256 }],
    [{ op: 'link', path: 'bin/app', target: 'run' }, { op: 'link', path: 'run', target: 'bin/app' }],
  ]) {
    const err = assertCode(() => parseManifestPayload(manifestWith([f, run], ops)), 'ERR_SCHEMA');
    assert.match(err.message, /do not match the file list/);
  }
});

manifest.run();

// ---------------------------------------------------------------------------------------------

const release = suite('`ferry release` signs and packs links that stay inside, and refuses the others');

async function withRepo(body: (t: TestRepo, tmp: TempDir) => Promise<void>): Promise<void> {
  const t = await makeRepo();
  const tmp = await tempDir('ferry-links-');
  try {
    await body(t, tmp);
  } finally {
    await cleanupAll(t, tmp);
  }
}

release('records each link with its target; a tree without links keeps exactly the regular-file shape', () => withRepo(async (t, tmp) => {
  const plain = join(tmp.path, 'plain');
  await writeTree(plain, { 'a.txt': 'a\n', 'bin/run': { content: 'run\n', mode: 0o755 } });
  const r0 = await publishDir(t, plain, '0.9.0');
  for (const f of r0.manifest.targets[T]!.files) assert.equal(Object.keys(f), ['path', 'size', 'mode', 'sha256'], `${f.path} keeps the regular shape`);

  const app = join(tmp.path, 'app');
  await linkedApp(app, '1.0.0');
  const r = await publishDir(t, app, '1.0.0');
  const links = r.manifest.targets[T]!.files.filter(isLink);
  assert.equal(links, [
    { path: 'bin/util', type: 'symlink', target: '../lib/util.js' },
    { path: 'data', type: 'symlink', target: 'lib/deep' },
    { path: 'entry.js', type: 'symlink', target: 'main.js' },
    { path: 'main.js', type: 'symlink', target: 'server.js' },
  ]);
  // The manifest as stored verifies and parses back to the same list.
  assert.equal(parseManifestPayload(Buffer.from(JSON.stringify(await readPayload(join(t.repo, 'releases', '1.0.0', 'manifest.json'))))).targets[T]!.files, r.manifest.targets[T]!.files);
}));

release('the full artifact holds the links as link entries and is the same bytes from the same tree', () => withRepo(async (t, tmp) => {
  const a = join(tmp.path, 'a');
  const b = join(tmp.path, 'b');
  await linkedApp(a, '1.0.0');
  await linkedApp(b, '1.0.0');
  const ra = await publishDir(t, a, '1.0.0');
  const t2 = await makeRepo();
  try {
    const rb = await publishDir(t2, b, '1.0.0');
    assert.is(rb.full.sha256, ra.full.sha256, 'same tree, same artifact bytes');
  } finally {
    await t2.cleanup();
  }
  const out = join(tmp.path, 'out');
  await mkdir(out);
  const files = ra.manifest.targets[T]!.files;
  await extractArchive(join(t.repo, ra.full.path), out, new Map(files.map((f) => [f.path, f])), undefined, undefined, undefined, archiveCoder(ra.full.path));
  assert.is(await readlink(join(out, 'bin/util')), '../lib/util.js');
  assert.ok((await lstat(join(out, 'data'))).isSymbolicLink());
  assert.equal(await scanTree(out), files, 'the extracted tree is exactly the signed list');
}));

release('refuses an absolute link and a link whose ".." leaves the tree (ERR_UNSUPPORTED_FILE), leaving the repository as it was', () => withRepo(async (t, tmp) => {
  await publishDir(t, await (async () => { const d = join(tmp.path, 'ok'); await linkedApp(d, '1.0.0'); return d; })(), '1.0.0');
  const before = await snapshotDir(t.repo);
  const cases: [string, string, string, RegExp][] = [
    ['absolute', 'lib/passwd', '/etc/passwd', /absolute path/],
    ['".." escaping the root', 'lib/up', '../../outside', /outside the tree/],
    ['".." escaping through a link to the root', 'esc', 'lib/root/../x', /outside the tree/],
    ['dangling', 'lib/gone', 'nothing-here', /dangling/],
  ];
  for (const [i, [what, path, target, why]] of cases.entries()) {
    const app = join(tmp.path, `bad-${i}`);
    await linkedApp(app, '1.1.0');
    if (what.includes('link to the root')) await symlink('..', join(app, 'lib', 'root'));
    await symlink(target, join(app, path));
    const err = await assertCodeAsync(() => publishDir(t, app, '1.1.0'), 'ERR_UNSUPPORTED_FILE');
    assert.match(err.message, new RegExp(`${path} is a symlink`), what);
    assert.match(err.message, why, what);
  }
  assert.equal(await snapshotDir(t.repo), before, 'nothing reached the repository');
}));

release.run();

// ---------------------------------------------------------------------------------------------

const verify = suite('re-verification reads each link and compares its target exactly');

verify('a staged tree with its links as signed verifies; a retargeted, an extra or a replaced link does not', async () => {
  const tmp = await tempDir('ferry-links-verify-');
  try {
    const dir = join(tmp.path, 'tree');
    await linkedApp(dir, '1.0.0');
    const signed = await scanTree(dir);
    await verifyTree(dir, signed);

    await unlink(join(dir, 'main.js'));
    await symlink('lib/util.js', join(dir, 'main.js'));
    let err = await assertCodeAsync(() => verifyTree(dir, signed), 'ERR_UNSAFE_ARCHIVE');
    assert.match(err.message, /main\.js links to "lib\/util\.js", signed "server\.js"/);
    await unlink(join(dir, 'main.js'));
    await symlink('server.js', join(dir, 'main.js'));

    await symlink('/etc', join(dir, 'lib', 'etc'));
    err = await assertCodeAsync(() => verifyTree(dir, signed), 'ERR_UNSAFE_ARCHIVE');
    assert.match(err.message, /lib\/etc is a symlink, which is not in the signed file list/);
    await unlink(join(dir, 'lib', 'etc'));

    await unlink(join(dir, 'entry.js'));
    await writeFile(join(dir, 'entry.js'), 'export {};\n');
    await assertCodeAsync(() => verifyTree(dir, signed), 'ERR_HASH_MISMATCH');
    await unlink(join(dir, 'entry.js'));
    await assertCodeAsync(() => verifyTree(dir, signed), 'ERR_HASH_MISMATCH');
    await symlink('main.js', join(dir, 'entry.js'));
    await verifyTree(dir, signed);
  } finally {
    await tmp.cleanup();
  }
});

verify.run();

// ---------------------------------------------------------------------------------------------

const deltas = suite('a delta carries links added, changed, removed and unchanged (as `link` ops in old tar deltas, from the signed list in pack deltas)');

deltas('issue 14 item 5: makeDelta lists no link op and no unchanged file; applyDelta makes exactly the signed links, last', async () => {
  const tmp = await tempDir('ferry-links-delta-');
  try {
    const oldDir = join(tmp.path, 'old');
    const newDir = join(tmp.path, 'new');
    await linkedApp(oldDir, '1.0.0');
    await linkedApp(newDir, '1.1.0');
    await symlink('server.js', join(oldDir, 'gone.js')); // removed in 1.1.0
    await unlink(join(newDir, 'main.js'));
    await symlink('lib/util.js', join(newDir, 'main.js')); // changed
    await symlink('../server.js', join(newDir, 'bin', 'serve')); // added
    await rm(join(newDir, 'lib/deep/data.txt'));
    await writeFile(join(newDir, 'lib/deep/data.txt'), 'data\n'); // unchanged bytes
    await unlink(join(newDir, 'bin', 'util'));
    await writeFile(join(newDir, 'bin', 'util'), 'was a link, now a file\n'); // link → file
    await rm(join(newDir, 'server.js'));
    await symlink('lib/util.js', join(newDir, 'server.js')); // file → link
    const oldFiles = await scanTree(oldDir);
    const newFiles = await scanTree(newDir);
    const made = await makeDelta({ oldDir, oldFiles, newDir, newFiles, workDir: join(tmp.path, 'work'), outFile: join(tmp.path, 'delta'), patcher });
    const byPath = new Map<string, DeltaOp>(made.ops.map((op) => [op.path, op]));
    // issue 14 item 5: a 'pack' delta lists neither links nor unchanged files; the device makes
    // every link from the signed list and copies every unlisted file from the same path.
    assert.equal(made.ops.filter((op) => op.op === 'link'), [], 'no link ops: links come from the signed file list');
    assert.is(byPath.has('lib/deep/data.txt'), false, 'an unchanged file is implied, not listed');
    assert.is(byPath.get('bin/util')?.op, 'whole', 'a link turned file has no base to copy');
    assert.is(byPath.has('gone.js'), false);
    for (const path of ['main.js', 'entry.js', 'bin/serve', 'server.js']) assert.ok(newFiles.some((f) => f.path === path && isLink(f)), `${path} is a signed link`);

    const out = join(tmp.path, 'out');
    await mkdir(out);
    await applyDelta({ baseDir: oldDir, ops: made.ops, targetFiles: newFiles, artifact: made.artifact, outDir: out, workDir: join(tmp.path, 'apply'), patcher });
    assert.equal(await scanTree(out), newFiles, 'the rebuilt tree is exactly the new list, links and all');
    await verifyTree(out, newFiles);
  } finally {
    await tmp.cleanup();
  }
});

deltas('a copy op whose base path is a link in the base tree is not read through it (ERR_HASH_MISMATCH)', async () => {
  const tmp = await tempDir('ferry-links-delta-');
  try {
    const base = join(tmp.path, 'base');
    await writeTree(base, { 'real.txt': 'secret bytes\n' });
    await symlink('real.txt', join(base, 'alias.txt'));
    await mkdir(join(tmp.path, 'outside'));
    await writeFile(join(tmp.path, 'outside', 'x'), 'secret bytes\n');
    await symlink('../outside', join(base, 'dir'));
    const content = 'secret bytes\n';
    const target: TreeEntry[] = [{ path: 'copy.txt', size: content.length, sha256: sha256(content), mode: 0o644 }];
    // A copy op needs no entry: the delta artifact holds only a folder entry.
    const artifact = join(tmp.path, 'empty.tar');
    await writeFile(artifact, tarBytes([{ name: 'e/', type: 'dir' }]));
    for (const [i, from] of ['alias.txt', 'dir/x'].entries()) {
      const out = join(tmp.path, `out-${i}`);
      await mkdir(out);
      const err = await assertCodeAsync(() => applyDelta({
        baseDir: base, ops: [{ op: 'copy', path: 'copy.txt', from, sha256: sha256(content) }], targetFiles: target,
        artifact, outDir: out, workDir: join(tmp.path, `work-${i}`), patcher,
      }), 'ERR_HASH_MISMATCH');
      assert.match(err.message, /not a regular file/);
      assert.equal(await readdir(out), [], `${from}: nothing copied`);
    }
  } finally {
    await tmp.cleanup();
  }
});

deltas.run();

// ---------------------------------------------------------------------------------------------

const npm = suite('a real node_modules tree (npm install of a local package, offline) publishes, installs and updates by delta');

/** A package folder with bins `bins` (name → file), each file a tiny node script. */
async function localPackage(dir: string, version: string, bins: Record<string, string>): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'package.json'), JSON.stringify({ name: 'local-pkg', version, bin: bins }, null, 2));
  for (const rel of Object.values(bins)) {
    await mkdir(join(dir, rel, '..'), { recursive: true });
    await writeFile(join(dir, rel), `#!/usr/bin/env node\nconsole.log('${rel} ${version}');\n`);
  }
}

/** `npm install <pkg>` into `app`, offline; --install-links copies the package in rather than linking out of the tree. */
async function npmInstall(app: string, pkg: string, cache: string): Promise<void> {
  await execFileP('npm', ['install', pkg, '--install-links', '--offline', '--no-audit', '--no-fund', '--ignore-scripts', '--no-update-notifier'], {
    cwd: app,
    env: { ...process.env, npm_config_cache: cache, npm_config_registry: 'http://127.0.0.1:9/' },
    timeout: 120_000,
  });
}

npm('npm\'s .bin links are signed, staged as the same links, and a changed link arrives by delta', async () => {
  const tmp = await tempDir('ferry-links-npm-');
  const t = await makeRepo();
  const device = await makeDevice({ trust: await t.trust(), sources: [t.repo] });
  try {
    const cache = join(tmp.path, 'npm-cache');
    const app1 = join(tmp.path, 'app-1');
    // The unchanged asset makes the full artifact big enough that a delta is worth publishing.
    await writeTree(app1, { 'package.json': JSON.stringify({ name: 'app', version: '1.0.0', private: true }), 'server.js': 'console.log("app");\n', 'assets/big.bin': pseudoRandomBytes(300_000, 7) });
    await localPackage(join(tmp.path, 'pkg-1'), '1.0.0', { 'local-cli': 'bin/cli.js', 'local-old': 'bin/old.js' });
    await npmInstall(app1, join(tmp.path, 'pkg-1'), cache);
    const bin1 = await readlink(join(app1, 'node_modules/.bin/local-cli'));
    assert.is(bin1, '../local-pkg/bin/cli.js', 'npm made the .bin link');
    await symlink('node_modules/.bin/local-cli', join(app1, 'start')); // a link to a link, the same in both releases

    const r1 = await publishDir(t, app1, '1.0.0');
    const links1 = r1.manifest.targets[T]!.files.filter(isLink);
    assert.ok(links1.some((l) => l.path === 'node_modules/.bin/local-old'), 'every .bin link is signed');
    const a1 = await device.with((u) => u.apply());
    assert.is(a1.status, 'committed');
    await assertInstalled(device, r1.manifest);
    assert.is(await readlink(join(device.layout.current, 'node_modules/.bin/local-cli')), bin1, 'readlink of the staged link equals the original');
    assert.is(await readFile(join(device.layout.current, 'start'), 'utf8'), await readFile(join(app1, 'node_modules/local-pkg/bin/cli.js'), 'utf8'), 'the links resolve inside the installed release');

    // 1.1.0: local-cli now points elsewhere, local-old is gone, local-new is added.
    const app2 = join(tmp.path, 'app-2');
    await cp(app1, app2, { recursive: true, verbatimSymlinks: true });
    await localPackage(join(tmp.path, 'pkg-2'), '2.0.0', { 'local-cli': 'bin/cli2.js', 'local-new': 'bin/new.js' });
    await npmInstall(app2, join(tmp.path, 'pkg-2'), cache);
    const bin2 = await readlink(join(app2, 'node_modules/.bin/local-cli'));
    assert.is(bin2, '../local-pkg/bin/cli2.js', 'npm changed the .bin link');
    const r2 = await publishDir(t, app2, '1.1.0');
    const delta = r2.manifest.targets[T]!.deltas.find((d) => d.from === '1.0.0');
    assert.ok(delta, '1.1.0 has a delta from 1.0.0');
    assert.ok(r2.manifest.targets[T]!.files.some((f) => f.path === 'node_modules/.bin/local-cli' && isLink(f) && f.target === bin2), 'the changed link is signed in the file list');
    assert.is(delta!.layout, 'pack');
    assert.ok(!delta!.ops.some((op) => op.path === 'node_modules/.bin/local-cli'), 'a pack delta makes its links from the signed list, not from ops');
    const report = await verifyRepository(createDirSource(t.repo), await t.trust(), { now: new Date(), scratch: tmp.path, partial: false });
    assert.equal(report.problems, [], '`ferry verify` finds the repository with links sound');

    const a2 = await device.with((u) => u.apply());
    assert.is(a2.status, 'committed');
    if (a2.status !== 'committed') return;
    assert.is(a2.record.kind, 'delta', 'installed by delta');
    await assertInstalled(device, r2.manifest);
    assert.is(await readlink(join(device.layout.current, 'node_modules/.bin/local-cli')), bin2);
    assert.is(await readlink(join(device.layout.current, 'node_modules/.bin/local-new')), await readlink(join(app2, 'node_modules/.bin/local-new')));
    assert.is(await lstat(join(device.layout.current, 'node_modules/.bin/local-old')).then(() => 'present', (e: NodeJS.ErrnoException) => e.code), 'ENOENT', 'the removed link is gone');

    // A rollback re-verifies its target with the links: back to 1.0.0 as signed; then 1.1.0's
    // link retargeted on disk stops the way back to 1.1.0.
    await device.with(async (u) => {
      const back = await u.rollback();
      assert.is(back.outcome, 'committed');
      assert.is(back.to, '1.0.0');
    });
    await assertInstalled(device, r1.manifest);
    const planted = join(device.layout.release('1.1.0'), 'node_modules/.bin/local-cli');
    await unlink(planted);
    await symlink('/etc/passwd', planted);
    await device.with(async (u) => {
      const err = await assertCodeAsync(() => u.rollback(), 'ERR_UNSAFE_ARCHIVE');
      assert.match(err.message, /local-cli links to "\/etc\/passwd"/);
    });
    assert.is(await device.current(), '1.0.0', 'nothing switched');
  } finally {
    await cleanupAll(device, t, tmp);
  }
});

npm.run();
