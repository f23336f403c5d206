// Runs one device update in its own process, so the apply bench reads the update's own peak
// memory (process.resourceUsage().maxRSS: the whole process, bsdiff-node's native work included)
// and no earlier step's heap inflates it.
//
//   node --import tsx bench/lib/apply-child.ts update <home> <repo>
//   node --import tsx bench/lib/apply-child.ts breakdown full|delta <meta.json> <repo> <work> <baseDir>
//   node --import tsx bench/lib/apply-child.ts noop
//
// `update` is what a device does: Updater.open on the home, apply() against the repository as a
// dir source, health null, close. `seconds` times open → close (not node's start-up).
// `breakdown` runs, one at a time, the core steps an update by that plan is made of (fetch into
// the cache, extract or applyDelta, fsync; verifyTree as a rollback pays it), with each step's seconds and the peak RSS
// once it is done, so the bench can say where the time and the memory go.
// Prints one JSON line on stdout.

import { mkdir } from 'node:fs/promises';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Updater } from '../../core/update/updater.ts';
import { createDirSource } from '../../core/ports/dir-source.ts';
import { fetchArtifact } from '../../core/update/fetch-artifact.ts';
import { archiveCoder, extractArchive } from '../../core/io/extract.ts';
import { applyDelta } from '../../core/delta/apply-delta.ts';
import { verifyTree } from '../../core/device/verify-tree.ts';
import { fsyncDirsUnder, parseFsyncSkip, skipFsyncAt } from '../../core/io/durable.ts';
import { createBsdiffPatcher } from '../../plugins/bsdiff/patcher.ts';
import type { TargetRelease } from '../../core/trust/metadata.ts';
import type { UpdateRecord } from '../../core/spec.ts';

// The bench's "fsync off" diagnostic runs this with FERRY_UNSAFE_SKIP_FSYNC=1; the library never
// reads it, so this bench process sets the seam itself.
skipFsyncAt(parseFsyncSkip(process.env.FERRY_UNSAFE_SKIP_FSYNC ?? ''));

/** What the bench hands `breakdown`: the signed release to build, and the delta from the base. */
export interface BreakdownMeta {
  target: TargetRelease;
  /** Index into target.deltas of the delta to apply. */
  delta: number;
}

export interface UpdateReport {
  seconds: number;
  maxRssKiB: number;
  status: string;
  version: string | null;
  kind: UpdateRecord['kind'];
  fellBackToFull: boolean;
  bytesMoved: number;
}

export interface Step {
  step: string;
  seconds: number;
  /** process maxRSS once the step is done: the step that raises it is the one that needs the memory. */
  peakKiB: number;
}

export interface BreakdownReport {
  floorKiB: number;
  steps: Step[];
}

const since = (start: bigint) => Number(process.hrtime.bigint() - start) / 1e9;

async function update(home: string, repo: string): Promise<UpdateReport> {
  const start = process.hrtime.bigint();
  const updater = await Updater.open({ home, sources: [createDirSource(repo)], patcher: createBsdiffPatcher(), health: null });
  let result;
  try {
    result = await updater.apply();
  } finally {
    await updater.close();
  }
  const seconds = since(start);
  const record = result.status === 'committed' || result.status === 'rolled-back' ? result.record : null;
  return {
    seconds,
    maxRssKiB: process.resourceUsage().maxRSS,
    status: result.status,
    version: record?.to ?? null,
    kind: record?.kind ?? null,
    fellBackToFull: record?.fellBackToFull ?? false,
    bytesMoved: record?.bytesMoved ?? 0,
  };
}

/** Times `fn`, appending its seconds to `into` under `step`. */
async function timed<T>(into: Step[], step: string, fn: () => Promise<T>): Promise<T> {
  const start = process.hrtime.bigint();
  const out = await fn();
  into.push({ step, seconds: since(start), peakKiB: process.resourceUsage().maxRSS });
  return out;
}

/** The steps Updater.apply + stageRelease run for `plan`, done here one at a time (same calls, same order). */
async function breakdown(plan: string, metaFile: string, repo: string, work: string, baseDir: string): Promise<BreakdownReport> {
  const floorKiB = process.resourceUsage().maxRSS;
  const meta = JSON.parse(await readFile(metaFile, 'utf8')) as BreakdownMeta;
  const { target } = meta;
  const delta = target.deltas[meta.delta];
  if (!delta) throw new Error(`no delta ${meta.delta} in the meta file`);
  const sources = [createDirSource(repo)];
  const steps: Step[] = [];
  const cache = join(work, 'cache');
  const tree = join(work, 'tree');
  await mkdir(cache, { recursive: true });
  await mkdir(tree, { recursive: true, mode: 0o700 });
  if (plan === 'full') {
    const got = await timed(steps, 'fetch (copy, hash, chunk hashes, fsync)', () => fetchArtifact(target.full, sources, cache));
    await timed(steps, 'extract (decompress, hash, write; then fsync all)', () => extractArchive(got.path, tree, new Map(target.files.map((f) => [f.path, f])), undefined, undefined, undefined, archiveCoder(target.full.path)));
  } else if (plan === 'delta') {
    const got = await timed(steps, 'fetch (copy, hash, chunk hashes, fsync)', () => fetchArtifact(delta.artifact, sources, cache));
    await timed(steps, 'applyDelta (unpack, copy/patch/whole ops, fsync per file)', () =>
      applyDelta({ baseDir, ops: delta.ops, targetFiles: target.files, artifact: got.path, outDir: tree, workDir: join(work, 'delta-work'), patcher: createBsdiffPatcher() }));
  } else {
    throw new Error(`breakdown full|delta, not ${plan}`);
  }
  // Then what staging adds (a just-built tree is not hashed again: extraction and the delta ops
  // hashed every file as they wrote it), and what a rollback or a release staged earlier pays.
  await timed(steps, 'fsyncDirsUnder (stage)', () => fsyncDirsUnder(tree));
  await timed(steps, 'verifyTree (only for a rollback or an earlier staged release)', () => verifyTree(tree, target.files));
  return { floorKiB, steps };
}

async function main(argv: string[]): Promise<unknown> {
  const [verb, ...args] = argv;
  const need = (n: number): string[] => {
    if (args.length !== n) throw new Error(`apply-child ${verb} takes ${n} arguments, got ${args.length}`);
    return args;
  };
  switch (verb) {
    case 'update': {
      const [home, repo] = need(2) as [string, string];
      return update(home, repo);
    }
    case 'breakdown': {
      const [a, b, c, d, e] = need(5) as [string, string, string, string, string];
      return breakdown(a, b, c, d, e);
    }
    case 'noop':
      // The floor under every figure: node, the tsx loader, and the Updater's imports.
      need(0);
      return { seconds: 0, maxRssKiB: process.resourceUsage().maxRSS };
    default:
      throw new Error(`usage: apply-child update|breakdown|noop ... (got ${String(verb)})`);
  }
}

main(process.argv.slice(2)).then(
  (report) => { process.stdout.write(JSON.stringify(report) + '\n'); },
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
