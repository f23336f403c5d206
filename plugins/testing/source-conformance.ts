// The one suite every Source runs (ARCHITECTURE.md "Transports"): the built-in transports run it in
// test/plugins/conformance.test.ts, and a third-party transport runs the same cases to prove
// itself. It builds a real signed repository with two releases (./repo.ts), hands its folder to
// `make`, and checks the contract of core/ports/source.ts on what `make` returns: whole reads,
// absent files, caps, resumed copies, refused paths.
//
// It needs no test framework: cases are handed to a registrar ({ test, before?, after? } — uvu's
// suite, node:test's test/before/after, or runSourceConformance's own loop) and assert with
// node:assert, so the package ships it with its production dependencies only.

import assert from 'node:assert/strict';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Source } from '../../core/ports/source.ts';
import { assertRefused } from './assert-refused.ts';
import { makeRepo, type TestRepo } from './repo.ts';
import { sampleApp } from './sample-app.ts';
import { tempDir, type TempDir } from './temp-dir.ts';

/** Versions the suite publishes; a maker that needs them (one writing a bundle) may rely on these. */
export const CONFORMANCE_VERSIONS = ['1.0.0', '1.1.0'] as const;

/** What `make` returns: the Source under test, and how to stop it (servers, temp folders). */
export interface ConformanceSubject {
  source: Source;
  close(): Promise<void>;
}

/** Makes the Source under test over the repository folder `repoDir` (serve it, bundle it, copy it…). */
export type MakeSubject = (repoDir: string) => Promise<ConformanceSubject>;

/**
 * Where the cases go. `test` is called once per case, in order, and cases must run in that order
 * (they share one repository and one subject). Without `before`, the repository is built by the
 * first case; without `after`, a last case closes the subject and removes the temp folders.
 */
export interface TestRegistrar {
  test(title: string, fn: () => Promise<void>): void;
  before?(fn: () => Promise<void>): void;
  after?(fn: () => Promise<void>): void;
}

interface Fixture {
  repo: TestRepo;
  subject: ConformanceSubject;
  scratch: TempDir;
  /** Path (in the repository) of the latest release's full artifact. */
  artifact: string;
  artifactBytes: Buffer;
}

const sizeOrNull = (p: string) => stat(p).then((s) => s.size, () => null);

/** Registers the conformance cases for the Source `make` builds; `name` labels assertion messages. */
export function sourceConformance(name: string, make: MakeSubject, registrar: TestRegistrar): void {
  let made: { repo?: TestRepo; scratch?: TempDir; subject?: ConformanceSubject } = {};
  let setup: Promise<Fixture> | undefined;
  let dests = 0;

  async function build(): Promise<Fixture> {
    const repo = (made.repo = await makeRepo());
    await repo.release(CONFORMANCE_VERSIONS[0], sampleApp(CONFORMANCE_VERSIONS[0]));
    const latest = await repo.release(CONFORMANCE_VERSIONS[1], sampleApp(CONFORMANCE_VERSIONS[1]));
    const artifactBytes = await readFile(join(repo.repo, latest.full.path));
    const scratch = (made.scratch = await tempDir('ferry-conformance-'));
    const subject = (made.subject = await make(repo.repo));
    return { repo, subject, scratch, artifact: latest.full.path, artifactBytes };
  }
  const fixture = () => (setup ??= build());
  const dest = (f: Fixture) => join(f.scratch.path, `dest-${dests++}`);

  async function teardown(): Promise<void> {
    // Whatever part of the setup was made is undone, even when the setup failed half-way.
    await setup?.catch(() => {});
    const { subject, scratch, repo } = made;
    made = {};
    // Each step runs even when one before it fails (a subject whose close throws still gets its
    // temp folders removed); the first failure is what the teardown reports.
    const failures: unknown[] = [];
    for (const step of [() => subject?.close(), () => scratch?.cleanup(), () => repo?.cleanup()]) {
      await Promise.resolve().then(step).catch((err: unknown) => { failures.push(err); });
    }
    if (failures.length > 0) throw failures[0];
  }

  const source = async () => (await fixture()).subject.source;
  const cases: [string, () => Promise<void>][] = [
    ['declares offline as a boolean and has a name', async () => {
      const s = await source();
      assert.equal(typeof s.offline, 'boolean', `${name}: offline is a boolean`);
      assert.equal(typeof s.name, 'string', `${name}: name is a string`);
      assert.ok(s.name.length > 0, `${name}: name is not empty`);
    }],

    ['read returns the exact bytes of root.json', async () => {
      const f = await fixture();
      const want = await readFile(join(f.repo.repo, 'root.json'));
      const got = await f.subject.source.read('root.json', 512 * 1024);
      assert.ok(got, `${name}: root.json is there`);
      assert.ok(Buffer.from(got).equals(want), `${name}: same bytes as the file`);
      const exact = await f.subject.source.read('root.json', want.length);
      assert.ok(exact && Buffer.from(exact).equals(want), `${name}: a cap equal to the size is not exceeded`);
    }],

    ['read of a missing path is undefined', async () => {
      const s = await source();
      assert.equal(await s.read('root/99.json', 1024), undefined, `${name}: a missing root version`);
      assert.equal(await s.read('releases/9.9.9/nothing.tar', 1024), undefined, `${name}: a missing artifact`);
    }],

    ['read over maxBytes is ERR_TOO_LARGE', async () => {
      const f = await fixture();
      const size = (await stat(join(f.repo.repo, 'root.json'))).size;
      await assertRefused(() => f.subject.source.read('root.json', size - 1), 'ERR_TOO_LARGE', `${name}: read of root.json capped one byte short`);
    }],

    ['fetch copies an artifact byte for byte', async () => {
      const f = await fixture();
      const d = dest(f);
      assert.equal(await f.subject.source.fetch(f.artifact, d, f.artifactBytes.length), true, `${name}: fetch reports the artifact found`);
      assert.ok((await readFile(d)).equals(f.artifactBytes), `${name}: same bytes as the artifact`);
    }],

    ['fetch with an offset appends only the rest to a partial file', async () => {
      const f = await fixture();
      for (const n of [1, 4096, f.artifactBytes.length - 1]) {
        const d = dest(f);
        await writeFile(d, f.artifactBytes.subarray(0, n));
        assert.equal(await f.subject.source.fetch(f.artifact, d, f.artifactBytes.length, n), true, `${name}: resumed from ${n}: found`);
        const got = await readFile(d);
        assert.equal(got.length, f.artifactBytes.length, `${name}: resumed from ${n}: length`);
        assert.ok(got.equals(f.artifactBytes), `${name}: resumed from ${n}: same bytes`);
      }
    }],

    ['fetch of a missing path is false and writes nothing', async () => {
      const f = await fixture();
      const d = dest(f);
      assert.equal(await f.subject.source.fetch('releases/9.9.9/nothing.tar', d, 1024), false, `${name}: fetch reports the file absent`);
      assert.equal(await sizeOrNull(d), null, `${name}: no file was created`);
    }],

    ['fetch over maxBytes is ERR_TOO_LARGE and never writes past the cap', async () => {
      const f = await fixture();
      const d = dest(f);
      const cap = f.artifactBytes.length - 1;
      await assertRefused(() => f.subject.source.fetch(f.artifact, d, cap), 'ERR_TOO_LARGE', `${name}: fetch capped one byte short`);
      const left = await sizeOrNull(d);
      assert.ok(left === null || left <= cap, `${name}: partial file of ${left} bytes is within the ${cap}-byte cap`);
    }],

    ['unsafe paths are refused with ERR_UNSAFE_ARCHIVE', async () => {
      const f = await fixture();
      for (const p of ['../x', '/etc/passwd', 'a/../../x', 'releases/./x', '']) {
        await assertRefused(() => f.subject.source.read(p, 1024), 'ERR_UNSAFE_ARCHIVE', `${name}: read of ${JSON.stringify(p)}`);
        await assertRefused(() => f.subject.source.fetch(p, dest(f), 1024), 'ERR_UNSAFE_ARCHIVE', `${name}: fetch of ${JSON.stringify(p)}`);
      }
    }],
  ];

  if (registrar.before) registrar.before(async () => { await fixture(); });
  for (const [title, fn] of cases) registrar.test(title, fn);
  if (registrar.after) registrar.after(teardown);
  else registrar.test('closes the source and removes its temp folders', teardown);
}

/** One case's outcome from runSourceConformance. */
export interface ConformanceResult {
  title: string;
  passed: boolean;
  error?: unknown;
}

/**
 * Runs the suite without a test framework: every case in order, a failure recorded and the next
 * case run, the teardown always last. Resolves with one result per case (teardown included).
 */
export async function runSourceConformance(name: string, make: MakeSubject): Promise<ConformanceResult[]> {
  const cases: { title: string; fn: () => Promise<void> }[] = [];
  let teardown: (() => Promise<void>) | undefined;
  sourceConformance(name, make, {
    test: (title, fn) => { cases.push({ title, fn }); },
    after: (fn) => { teardown = fn; },
  });
  const results: ConformanceResult[] = [];
  const attempt = async (title: string, fn: () => Promise<void>) => {
    try {
      await fn();
      results.push({ title, passed: true });
    } catch (error) {
      results.push({ title, passed: false, error });
    }
  };
  for (const c of cases) await attempt(c.title, c.fn);
  if (teardown) await attempt('closes the source and removes its temp folders', teardown);
  return results;
}
