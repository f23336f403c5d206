// The signed manifest and channel documents (SECURITY.md rows 9, 11, 14-16): a well-formed
// document parses to exactly what it says, and every field that later steers the filesystem or
// the download plan is refused when it could mislead.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { sha256 } from '../../core/io/hash.ts';
import { manifestPath, parseChannelPayload, parseManifestPayload, regularFiles } from '../../core/trust/metadata.ts';
import { checkPathSet, checkRelativePath, MAX_PATH_DEPTH } from '../../core/io/safe-path.ts';
import { assertCode } from '../helpers/assert-code.ts';

const MiB = 1024 * 1024;
const h = (s: string) => sha256(s);
const APP_SHA = h('bin/app v1.2.0');
const README_SHA = h('README.md');

// Plain objects the tests copy and break; `any` keeps the mutations short and readable.
type Doc = any;

function goodManifest(): Doc {
  return {
    type: 'ferry/manifest',
    app: 'demo',
    version: '1.2.0',
    releaseDate: '2024-05-01T12:00:00.000Z',
    releaseNotes: 'Fixes the thing.',
    mandatory: false,
    securityFix: true,
    targets: {
      'linux-x64': {
        files: [
          { path: 'bin/app', size: 10, sha256: APP_SHA, mode: 0o755 },
          { path: 'README.md', size: 9, sha256: README_SHA, mode: 0o644 },
        ],
        full: { path: 'releases/1.2.0/linux-x64.tar', size: 3 * MiB + 1, sha256: h('full'), chunkSize: MiB, chunks: [h('c0'), h('c1'), h('c2'), h('c3')] },
        deltas: [
          {
            from: '1.1.0',
            artifact: { path: 'releases/1.2.0/linux-x64-from-1.1.0.tar', size: 100, sha256: h('delta'), chunkSize: MiB, chunks: [h('d0')] },
            ops: [
              { op: 'patch', path: 'bin/app', from: 'bin/app', baseSha256: h('bin/app v1.1.0'), sha256: APP_SHA, entry: { path: 'bin/app.bsdiff', size: 40, sha256: h('patch') } },
              { op: 'copy', path: 'README.md', from: 'README.md', sha256: README_SHA },
            ],
          },
        ],
      },
    },
  };
}

function goodChannel(): Doc {
  return {
    type: 'ferry/channel',
    app: 'demo',
    channel: 'stable',
    sequence: 7,
    expires: '2030-01-01T00:00:00.000Z',
    targets: {
      'linux-x64': { version: '1.2.0', manifest: { path: 'releases/1.2.0/manifest.json', size: 2048, sha256: h('manifest') } },
    },
  };
}

const bytes = (doc: Doc) => Buffer.from(JSON.stringify(doc));
const target = (m: Doc) => m.targets['linux-x64'];

/** Parses a copy of the good manifest after `change` has broken it. */
function manifestWith(change: (m: Doc) => void) {
  const m = goodManifest();
  change(m);
  return () => parseManifestPayload(bytes(m));
}

function channelWith(change: (c: Doc) => void) {
  const c = goodChannel();
  change(c);
  return () => parseChannelPayload(bytes(c));
}

// ---------------------------------------------------------------------------------------------

const wellFormed = suite('accepts well-formed documents as written');

wellFormed('parses a manifest to the same values it was written with', () => {
  const doc = parseManifestPayload(bytes(goodManifest()));
  assert.is(doc.version, '1.2.0');
  assert.is(doc.securityFix, true);
  const t = doc.targets['linux-x64'];
  assert.ok(t);
  assert.equal(regularFiles(t!.files).map((f) => [f.path, f.mode]), [['bin/app', 0o755], ['README.md', 0o644]]);
  assert.is(t!.full.chunks.length, 4);
  assert.is(t!.deltas[0]?.from, '1.1.0');
  assert.equal(t!.deltas[0]?.ops.map((o) => o.op), ['patch', 'copy']);
  assert.equal(JSON.parse(JSON.stringify(doc)), goodManifest());
});

wellFormed('parses a channel for every channel name', () => {
  for (const name of ['stable', 'beta', 'nightly', 'security']) {
    const doc = parseChannelPayload(bytes({ ...goodChannel(), channel: name }));
    assert.is(doc.channel, name);
    assert.is(doc.sequence, 7);
    assert.equal(doc.targets['linux-x64'], goodChannel().targets['linux-x64']);
  }
  assert.is(manifestPath('1.2.0'), 'releases/1.2.0/manifest.json');
});

wellFormed('accepts a prerelease version and a mode of exactly 0777', () => {
  const m = goodManifest();
  m.version = '2.0.0-rc.1';
  target(m).files[0].mode = 0o777;
  assert.is(parseManifestPayload(bytes(m)).version, '2.0.0-rc.1');
  const c = goodChannel();
  c.targets['linux-x64'] = { version: '2.0.0-rc.1', manifest: { path: 'releases/2.0.0-rc.1/manifest.json', size: 1, sha256: h('m') } };
  assert.is(parseChannelPayload(bytes(c)).targets['linux-x64']?.version, '2.0.0-rc.1');
});

wellFormed.run();

// ---------------------------------------------------------------------------------------------

const unsafePaths = suite('refuses unsafe paths anywhere in a manifest');

const UNSAFE = ['../x', '/abs', 'a/./b', 'a/../../b', './a', 'a//b', 'a/', '', 'a\\..\\b', 'a\0b'];

unsafePaths('refuses "../x", "/abs", "a/./b" and other unsafe file paths (ERR_UNSAFE_ARCHIVE)', () => {
  for (const p of UNSAFE) {
    assertCode(manifestWith((m) => { target(m).files[1].path = p; target(m).deltas = []; }), 'ERR_UNSAFE_ARCHIVE');
  }
});

unsafePaths('refuses unsafe artifact, patch entry and copy source paths (ERR_UNSAFE_ARCHIVE)', () => {
  for (const p of ['../x', '/abs', 'a/./b']) {
    assertCode(manifestWith((m) => { target(m).full.path = p; }), 'ERR_UNSAFE_ARCHIVE');
    assertCode(manifestWith((m) => { target(m).deltas[0].artifact.path = p; }), 'ERR_UNSAFE_ARCHIVE');
    assertCode(manifestWith((m) => { target(m).deltas[0].ops[0].entry.path = p; }), 'ERR_UNSAFE_ARCHIVE');
    assertCode(manifestWith((m) => { target(m).deltas[0].ops[0].from = p; }), 'ERR_UNSAFE_ARCHIVE');
    assertCode(manifestWith((m) => { target(m).deltas[0].ops[1].from = p; }), 'ERR_UNSAFE_ARCHIVE');
  }
});

unsafePaths('refuses an unsafe channel manifest path (ERR_UNSAFE_ARCHIVE)', () => {
  assertCode(channelWith((c) => { c.targets['linux-x64'].manifest.path = '../releases/1.2.0/manifest.json'; }), 'ERR_UNSAFE_ARCHIVE');
});

unsafePaths('refuses a 1,100-deep file path in a manifest (ERR_UNSAFE_ARCHIVE)', () => {
  assertCode(manifestWith((m) => { target(m).files[1].path = 'a/'.repeat(1099) + 'a'; target(m).deltas = []; }), 'ERR_UNSAFE_ARCHIVE');
});

unsafePaths.run();

// ---------------------------------------------------------------------------------------------

const fileList = suite('refuses file lists that cannot be one tree');

fileList('refuses a mode with the setuid bit (0o4755), setgid or sticky (ERR_SCHEMA)', () => {
  for (const mode of [0o4755, 0o2755, 0o1777, 0o7777, 0o10644]) {
    const err = assertCode(manifestWith((m) => { target(m).files[0].mode = mode; }), 'ERR_SCHEMA');
    assert.match(err.message, /beyond 0777/);
  }
});

fileList('refuses a negative or fractional mode (ERR_SCHEMA / ERR_JSON)', () => {
  assertCode(manifestWith((m) => { target(m).files[0].mode = -1; }), 'ERR_SCHEMA');
  assertCode(manifestWith((m) => { target(m).files[0].mode = 420.5; }), 'ERR_JSON');
});

fileList('refuses a file listed twice (ERR_SCHEMA)', () => {
  const err = assertCode(manifestWith((m) => {
    const t = target(m);
    t.files.push({ ...t.files[0] });
    t.deltas = [];
  }), 'ERR_SCHEMA');
  assert.match(err.message, /listed twice/);
});

fileList('refuses "a" and "a/b" both as files, in either order (ERR_SCHEMA)', () => {
  for (const order of [['a', 'a/b'], ['a/b', 'a'], ['x/y', 'x/y/z/w']]) {
    const err = assertCode(manifestWith((m) => {
      const t = target(m);
      t.files = order.map((p) => ({ path: p, size: 1, sha256: h(p), mode: 0o644 }));
      t.deltas = [];
    }), 'ERR_SCHEMA');
    assert.match(err.message, /both a file and a directory/);
  }
});

fileList('checkPathSet accepts siblings that only share a prefix ("a" and "ab/c")', () => {
  checkPathSet(['a', 'ab/c', 'a.d/e'], 'files');
});

fileList.run();

// ---------------------------------------------------------------------------------------------

const artifacts = suite('refuses artifacts and deltas that do not match what they describe');

artifacts('refuses a chunk list one short or one long for the size (ERR_SCHEMA)', () => {
  assertCode(manifestWith((m) => { target(m).full.chunks.pop(); }), 'ERR_SCHEMA');
  assertCode(manifestWith((m) => { target(m).full.chunks.push(h('extra')); }), 'ERR_SCHEMA');
  assertCode(manifestWith((m) => { target(m).full.size = 3 * MiB; }), 'ERR_SCHEMA'); // exactly 3 chunks' worth
  assertCode(manifestWith((m) => { target(m).deltas[0].artifact.chunks = []; }), 'ERR_SCHEMA');
});

artifacts('accepts one chunk hash for an empty artifact, and none is refused', () => {
  const m = goodManifest();
  target(m).deltas[0].artifact.size = 0;
  assert.is(parseManifestPayload(bytes(m)).targets['linux-x64']?.deltas[0]?.artifact.chunks.length, 1);
  assertCode(manifestWith((mm) => { target(mm).full.size = 0; target(mm).full.chunks = []; }), 'ERR_SCHEMA');
});

artifacts('refuses a chunk size of 0 (ERR_SCHEMA)', () => {
  assertCode(manifestWith((m) => { target(m).full.chunkSize = 0; }), 'ERR_SCHEMA');
});

artifacts('refuses delta ops that do not match the file list one to one (ERR_SCHEMA)', () => {
  const changes: Record<string, (m: Doc) => void> = {
    'one op missing': (m) => target(m).deltas[0].ops.pop(),
    'one op too many': (m) => target(m).deltas[0].ops.push({ op: 'copy', path: 'extra', from: 'extra', sha256: h('extra') }),
    'ops in another order': (m) => target(m).deltas[0].ops.reverse(),
    'an op for another path': (m) => { target(m).deltas[0].ops[1].path = 'README.txt'; },
    'an op building other bytes': (m) => { target(m).deltas[0].ops[0].sha256 = h('something else'); },
  };
  for (const [why, change] of Object.entries(changes)) {
    const err = assertCode(manifestWith(change), 'ERR_SCHEMA');
    assert.match(err.message, /do not match the file list/, why);
  }
});

artifacts('refuses an unknown delta op and a non-semver delta base (ERR_SCHEMA)', () => {
  assertCode(manifestWith((m) => { target(m).deltas[0].ops[1].op = 'hardlink'; }), 'ERR_SCHEMA');
  assertCode(manifestWith((m) => { target(m).deltas[0].from = 'v1.1.0'; }), 'ERR_SCHEMA');
});

artifacts.run();

// ---------------------------------------------------------------------------------------------

const names = suite('refuses channel names and versions outside the formats');

names('refuses a channel outside stable, beta, nightly and security (ERR_SCHEMA)', () => {
  for (const name of ['alpha', 'Stable', 'stable ', '', 'canary', '../stable']) {
    assertCode(channelWith((c) => { c.channel = name; }), 'ERR_SCHEMA');
  }
});

names('refuses a version that is not exactly a semver version (ERR_SCHEMA)', () => {
  for (const v of ['v1.2.0', '1.2', '1.2.0.1', '01.2.0', ' 1.2.0', '1.2.0 ', 'latest', '=1.2.0']) {
    assertCode(manifestWith((m) => { m.version = v; }), 'ERR_SCHEMA');
    assertCode(channelWith((c) => {
      c.targets['linux-x64'] = { version: v, manifest: { path: `releases/${v.trim()}/manifest.json`, size: 1, sha256: h('m') } };
    }), 'ERR_SCHEMA');
  }
});

names('refuses a channel whose manifest.path does not match its version (ERR_SCHEMA)', () => {
  for (const path of ['releases/1.1.0/manifest.json', 'releases/1.2.0/other.json', 'releases/1.2.0/manifest.json.sig', 'manifest.json']) {
    const err = assertCode(channelWith((c) => { c.targets['linux-x64'].manifest.path = path; }), 'ERR_SCHEMA');
    assert.match(err.message, /must be releases\/1\.2\.0\/manifest\.json/);
  }
});

names('refuses a target key that is not platform-arch, including "__proto__" (ERR_SCHEMA)', () => {
  for (const key of ['linux', 'linux-x64-extra', 'Linux-x64', '__proto__']) {
    const m = goodManifest();
    const text = JSON.stringify(m).replace('"linux-x64"', JSON.stringify(key));
    assertCode(() => parseManifestPayload(Buffer.from(text)), 'ERR_SCHEMA');
  }
  assert.is(({} as Record<string, unknown>).files, undefined);
});

names('refuses a duplicate "version" key in a manifest (ERR_JSON)', () => {
  const text = JSON.stringify(goodManifest()).replace('"version":"1.2.0"', '"version":"1.2.0","version":"9.9.9"');
  assertCode(() => parseManifestPayload(Buffer.from(text)), 'ERR_JSON');
});

names('refuses a channel sequence of 0 or above 2^53 (ERR_SCHEMA / ERR_JSON)', () => {
  assertCode(channelWith((c) => { c.sequence = 0; }), 'ERR_SCHEMA');
  const text = JSON.stringify(goodChannel()).replace('"sequence":7', '"sequence":9007199254740993');
  assertCode(() => parseChannelPayload(Buffer.from(text)), 'ERR_JSON');
});

names.run();

// ---------------------------------------------------------------------------------------------

const depth = suite('refuses paths too deep or too long');

depth('refuses a 1,100-deep path (ERR_UNSAFE_ARCHIVE)', () => {
  const path = Array.from({ length: 1100 }, () => 'a').join('/');
  assert.is(path.split('/').length, 1100);
  assertCode(() => checkRelativePath(path, 'entry'), 'ERR_UNSAFE_ARCHIVE');
});

depth('accepts exactly MAX_PATH_DEPTH segments and refuses one more, even when short', () => {
  assert.is(MAX_PATH_DEPTH, 32);
  const ok = Array.from({ length: 32 }, () => 'a').join('/');
  assert.is(checkRelativePath(ok, 'entry'), ok);
  const err = assertCode(() => checkRelativePath(`${ok}/a`, 'entry'), 'ERR_UNSAFE_ARCHIVE');
  assert.match(err.message, /deeper than 32/);
});

depth('refuses a path over 1024 bytes and a segment over 255 bytes', () => {
  assertCode(() => checkRelativePath('a'.repeat(200) + '/' + 'b'.repeat(200) + '/' + 'c'.repeat(200) + '/' + 'd'.repeat(200) + '/' + 'e'.repeat(230), 'entry'), 'ERR_UNSAFE_ARCHIVE');
  assertCode(() => checkRelativePath('x'.repeat(256), 'entry'), 'ERR_UNSAFE_ARCHIVE');
  assert.is(checkRelativePath('x'.repeat(255), 'entry'), 'x'.repeat(255));
});

depth.run();
