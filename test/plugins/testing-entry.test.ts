// ferry/testing (plugins/testing) proves Sources for third parties, so it must tell a broken
// Source from a good one: run against Sources that break one rule each of core/ports/source.ts, the
// suite fails exactly the cases about that rule; run against the dir source it passes. The last
// case runs the BUILT package entry (dist/plugins/testing/index.js) in a Node process where uvu
// cannot be imported, as a transport author's project would, with no test framework at all.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { mkdtemp, open, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createDirSource } from '../../core/ports/dir-source.ts';
import type { Source } from '../../core/ports/source.ts';
import { runSourceConformance, type ConformanceResult, type MakeSubject } from '../../plugins/testing/index.ts';

const test = suite('ferry/testing: the Source conformance suite');

/** The dir source over `repoDir`, with some of its methods replaced. */
function brokenDirSource(change: (good: Source) => Partial<Source>): MakeSubject {
  return async (repoDir) => {
    const good = createDirSource(repoDir);
    return { source: { ...good, ...change(good) }, close: async () => {} };
  };
}

const failedTitles = (results: ConformanceResult[]) => results.filter((r) => !r.passed).map((r) => r.title).sort();

function describe(results: ConformanceResult[]): string {
  return results.map((r) => `${r.passed ? 'ok  ' : 'FAIL'} ${r.title}${r.passed ? '' : `: ${(r.error as Error)?.message ?? String(r.error)}`}`).join('\n');
}

test('the dir source passes every case, teardown included', async () => {
  const results = await runSourceConformance('dir source', async (repoDir) => ({ source: createDirSource(repoDir), close: async () => {} }));
  assert.ok(results.length >= 9, `the suite ran its cases:\n${describe(results)}`);
  assert.equal(failedTitles(results), [], describe(results));
});

test('a Source that ignores the offset of a resumed copy (wrong bytes for a range) fails the resume case only', async () => {
  // It writes the whole file after the partial bytes, as a transport that drops the Range header would.
  const results = await runSourceConformance('range-ignoring source', brokenDirSource((good) => ({
    fetch: (path, dest, maxBytes, offset = 0) => good.fetch(path, dest, maxBytes + offset, 0).then(async (found) => {
      if (!found || offset === 0) return found;
      // dir source truncated dest from 0: put the partial prefix back in front, so the file is prefix + whole.
      const whole = await readFile(dest);
      const prefix = whole.subarray(0, offset);
      await writeFile(dest, Buffer.concat([prefix, whole]));
      return true;
    }),
  })));
  assert.equal(failedTitles(results), ['fetch with an offset appends only the rest to a partial file'], describe(results));
});

test('a Source that never reports not-found (empty bytes, an empty file) fails the two not-found cases', async () => {
  const results = await runSourceConformance('never-absent source', brokenDirSource((good) => ({
    read: async (path, maxBytes) => (await good.read(path, maxBytes)) ?? new Uint8Array(0),
    fetch: async (path, dest, maxBytes, offset) => {
      if (await good.fetch(path, dest, maxBytes, offset)) return true;
      await (await open(dest, 'w')).close();
      return true;
    },
  })));
  assert.equal(failedTitles(results), ['fetch of a missing path is false and writes nothing', 'read of a missing path is undefined'], describe(results));
});

test('a Source that ignores maxBytes fails both cap cases', async () => {
  const results = await runSourceConformance('uncapped source', brokenDirSource((good) => ({
    read: (path) => good.read(path, 64 * 1024 * 1024),
    fetch: (path, dest, _maxBytes, offset) => good.fetch(path, dest, 64 * 1024 * 1024, offset),
  })));
  assert.equal(failedTitles(results), ['fetch over maxBytes is ERR_TOO_LARGE and never writes past the cap', 'read over maxBytes is ERR_TOO_LARGE'], describe(results));
});

test('a Source whose close fails is reported by the teardown, which still removes its temp folders', async () => {
  // The suite's folders go under os.tmpdir(), which reads TMPDIR: a private one shows what is left.
  const tmp = await mkdtemp(join(tmpdir(), 'ferry-close-failing-'));
  const saved = process.env.TMPDIR;
  process.env.TMPDIR = tmp;
  try {
    const results = await runSourceConformance('close-failing source', async (repoDir) => ({
      source: createDirSource(repoDir),
      close: async () => { throw new Error('close failed'); },
    }));
    assert.equal(failedTitles(results), ['closes the source and removes its temp folders'], describe(results));
    assert.equal(await readdir(tmp), [], 'the repository and scratch folders are gone');
  } finally {
    if (saved === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = saved;
    await rm(tmp, { recursive: true, force: true });
  }
});

// The child imports only the built entry and the built dir source; the loader hook refuses uvu, so
// a stray import of the dev-only test framework anywhere in the package's graph fails the import.
const CHILD = `
import { register } from 'node:module';
register('data:text/javascript,' + encodeURIComponent(\`
  export async function resolve(specifier, context, next) {
    if (specifier === 'uvu' || specifier.startsWith('uvu/')) throw new Error('uvu imported by ' + context.parentURL);
    return next(specifier, context);
  }\`));
const { runSourceConformance } = await import(process.argv[1] + '/dist/plugins/testing/index.js');
const { createDirSource } = await import(process.argv[1] + '/dist/core/ports/dir-source.js');
const results = await runSourceConformance('dir source (built)', async (repoDir) => ({ source: createDirSource(repoDir), close: async () => {} }));
process.stdout.write(JSON.stringify(results.map((r) => ({ title: r.title, passed: r.passed, error: r.passed ? undefined : String(r.error) }))));
`;

test('the built entry runs with no test framework and uvu unreachable', async () => {
  const root = fileURLToPath(new URL('../..', import.meta.url)).replace(/\/$/, '');
  const child = spawn(process.execPath, ['--input-type=module', '-e', CHILD, 'file://' + root], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => { out += d; });
  child.stderr.on('data', (d) => { err += d; });
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  clearTimeout(timer);
  assert.is(code, 0, `child exited ${code}: ${err}`);
  const results = JSON.parse(out) as ConformanceResult[];
  assert.ok(results.length >= 9, out);
  assert.equal(failedTitles(results), [], out);
});

test.run();
