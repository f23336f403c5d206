// bench/apply: how long a device takes to install a release, and how much memory it needs, the
// way a device does it: a real device home (`ferry init`) running `ferry update` (the built CLI,
// node's start-up included) against a local repository folder made by `ferry release`: (a) a
// device with nothing installed, by the full artifact, and (b) a device on 1.0.0, by the delta.
// The yardstick is what a plain copy costs on the same machine in the same run: `cp -a` of the new
// tree, `sha256sum` of every file of the copy, then `sync`. Two trees: a 50 MB app and a
// 1,054-file JS library. Every update is checked before it is reported: the plan it took, and the
// device's current tree hashed by the bench's own walk against the new tree.
// Beside each `ferry update`, for information only (the targets are judged on `ferry update`), the
// same update inside a process that has already loaded ferry, as `ferry agent` runs it
// (bench/lib/in-process.ts): no node start-up, no module loading in the figure.

import { mkdir, mkdtemp, rename, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { measureCommand, median, settle, type Measured } from './lib/measure.ts';
import { ensureTools, GNU_TIME } from './lib/tools.ts';
import { fmt, formatTable, type Cell } from './lib/table.ts';
import { APP_PACKAGES, writeAppTree } from './lib/app-tree.ts';
import { fetchPackage, unpackPackage } from './lib/npm-pack.ts';
import { currentTree, expectUpdate, FERRY_JS, initHome, initRepo, makeKeys, release, update, type Keys } from './lib/ferry-cli.ts';
import { hashTree, treeBytes, treeDifference, type TreeFile } from './lib/tree-files.ts';
import { updateInProcess, type InProcessUpdate } from './lib/in-process.ts';

/** Each measurement is run this often (baseline, full and delta interleaved) and the median kept. */
const RUNS = 3;
/** Per command; an update of these trees takes seconds. */
const STEP_TIMEOUT_MS = 5 * 60_000;
/** Per publish (it diffs the trees). */
const PUBLISH_TIMEOUT_MS = 15 * 60_000;

/** The copy a device's update is measured against: copy the new tree, hash every file of the copy, flush to disk. */
const BASELINE_SCRIPT = 'cp -a "$1" "$2" && find "$2" -type f -print0 | xargs -0 sha256sum > /dev/null && sync';

interface Tree {
  name: string;
  /** What the tree is made of, for the output. */
  what: string;
  /** Writes version 1.0.0 and 1.1.0 of the tree into `oldDir` and `newDir`. */
  write(oldDir: string, newDir: string, scratch: string, log: (line: string) => void): Promise<void>;
}

const LODASH = { from: 'lodash@4.17.20', to: 'lodash@4.17.21' };

export const TREES: Tree[] = [
  {
    name: 'app 50 MB',
    what: `${APP_PACKAGES.map((p) => `${p.name} ${p.from} -> ${p.to}`).join(', ')} (npm pack), plus 200 generated JS modules and 40 generated binary assets`,
    async write(oldDir, newDir, scratch, log) {
      await writeAppTree('1.0.0', oldDir, scratch, log);
      await writeAppTree('1.1.0', newDir, scratch, log);
    },
  },
  {
    name: 'lodash 1,000+ files',
    what: `${LODASH.from} -> ${LODASH.to} (npm pack), the real package`,
    async write(oldDir, newDir, scratch, log) {
      for (const [spec, dir] of [[LODASH.from, oldDir], [LODASH.to, newDir]] as const) {
        const unpacked = await unpackPackage(await fetchPackage(spec, log), join(scratch, spec));
        await mkdir(join(dir, 'node_modules'), { recursive: true });
        await rename(unpacked, join(dir, 'node_modules', 'lodash'));
      }
    },
  },
];

interface TreeResult {
  tree: Tree;
  newBytes: number;
  newFiles: number;
  largest: number;
  fullBytes: number | undefined;
  deltaBytes: number | undefined;
  publish: Measured;
  baseline: Measured[];
  full: Measured[];
  delta: Measured[];
  /** The same updates in a process that has loaded ferry already (as `ferry agent` runs them). */
  fullInProcess: InProcessUpdate[];
  deltaInProcess: InProcessUpdate[];
}

async function expectTree(home: string, want: Map<string, TreeFile>, what: string): Promise<void> {
  const mismatch = treeDifference(await hashTree(currentTree(home)), want);
  if (mismatch) throw new Error(`${what}: the device's current tree differs from the new tree: ${mismatch}`);
}

async function runTree(tree: Tree, dir: string, keys: Keys, log: (line: string) => void): Promise<TreeResult> {
  const timeOut = join(dir, 'time.out');
  const oldDir = join(dir, 'app-1.0.0');
  const newDir = join(dir, 'app-1.1.0');
  await mkdir(join(dir, 'scratch'));
  await tree.write(oldDir, newDir, join(dir, 'scratch'), log);
  const want = await hashTree(newDir);

  const repo = join(dir, 'repo');
  await initRepo(repo, keys, timeOut);
  log('  release 1.0.0');
  await release(repo, oldDir, '1.0.0', keys, 0, timeOut, PUBLISH_TIMEOUT_MS);
  // The devices for the delta runs (by `ferry update` and in-process) install 1.0.0 now, while it is the latest release.
  log(`  ${2 * RUNS} devices install 1.0.0`);
  const onOld: string[] = [];
  for (let i = 0; i < 2 * RUNS; i++) {
    const home = join(dir, `old-${i}`);
    await initHome(home, repo, timeOut);
    expectUpdate(await update(home, timeOut, STEP_TIMEOUT_MS), '1.0.0', 'full', 'installing 1.0.0');
    onOld.push(home);
  }
  log('  release 1.1.0 (with its delta from 1.0.0)');
  await settle();
  const pub = await release(repo, newDir, '1.1.0', keys, 1, timeOut, PUBLISH_TIMEOUT_MS);
  if ((pub.json.deltas ?? []).length !== 1) throw new Error(`1.1.0 has no delta from 1.0.0 (not smaller than the full artifact?): ${JSON.stringify(pub.json)}`);

  const baseline: Measured[] = [];
  const full: Measured[] = [];
  const delta: Measured[] = [];
  const fullInProcess: InProcessUpdate[] = [];
  const deltaInProcess: InProcessUpdate[] = [];
  for (let i = 0; i < RUNS; i++) {
    log(`  run ${i + 1}/${RUNS}: baseline, full update, delta update, full and delta in-process`);
    const copy = join(dir, `copy-${i}`);
    await settle();
    baseline.push(await measureCommand('sh', ['-c', BASELINE_SCRIPT, 'sh', newDir, copy], timeOut, STEP_TIMEOUT_MS));
    await rm(copy, { recursive: true, force: true });

    const fresh = join(dir, `new-${i}`);
    await initHome(fresh, repo, timeOut);
    await settle();
    const f = await update(fresh, timeOut, STEP_TIMEOUT_MS);
    expectUpdate(f, '1.1.0', 'full', 'full update');
    await expectTree(fresh, want, 'full update');
    full.push(f);
    await rm(fresh, { recursive: true, force: true });

    await settle();
    const d = await update(onOld[i]!, timeOut, STEP_TIMEOUT_MS);
    expectUpdate(d, '1.1.0', 'delta', 'delta update');
    await expectTree(onOld[i]!, want, 'delta update');
    delta.push(d);
    await rm(onOld[i]!, { recursive: true, force: true });

    // In-process: the child loads ferry first; the disk is settled after that, untimed, then the update runs.
    const freshIn = join(dir, `new-in-${i}`);
    await initHome(freshIn, repo, timeOut);
    const fi = await updateInProcess(freshIn, settle, STEP_TIMEOUT_MS);
    expectUpdate(fi, '1.1.0', 'full', 'full update in-process');
    await expectTree(freshIn, want, 'full update in-process');
    fullInProcess.push(fi);
    await rm(freshIn, { recursive: true, force: true });

    const oldIn = onOld[RUNS + i]!;
    const di = await updateInProcess(oldIn, settle, STEP_TIMEOUT_MS);
    expectUpdate(di, '1.1.0', 'delta', 'delta update in-process');
    await expectTree(oldIn, want, 'delta update in-process');
    deltaInProcess.push(di);
    await rm(oldIn, { recursive: true, force: true });
  }
  return {
    tree,
    newBytes: treeBytes(want),
    newFiles: want.size,
    largest: Math.max(...[...want.values()].map((f) => f.size)),
    fullBytes: pub.json.full?.size,
    deltaBytes: pub.json.deltas?.[0]?.size,
    publish: pub,
    baseline,
    full,
    delta,
    fullInProcess,
    deltaInProcess,
  };
}

const medianS = (runs: Measured[]) => median(runs.map((r) => r.seconds));
const peakKiB = (runs: Measured[]) => Math.max(...runs.map((r) => r.maxRssKiB));

export async function run(options: { log: (line: string) => void }): Promise<void> {
  const { log } = options;
  ensureTools([GNU_TIME], log);
  log(`load average at start: ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
  const root = await mkdtemp(join(tmpdir(), 'ferry-bench-apply-'));
  try {
    const timeOut = join(root, 'time.out');
    // The floor under every update figure: node starting, and ferry's CLI answering --version.
    const floors: Record<string, Measured[]> = { 'node -e 0': [], 'ferry --version': [] };
    for (let i = 0; i < RUNS; i++) {
      floors['node -e 0']!.push(await measureCommand(process.execPath, ['-e', '0'], timeOut, STEP_TIMEOUT_MS));
      floors['ferry --version']!.push(await measureCommand(process.execPath, [FERRY_JS, '--version'], timeOut, STEP_TIMEOUT_MS));
    }
    await mkdir(join(root, 'keys'));
    const keys = await makeKeys(join(root, 'keys'), timeOut);
    const results: TreeResult[] = [];
    for (const [i, tree] of TREES.entries()) {
      log(`[${i + 1}/${TREES.length}] ${tree.name}: ${tree.what}`);
      const dir = join(root, String(i));
      await mkdir(dir);
      results.push(await runTree(tree, dir, keys, log));
      await rm(dir, { recursive: true, force: true });
    }

    log('');
    const rows: Cell[][] = [];
    for (const r of results) {
      const base = medianS(r.baseline);
      const label = `${r.tree.name} (${fmt.mb(r.newBytes)} MB, ${r.newFiles} files)`;
      const steps: [string, Measured[]][] = [
        ['baseline: cp -a + sha256sum + sync', r.baseline],
        ['(a) full update: nothing -> 1.1.0', r.full],
        ['(b) delta update: 1.0.0 -> 1.1.0', r.delta],
        ['(a) full, in-process (as the agent)', r.fullInProcess],
        ['(b) delta, in-process (as the agent)', r.deltaInProcess],
      ];
      for (const [step, runs] of steps) {
        rows.push([
          step.startsWith('baseline') ? label : '',
          step,
          fmt.seconds(medianS(runs)),
          fmt.ratio(medianS(runs) / base),
          runs.map((x) => fmt.seconds(x.seconds)).join(' '),
          fmt.mib(peakKiB(runs)),
        ]);
      }
    }
    log(formatTable(
      [{ title: 'tree' }, { title: 'step' }, { title: 's', align: 'right' }, { title: '/ baseline', align: 'right' }, { title: 'runs s', align: 'right' }, { title: 'peak MiB', align: 'right' }],
      rows,
    ));
    log('');
    for (const r of results) {
      log(`${r.tree.name}: ${r.tree.what}; largest file ${fmt.mb(r.largest)} MB; full artifact ${r.fullBytes === undefined ? '?' : fmt.bytes(r.fullBytes)} B, delta ${r.deltaBytes === undefined ? '?' : fmt.bytes(r.deltaBytes)} B; ferry release 1.1.0 ${fmt.seconds(r.publish.seconds)} s, ${fmt.mib(r.publish.maxRssKiB)} MiB`);
    }
    log(`s: median of ${RUNS} runs (baseline, full and delta interleaved, \`sync\` untimed before each). Updates are \`ferry update --home H\` as a device runs it`);
    log('(node start-up, check, fetch from the repository folder, build, verify, switch, close). peak MiB: the largest of the runs (GNU time).');
    log('in-process: the same update run by a process that has loaded ferry already (withDevice + apply, as `ferry agent` runs each round;');
    log('bench/lib/in-process-update.mjs): timed from the go signal to the result, so node start-up and module loading are NOT in it;');
    log('peak MiB is that process\'s VmHWM at the end (its code loaded, plus the update). Information only: the targets are judged on `ferry update`.');
    for (const [name, runs] of Object.entries(floors)) log(`floor: ${name} ${fmt.seconds(medianS(runs))} s, ${fmt.mib(peakKiB(runs))} MiB`);
    log(`load average at end: ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
    log('');
    const line = (ok: boolean, what: string, got: string) => log(`${ok ? 'PASS' : 'MISS'}  ${what}  (${got})`);
    for (const r of results) {
      const base = medianS(r.baseline);
      for (const [kind, runs] of [['delta', r.deltaInProcess], ['full', r.fullInProcess]] as const) {
        const s = medianS(runs);
        const loaded = peakKiB(runs.map((x) => ({ seconds: x.seconds, maxRssKiB: x.loadedRssKiB })));
        const growth = Math.max(...runs.map((x) => x.maxRssKiB - x.loadedRssKiB));
        log(`info  ${r.tree.name}: ${kind} update in-process (no start-up; not a target)  (${fmt.seconds(s)} s = ${fmt.ratio(s / base)} of ${fmt.seconds(base)} s; peak ${fmt.mib(peakKiB(runs))} MiB: ${fmt.mib(loaded)} MiB loaded, up to +${fmt.mib(growth)} MiB during the update)`);
      }
    }
    for (const r of results) {
      const base = medianS(r.baseline);
      for (const [kind, runs, limit] of [['delta', r.delta, 2], ['full', r.full, 1.5]] as const) {
        const s = medianS(runs);
        line(s <= limit * base, `${r.tree.name}: ${kind} update <= ${limit}x baseline`, `${fmt.seconds(s)} s = ${fmt.ratio(s / base)} of ${fmt.seconds(base)} s`);
      }
      for (const [kind, runs] of [['delta', r.delta], ['full', r.full]] as const) {
        line(peakKiB(runs) < 100 * 1024, `${r.tree.name}: ${kind} update peak RSS < 100 MiB`, `${fmt.mib(peakKiB(runs))} MiB, the largest of ${RUNS} runs`);
      }
    }
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}
