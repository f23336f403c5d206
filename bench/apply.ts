// bench/apply: how long a device takes to install a ~50 MB release, and how much memory it
// needs, through the real Updater against a folder source: (a) a device with nothing installed,
// by the full artifact, and (b) a device on 1.0.0, by the delta. The yardstick is what a plain
// copy costs on the same machine in the same run: `cp -a` of the new tree plus `sha256sum` of
// every file of it. Every update is checked before it is reported: the device's current tree must
// hash exactly as the new tree.

import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { publishRelease, type ReleaseResult } from '../core/publish/publish.ts';
import { scanTree } from '../core/publish/tree.ts';
import { regularFiles } from '../core/trust/metadata.ts';
import { createBsdiffPatcher } from '../plugins/bsdiff/patcher.ts';
import { makeRepo, type TestRepo } from '../test/helpers/repo.ts';
import { hashTree, makeDevice, type TestDevice } from '../test/helpers/device.ts';
import { measureCommand, runChecked, type Measured } from './lib/measure.ts';
import { ensureTools, GNU_TIME } from './lib/tools.ts';
import { fmt, formatTable, type Cell } from './lib/table.ts';
import { APP_PACKAGES, writeAppTree } from './lib/app-tree.ts';
import type { BreakdownMeta, BreakdownReport, UpdateReport } from './lib/apply-child.ts';

/** Each measurement is run this often and the median kept. */
const RUNS = 3;
/** Per child or command; an update of this tree takes seconds. */
const STEP_TIMEOUT_MS = 5 * 60_000;
/** Per in-process setup step (building the trees, each publish, installing 1.0.0 on a device). */
const SETUP_TIMEOUT_MS = 10 * 60_000;
const TARGET = { platform: 'linux', arch: 'x64' };

const CHILD = fileURLToPath(new URL('./lib/apply-child.ts', import.meta.url));

/** Rejects once `ms` have passed (the work itself cannot be cancelled, but the bench stops waiting). */
async function within<T>(what: string, ms: number, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took over ${ms / 1000} s`)), ms);
  });
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** Runs apply-child.ts under node + tsx (with extra environment variables if any) and returns its report. */
async function runChild<T>(args: string[], env: Record<string, string> = {}): Promise<T> {
  const node = [process.execPath, '--import', 'tsx', CHILD, ...args];
  const assignments = Object.entries(env).map(([k, v]) => `${k}=${v}`);
  const stdout = assignments.length > 0
    ? await runChecked('/usr/bin/env', [...assignments, ...node], STEP_TIMEOUT_MS)
    : await runChecked(node[0]!, node.slice(1), STEP_TIMEOUT_MS);
  const last = stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(last) as T;
  } catch (cause) {
    throw new Error(`apply-child ${args[0]} printed no report: ${JSON.stringify(stdout.slice(-500))}`, { cause });
  }
}

/**
 * Writes back every dirty page before a measured step (untimed), so no step pays for the writeback
 * of the one before it: cp -a and the updates both start from a quiet disk with warm caches.
 */
async function settle(): Promise<void> {
  await runChecked('sync', [], STEP_TIMEOUT_MS);
}

function median(values: number[]): number {
  return [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
}

interface Row {
  label: string;
  seconds: number[];
  maxRssKiB: number[];
}

const row = (label: string, runs: Measured[]): Row => ({ label, seconds: runs.map((r) => r.seconds), maxRssKiB: runs.map((r) => r.maxRssKiB) });

type Expected = Awaited<ReturnType<typeof hashTree>>;

/** Throws unless the device is on 1.1.0 and its current tree is exactly `want` (own walk, own hashing). */
async function expectInstalled(device: TestDevice, version: string, want: Expected, what: string): Promise<void> {
  const current = await device.current();
  if (current !== version) throw new Error(`${what}: current is ${current}, want ${version}`);
  const got = await hashTree(device.layout.current);
  if (got.size !== want.size) throw new Error(`${what}: current holds ${got.size} files, want ${want.size}`);
  for (const [path, w] of want) {
    const g = got.get(path);
    if (!g) throw new Error(`${what}: current lacks ${path}`);
    if (g.sha256 !== w.sha256 || g.size !== w.size || g.mode !== w.mode) {
      throw new Error(`${what}: ${path} is ${JSON.stringify(g)}, want ${JSON.stringify(w)}`);
    }
  }
}

function publish(repo: TestRepo, appDir: string, version: string): Promise<ReleaseResult> {
  return publishRelease({
    repo: repo.repo,
    appDir,
    version,
    channel: 'stable',
    keys: [repo.releaseKey],
    ...TARGET,
    deltas: 3,
    expiresIn: 30 * 86400,
    now: new Date(),
    patcher: createBsdiffPatcher(),
  });
}

/** One update in a fresh child; checks the plan kind it took and the tree it left. */
async function measureUpdate(device: TestDevice, repo: string, kind: 'full' | 'delta', want: Expected, env: Record<string, string> = {}): Promise<UpdateReport> {
  await settle();
  const report = await runChild<UpdateReport>(['update', device.home, repo], env);
  const what = `${kind} update`;
  if (report.status !== 'committed' || report.version !== '1.1.0') throw new Error(`${what}: ${JSON.stringify(report)}`);
  if (report.kind !== kind || report.fellBackToFull) throw new Error(`${what} was built as ${report.kind}${report.fellBackToFull ? ' (delta fell back to full)' : ''}: ${JSON.stringify(report)}`);
  await expectInstalled(device, '1.1.0', want, what);
  return report;
}

export async function run(options: { log: (line: string) => void }): Promise<void> {
  const { log } = options;
  ensureTools([GNU_TIME], log);
  const root = await mkdtemp(join(tmpdir(), 'ferry-bench-apply-'));
  const devices: TestDevice[] = [];
  let repo: TestRepo | undefined;
  const newDevice = async () => {
    const device = await makeDevice({ trust: await repo!.trust(), sources: [repo!.repo], ...TARGET });
    devices.push(device);
    return device;
  };
  try {
    const floor = await runChild<Measured>(['noop']);

    log(`app trees: ${APP_PACKAGES.map((p) => `${p.name} ${p.from} -> ${p.to}`).join(', ')}, plus generated modules and assets`);
    const oldApp = join(root, 'app-1.0.0');
    const newApp = join(root, 'app-1.1.0');
    await mkdir(join(root, 'scratch'));
    await within('building the app trees', SETUP_TIMEOUT_MS, (async () => {
      await writeAppTree('1.0.0', oldApp, join(root, 'scratch'), log);
      await writeAppTree('1.1.0', newApp, join(root, 'scratch'), log);
    })());
    const newFiles = regularFiles(await scanTree(newApp));
    const want = await hashTree(newApp);
    const newBytes = newFiles.reduce((n, f) => n + f.size, 0);
    const largest = newFiles.reduce((a, f) => (f.size > a.size ? f : a));

    repo = await makeRepo({ app: 'bench-app', dir: join(root, 'repo-home') });
    log('publishing 1.0.0');
    let start = Date.now();
    await within('publishing 1.0.0', SETUP_TIMEOUT_MS, publish(repo, oldApp, '1.0.0'));
    const publish1s = (Date.now() - start) / 1000;

    // Devices on 1.0.0 for the delta runs are installed now, while 1.0.0 is the latest release.
    // One more than the runs: the spare takes the fsync-off diagnostic.
    log(`installing 1.0.0 on ${RUNS + 1} devices`);
    const onOld: TestDevice[] = [];
    for (let i = 0; i < RUNS + 1; i++) {
      const device = await newDevice();
      const result = await within('installing 1.0.0', SETUP_TIMEOUT_MS, device.with((u) => u.apply()));
      if (result.status !== 'committed' || (await device.current()) !== '1.0.0') throw new Error(`installing 1.0.0: ${JSON.stringify(result)}`);
      onOld.push(device);
    }

    log('publishing 1.1.0 (with its delta from 1.0.0)');
    start = Date.now();
    const r2 = await within('publishing 1.1.0', SETUP_TIMEOUT_MS, publish(repo, newApp, '1.1.0'));
    const publish2s = (Date.now() - start) / 1000;
    const target = r2.manifest.targets[r2.target]!;
    const deltaIndex = target.deltas.findIndex((d) => d.from === '1.0.0');
    if (deltaIndex < 0) throw new Error(`1.1.0 has no delta from 1.0.0 (not smaller than the full artifact?): ${JSON.stringify(r2.deltas)}`);
    const deltaBytes = target.deltas[deltaIndex]!.artifact.size;
    const ops = target.deltas[deltaIndex]!.ops;
    const opCounts = (['copy', 'patch', 'whole'] as const).map((k) => `${ops.filter((o) => o.op === k).length} ${k}`).join(', ');

    log('baseline: cp -a + sha256sum');
    const timeOut = join(root, 'time.out');
    const cps: Measured[] = [];
    const sums: Measured[] = [];
    for (let i = 0; i < RUNS; i++) {
      const copy = join(root, `copy-${i}`);
      await settle();
      cps.push(await measureCommand('cp', ['-a', newApp, copy], timeOut, STEP_TIMEOUT_MS));
      await settle();
      sums.push(await measureCommand('sha256sum', newFiles.map((f) => join(copy, f.path)), timeOut, STEP_TIMEOUT_MS));
      await rm(copy, { recursive: true, force: true });
    }
    const baselineRuns = cps.map((c, i) => ({ seconds: c.seconds + sums[i]!.seconds, maxRssKiB: Math.max(c.maxRssKiB, sums[i]!.maxRssKiB) }));

    log('(a) full: device on nothing -> 1.1.0');
    const fullRuns: UpdateReport[] = [];
    let onNew: TestDevice | undefined;
    for (let i = 0; i < RUNS; i++) {
      onNew = await newDevice();
      fullRuns.push(await measureUpdate(onNew, repo.repo, 'full', want));
    }

    log('(b) delta: device on 1.0.0 -> 1.1.0');
    const deltaRuns: UpdateReport[] = [];
    const spareOnOld = onOld.pop()!;
    for (const device of onOld) deltaRuns.push(await measureUpdate(device, repo.repo, 'delta', want));

    // Diagnostics, not targets: the same updates with every fsync turned off, and the core steps
    // timed one by one, to show where the time goes.
    log('diagnostics: fsync off, and the steps one by one');
    const noSync = { FERRY_UNSAFE_SKIP_FSYNC: '1' };
    const fullNoSync = await measureUpdate(await newDevice(), repo.repo, 'full', want, noSync);
    const deltaNoSync = await measureUpdate(spareOnOld, repo.repo, 'delta', want, noSync);
    // The fixed cost of an update, whatever the tree: open (lock, LevelDB, recovery), discover and
    // verify the signed metadata, close: an apply on a device already on 1.1.0.
    await settle();
    const idle = await runChild<UpdateReport>(['update', onNew!.home, repo.repo]);
    if (idle.status !== 'up-to-date') throw new Error(`an apply on a device on 1.1.0: ${JSON.stringify(idle)}`);
    const metaFile = join(root, 'breakdown.json');
    await writeFile(metaFile, JSON.stringify({ target, delta: deltaIndex } satisfies BreakdownMeta));
    const breakdowns: Record<string, BreakdownReport> = {};
    for (const plan of ['full', 'delta']) {
      await mkdir(join(root, `breakdown-${plan}`));
      await settle();
      breakdowns[plan] = await runChild<BreakdownReport>(['breakdown', plan, metaFile, repo.repo, join(root, `breakdown-${plan}`), oldApp]);
    }

    const rows: Row[] = [
      row('baseline: cp -a + sha256sum', baselineRuns),
      row('  cp -a', cps),
      row('  sha256sum', sums),
      row('(a) full: nothing -> 1.1.0', fullRuns),
      row('(b) delta: 1.0.0 -> 1.1.0', deltaRuns),
    ];
    const base = median(baselineRuns.map((r) => r.seconds));
    log('');
    log(`tree 1.1.0: ${fmt.mb(newBytes)} MB in ${newFiles.length} files; largest ${largest.path} ${fmt.mb(largest.size)} MB`);
    log(`artifacts: full ${fmt.bytes(r2.full.size)} B (tar.gz -9), delta from 1.0.0 ${fmt.bytes(deltaBytes)} B (${opCounts}); publish 1.0.0 ${fmt.seconds(publish1s)} s, 1.1.0 ${fmt.seconds(publish2s)} s`);
    log('');
    log(formatTable(
      [
        { title: 'step' },
        { title: 's', align: 'right' },
        { title: '/ baseline', align: 'right' },
        { title: 'runs s', align: 'right' },
        { title: 'MiB', align: 'right' },
        { title: 'MiB max', align: 'right' },
      ],
      rows.map((r): Cell[] => [
        r.label,
        fmt.seconds(median(r.seconds)),
        r.label.startsWith('  ') ? '' : fmt.ratio(median(r.seconds) / base),
        r.seconds.map(fmt.seconds).join(' '),
        fmt.mib(median(r.maxRssKiB)),
        fmt.mib(Math.max(...r.maxRssKiB)),
      ]),
    ));
    log('');
    log(`s and MiB: median of ${RUNS} runs, each update in a fresh child process (s times Updater.open -> apply -> close).`);
    log(`Update MiB include node + tsx + ferry's imports: ${fmt.mib(floor.maxRssKiB)} MiB for a child that does nothing. Baseline MiB: the larger of cp's and sha256sum's.`);
    log('');
    log('where the time and memory go (the core steps of each plan run one by one in a child, one run; not targets):');
    const stepRows: Cell[][] = [];
    for (const [plan, b] of Object.entries(breakdowns)) {
      stepRows.push([plan, 'start (node + tsx + imports)', '', fmt.mib(b.floorKiB)]);
      for (const s of b.steps) stepRows.push(['', s.step, fmt.seconds(s.seconds), fmt.mib(s.peakKiB)]);
      stepRows.push(['', 'sum of the steps of an update', fmt.seconds(b.steps.filter((s) => !s.step.startsWith('verifyTree')).reduce((n, s) => n + s.seconds, 0)), '']);
    }
    log(formatTable([{ title: 'plan' }, { title: 'step' }, { title: 's', align: 'right' }, { title: 'peak MiB after', align: 'right' }], stepRows));
    log(`with FERRY_UNSAFE_SKIP_FSYNC=1 (every fsync a no-op), one run: full ${fmt.seconds(fullNoSync.seconds)} s, delta ${fmt.seconds(deltaNoSync.seconds)} s`);
    log(`fixed cost (open, check the signed metadata, close) on a device already on 1.1.0: ${fmt.seconds(idle.seconds)} s, ${fmt.mib(idle.maxRssKiB)} MiB`);
    log('');

    const limitKiB = (2.5 * largest.size + 100 * 1024 * 1024) / 1024;
    const fullS = median(fullRuns.map((r) => r.seconds));
    const deltaS = median(deltaRuns.map((r) => r.seconds));
    const line = (ok: boolean, what: string, got: string) => log(`${ok ? 'PASS' : 'MISS'}  ${what}  (${got})`);
    line(fullS <= 2 * base, 'full update <= 2x baseline', `${fmt.seconds(fullS)} s = ${fmt.ratio(fullS / base)} of ${fmt.seconds(base)} s`);
    line(deltaS <= 3 * base, 'delta update <= 3x baseline', `${fmt.seconds(deltaS)} s = ${fmt.ratio(deltaS / base)} of ${fmt.seconds(base)} s`);
    for (const [name, runs] of [['full', fullRuns], ['delta', deltaRuns]] as const) {
      const peak = median(runs.map((r) => r.maxRssKiB));
      line(peak < limitKiB, `${name} update peak RSS < 2.5x largest file + 100 MiB`, `${fmt.mib(peak)} MiB, limit ${fmt.mib(limitKiB)} MiB; node+tsx floor ${fmt.mib(floor.maxRssKiB)} MiB`);
    }
  } finally {
    for (const d of devices) await d.cleanup();
    await repo?.cleanup();
    await rm(root, { recursive: true, force: true });
  }
}
