// bench/delta: how ferry's per-file deltas compare with general binary delta tools on real
// successive releases of real packages (fetched with `npm pack`): delta artifact bytes, diff and
// apply seconds, and peak memory, against `xdelta3 -9` and `zstd -19 --long=27 --patch-from`,
// and against ferry's full artifact. Every result is checked before its size is reported: a
// smaller delta that rebuilds the wrong bytes would be worthless.

import { mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packFiles } from '../core/publish/archive.ts';
import { sha256File } from '../core/io/hash.ts';
import { scanTree } from '../core/publish/tree.ts';
import { regularFiles, type FileEntry } from '../core/trust/metadata.ts';
import { measureCommand, measureFerry, type Measured } from './lib/measure.ts';
import { fetchPackage, unpackPackage } from './lib/npm-pack.ts';
import { ensureTools, GNU_TIME, XDELTA3, ZSTD } from './lib/tools.ts';
import { fmt, formatTable, type Cell } from './lib/table.ts';
import type { Candidate, DeltaMeta } from './lib/ferry-delta-child.ts';

/** Two releases of one package: the device has `from` and updates to `to`. */
export interface Pair {
  name: string;
  from: string;
  to: string;
}

export const PAIRS: Pair[] = [
  // A 10 MB Go binary, two patch releases apart.
  { name: 'esbuild close', from: '@esbuild/linux-x64@0.24.0', to: '@esbuild/linux-x64@0.24.2' },
  // The same binary across a year of releases.
  { name: 'esbuild far', from: '@esbuild/linux-x64@0.20.0', to: '@esbuild/linux-x64@0.24.2' },
  // A 52 MB Rust napi `.node` library (prebuilt inside the tarball), two patch releases apart.
  { name: 'swc .node', from: '@swc/core-linux-x64-gnu@1.7.26', to: '@swc/core-linux-x64-gnu@1.7.28' },
  // A 22 MB JS tree of 121 files, one patch release apart.
  { name: 'typescript', from: 'typescript@5.6.2', to: 'typescript@5.6.3' },
];

/** Per step; the slowest step seen (ferry diff of the 52 MB library) takes about 70 s. */
const STEP_TIMEOUT_MS = 15 * 60_000;
/** Applies take well under a second on small deltas, so each is run this often and the median kept. */
const APPLY_RUNS = 3;

/** Runs `step(i)` `runs` times in turn; returns the run with the median seconds. */
async function median<T extends Measured>(runs: number, step: (i: number) => Promise<T>): Promise<T> {
  const got: T[] = [];
  for (let i = 0; i < runs; i++) got.push(await step(i));
  return got.sort((a, b) => a.seconds - b.seconds)[Math.floor(got.length / 2)]!;
}

export const XDELTA3_ENCODE = (old: string, next: string, out: string) => ['-9', '-e', '-f', '-q', '-s', old, next, out];
export const XDELTA3_DECODE = (old: string, patch: string, out: string) => ['-d', '-f', '-q', '-s', old, patch, out];
export const ZSTD_ENCODE = (old: string, next: string, out: string) => ['-19', '--long=27', '-q', '-f', `--patch-from=${old}`, next, '-o', out];
export const ZSTD_DECODE = (old: string, patch: string, out: string) => ['-d', '--long=27', '-q', '-f', `--patch-from=${old}`, patch, '-o', out];

type ToolName = 'ferry' | 'xdelta3' | 'zstd';

interface ToolResult {
  bytes: number;
  diff: Measured;
  apply: Measured;
}

interface PairResult {
  pair: Pair;
  oldBytes: number;
  newBytes: number;
  newFiles: number;
  fullBytes: number;
  tools: Record<ToolName, ToolResult>;
  candidates: Candidate[];
  copies: number;
  /** The ops list as JSON: it travels in the signed manifest, not in the artifact. */
  opsJsonBytes: number;
}

async function size(path: string): Promise<number> {
  return (await stat(path)).size;
}

function sameTree(got: FileEntry[], want: FileEntry[]): string | null {
  if (got.length !== want.length) return `${got.length} files, want ${want.length}`;
  for (const [i, w] of want.entries()) {
    const g = got[i]!;
    if (g.path !== w.path || g.size !== w.size || g.sha256 !== w.sha256 || g.mode !== w.mode) {
      return `${w.path}: got ${JSON.stringify(g)}, want ${JSON.stringify(w)}`;
    }
  }
  return null;
}

async function expectSameFile(got: string, wantSha256: string, what: string): Promise<void> {
  const sha = await sha256File(got);
  if (sha !== wantSha256) throw new Error(`${what} rebuilt the wrong bytes: sha256 ${sha} != ${wantSha256}`);
}

async function runPair(pair: Pair, dir: string, log: (line: string) => void): Promise<PairResult> {
  const oldDir = await unpackPackage(await fetchPackage(pair.from, log), join(dir, 'old'));
  const newDir = await unpackPackage(await fetchPackage(pair.to, log), join(dir, 'new'));
  const [oldFiles, newFiles] = (await Promise.all([scanTree(oldDir), scanTree(newDir)])).map(regularFiles) as [FileEntry[], FileEntry[]];

  // xdelta3 and zstd see each tree as one uncompressed tar, packed the way ferry packs (same
  // order, same headers); ferry's full artifact is the tar.gz publish would ship.
  const oldTar = join(dir, 'old.tar');
  const newTar = join(dir, 'new.tar');
  const full = join(dir, 'full.tar.gz');
  await packFiles(oldDir, oldFiles.map((f) => f.path), oldTar, false);
  await packFiles(newDir, newFiles.map((f) => f.path), newTar, false);
  await packFiles(newDir, newFiles.map((f) => f.path), full, true);
  const newTarSha = await sha256File(newTar);
  const timeOut = join(dir, 'time.out');

  log(`  ferry diff`);
  const ferryDelta = join(dir, 'ferry-delta.tar');
  const meta = join(dir, 'ferry-meta.json');
  const fDiff = await measureFerry('diff', [oldDir, newDir, ferryDelta, join(dir, 'ferry-diff-work'), meta], STEP_TIMEOUT_MS);
  log(`  ferry apply`);
  const fApply = await median(APPLY_RUNS, async (i) => {
    // applyDelta builds into an empty private folder: a fresh one per run, each one checked.
    const applied = join(dir, `ferry-out-${i}`);
    await mkdir(applied, { mode: 0o700 });
    const m = await measureFerry('apply', [oldDir, meta, ferryDelta, applied, join(dir, `ferry-apply-work-${i}`)], STEP_TIMEOUT_MS);
    const mismatch = sameTree(regularFiles(await scanTree(applied)), newFiles);
    if (mismatch) throw new Error(`${pair.name}: ferry's applied tree differs from the new tree: ${mismatch}`);
    await rm(applied, { recursive: true, force: true });
    return m;
  });

  log(`  xdelta3`);
  const xd = join(dir, 'delta.xd3');
  const xOut = join(dir, 'xdelta3-out.tar');
  const xDiff = await measureCommand(XDELTA3.command, XDELTA3_ENCODE(oldTar, newTar, xd), timeOut, STEP_TIMEOUT_MS);
  const xApply = await median(APPLY_RUNS, async () => {
    const m = await measureCommand(XDELTA3.command, XDELTA3_DECODE(oldTar, xd, xOut), timeOut, STEP_TIMEOUT_MS);
    await expectSameFile(xOut, newTarSha, `${pair.name}: xdelta3`);
    await rm(xOut);
    return m;
  });

  log(`  zstd`);
  const zd = join(dir, 'delta.zst');
  const zOut = join(dir, 'zstd-out.tar');
  const zDiff = await measureCommand(ZSTD.command, ZSTD_ENCODE(oldTar, newTar, zd), timeOut, STEP_TIMEOUT_MS);
  const zApply = await median(APPLY_RUNS, async () => {
    const m = await measureCommand(ZSTD.command, ZSTD_DECODE(oldTar, zd, zOut), timeOut, STEP_TIMEOUT_MS);
    await expectSameFile(zOut, newTarSha, `${pair.name}: zstd`);
    await rm(zOut);
    return m;
  });

  return {
    pair,
    oldBytes: oldFiles.reduce((n, f) => n + f.size, 0),
    newBytes: newFiles.reduce((n, f) => n + f.size, 0),
    newFiles: newFiles.length,
    fullBytes: await size(full),
    tools: {
      ferry: { bytes: await size(ferryDelta), diff: fDiff, apply: fApply },
      xdelta3: { bytes: await size(xd), diff: xDiff, apply: xApply },
      zstd: { bytes: await size(zd), diff: zDiff, apply: zApply },
    },
    candidates: fDiff.candidates ?? [],
    opsJsonBytes: Buffer.byteLength(JSON.stringify((JSON.parse(await readFile(meta, 'utf8')) as DeltaMeta).ops)),
    copies: newFiles.length - (fDiff.candidates ?? []).length,
  };
}

const bestOther = (r: PairResult) => Math.min(r.tools.xdelta3.bytes, r.tools.zstd.bytes);

function mainTable(results: PairResult[]): string {
  const rows: Cell[][] = [];
  for (const r of results) {
    const best = bestOther(r);
    const label = `${r.pair.name} (${fmt.mb(r.newBytes)} MB, ${r.newFiles} files)`;
    for (const tool of ['ferry', 'xdelta3', 'zstd'] as const) {
      const t = r.tools[tool];
      rows.push([
        tool === 'ferry' ? label : '',
        tool === 'ferry' ? 'ferry delta' : tool,
        fmt.bytes(t.bytes),
        fmt.ratio(t.bytes / best),
        fmt.seconds(t.diff.seconds),
        fmt.seconds(t.apply.seconds),
        fmt.mib(t.diff.maxRssKiB),
        fmt.mib(t.apply.maxRssKiB),
      ]);
    }
    rows.push(['', 'ferry full', fmt.bytes(r.fullBytes), fmt.ratio(r.fullBytes / best), '', '', '', '']);
  }
  return formatTable(
    [
      { title: 'pair' },
      { title: 'tool' },
      { title: 'bytes', align: 'right' },
      { title: '/ best', align: 'right' },
      { title: 'diff s', align: 'right' },
      { title: 'apply s', align: 'right' },
      { title: 'diff MiB', align: 'right' },
      { title: 'apply MiB', align: 'right' },
    ],
    rows,
  );
}

/** Per pair, the changed files with the most bytes: what bsdiff and brotli each made of them. */
function choiceTable(results: PairResult[], perPair: number): string {
  const rows: Cell[][] = [];
  for (const r of results) {
    const top = [...r.candidates].sort((a, b) => b.newSize - a.newSize).slice(0, perPair);
    const patched = r.candidates.filter((c) => c.chosen === 'patch').length;
    const label = `${r.pair.name}: ${r.copies} copy, ${patched} patch, ${r.candidates.length - patched} whole`;
    const left = [label, `  ops JSON ${fmt.bytes(r.opsJsonBytes)} B (in the manifest)`];
    for (let i = 0; i < Math.max(top.length, left.length); i++) {
      const c = top[i];
      rows.push(c === undefined
        ? [left[i] ?? '', '', '', '', '', '']
        : [
          left[i] ?? '',
          c.path.length > 40 ? `…${c.path.slice(-39)}` : c.path,
          fmt.bytes(c.newSize),
          c.patchBytes === null ? '-' : fmt.bytes(c.patchBytes),
          fmt.bytes(c.wholeBytes),
          c.chosen === 'patch' ? 'bsdiff' : 'brotli',
        ]);
    }
  }
  return formatTable(
    [
      { title: 'pair: ops' },
      { title: 'largest changed files' },
      { title: 'new bytes', align: 'right' },
      { title: 'bsdiff', align: 'right' },
      { title: 'brotli', align: 'right' },
      { title: 'chosen' },
    ],
    rows,
  );
}

/** The issue's targets, reported (never asserted): one PASS/MISS line each, with the misses. */
function targets(results: PairResult[]): string[] {
  const sizeMisses = results
    .map((r) => ({ r, ratio: r.tools.ferry.bytes / bestOther(r) }))
    .filter((x) => x.ratio > 1.1)
    .map((x) => `${x.r.pair.name} ${fmt.ratio(x.ratio)}`);
  const applyMisses = results
    .map((r) => ({ r, ratio: r.tools.ferry.apply.seconds / r.tools.xdelta3.apply.seconds }))
    .filter((x) => x.ratio > 2)
    .map((x) => `${x.r.pair.name} ${fmt.ratio(x.ratio)}`);
  const line = (ok: boolean, what: string, misses: string[]) => `${ok ? 'PASS' : 'MISS'}  ${what}${ok ? '' : `  (${misses.join(', ')})`}`;
  return [
    line(sizeMisses.length === 0, 'ferry delta <= 1.1x min(xdelta3, zstd) on every pair', sizeMisses),
    line(applyMisses.length === 0, 'ferry apply <= 2x xdelta3 apply time', applyMisses),
  ];
}

export async function run(options: { log: (line: string) => void; pairs?: Pair[] }): Promise<void> {
  const { log } = options;
  const pairs = options.pairs ?? PAIRS;
  ensureTools([XDELTA3, ZSTD, GNU_TIME], log);
  const root = await mkdtemp(join(tmpdir(), 'ferry-bench-delta-'));
  try {
    const floor = await measureFerry('noop', [], STEP_TIMEOUT_MS);
    const results: PairResult[] = [];
    for (const [i, pair] of pairs.entries()) {
      log(`[${i + 1}/${pairs.length}] ${pair.name}: ${pair.from} -> ${pair.to}`);
      const dir = join(root, String(i));
      await mkdir(dir);
      results.push(await runPair(pair, dir, log));
      await rm(dir, { recursive: true, force: true });
    }
    log('');
    log(mainTable(results));
    log('');
    log(choiceTable(results, 3));
    log('');
    log(`bytes / best: over min(xdelta3, zstd) of that pair. apply s: median of ${APPLY_RUNS} runs. diff s: one run.`);
    log(`ferry MiB include node + tsx + ferry's imports: ${fmt.mib(floor.maxRssKiB)} MiB for a child that does nothing.`);
    log(`xdelta3 ${XDELTA3_ENCODE('old.tar', 'new.tar', 'd').join(' ')}  |  zstd ${ZSTD_ENCODE('old.tar', 'new.tar', 'd').join(' ')}`);
    log('');
    for (const t of targets(results)) log(t);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}
