// Issue 13, "Updates that should have worked" (items 3, 4 and 5), through the real CLI: releases
// published by the real `ferry release` (or re-signed with the repository's own release key where a
// publisher would never make them), met by a real device home running `ferry update` and
// `ferry agent --once` in child processes.
//   3. every failure while building from a delta, other than running out of space, falls back to
//      the full artifact, with the reason in history, and leaves nothing for the agent to retry;
//   4. a signed full artifact that compresses far (a 96 MiB file of zeros) installs: expansion is
//      judged against the signed sizes, not a fixed ratio;
//   5. a release that only deletes files publishes a valid delta, and a device updates through it.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import { createWriteStream, readdirSync } from 'node:fs';
import { mkdir, readFile, rm, stat } from 'node:fs/promises';
import { once } from 'node:events';
import { join } from 'node:path';
import { brotliDecompressSync } from 'node:zlib';
import { extract } from 'tar';
import { FerryError, type ErrorCode } from '../../core/errors.ts';
import { classifyError } from '../../core/policy/agent-schedule.ts';
import { withFullFallback } from '../../core/update/delta-fallback.ts';
import type { Plan } from '../../core/update/plan.ts';
import { CHUNK_SIZE, digestFile, sha256 } from '../../core/io/hash.ts';
import { isLink, type DeltaOp, type FileEntry, type ManifestDoc } from '../../core/trust/metadata.ts';
import type { UpdateRecord } from '../../core/spec.ts';
import { EXIT_CODE } from '../../cli/exit-codes.ts';
import { describeRun, ferry, history, signedFiles, smallApp, TARGET, type Run } from '../helpers/crash.ts';
import { makeAdversarialFixture, makeScene, namesIn, NEW, OLD, type AdversarialFixture, type Scene } from '../helpers/adversarial-device.ts';
import { assertCompleteVersion } from '../helpers/refusal.ts';
import { rebuildDelta, wireDelta, type WireDelta } from '../helpers/hostile-delta.ts';
import { readPayload, resignManifest } from '../helpers/tamper.ts';
import { tempDir, writeTree, type TempDir, type TreeSpec } from '../helpers/repo.ts';

async function mustRun(args: string[]): Promise<Run> {
  const r = await ferry(args);
  assert.is(r.code, 0, `ferry ${args.slice(0, 2).join(' ')} exits 0: ${describeRun(r)}`);
  return r;
}

const recordFor = async (home: string, version: string): Promise<UpdateRecord[]> => ((await history(home)).records ?? []).filter((r) => r.to === version);

// ---------------------------------------------------------------------------------------------
// Item 3: a delta that fails falls back to the full artifact, whatever the failure.

let fx: AdversarialFixture;
const scenes: Scene[] = [];

async function scene(): Promise<Scene> {
  const s = await makeScene(fx);
  scenes.push(s);
  return s;
}

const update = (s: Scene) => ['update', '--home', s.home];

/** 1.1.0's delta from 1.0.0 as the scene's repository signs it (wire JSON) and its layout. */
async function signedDelta(s: Scene): Promise<WireDelta & { layout: 'pack' | 'tar' }> {
  const doc = await readPayload<ManifestDoc>(join(s.repoDir, 'releases', NEW, 'manifest.json'));
  const found = wireDelta(doc, OLD, TARGET);
  assert.ok(found, 'the genuine 1.1.0 has a delta from 1.0.0');
  return { ...found!.delta, layout: found!.layout };
}

/**
 * Re-signs 1.1.0 with the first `kind` op of its delta taking its base from `from`. A 'pack'
 * delta lists no copy of an unchanged file: then the first implied file gets a signed copy op.
 */
async function resignBase(s: Scene, kind: 'copy' | 'patch', from: string): Promise<string> {
  const delta = await signedDelta(s);
  let op = delta.ops.find((o) => o.op === kind);
  const files = fx.files.get(NEW)!;
  if (!op && kind === 'copy' && delta.layout === 'pack') {
    const listed = new Set(delta.ops.map((o) => o.path));
    const implied = files.find((f) => !isLink(f) && !listed.has(f.path)) as FileEntry | undefined;
    if (implied) op = { op: 'copy', path: implied.path, from: implied.path, sha256: implied.sha256 };
  }
  assert.ok(op, `the genuine delta has a ${kind} op`);
  const order = new Map(files.map((f, i) => [f.path, i]));
  await resignManifest(s.repoDir, NEW, [fx.repo.releaseKey], (m) => {
    const d = wireDelta(m, OLD, TARGET)!.delta;
    const others = d.ops.filter((o) => o.path !== op!.path);
    d.ops = [...others, { ...op!, from } as DeltaOp].sort((a, b) => order.get(a.path)! - order.get(b.path)!);
  });
  return op!.path;
}

/** Replaces the entry of the delta's first `whole` op with `bytes`, rebuilds the delta artifact and re-signs 1.1.0. */
async function resignWholeEntry(s: Scene, bytes: Buffer): Promise<string> {
  const delta = await signedDelta(s);
  const op = delta.ops.find((o): o is Extract<DeltaOp, { op: 'whole' }> => o.op === 'whole');
  assert.ok(op, 'the genuine delta has a whole op');
  const rebuilt = await rebuildDelta(join(s.repoDir, delta.artifact.path), delta, delta.layout, new Map([[op!.path, bytes]]));
  await resignManifest(s.repoDir, NEW, [fx.repo.releaseKey], (m) => {
    const dd = wireDelta(m, OLD, TARGET)!.delta;
    dd.artifact = rebuilt.artifact;
    dd.ops = rebuilt.ops;
  });
  return op!.path;
}

/** Signed bytes that are no brotli stream at all (checked, so the case cannot pass by accident). */
const NOT_BROTLI = Buffer.from('ferry: these signed bytes are not brotli\n'.repeat(4));

/** `ferry update` committed 1.1.0 from the full artifact after the delta failed, and history says why. */
async function expectFallback(s: Scene, run: Run, reason: RegExp): Promise<UpdateRecord> {
  assert.is(run.code, 0, `ferry update exits 0, not with the delta's error: ${describeRun(run)}`);
  assert.match(run.stdout, /updated 1\.0\.0 -> 1\.1\.0 \(full, after a failed delta/, 'the CLI says the delta failed and the full artifact was used');
  await assertCompleteVersion(s.home, NEW, fx.files.get(NEW)!);
  const records = await recordFor(s.home, NEW);
  assert.is(records.length, 1, `one attempt for 1.1.0: ${JSON.stringify(records)}`);
  const record = records[0]!;
  assert.is(record.outcome, 'committed');
  assert.is(record.kind, 'full');
  assert.is(record.fellBackToFull, true, 'the record says the delta failed');
  assert.is(record.errorCode, null);
  assert.match(record.fallbackReason ?? '(no fallbackReason in the record)', reason, 'the record says why the delta failed');
  assert.equal(await namesIn(join(s.home, 'staging')), [], 'staging/ is empty');
  await s.assertOutsideUntouched();
  return record;
}

const item3 = suite('issue 13 item 3: a delta that fails falls back to the full artifact, whatever the failure');

item3.before(async () => {
  fx = await makeAdversarialFixture(smallApp(OLD), smallApp(NEW));
});

item3('issue 13 item 3: a signed copy op whose base path is a directory on the device: committed from the full artifact, the reason in history', async () => {
  const s = await scene();
  await resignBase(s, 'copy', 'lib');
  await expectFallback(s, await ferry(update(s)), /^ERR_HASH_MISMATCH: base file lib is missing or is not a regular file/);
});

item3('issue 13 item 3: a signed patch op whose base path is a directory on the device: committed from the full artifact, the reason in history', async () => {
  const s = await scene();
  await resignBase(s, 'patch', 'lib');
  await expectFallback(s, await ferry(update(s)), /^ERR_HASH_MISMATCH: base file lib is missing or is not a regular file/);
});

item3('issue 13 item 3: a signed whole op whose bytes do not decode ("Decompression failed"): committed from the full artifact instead of ERR_IO (exit 9), the reason (ERR_PATCH) in history', async () => {
  assert.throws(() => brotliDecompressSync(NOT_BROTLI), /Decompression failed/, 'the replacement bytes are not brotli');
  const s = await scene();
  const path = await resignWholeEntry(s, NOT_BROTLI);
  await expectFallback(s, await ferry(update(s)), new RegExp(`^ERR_PATCH: the delta's compressed bytes for ${path.replace(/\./g, '\\.')} do not decode: Decompression failed`));
});

item3('issue 13 item 3: after the fallback the agent is up to date and fetches no delta again; with the full artifact gone too, the error it meets is not retryable', async () => {
  const agentOnce = (s: Scene) => ferry(['agent', '--home', s.home, '--once', '--no-share', '--log-format', 'json']);
  const events = (r: Run) => r.stdout.split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as { event: string; code?: ErrorCode; message?: string });

  // The agent meets the undecodable delta, falls back and commits; its next attempt has nothing to do.
  const s = await scene();
  await resignWholeEntry(s, NOT_BROTLI);
  const first = await agentOnce(s);
  assert.is(first.code, 0, `the agent's attempt commits: ${describeRun(first)}`);
  assert.ok(events(first).some((e) => e.event === 'committed'), `a committed event: ${first.stdout}`);
  assert.match((await recordFor(s.home, NEW))[0]?.fallbackReason ?? '', /^ERR_PATCH: /);
  const second = await agentOnce(s);
  assert.is(second.code, 0, describeRun(second));
  assert.equal(events(second).map((e) => e.event), ['check', 'up-to-date'], 'the next attempt is up to date');
  assert.is((await recordFor(s.home, NEW)).length, 1, 'no second attempt at 1.1.0, so no second fetch of its delta');

  // The same delta with the full artifact missing from the source: the attempt fails, with the
  // full artifact's error, which the agent does not count as "offline, try again" (today the
  // delta's ERR_IO escaped, and was).
  const t = await scene();
  await resignWholeEntry(t, NOT_BROTLI);
  await rm(join(t.repoDir, 'releases', NEW, `${TARGET}.full.tar.br`));
  const failed = await agentOnce(t);
  const error = events(failed).find((e) => e.event === 'error');
  assert.ok(error?.code, `an error event: ${describeRun(failed)}`);
  assert.match(failed.stderr + failed.stdout, /delta failed \(ERR_PATCH/, 'the delta failed first, and the log says why');
  assert.is.not(error!.code, 'ERR_IO');
  assert.is(failed.code, EXIT_CODE[error!.code!], 'the agent exits with the code of the error it logged');
  assert.is(classifyError(new FerryError(error!.code!, error!.message ?? '')), 'refused', `${error!.code} is not retried as if the device were offline`);
  await assertCompleteVersion(t.home, OLD, fx.files.get(OLD)!);
  const record = (await recordFor(t.home, NEW))[0];
  assert.is(record?.outcome, 'failed');
  assert.is(record?.errorCode, error!.code);
});

item3('issue 13 item 3: the rule: a delta plan that fails with any code but ERR_NO_SPACE, ERR_INTERNAL, ERR_BUSY and ERR_NOT_GRANTED is carried out again with the full artifact, and the reason kept', async () => {
  const fallback = { path: `releases/${NEW}/${TARGET}.full.tar.gz`, size: 10, sha256: 'f'.repeat(64), chunkSize: CHUNK_SIZE, chunks: ['f'.repeat(64)] };
  const delta: Plan = { kind: 'delta', to: NEW, steps: [], bytes: 1, fallback };
  const fellBack: string[] = [];
  const ended: string[] = [];
  for (const code of Object.keys(EXIT_CODE) as ErrorCode[]) {
    const tried: Plan['kind'][] = [];
    try {
      const r = await withFullFallback(delta, async (plan) => {
        tried.push(plan.kind);
        if (plan.kind !== 'full') throw new FerryError(code, 'the delta failed');
        return 'built';
      });
      assert.equal(tried, ['delta', 'full']);
      assert.is(r.result, 'built');
      assert.is(r.plan.kind, 'full');
      assert.is(r.reason, `${code}: the delta failed`, 'the reason goes to history');
      fellBack.push(code);
    } catch (err) {
      assert.ok(err instanceof FerryError && err.code === code, `${code} ends the attempt with its own error`);
      assert.equal(tried, ['delta'], `${code}: the full artifact is not tried`);
      ended.push(code);
    }
  }
  assert.equal(ended.sort(), ['ERR_BUSY', 'ERR_INTERNAL', 'ERR_NOT_GRANTED', 'ERR_NO_SPACE']);
  assert.ok(fellBack.includes('ERR_IO') && fellBack.includes('ERR_PATCH') && fellBack.includes('ERR_UNSUPPORTED_FILE'), `everything else falls back: ${fellBack.join(' ')}`);
  // Not a FerryError: a bug, which is not papered over by a second build.
  const bug = await withFullFallback(delta, async () => { throw new TypeError('a bug'); }).then(() => null, (err: unknown) => err);
  assert.instance(bug, TypeError, 'a TypeError is passed on as it is');
});

item3.after(async () => {
  for (const s of scenes) await s.cleanup();
  await fx?.cleanup();
});

item3.run();

// ---------------------------------------------------------------------------------------------
// Items 4 and 5: releases made by the real `ferry release`, installed by a real device.

interface Publisher {
  tmp: TempDir;
  repo: string;
  releaseKey: string;
  /** Publishes `tree` as `version` with `ferry release` (extra flags appended). */
  release(version: string, tree: TreeSpec | ((dir: string) => Promise<void>), flags?: string[]): Promise<Run>;
  /** A device home trusting the repository, with it as the only source. */
  device(name: string): Promise<string>;
}

async function publisher(prefix: string): Promise<Publisher> {
  const tmp = await tempDir(prefix);
  const keys = join(tmp.path, 'keys');
  await mkdir(keys);
  const repo = join(tmp.path, 'repo');
  await mustRun(['keygen', '--out', join(keys, 'root')]);
  await mustRun(['keygen', '--out', join(keys, 'release')]);
  await mustRun(['repo', 'init', repo, '--app', 'sample-app', '--root-key', join(keys, 'root.key'), '--release-key', join(keys, 'release.pub')]);
  let apps = 0;
  return {
    tmp,
    repo,
    releaseKey: join(keys, 'release.key'),
    async release(version, tree, flags = []) {
      const dir = join(tmp.path, `app-${apps++}`);
      await mkdir(dir);
      if (typeof tree === 'function') await tree(dir);
      else await writeTree(dir, tree);
      return ferry(['release', dir, '--repo', repo, '--version', version, '--key', join(keys, 'release.key'), '--platform', 'linux', '--arch', 'x64', ...flags]);
    },
    async device(name) {
      const home = join(tmp.path, name);
      await mustRun(['init', home, '--trust', join(repo, 'root.json'), '--source', repo, '--platform', 'linux', '--arch', 'x64']);
      return home;
    },
  };
}

const MiB = 1024 * 1024;

/** The size: 96 MiB of zeros gzips about 1030:1, past the 1000:1 ratio that refused it. */
const ZEROS = 96 * MiB;

/** Writes `size` zero bytes to `path` a MiB at a time; returns their sha256. */
async function writeZeros(path: string, size: number): Promise<string> {
  const out = createWriteStream(path);
  const hash = createHash('sha256');
  const mib = Buffer.alloc(MiB);
  for (let left = size; left > 0; left -= MiB) {
    const chunk = left >= MiB ? mib : mib.subarray(0, left);
    hash.update(chunk);
    if (!out.write(chunk)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'close');
  return hash.digest('hex');
}

const item4 = suite('issue 13 item 4: a legitimate, highly compressible release installs');

item4('issue 13 item 4: a signed full artifact holding a 96 MiB file of zeros is installed (not ERR_TOO_LARGE), and the next release is made and applied as a delta from it', async () => {
  const p = await publisher('ferry-item4-');
  try {
    let zerosHash = '';
    const app = (version: string) => async (dir: string) => {
      await writeTree(dir, { 'server.js': `// sample app\nexport const VERSION = '${version}';\n`, 'package.json': JSON.stringify({ name: 'sample-app', version }) + '\n' });
      await mkdir(join(dir, 'data'));
      zerosHash = await writeZeros(join(dir, 'data', 'disk.img'), ZEROS);
    };
    const r1 = await p.release(OLD, app(OLD));
    assert.is(r1.code, 0, `ferry release ${OLD}: ${describeRun(r1)}`);
    const full = (await stat(join(p.repo, 'releases', OLD, `${TARGET}.full.tar.br`))).size;
    assert.ok(ZEROS / full > 1000, `the full artifact expands ${Math.round(ZEROS / full)}:1, past the old fixed ratio`);

    const home = await p.device('device');
    const u1 = await ferry(['update', '--home', home]);
    assert.is(u1.code, 0, `the device installs ${OLD}: ${describeRun(u1)}`);
    await assertCompleteVersion(home, OLD, await signedFiles(p.repo, OLD));
    const img = join(home, 'current', 'data', 'disk.img');
    assert.is((await stat(img)).size, ZEROS);
    assert.is(sha256(await readFile(img)), zerosHash, 'the image is the signed zeros');

    // The publisher rebuilds 1.0.0's tree from that artifact to diff against it (the same check).
    const r2 = await p.release(NEW, app(NEW));
    assert.is(r2.code, 0, `ferry release ${NEW} with a delta from ${OLD}: ${describeRun(r2)}`);
    const u2 = await ferry(['update', '--home', home]);
    assert.is(u2.code, 0, describeRun(u2));
    assert.match(u2.stdout, /updated 1\.0\.0 -> 1\.1\.0 \(delta,/, 'the image is copied by the delta, not downloaded again');
    await assertCompleteVersion(home, NEW, await signedFiles(p.repo, NEW));
  } finally {
    await p.tmp.cleanup();
  }
});

item4.run();

const item5 = suite('issue 13 item 5: a release that only deletes files');

item5('issue 13 item 5: a release that only deletes files publishes with its deltas (not ERR_IO "no paths specified"), and a device updates through the delta', async () => {
  const p = await publisher('ferry-item5-');
  try {
    const before: TreeSpec = { ...smallApp(OLD), 'lib/legacy.js': 'export const legacy = true;\n', 'assets/old/banner.txt': 'old banner\n' };
    const after: TreeSpec = { ...before };
    delete after['lib/legacy.js'];
    delete after['assets/old/banner.txt'];
    assert.is((await p.release(OLD, before)).code, 0);
    const home = await p.device('device');
    await mustRun(['update', '--home', home]);

    const published = await p.release(NEW, after);
    assert.is(published.code, 0, `ferry release of a delete-only ${NEW} (default --deltas 3): ${describeRun(published)}`);
    const doc = await readPayload<ManifestDoc>(join(p.repo, 'releases', NEW, 'manifest.json'));
    const delta = wireDelta(doc, OLD, TARGET)?.delta;
    assert.ok(delta, `${NEW} has a delta from ${OLD}`);
    assert.ok(delta!.ops.every((o) => o.op === 'copy'), `every op copies: ${JSON.stringify(delta!.ops.map((o) => o.op))}`);
    assert.ok(delta!.artifact.size < doc.targets[TARGET]!.full.size, 'the delta is smaller than the full artifact');

    const run = await ferry(['update', '--home', home]);
    assert.is(run.code, 0, describeRun(run));
    assert.match(run.stdout, /updated 1\.0\.0 -> 1\.1\.0 \(delta,/, 'the device took the delta');
    await assertCompleteVersion(home, NEW, await signedFiles(p.repo, NEW));
    const record = (await recordFor(home, NEW))[0];
    assert.is(record?.kind, 'delta');
    assert.is(record?.fellBackToFull, undefined, 'the delta itself applied');
    assert.is(record?.bytesMoved, delta!.artifact.size, 'only the delta was downloaded');
    for (const gone of ['lib/legacy.js', 'assets/old/banner.txt']) {
      assert.not.ok(await stat(join(home, 'current', gone)).then(() => true, () => false), `${gone} is gone`);
    }
  } finally {
    await p.tmp.cleanup();
  }
});

item5.run();
