// Fixtures and an independent oracle for the crash and power-loss tests (SECURITY.md rows 18-20).
// The fixture is one signed repository with 1.0.0 and 1.1.0 (a delta from 1.0.0) and two
// device-home templates already on 1.0.0: one healthy, one whose health check fails on 1.1.0.
// The oracle reads the signed manifest straight from the repository and hashes every file of
// `current` itself, so a bug in the device code cannot also hide in the check.

import { readPayload } from './tamper.ts';
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { lstat, mkdir, readdir, readFile, readlink, rm, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { isLink, type TreeEntry, type ManifestDoc } from '../../core/trust/metadata.ts';
import type { UpdateRecord } from '../../core/spec.ts';
import type { DeviceStatus } from '../../core/update/updater.ts';
import { makeRepo, sampleApp, tempDir, type TempDir, type TestRepo, type TreeSpec } from './repo.ts';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const TARGET = 'linux-x64';
export const OLD = '1.0.0';
export const NEW = '1.1.0';

/**
 * The health check of the unhealthy template: healthy only where lib/feature-1.js is absent, i.e.
 * 1.0.0 passes and 1.1.0 (sampleApp adds the file) fails. No shell: `ferry init --health-cmd`
 * splits the command on spaces, so quoting would reach `sh` literally.
 */
export const FAILS_ON_NEW = 'test ! -f lib/feature-1.js';

// ---------------------------------------------------------------------------------------------
// Running the real CLI

export interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

export interface Started {
  child: ChildProcess;
  /** Everything printed on stdout so far. */
  stdout(): string;
  done: Promise<Run>;
}

/** Children that run longer than this are killed (a hung update must fail the test, not stall it). */
export const CHILD_TIMEOUT_MS = 60_000;

/** The variables only the test entry reads; the `ferry` executable ignores them (cli/seams.ts). */
export const SEAM_VARIABLES = ['FERRY_TEST_KILL_AT', 'FERRY_TEST_CLOCK_START', 'FERRY_UNSAFE_SKIP_FSYNC'] as const;

/**
 * The script a child runs: the executable users run (dist/cli/ferry.js), or, when `env` sets a
 * test seam, test/helpers/ferry-with-seams.mjs — the same runCli, handed the seams.
 */
export function ferryEntry(env: Record<string, string>): string {
  return SEAM_VARIABLES.some((name) => name in env) ? 'test/helpers/ferry-with-seams.mjs' : 'dist/cli/ferry.js';
}

/** Starts the built `ferry` (ferryEntry) as a child; `env` is added to the test's environment. */
export function startFerry(args: string[], env: Record<string, string> = {}): Started {
  const t0 = performance.now();
  const child = spawn(process.execPath, [ferryEntry(env), ...args], {
    cwd: ROOT,
    env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
  const timer = setTimeout(() => {
    err += `\n(test: killed after ${CHILD_TIMEOUT_MS} ms)`;
    if (running(child)) child.kill('SIGKILL');
  }, CHILD_TIMEOUT_MS);
  const done = new Promise<Run>((resolve, reject) => {
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.on('close', (code, signal) => { clearTimeout(timer); resolve({ code, signal, stdout: out, stderr: err, ms: performance.now() - t0 }); });
  });
  return { child, stdout: () => out, done };
}

export function ferry(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return startFerry(args, env).done;
}

/** True while the child has neither exited nor been reaped: only then may it be signalled by pid. */
export function running(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

export function describeRun(r: Run): string {
  return `exit ${r.code} signal ${r.signal}; stdout: ${r.stdout.trim().slice(-300)}; stderr: ${r.stderr.trim().slice(-500)}`;
}

// ---------------------------------------------------------------------------------------------
// The fixture

/** sampleApp with a 16 KB "binary" instead of 200 KB: the same shape, so each update is quick. */
export function smallApp(version: string): TreeSpec {
  const tree = sampleApp(version);
  tree['lib/engine.bin'] = (tree['lib/engine.bin'] as Buffer).subarray(0, 16_384);
  return tree;
}

export interface CrashFixture {
  tmp: TempDir;
  repo: TestRepo;
  /** Device homes on 1.0.0, never used directly: copy them with `cp -a`. */
  healthyHome: string;
  unhealthyHome: string;
  /** The signed file list of each version, read from the repository. */
  files: Map<string, TreeEntry[]>;
  cleanup(): Promise<void>;
}

/** Reads releases/<version>/manifest.json from the repository and decodes its DSSE payload. */
export async function signedFiles(repoDir: string, version: string): Promise<TreeEntry[]> {
  // readPayload: a separate file list comes back inline.
  const doc = await readPayload<ManifestDoc>(join(repoDir, 'releases', version, 'manifest.json'));
  const release = doc.targets[TARGET];
  if (!release) throw new Error(`manifest ${version} has no ${TARGET} release`);
  return release.files;
}

async function mustRun(args: string[], what: string): Promise<Run> {
  const r = await ferry(args);
  if (r.code !== 0) throw new Error(`${what} failed: ${describeRun(r)}`);
  return r;
}

/**
 * Publishes 1.0.0, makes both templates and updates them to 1.0.0 through the CLI, then
 * publishes 1.1.0 with a delta from 1.0.0.
 */
export async function makeCrashFixture(): Promise<CrashFixture> {
  const tmp = await tempDir('ferry-crash-');
  const repo = await makeRepo({ dir: join(tmp.path, 'publisher') });
  await repo.release(OLD, smallApp(OLD));
  const healthyHome = join(tmp.path, 'template-healthy');
  const unhealthyHome = join(tmp.path, 'template-unhealthy');
  const init = (home: string) => ['init', home, '--trust', repo.trustPath, '--source', repo.repo, '--platform', 'linux', '--arch', 'x64'];
  await mustRun(init(healthyHome), 'init (healthy)');
  await mustRun([...init(unhealthyHome), '--health-cmd', FAILS_ON_NEW, '--health-timeout', '20s'], 'init (unhealthy)');
  for (const home of [healthyHome, unhealthyHome]) await mustRun(['update', '--home', home], `update ${home} to ${OLD}`);
  const published = await repo.release(NEW, smallApp(NEW));
  if (!published.manifest.targets[TARGET]?.deltas.some((d) => d.from === OLD)) throw new Error(`${NEW} was published without a delta from ${OLD}`);
  const files = new Map([[OLD, await signedFiles(repo.repo, OLD)], [NEW, await signedFiles(repo.repo, NEW)]]);
  return { tmp, repo, healthyHome, unhealthyHome, files, cleanup: () => tmp.cleanup() };
}

// ---------------------------------------------------------------------------------------------
// The oracle

/** Problems with `dir` as a copy of `files`: missing, extra, non-regular entries, size/mode/hash, link targets. */
export async function treeProblems(dir: string, files: TreeEntry[]): Promise<string[]> {
  const problems: string[] = [];
  const want = new Map(files.map((f) => [f.path, f]));
  async function walk(rel: string): Promise<void> {
    let names: string[];
    try {
      names = await readdir(join(dir, rel));
    } catch (err) {
      problems.push(`cannot read ${rel || '.'}: ${(err as Error).message}`);
      return;
    }
    for (const name of names) {
      const path = rel ? `${rel}/${name}` : name;
      const st = await lstat(join(dir, path));
      if (st.isDirectory()) {
        await walk(path);
        continue;
      }
      const w = want.get(path);
      want.delete(path);
      if (w && isLink(w)) {
        if (!st.isSymbolicLink()) problems.push(`${path}: not a symlink`);
        else if (await readlink(join(dir, path)) !== w.target) problems.push(`${path}: links to ${await readlink(join(dir, path))}, signed ${w.target}`);
      } else if (!st.isFile()) problems.push(`${path}: not a regular file`);
      else if (!w) problems.push(`${path}: extra file`);
      else {
        const sha = createHash('sha256').update(await readFile(join(dir, path))).digest('hex');
        if (st.size !== w.size || sha !== w.sha256) problems.push(`${path}: ${st.size} bytes, sha256 ${sha.slice(0, 12)}…; signed ${w.size} bytes, ${w.sha256.slice(0, 12)}…`);
        if ((st.mode & 0o7777) !== w.mode) problems.push(`${path}: mode ${(st.mode & 0o7777).toString(8)}, signed ${w.mode.toString(8)}`);
      }
    }
  }
  await walk('');
  for (const path of want.keys()) problems.push(`${path}: missing`);
  return problems;
}

export interface Installed {
  /** The version `current` resolves to, or null when it resolves to nothing valid. */
  version: string | null;
  problems: string[];
}

/** Which complete signed release `home/current` is, straight from the disk. */
export async function inspectCurrent(home: string, files: Map<string, TreeEntry[]>): Promise<Installed> {
  let link: string;
  try {
    link = await readlink(join(home, 'current'));
  } catch (err) {
    return { version: null, problems: [`current: ${(err as Error).message}`] };
  }
  const m = /^releases\/([^/]+)$/.exec(link);
  const signed = m ? files.get(m[1]!) : undefined;
  if (!m || !signed) return { version: null, problems: [`current -> ${link}, not releases/${OLD} or releases/${NEW}`] };
  const problems = await treeProblems(join(home, link), signed);
  return { version: m[1]!, problems: problems.map((p) => `${link}/${p}`) };
}

export async function status(home: string): Promise<{ run: Run; status: DeviceStatus | null }> {
  const run = await ferry(['status', '--home', home, '--json']);
  return { run, status: run.code === 0 ? (JSON.parse(run.stdout) as DeviceStatus) : null };
}

export async function history(home: string): Promise<{ run: Run; records: UpdateRecord[] | null }> {
  const run = await ferry(['history', '--home', home, '--json']);
  return { run, records: run.code === 0 ? (JSON.parse(run.stdout) as UpdateRecord[]) : null };
}

/** A deterministic generator (mulberry32), so "random" kill offsets repeat from run to run. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Runs tasks with at most `limit` at once (the VM has two cores; each task spawns CLIs). */
export function limiter(limit: number): <T>(task: () => Promise<T>) => Promise<T> {
  let active = 0;
  const queue: (() => void)[] = [];
  return async (task) => {
    if (active < limit) active++;
    else await new Promise<void>((resolve) => queue.push(resolve)); // the finishing task hands over its slot
    try {
      return await task();
    } finally {
      const next = queue.shift();
      if (next) next();
      else active--;
    }
  };
}

// ---------------------------------------------------------------------------------------------
// A filesystem that can lose power: ext4 in a file on a loop device, cut with FS_IOC_SHUTDOWN

const execFileP = promisify(execFile);
const SHUTDOWN_HELPER = join(ROOT, 'test', 'helpers', 'fs-shutdown.py');

function hasCommand(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' }).status === 0;
}

/** Why a power-cut test cannot run here, or null when it can (root, loop devices, the tools). */
export function powerCutUnavailable(): string | null {
  if (process.platform !== 'linux') return `power-cut tests need Linux, this is ${process.platform}`;
  if (process.getuid?.() !== 0) return 'power-cut tests need root (losetup, mount)';
  for (const tool of ['losetup', 'mkfs.ext4', 'mount', 'umount', 'python3', 'sync']) {
    if (!hasCommand(tool)) return `power-cut tests need ${tool}, which is not on PATH`;
  }
  if (!existsSync('/dev/loop-control')) return 'power-cut tests need loop devices (/dev/loop-control is missing)';
  return null;
}

export interface LoopFs {
  /** Where the filesystem is mounted while `mounted`. */
  mnt: string;
  device: string;
  mounted: boolean;
  mount(): Promise<void>;
  umount(): Promise<void>;
  /** Unmounts if needed, detaches the loop device this created, removes the image. Never throws. */
  destroy(): Promise<string[]>;
}

/**
 * Makes a `sizeMb` ext4 image under `dir`, attaches it to a free loop device and returns it
 * unmounted. Mounted with commit=60 so the journal never commits on its own during a test: only
 * ferry's fsyncs make anything durable before a cut.
 */
export async function makeLoopFs(dir: string, sizeMb = 64): Promise<LoopFs> {
  return makeLoopFsWith(dir, { sizeMb });
}

/**
 * makeLoopFs with a choice of ext4 mount options (default `commit=60`; keep commit=60 in any
 * other set, or the journal commits on its own during a test). Never a `sync` mount: that would
 * make every write durable and hide exactly what these tests look for.
 */
export async function makeLoopFsWith(dir: string, options: { sizeMb?: number; mountOptions?: string } = {}): Promise<LoopFs> {
  const sizeMb = options.sizeMb ?? 64;
  const mountOptions = options.mountOptions ?? 'commit=60';
  if (mountOptions.split(',').some((o) => o === 'sync' || o === 'dirsync')) throw new Error(`makeLoopFsWith: "${mountOptions}" would make every write durable`);
  const image = join(dir, 'disk.img');
  const mnt = join(dir, 'mnt');
  await mkdir(mnt, { recursive: true });
  await writeFile(image, '');
  await truncate(image, sizeMb * 1024 * 1024);
  await execFileP('mkfs.ext4', ['-q', '-F', image]);
  const device = (await execFileP('losetup', ['--find', '--show', image])).stdout.trim();
  if (!/^\/dev\/loop\d+$/.test(device)) throw new Error(`losetup printed "${device}", not a loop device`);
  let detached = false;
  // Last resort if the test dies with the filesystem still attached (a thrown hook, process.exit).
  const onExit = () => {
    if (fs.mounted) spawnSync('umount', [mnt]);
    if (!detached) spawnSync('losetup', ['-d', device]);
  };
  process.on('exit', onExit);
  const fs: LoopFs = {
    mnt,
    device,
    mounted: false,
    async mount() {
      await execFileP('mount', ['-t', 'ext4', '-o', mountOptions, device, mnt]);
      fs.mounted = true;
    },
    async umount() {
      for (let attempt = 0; ; attempt++) {
        try {
          await execFileP('umount', [mnt]);
          fs.mounted = false;
          return;
        } catch (err) {
          if (attempt >= 20) throw err;
          await sleep(100); // a killed child may still hold a file for a moment
        }
      }
    },
    async destroy() {
      const problems: string[] = [];
      if (fs.mounted) await fs.umount().catch((err) => problems.push(`umount ${mnt}: ${(err as Error).message}`));
      await execFileP('losetup', ['-d', device]).then(() => { detached = true; }, (err) => problems.push(`losetup -d ${device}: ${(err as Error).message}`));
      process.off('exit', onExit);
      await rm(image, { force: true }).catch(() => {});
      return problems;
    },
  };
  return fs;
}

export interface Cutter {
  /** Shuts the filesystem down now (no log flush) and waits for the helper to exit. */
  cut(): Promise<void>;
}

/** Starts the shutdown helper on `mnt` and waits until it holds the mount point open. */
export async function armCutter(mnt: string): Promise<Cutter> {
  const child = spawn('python3', [SHUTDOWN_HELPER, mnt], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  const waiters: (() => void)[] = [];
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); for (const w of waiters) w(); });
  child.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
  const closed = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  const waitFor = (word: string) => new Promise<void>((resolve, reject) => {
    waiters.push(() => { if (out.includes(word)) resolve(); });
    void closed.then((code) => (out.includes(word) ? resolve() : reject(new Error(`fs-shutdown.py exited ${code} before "${word}": ${err.trim()}`))));
  });
  await waitFor('ready');
  return {
    async cut() {
      const done = waitFor('cut');
      child.stdin!.end('go\n');
      await done;
      await closed;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// One power cut during a CLI command, and what every cut must leave behind

/**
 * Runs this test file again inside a private mount namespace (`unshare --mount`), so its loop
 * filesystem is mounted there only. Without it, a process that copies the mount table while the
 * filesystem is mounted (`ip netns exec` makes a private mount namespace; the LAN tests use it)
 * keeps the shut-down superblock alive after our umount, and the remount gets that dead
 * superblock back: every read fails with EIO. Resolves true in the process that should define and
 * run the suites; false in the outer one, which only waited and passed the exit code on.
 */
export async function inPrivateMountNamespace(): Promise<boolean> {
  if (process.env.FERRY_TEST_PRIVATE_MNTNS === '1' || !hasCommand('unshare')) return true;
  const child = spawn('unshare', ['--mount', '--propagation', 'private', '--', process.execPath, ...process.execArgv, ...process.argv.slice(1)], {
    env: { ...process.env, FERRY_TEST_PRIVATE_MNTNS: '1' },
    stdio: 'inherit',
  });
  const code = await new Promise<number>((resolve) => {
    child.on('error', () => resolve(1));
    child.on('close', (c) => resolve(c ?? 1));
  });
  process.exitCode = code;
  return false;
}

export type CutTrigger =
  /** The command runs to its end; the cut follows. */
  | { kind: 'none' }
  /** `ms` after the command was started. */
  | { kind: 'time'; ms: number }
  /** The child (the test entry) SIGKILLs itself at FERRY_TEST_KILL_AT=`point`; the cut follows at once. */
  | { kind: 'phase'; point: string }
  /** As soon as the command's stdout matches (or it exits). */
  | { kind: 'printed'; pattern: RegExp }
  /** `ms` after `current` is first seen pointing at releases/`to` (polled every millisecond). */
  | { kind: 'switched'; to: string; ms: number };

export interface CutCommand {
  /** The home on the loop filesystem is a `cp -a` of this, made durable before the command. */
  template: string;
  args: (home: string) => string[];
  env?: Record<string, string>;
  trigger: CutTrigger;
}

export interface Cut {
  home: string;
  run: Run;
  /** What the command had printed on stdout when the power went: all it had reported. */
  printed: string;
  /** Its exit code, when it had exited before the cut; null when the cut came first. */
  exitedBefore: number | null;
}

/**
 * Mounts `disk`, makes a fresh home from the template, runs the command, cuts the power at the
 * trigger, kills the child and unmounts. The filesystem is left unmounted: look at it with
 * `afterRemount`.
 */
export async function cutDuring(disk: LoopFs, command: CutCommand): Promise<Cut> {
  await disk.mount();
  const home = join(disk.mnt, 'home');
  try {
    await rm(home, { recursive: true, force: true });
    await execFileP('cp', ['-a', command.template, home]);
    await execFileP('sync', ['-f', home]); // the starting point is on disk, whatever ferry does next
    const cutter = await armCutter(disk.mnt);
    const t = command.trigger;
    const child = startFerry(command.args(home), { ...command.env, ...(t.kind === 'phase' ? { FERRY_TEST_KILL_AT: t.point } : {}) });
    const deadline = performance.now() + CHILD_TIMEOUT_MS;
    switch (t.kind) {
      case 'none':
      case 'phase':
        await child.done;
        break;
      case 'time':
        await sleep(t.ms);
        break;
      case 'printed':
        while (running(child.child) && !t.pattern.test(child.stdout()) && performance.now() < deadline) await sleep(1);
        break;
      case 'switched': {
        const want = `releases/${t.to}`;
        while (running(child.child) && performance.now() < deadline && (await readlink(join(home, 'current')).catch(() => '')) !== want) await sleep(1);
        await sleep(t.ms);
        break;
      }
      default: {
        const never: never = t;
        throw new Error(`unknown trigger ${String(never)}`);
      }
    }
    const printed = child.stdout();
    const exitedBefore = child.child.exitCode;
    await cutter.cut();
    if (running(child.child)) child.child.kill('SIGKILL');
    return { home, run: await child.done, printed, exitedBefore };
  } finally {
    await disk.umount();
  }
}

/**
 * Mounts `disk` again (the "reboot"), runs `look`, unmounts. Refuses to look at a filesystem that
 * is still the shut-down one (see inPrivateMountNamespace): that would blame ferry for EIO.
 */
export async function afterRemount<T>(disk: LoopFs, look: () => Promise<T>): Promise<T> {
  await disk.mount();
  try {
    const probe = join(disk.mnt, '.remount-probe');
    try {
      await writeFile(probe, 'alive');
      await rm(probe);
    } catch (err) {
      throw new Error(`the remounted filesystem is still shut down (${(err as Error).message}): another mount namespace holds the old mount`);
    }
    return await look();
  } finally {
    await disk.umount();
  }
}

/**
 * The device keeps the signed manifest of each installed release (manifests/<version>.json), and
 * the separate file list it pins (manifests/<version>.files-<target>.json): they are what a
 * rollback re-verifies against and what the next delta is planned from. Each one beside a release
 * in releases/ must be byte for byte the repository's.
 */
export async function manifestCopyProblems(home: string, repoDir: string): Promise<string[]> {
  const problems: string[] = [];
  for (const version of [OLD, NEW]) {
    if (!existsSync(join(home, 'releases', version))) continue;
    const copy = await readFile(join(home, 'manifests', `${version}.json`)).catch((err: Error) => err);
    if (copy instanceof Error) problems.push(`releases/${version} is installed but its manifest copy is unreadable: ${copy.message}`);
    else if (!copy.equals(await readFile(join(repoDir, 'releases', version, 'manifest.json')))) problems.push(`manifests/${version}.json (${copy.length} bytes) is not the signed manifest`);
    // Its separate file list (issue 14 item 5), kept before the manifest: there whenever the manifest is.
    const list = await readFile(join(repoDir, 'releases', version, `files-${TARGET}.json`)).catch(() => undefined);
    if (!list) continue;
    const kept = await readFile(join(home, 'manifests', `${version}.files-${TARGET}.json`)).catch((err: Error) => err);
    if (kept instanceof Error) problems.push(`releases/${version} is installed but its kept file list is unreadable: ${kept.message}`);
    else if (!kept.equals(list)) problems.push(`manifests/${version}.files-${TARGET}.json (${kept.length} bytes) is not the published list`);
  }
  return problems;
}

/** Mount options that let a lost fsync show: commit=60 (no journal commit of its own during a test), noauto_da_alloc (no flush of a file renamed over another, which would hide a missing file fsync). */
export const STRICT_MOUNT_OPTIONS = 'commit=60,noauto_da_alloc';

export interface AfterCut {
  /** `current` straight after the remount, before ferry touches anything. */
  raw: Installed;
  /** `ferry status --json`, which opens the updater and so runs recovery. */
  status: { run: Run; status: DeviceStatus | null };
  /** `current` after recovery. */
  recovered: Installed;
  /** `ferry history --json` after recovery. */
  history: UpdateRecord[];
  violations: string[];
}

/**
 * What every cut must leave: `current` a complete signed release before and after recovery,
 * recovery that works, `ferry status` agreeing with `current` (SECURITY.md row 20: `current` is
 * the truth), and no attempt left in progress in history once the journal is idle.
 */
export async function inspectAfterCut(home: string, fx: Pick<CrashFixture, 'files' | 'repo'>): Promise<AfterCut> {
  const violations: string[] = [];
  const files = fx.files;
  const raw = await inspectCurrent(home, files);
  if (!raw.version || raw.problems.length) violations.push(`after the remount current is not a complete release: ${raw.problems.join('; ')}`);
  const st = await status(home);
  const recovered = await inspectCurrent(home, files);
  if (!recovered.version || recovered.problems.length) violations.push(`after recovery current is not a complete release: ${recovered.problems.join('; ')}`);
  if (!st.status) violations.push(`recovery (ferry status) failed: ${describeRun(st.run)}`);
  else if (st.status.currentVersion !== recovered.version || (st.status.phase !== 'idle' && st.status.phase !== 'staged')) {
    violations.push(`after recovery status says ${st.status.currentVersion} (${st.status.phase}), current is ${recovered.version}`);
  }
  violations.push(...(await manifestCopyProblems(home, fx.repo.repo)));
  const h = await history(home);
  if (!h.records) violations.push(`ferry history failed: ${describeRun(h.run)}`);
  else if (st.status?.phase === 'idle') {
    for (const r of h.records.filter((x) => x.outcome === 'in-progress')) violations.push(`history record ${r.id} (${r.from} -> ${r.to}) is still in progress after recovery`);
  }
  return { raw, status: st, recovered, history: h.records ?? [], violations };
}

/** The line `ferry update` prints once it committed OLD -> NEW. */
export const REPORTED_COMMIT = new RegExp(`^updated ${OLD.replace(/\./g, '\\.')} -> ${NEW.replace(/\./g, '\\.')} `, 'm');

/**
 * What a cut during `ferry update` (OLD -> NEW, healthy) must also leave: once the commit was
 * printed, NEW before and after recovery and a committed record of it in history.
 */
export function updateCutViolations(cut: Cut, after: AfterCut): string[] {
  if (!REPORTED_COMMIT.test(cut.printed)) return [];
  const v: string[] = [];
  if (after.raw.version !== NEW) v.push(`"updated ${OLD} -> ${NEW}" was printed before the cut, but after the remount current is ${after.raw.version}`);
  if (after.recovered.version !== NEW) v.push(`reported committed, but after recovery the device is on ${after.recovered.version}`);
  if (!after.history.some((h) => h.from === OLD && h.to === NEW && h.outcome === 'committed')) v.push(`reported committed, but history has no committed ${OLD} -> ${NEW}: ${after.history.map((h) => `${h.from} -> ${h.to} ${h.outcome}`).join(', ')}`);
  return v;
}

/** The line `ferry rollback` prints once it rolled NEW back to OLD. */
export const REPORTED_MANUAL_ROLLBACK = new RegExp(`^rolled back ${NEW.replace(/\./g, '\\.')} -> ${OLD.replace(/\./g, '\\.')}$`, 'm');

/**
 * What a cut during `ferry rollback` (NEW -> OLD) must also leave: once the rollback was printed
 * (or the command exited 0), OLD before and after recovery; and history agreeing with the device:
 * on OLD exactly when it records the rollback committed.
 */
export function manualRollbackCutViolations(cut: Cut, after: AfterCut): string[] {
  const reported = REPORTED_MANUAL_ROLLBACK.test(cut.printed) || cut.exitedBefore === 0;
  const v: string[] = [];
  if (reported && after.raw.version !== OLD) v.push(`"rolled back ${NEW} -> ${OLD}" was reported before the cut, but after the remount current is ${after.raw.version}`);
  if (reported && after.recovered.version !== OLD) v.push(`the rollback was reported, but after recovery the device is on ${after.recovered.version}`);
  const done = after.history.some((h) => h.kind === 'rollback' && h.outcome === 'committed' && h.from === NEW && h.to === OLD);
  if (reported && !done) v.push('the rollback was reported, but history has no committed rollback');
  if (after.recovered.version === OLD && !done) v.push(`the device is on ${OLD}, but history has no committed rollback to it`);
  if (after.recovered.version === NEW && done) v.push(`history says the rollback to ${OLD} committed, but the device is on ${NEW}`);
  return v;
}

// ---------------------------------------------------------------------------------------------
// Setup and teardown the power-cut files share

/**
 * A copy of the fixture's healthy home at `<dir>/on-new`, updated to NEW through the CLI: a device
 * that committed NEW and keeps OLD as its restore point, which the cuts of `ferry rollback` start from.
 */
export async function committedOnNew(fx: CrashFixture, dir: string): Promise<string> {
  const home = join(dir, 'on-new');
  await execFileP('cp', ['-a', fx.healthyHome, home]);
  const up = await ferry(['update', '--home', home]);
  if (up.code !== 0) throw new Error(`update to ${NEW}: ${describeRun(up)}`);
  return home;
}

/**
 * The after() of a power-cut file: the loop disk first (its image lives in the temp dir), then the
 * fixture and the temp dir, each only if it was made. Throws once everything is removed if the
 * disk could not be taken down cleanly (a loop device or mount left behind).
 */
export async function removePowerCutSetup(made: { disk: LoopFs | null; fx: CrashFixture | undefined; tmp: TempDir | undefined }): Promise<void> {
  const problems = made.disk ? await made.disk.destroy() : [];
  await made.fx?.cleanup();
  await made.tmp?.cleanup();
  if (problems.length) throw new Error(`cleanup: ${problems.join('; ')}`);
}
