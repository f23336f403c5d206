// bench/delta: what a device downloads for an update by ferry's delta, next to general binary
// delta tools, on real successive releases of real packages (fetched with `npm pack`). ferry is
// run as a publisher and a device run it, through the built CLI: `ferry release` of the old and
// the new tree into a real repository, then `ferry update` of a device on the old release. The
// bytes are read from the repository's files on disk (bench/lib/repo-files.ts): the delta
// artifact, and the signed metadata the release wrote, so the bench measures whatever patch
// format, framing and manifest layout ferry has. xdelta3 -9, zstd -19 --long=27 --patch-from and
// HDiffPatch diff the two trees as uncompressed tars. Every result is checked before its size is
// reported: ferry's device must end on exactly the new tree by the delta plan, and every other
// tool must rebuild the new tar byte for byte.

import { mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { measureCommand, runChecked, settle, type Measured } from './lib/measure.ts';
import { fetchPackage, unpackPackage } from './lib/npm-pack.ts';
import { ensureTools, GNU_TIME, XDELTA3, ZSTD } from './lib/tools.ts';
import { fmt, formatTable, type Cell } from './lib/table.ts';
import { currentTree, expectUpdate, initHome, initRepo, makeKeys, release, update, type Keys } from './lib/ferry-cli.ts';
import { releaseFiles, servedBytes, snapshot, type ReleaseFiles } from './lib/repo-files.ts';
import { hashTree, tarTree, treeBytes, treeDifference } from './lib/tree-files.ts';
import { cachedResult, storeResult, toolKey } from './lib/tool-cache.ts';
import { findOrBuildHDiffPatch, HDIFFPATCH_TAG, HDIFFZ_ENCODE, HPATCHZ_DECODE, type HDiffPatch } from './lib/hdiffpatch.ts';

/** Two releases of one package: the device has `from` and updates to `to`. */
export interface Pair {
  name: string;
  from: string;
  to: string;
  /** HDiffPatch's size from issue 14, the target when HDiffPatch is not built here. */
  hdiffpatchIssueBytes?: number;
}

export const PAIRS: Pair[] = [
  // A 10 MB Go binary, two patch releases apart.
  { name: 'esbuild close', from: '@esbuild/linux-x64@0.24.0', to: '@esbuild/linux-x64@0.24.2', hdiffpatchIssueBytes: 258_000 },
  // The same binary across a year of releases.
  { name: 'esbuild far', from: '@esbuild/linux-x64@0.20.0', to: '@esbuild/linux-x64@0.24.2', hdiffpatchIssueBytes: 3_316_000 },
  // A Rust CLI (biome), the same binary a year apart: 27.8 MB (Sept 2024) -> 41.9 MB (Sept 2025).
  { name: 'biome year', from: '@biomejs/cli-linux-x64@1.9.0', to: '@biomejs/cli-linux-x64@2.2.4' },
  // A 9.2 MB Rust napi `.node` addon, one patch release apart.
  { name: 'lightningcss .node', from: 'lightningcss-linux-x64-gnu@1.29.2', to: 'lightningcss-linux-x64-gnu@1.29.3' },
  // A JS library of 1,054 files (1.4 MB), one patch release apart (a handful of files changed).
  { name: 'lodash tree', from: 'lodash@4.17.20', to: 'lodash@4.17.21' },
];

/** Per step; the slowest (ferry publishing the 42 MB biome binary) takes a few minutes. */
const STEP_TIMEOUT_MS = 15 * 60_000;
/** The whole bench: past this the remaining pairs are skipped (and said so). */
const BENCH_BUDGET_MS = 40 * 60_000;

export const XDELTA3_ENCODE = (old: string, next: string, out: string) => ['-9', '-e', '-f', '-q', '-s', old, next, out];
export const XDELTA3_DECODE = (old: string, patch: string, out: string) => ['-d', '-f', '-q', '-s', old, patch, out];
export const ZSTD_ENCODE = (old: string, next: string, out: string) => ['-19', '--long=27', '-q', '-f', `--patch-from=${old}`, next, '-o', out];
export const ZSTD_DECODE = (old: string, patch: string, out: string) => ['-d', '--long=27', '-q', '-f', `--patch-from=${old}`, patch, '-o', out];

interface ToolResult {
  bytes: number;
  diff: Measured;
  apply: Measured;
  /** Set when the result was reused from bench/.cache/tool-results.json: when it was measured. */
  cachedAt?: string;
}

interface PairResult {
  pair: Pair;
  newBytes: number;
  newFiles: number;
  /** What `ferry release` of 1.1.0 with its delta wrote, and what the same release without a delta wrote. */
  withDelta: ReleaseFiles;
  noDelta: ReleaseFiles;
  /**
   * What a device downloads beside the artifact, as `ferry serve` sends it (brotli): the metadata
   * of `withDelta` and of `noDelta`, and the separate file lists of `withDelta` (read only by a
   * device without the delta's base; a device on it rebuilds them).
   */
  served: { metadata: number; noDelta: number; lists: number };
  publish: Measured;
  publishNoDelta: Measured;
  update: Measured;
  xdelta3: ToolResult;
  zstd: ToolResult;
  hdiffpatch: ToolResult | null;
}

const size = async (path: string) => (await stat(path)).size;

/**
 * Diffs old.tar -> new.tar with a tool, applies it once, and checks the output is new.tar exactly;
 * or reuses the result a run made on the same pair with the same tool and command (tool-cache.ts).
 */
async function runTool(
  pair: Pair, what: string, encoder: string, decoder: string,
  encode: (old: string, next: string, out: string) => string[], decode: (old: string, patch: string, out: string) => string[],
  tars: () => Promise<{ oldTar: string; newTar: string }>, dir: string, timeOut: string,
): Promise<ToolResult> {
  const key = await toolKey(`${pair.from} -> ${pair.to}`, encoder, decoder, encode('old.tar', 'new.tar', 'patch'), decode('old.tar', 'patch', 'out.tar'));
  const cached = await cachedResult(key);
  if (cached) return { bytes: cached.bytes, diff: cached.diff, apply: cached.apply, cachedAt: cached.at };
  const { oldTar, newTar } = await tars();
  const patch = join(dir, `${what}.patch`);
  const out = join(dir, `${what}.out.tar`);
  await settle();
  const diff = await measureCommand(encoder, encode(oldTar, newTar, patch), timeOut, STEP_TIMEOUT_MS);
  await settle();
  const apply = await measureCommand(decoder, decode(oldTar, patch, out), timeOut, STEP_TIMEOUT_MS);
  await runChecked('cmp', ['-s', out, newTar], STEP_TIMEOUT_MS).catch(() => {
    throw new Error(`${what} rebuilt a tar that differs from the new tar`);
  });
  const bytes = await size(patch);
  await rm(out);
  const strip = (m: Measured): Measured => ({ seconds: m.seconds, maxRssKiB: m.maxRssKiB });
  await storeResult(key, { bytes, diff: strip(diff), apply: strip(apply), at: new Date().toISOString() });
  return { bytes, diff: strip(diff), apply: strip(apply) };
}

async function runPair(pair: Pair, dir: string, keys: Keys, hdp: HDiffPatch | null, log: (line: string) => void): Promise<PairResult> {
  const timeOut = join(dir, 'time.out');
  const oldDir = await unpackPackage(await fetchPackage(pair.from, log), join(dir, 'old'));
  const newDir = await unpackPackage(await fetchPackage(pair.to, log), join(dir, 'new'));
  const want = await hashTree(newDir);

  log('  ferry: release 1.0.0, a device installs it');
  const repo = join(dir, 'repo');
  const repoNoDelta = join(dir, 'repo-no-delta');
  const home = join(dir, 'home');
  await initRepo(repo, keys, timeOut);
  await release(repo, oldDir, '1.0.0', keys, 0, timeOut, STEP_TIMEOUT_MS);
  await initHome(home, repo, timeOut);
  expectUpdate(await update(home, timeOut, STEP_TIMEOUT_MS), '1.0.0', 'full', `${pair.name}: installing 1.0.0`);
  // The same repository, to publish 1.1.0 without a delta: the metadata it writes is the baseline
  // the delta's manifest growth is counted from.
  await runChecked('cp', ['-a', repo, repoNoDelta], STEP_TIMEOUT_MS);

  log('  ferry: release 1.1.0 with its delta from 1.0.0');
  let before = await snapshot(repo);
  await settle();
  const pub = await release(repo, newDir, '1.1.0', keys, 1, timeOut, STEP_TIMEOUT_MS);
  const withDelta = releaseFiles(before, await snapshot(repo), pub.json);
  // The metadata as `ferry serve` sends it (brotli), and the separate lists a device without the base reads.
  const served = { metadata: await servedBytes(repo, withDelta.metadata), lists: await servedBytes(repo, withDelta.lists) };
  log('  ferry: release 1.1.0 without a delta (for the manifest growth)');
  before = await snapshot(repoNoDelta);
  await settle();
  const pub0 = await release(repoNoDelta, newDir, '1.1.0', keys, 0, timeOut, STEP_TIMEOUT_MS);
  const noDelta = releaseFiles(before, await snapshot(repoNoDelta), pub0.json);
  const servedNoDelta = await servedBytes(repoNoDelta, noDelta.metadata);

  log('  ferry: the device updates to 1.1.0');
  await settle();
  const upd = await update(home, timeOut, STEP_TIMEOUT_MS);
  if (withDelta.delta) {
    expectUpdate(upd, '1.1.0', 'delta', `${pair.name}: the delta update`);
  } else {
    expectUpdate(upd, '1.1.0', 'full', `${pair.name}: the update (no delta published)`);
  }
  const mismatch = treeDifference(await hashTree(currentTree(home)), want);
  if (mismatch) throw new Error(`${pair.name}: the device's tree after the update differs from the new tree: ${mismatch}`);
  await rm(repoNoDelta, { recursive: true, force: true });

  // The tars are made only when a tool has to run (not when every result is reused).
  let made: { oldTar: string; newTar: string } | null = null;
  const tars = async () => {
    if (!made) {
      made = { oldTar: join(dir, 'old.tar'), newTar: join(dir, 'new.tar') };
      await tarTree(oldDir, made.oldTar);
      await tarTree(newDir, made.newTar);
    }
    return made;
  };
  log('  xdelta3');
  const xdelta3 = await runTool(pair, 'xdelta3', XDELTA3.command, XDELTA3.command, XDELTA3_ENCODE, XDELTA3_DECODE, tars, dir, timeOut);
  log('  zstd');
  const zstd = await runTool(pair, 'zstd', ZSTD.command, ZSTD.command, ZSTD_ENCODE, ZSTD_DECODE, tars, dir, timeOut);
  let hdiffpatch: ToolResult | null = null;
  if (hdp) {
    log('  HDiffPatch');
    // hdiffz prints its progress on stdout; it is read and dropped.
    hdiffpatch = await runTool(pair, 'hdiffpatch', hdp.hdiffz, hdp.hpatchz, HDIFFZ_ENCODE, HPATCHZ_DECODE, tars, dir, timeOut);
  }
  return {
    pair,
    newBytes: treeBytes(want),
    newFiles: want.size,
    withDelta,
    noDelta,
    served: { ...served, noDelta: servedNoDelta },
    publish: pub,
    publishNoDelta: pub0,
    update: upd,
    xdelta3,
    zstd,
    hdiffpatch,
  };
}

/** The metadata the delta adds to what a device downloads (on the wire, as `ferry serve` sends it). */
const growth = (r: PairResult) => r.served.metadata - r.served.noDelta;
/** What the device downloads beyond what any update needs: the delta and the metadata it adds. */
const ferryTotal = (r: PairResult) => (r.withDelta.delta?.bytes ?? r.withDelta.full?.bytes ?? 0) + growth(r);
const bestOther = (r: PairResult) => Math.min(r.xdelta3.bytes, r.zstd.bytes);

function bytesTable(results: PairResult[], hdpNote: string): string {
  const rows: Cell[][] = results.map((r) => [
    r.pair.name,
    `${fmt.mb(r.newBytes)} MB, ${r.newFiles} files`,
    r.withDelta.delta ? fmt.bytes(r.withDelta.delta.bytes) : 'none',
    fmt.bytes(r.served.metadata),
    fmt.bytes(growth(r)),
    fmt.bytes(ferryTotal(r)),
    fmt.bytes(r.xdelta3.bytes),
    fmt.bytes(r.zstd.bytes),
    r.hdiffpatch ? fmt.bytes(r.hdiffpatch.bytes) : hdpNote,
    fmt.ratio(ferryTotal(r) / bestOther(r)),
    r.withDelta.full ? fmt.bytes(r.withDelta.full.bytes) : '?',
  ]);
  return formatTable(
    [
      { title: 'pair' },
      { title: 'new tree' },
      { title: 'ferry delta', align: 'right' },
      { title: 'manifest', align: 'right' },
      { title: 'growth', align: 'right' },
      { title: 'delta+growth', align: 'right' },
      { title: 'xdelta3 -9', align: 'right' },
      { title: 'zstd pf', align: 'right' },
      { title: `HDiffPatch`, align: 'right' },
      { title: '/ best', align: 'right' },
      { title: 'ferry full', align: 'right' },
    ],
    rows,
  );
}

function timesTable(results: PairResult[]): string {
  const sm = (m: Measured | undefined) => (m ? `${fmt.seconds(m.seconds)} / ${fmt.mib(m.maxRssKiB)}` : '-');
  // A reused result's times are from the run that made it: starred.
  const tm = (t: ToolResult | null, step: 'diff' | 'apply') => (t ? `${t.cachedAt ? '*' : ''}${sm(t[step])}` : '-');
  const rows: Cell[][] = results.map((r) => [
    r.pair.name,
    sm(r.publish),
    fmt.seconds(r.publishNoDelta.seconds),
    fmt.seconds(r.publish.seconds - r.publishNoDelta.seconds),
    sm(r.update),
    tm(r.xdelta3, 'diff'),
    tm(r.zstd, 'diff'),
    tm(r.hdiffpatch, 'diff'),
    `${tm(r.xdelta3, 'apply')} | ${tm(r.zstd, 'apply')} | ${tm(r.hdiffpatch, 'apply')}`,
  ]);
  return formatTable(
    [
      { title: 'pair' },
      { title: 'ferry release s/MiB', align: 'right' },
      { title: 'no-delta s', align: 'right' },
      { title: 'delta making s', align: 'right' },
      { title: 'ferry update s/MiB', align: 'right' },
      { title: 'xdelta3 s/MiB', align: 'right' },
      { title: 'zstd s/MiB', align: 'right' },
      { title: 'hdiffz s/MiB', align: 'right' },
      { title: 'apply s/MiB: xdelta3 | zstd | hpatchz', align: 'right' },
    ],
    rows,
  );
}

/** The issue's targets, reported (never asserted): one PASS/MISS line per pair and target. */
function targets(results: PairResult[], hdpBuilt: boolean): string[] {
  const lines: string[] = [];
  const line = (ok: boolean, what: string, got: string) => lines.push(`${ok ? 'PASS' : 'MISS'}  ${what}  (${got})`);
  for (const r of results) {
    const total = ferryTotal(r);
    const best = bestOther(r);
    const none = r.withDelta.delta ? '' : '; no delta was published, the full artifact counts';
    line(total <= best, `${r.pair.name}: ferry delta + manifest growth <= 1.0x min(xdelta3, zstd)`, `${fmt.bytes(total)} B = ${fmt.ratio(total / best)} of ${fmt.bytes(best)} B${none}`);
    if (r.pair.hdiffpatchIssueBytes !== undefined) {
      const [hb, label] = hdpBuilt && r.hdiffpatch
        ? [r.hdiffpatch.bytes, r.hdiffpatch.cachedAt !== undefined ? `HDiffPatch ${HDIFFPATCH_TAG}, reused from ${r.hdiffpatch.cachedAt.slice(0, 16)} UTC (*)` : `HDiffPatch ${HDIFFPATCH_TAG} measured in this run`]
        : [r.pair.hdiffpatchIssueBytes, 'HDiffPatch figure from issue 14, not measured here'];
      line(total <= hb, `${r.pair.name}: ferry delta + manifest growth <= HDiffPatch`, `${fmt.bytes(total)} B = ${fmt.ratio(total / hb)} of ${fmt.bytes(hb)} B, ${label}`);
    }
  }
  return lines;
}

export async function run(options: { log: (line: string) => void; pairs?: Pair[] }): Promise<void> {
  const { log } = options;
  // FERRY_BENCH_PAIRS=lodash,esbuild runs only the pairs whose name holds one of the words.
  const only = (process.env.FERRY_BENCH_PAIRS ?? '').split(',').filter((w) => w !== '');
  const pairs = (options.pairs ?? PAIRS).filter((p) => only.length === 0 || only.some((w) => p.name.includes(w)));
  const started = Date.now();
  ensureTools([XDELTA3, ZSTD, GNU_TIME], log);
  const found = await findOrBuildHDiffPatch(log);
  const hdp = 'reason' in found ? null : found;
  const hdpNote = 'reason' in found ? `not built: ${found.reason}` : '';
  if (!hdp) log(`HDiffPatch ${hdpNote}`);
  log(`load average at start: ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
  const root = await mkdtemp(join(tmpdir(), 'ferry-bench-delta-'));
  try {
    await mkdir(join(root, 'keys'));
    const keys = await makeKeys(join(root, 'keys'), join(root, 'time.out'));
    const results: PairResult[] = [];
    for (const [i, pair] of pairs.entries()) {
      if (Date.now() - started > BENCH_BUDGET_MS) {
        log(`budget of ${BENCH_BUDGET_MS / 60_000} min spent: skipping ${pairs.slice(i).map((p) => p.name).join(', ')}`);
        break;
      }
      log(`[${i + 1}/${pairs.length}] ${pair.name}: ${pair.from} -> ${pair.to}`);
      const dir = join(root, String(i));
      await mkdir(dir);
      results.push(await runPair(pair, dir, keys, hdp, log));
      await rm(dir, { recursive: true, force: true });
    }
    log('');
    log(bytesTable(results, hdpNote.length > 40 ? 'not built' : hdpNote));
    log('');
    log('bytes. manifest: the signed metadata files `ferry release` of 1.1.0 wrote, as a device downloads them from `ferry serve` (.json brotli q11;');
    log('a separate file list is not counted: a device on the delta\'s base rebuilds it); growth: manifest minus the manifest of the same release');
    log('published without a delta; / best: delta+growth over min(xdelta3, zstd).');
    for (const r of results) {
      log(`  ${r.pair.name}: delta ${r.withDelta.delta?.path ?? '-'}; manifest files ${r.withDelta.metadata.map((f) => `${f.path} ${fmt.bytes(f.bytes)}`).join(', ')} (${fmt.bytes(r.withDelta.metadataBytes)} B uncompressed); without a delta ${fmt.bytes(r.served.noDelta)} B (${fmt.bytes(r.noDelta.metadataBytes)} B uncompressed)`);
      // A device on the delta's base rebuilds the list (no download); one installing the full artifact reads it.
      if (r.withDelta.lists.length > 0) log(`    file lists ${r.withDelta.lists.map((f) => `${f.path} ${fmt.bytes(f.bytes)}`).join(', ')} (${fmt.bytes(r.served.lists)} B brotli), read only by a device without the base`);
    }
    if (!hdp) log(`HDiffPatch ${hdpNote}`);
    log('');
    log(timesTable(results));
    log('');
    log('s/MiB: wall seconds / peak RSS (GNU time) of one run. ferry release: `ferry release` of 1.1.0 with its delta (node start-up, scanning, signing,');
    log('the full artifact and the delta); no-delta s: the same release with --deltas 0; delta making s: the difference. ferry update: the device');
    log('on 1.0.0 running `ferry update` (check, download, apply by the delta, switch). The other tools diff and apply the trees as uncompressed tars.');
    log(`xdelta3 ${XDELTA3_ENCODE('old.tar', 'new.tar', 'd').join(' ')}  |  zstd ${ZSTD_ENCODE('old.tar', 'new.tar', 'd').join(' ')}  |  hdiffz ${HDIFFZ_ENCODE('old.tar', 'new.tar', 'd').join(' ')}`);
    const reused = results.flatMap((r) => [r.xdelta3, r.zstd, r.hdiffpatch].filter((t) => t?.cachedAt !== undefined).map((t) => t!.cachedAt!));
    if (reused.length > 0) {
      log(`* reused from bench/.cache/tool-results.json (same pair, command and tool binary; checked when made, ${[...new Set(reused.map((a) => a.slice(0, 16)))].join(', ')} UTC): bytes exact, times from that run. FERRY_BENCH_FRESH=1 re-runs them.`);
    }
    log(`load average at end: ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
    log('');
    for (const t of targets(results, hdp !== null)) log(t);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}
