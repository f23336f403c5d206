// The one test suite every Source runs (DESIGN.md "Transports", STYLE.md: a shared suite, the way
// abstract-level's implementations all run one). It builds a real signed repository with two
// releases and checks the contract of core/ports/source.ts: whole reads, absent files, caps, resumable
// copies, refused paths. A transport passes this before anything transport-specific is tested.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeRepo, sampleApp, tempDir, type TempDir, type TestRepo } from '../helpers/repo.ts';
import { assertCodeAsync } from '../helpers/assert-code.ts';
import type { Source } from '../../core/ports/source.ts';

/** Versions the suite publishes; a maker that needs them (a bundle) may rely on these. */
export const CONFORMANCE_VERSIONS = ['1.0.0', '1.1.0'] as const;

export interface ConformanceSubject {
  source: Source;
  close(): Promise<void>;
}

interface Context {
  repo: TestRepo;
  subject: ConformanceSubject;
  scratch: TempDir;
  /** Path (in the repository) of the latest release's full artifact. */
  artifact: string;
  artifactBytes: Buffer;
  dests: number;
}

const sizeOrNull = (p: string) => stat(p).then((s) => s.size, () => null);

export function sourceConformance(name: string, make: (repoDir: string) => Promise<ConformanceSubject>): void {
  const s = suite<Context>(`Source conformance: ${name}`, {} as Context);
  const dest = (ctx: Context) => join(ctx.scratch.path, `dest-${ctx.dests++}`);

  s.before(async (ctx) => {
    ctx.repo = await makeRepo();
    await ctx.repo.release(CONFORMANCE_VERSIONS[0], sampleApp(CONFORMANCE_VERSIONS[0]));
    const latest = await ctx.repo.release(CONFORMANCE_VERSIONS[1], sampleApp(CONFORMANCE_VERSIONS[1]));
    ctx.artifact = latest.full.path;
    ctx.artifactBytes = await readFile(join(ctx.repo.repo, latest.full.path));
    ctx.scratch = await tempDir('ferry-conformance-');
    ctx.dests = 0;
    ctx.subject = await make(ctx.repo.repo);
  });

  s.after(async (ctx) => {
    await ctx.subject?.close();
    await ctx.scratch?.cleanup();
    await ctx.repo?.cleanup();
  });

  s('declares offline as a boolean and has a name', (ctx) => {
    assert.type(ctx.subject.source.offline, 'boolean');
    assert.type(ctx.subject.source.name, 'string');
    assert.ok(ctx.subject.source.name.length > 0);
  });

  s('read returns the exact bytes of root.json', async (ctx) => {
    const want = await readFile(join(ctx.repo.repo, 'root.json'));
    const got = await ctx.subject.source.read('root.json', 512 * 1024);
    assert.ok(got, 'root.json is there');
    assert.ok(Buffer.from(got!).equals(want), 'same bytes as the file');
    const exact = await ctx.subject.source.read('root.json', want.length);
    assert.ok(exact && Buffer.from(exact).equals(want), 'a cap equal to the size is not exceeded');
  });

  s('read of a missing path is undefined', async (ctx) => {
    assert.is(await ctx.subject.source.read('root/99.json', 1024), undefined);
    assert.is(await ctx.subject.source.read('releases/9.9.9/nothing.tar', 1024), undefined);
  });

  s('read over maxBytes is ERR_TOO_LARGE', async (ctx) => {
    const size = (await stat(join(ctx.repo.repo, 'root.json'))).size;
    await assertCodeAsync(() => ctx.subject.source.read('root.json', size - 1), 'ERR_TOO_LARGE');
  });

  s('fetch copies an artifact byte for byte', async (ctx) => {
    const d = dest(ctx);
    assert.is(await ctx.subject.source.fetch(ctx.artifact, d, ctx.artifactBytes.length), true);
    assert.ok((await readFile(d)).equals(ctx.artifactBytes), 'same bytes as the artifact');
  });

  s('fetch with an offset appends only the rest to a partial file', async (ctx) => {
    for (const n of [1, 4096, ctx.artifactBytes.length - 1]) {
      const d = dest(ctx);
      await writeFile(d, ctx.artifactBytes.subarray(0, n));
      assert.is(await ctx.subject.source.fetch(ctx.artifact, d, ctx.artifactBytes.length, n), true);
      const got = await readFile(d);
      assert.is(got.length, ctx.artifactBytes.length, `resumed from ${n}: length`);
      assert.ok(got.equals(ctx.artifactBytes), `resumed from ${n}: same bytes`);
    }
  });

  s('fetch of a missing path is false and writes nothing', async (ctx) => {
    const d = dest(ctx);
    assert.is(await ctx.subject.source.fetch('releases/9.9.9/nothing.tar', d, 1024), false);
    assert.is(await sizeOrNull(d), null, 'no file was created');
  });

  s('fetch over maxBytes is ERR_TOO_LARGE and never writes past the cap', async (ctx) => {
    const d = dest(ctx);
    const cap = ctx.artifactBytes.length - 1;
    await assertCodeAsync(() => ctx.subject.source.fetch(ctx.artifact, d, cap), 'ERR_TOO_LARGE');
    const left = await sizeOrNull(d);
    assert.ok(left === null || left <= cap, `partial file of ${left} bytes is within the ${cap}-byte cap`);
  });

  s('unsafe paths are refused with ERR_UNSAFE_ARCHIVE', async (ctx) => {
    for (const p of ['../x', '/etc/passwd', 'a/../../x', 'releases/./x', '']) {
      await assertCodeAsync(() => ctx.subject.source.read(p, 1024), 'ERR_UNSAFE_ARCHIVE');
      await assertCodeAsync(() => ctx.subject.source.fetch(p, dest(ctx), 1024), 'ERR_UNSAFE_ARCHIVE');
    }
  });

  s.run();
}
