// Self homes for the self-update tests (issue 12, ARCHITECTURE.md "Self-update"): real ferry
// trees published with the real `ferry release` into a real signed repository for app "ferry", a
// self home installed from it with `ferry update`, and the launcher script `ferry self launcher`
// writes. Fast enough to use in several test files:
//
// - ONE real ferry tree per process (baseSelfTree), cached: the same shape `ferry release --self`
//   builds (plugins/self/release-tree.ts: dist/, package.json without scripts, package-lock.json,
//   README/LICENSE, production node_modules with npm's relative .bin links). By default it is made
//   by COPYING this checkout's dist/ and its production dependencies (the packages
//   `npm ls --omit=dev --all --parseable` names, natives already built for this machine), 2-5 s here;
//   `{ npmCi: true }` (or FERRY_TEST_SELF_TREE=npm-ci) builds it with buildSelfTree itself
//   (`npm ci --omit=dev`, ~35 s here). The npm ci path is proved by test/cli/release-self.test.ts;
//   here only the tree's contents matter, and those are the same packages at the same versions.
// - VARIANTS of it (makeVariant): `cp -a` of the base (links kept), package.json `version` set, and
//   dist/cli/ferry.js rewritten so that, when its verb is `agent`, it first prints
//   `ferry-variant <label> agent pid=<pid>` on stderr (the running CODE names itself: "its log
//   still printed the old text" is checkable), then optionally BREAKS: `crash` (throws before the
//   agent starts), `hang` (never confirms, never exits), `exit0` (exits 0 at once). With
//   `seams: true` the entry is test/helpers/ferry-with-seams.mjs rewritten to import the tree's own
//   ./main.js and ../core/io/durable.js, so FERRY_TEST_KILL_AT works inside a self release. With
//   `plain: true` the entry stays as built (examples/demo.ts publishes those).
// - exampleAgentVariant: examples/self-updating-agent at a version, ferry vendored in
//   node_modules/ferry (a copy of the base tree), with the same breaks.
// - makeSelfHome: keys, `ferry repo init --app <app>`, the first release published and installed
//   with `ferry update --home S` (nothing runs yet, so a direct switch), and the launcher script.
//
// Every command is the checkout's built CLI (`npm run build` first) in a child process with a
// deadline; the installed releases run their own code.

import { execFile, spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { cp, lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, symlink, writeFile, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { buildSelfTree, releasePackageJson, SELF_ENTRY } from '../../plugins/self/release-tree.ts';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** The checkout's built CLI: every command these helpers run (the test's ferry, not the device's). */
export const CLI = join(ROOT, 'dist', 'cli', 'ferry.js');

/** How a variant misbehaves when started as `ferry agent` (see the header). */
export type SelfBreak = 'crash' | 'hang' | 'exit0';

export interface VariantOptions {
  /** Printed in the variant's start line (default: the version). */
  label?: string;
  break?: SelfBreak;
  /** The entry reads FERRY_TEST_KILL_AT / FERRY_TEST_CLOCK_START / FERRY_UNSAFE_SKIP_FSYNC. */
  seams?: boolean;
  /** Leave dist/cli/ferry.js as built (no start line, no break): ferry exactly as released. */
  plain?: boolean;
}

/** The line a variant's code prints on stderr when it starts an agent. */
export const VARIANT_LINE = /^ferry-variant (\S+) agent pid=(\d+)$/gm;

/** Every label a variant printed in `stderr`, in order. */
export function variantLabels(stderr: string): string[] {
  return [...stderr.matchAll(VARIANT_LINE)].map((m) => m[1]!);
}

// ---------------------------------------------------------------------------------------------
// Running the checkout's CLI

export interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/**
 * Runs `node <cli> …args` to completion, asynchronously (a load may be running in this process),
 * killed at `timeoutMs`. `cli` defaults to the checkout's; pass a release's ferry.js to run that.
 */
export function runCli(args: string[], options: { cli?: string; timeoutMs?: number; env?: Record<string, string> } = {}): Promise<CliRun> {
  const t0 = performance.now();
  const timeoutMs = options.timeoutMs ?? 120_000;
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [options.cli ?? CLI, ...args], {
      cwd: ROOT,
      env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0', ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    const timer = setTimeout(() => {
      err += `\n(test: killed after ${timeoutMs} ms)`;
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolvePromise({ code, signal, stdout: out, stderr: err, ms: performance.now() - t0 });
    });
  });
}

/** runCli that must exit 0; fails naming `what` and the output otherwise. */
export async function mustCli(args: string[], what: string, options: Parameters<typeof runCli>[1] = {}): Promise<CliRun> {
  const r = await runCli(args, options);
  if (r.code !== 0) throw new Error(`${what} failed: exit ${r.code} signal ${r.signal}\nstdout: ${r.stdout.trim().slice(-1000)}\nstderr: ${r.stderr.trim().slice(-2000)}`);
  return r;
}

// ---------------------------------------------------------------------------------------------
// The base tree: one per process

let base: Promise<{ dir: string; ms: number; how: string }> | undefined;

/** Temp folders made here, removed when the process exits even if a suite forgets. */
const made: string[] = [];
process.on('exit', () => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});

async function temp(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  made.push(dir);
  return dir;
}

const execFileP = promisify(execFile);

/**
 * Copies the folder `from` to `to` (made if missing; merged into if there), symlinks kept as
 * links with their targets verbatim, file modes kept, and timestamps when `timestamps` is set:
 * what fs.cp does with { recursive, verbatimSymlinks[, preserveTimestamps] }. coreutils `cp` does
 * it in a fraction of the time: a ferry tree is ~900 files, and fs.cp took ~3 s of wall time
 * (1.5 s of CPU) per self home on the CI machine, once for every scenario of the crash tests.
 */
export async function copyTree(from: string, to: string, options: { timestamps?: boolean } = {}): Promise<void> {
  await mkdir(to, { recursive: true });
  const preserve = options.timestamps ? 'mode,timestamps' : 'mode';
  await execFileP('cp', ['-R', '--no-dereference', `--preserve=${preserve}`, '--', `${from}/.`, to]);
}

/** The production packages of this checkout, as paths relative to it (node_modules/a, node_modules/@s/b, …). */
function productionPackages(): Promise<string[]> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn('npm', ['ls', '--omit=dev', '--all', '--parseable'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code !== 0) return reject(new Error(`npm ls --omit=dev exited ${code}: ${err.trim().slice(-500)}`));
      const paths = out.split('\n').map((l) => l.trim()).filter(Boolean).map((p) => relative(ROOT, p)).filter((p) => p.startsWith(`node_modules${sep}`));
      // Nested packages (node_modules/a/node_modules/b) come with their parent's folder.
      resolvePromise(paths.filter((p) => !paths.some((q) => q !== p && p.startsWith(q + sep))));
    });
  });
}

/** dist/, package.json (scripts removed), lock file, README/LICENSE and the production node_modules, copied. */
async function copySelfTree(dir: string, version: string): Promise<void> {
  const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as Record<string, unknown>;
  await copyTree(join(ROOT, 'dist'), join(dir, 'dist'));
  await writeFile(join(dir, 'package.json'), JSON.stringify(releasePackageJson(pkg, version), null, 2) + '\n');
  for (const name of ['package-lock.json', 'README.md', 'LICENSE']) await cp(join(ROOT, name), join(dir, name)).catch(() => undefined);
  await chmod(join(dir, SELF_ENTRY), 0o755);
  const packages = await productionPackages();
  for (const p of packages) await copyTree(join(ROOT, p), join(dir, p));
  // npm's top-level .bin links, for the packages copied only (as npm ci --omit=dev makes them).
  const binDir = join(ROOT, 'node_modules', '.bin');
  await mkdir(join(dir, 'node_modules', '.bin'), { recursive: true });
  for (const name of await readdir(binDir).catch(() => [] as string[])) {
    const target = await readlink(join(binDir, name)).catch(() => null);
    if (target === null) continue;
    const pkgOf = relative(ROOT, resolve(binDir, target));
    if (packages.some((p) => pkgOf.startsWith(p + sep))) await symlink(target, join(dir, 'node_modules', '.bin', name));
  }
}

/**
 * The real ferry tree this process's variants are copied from (version "0.0.0-base"), made once.
 * `npmCi` (or FERRY_TEST_SELF_TREE=npm-ci) builds it with buildSelfTree instead of copying.
 */
export function baseSelfTree(options: { npmCi?: boolean } = {}): Promise<{ dir: string; ms: number; how: string }> {
  base ??= (async () => {
    const t0 = Date.now();
    const npmCi = options.npmCi ?? process.env.FERRY_TEST_SELF_TREE === 'npm-ci';
    if (npmCi) {
      const tree = await buildSelfTree({ checkout: ROOT, version: '0.0.0-base' });
      made.push(dirname(tree.dir));
      return { dir: tree.dir, ms: Date.now() - t0, how: 'npm ci --omit=dev (buildSelfTree)' };
    }
    const dir = join(await temp('ferry-self-base-'), 'ferry');
    await copySelfTree(dir, '0.0.0-base');
    return { dir, ms: Date.now() - t0, how: 'copied dist/ and production node_modules' };
  })();
  return base;
}

// ---------------------------------------------------------------------------------------------
// Variants

/** The first argument that is not a flag, as cli/main.ts reads the verb. */
const VERB = "const verb = process.argv.slice(2).find((a) => a === '--' || !a.startsWith('-'));";

function prelude(label: string, brk: SelfBreak | undefined): string {
  const lines = [
    '#!/usr/bin/env node',
    `// A self-update test variant (test/helpers/self-home.ts): label ${JSON.stringify(label)}, break ${brk ?? 'none'}.`,
    VERB,
    "if (verb === 'agent') {",
    `  process.stderr.write(${JSON.stringify(`ferry-variant ${label} agent pid=`)} + process.pid + '\\n');`,
  ];
  if (brk === 'crash') lines.push(`  throw new Error(${JSON.stringify(`ferry-variant ${label}: crashed at start`)});`);
  if (brk === 'exit0') lines.push('  process.exit(0);');
  // Alive, confirming nothing, never exiting on its own (a signal still ends it, as a real hang).
  if (brk === 'hang') lines.push('  setInterval(() => {}, 1 << 30);', '  await new Promise(() => {});');
  lines.push('}');
  return lines.join('\n') + '\n';
}

const PLAIN_BODY = "const { runCli } = await import('./main.js');\nawait runCli(process.argv.slice(2));\n";

/** test/helpers/ferry-with-seams.mjs, importing the tree's own dist/ instead of the checkout's. */
async function seamsBody(): Promise<string> {
  const text = await readFile(join(ROOT, 'test', 'helpers', 'ferry-with-seams.mjs'), 'utf8');
  const body = text
    .replace("'../../dist/core/io/durable.js'", "'../core/io/durable.js'")
    .replace("'../../dist/cli/main.js'", "'./main.js'")
    .replace(/^import \{ parseFsyncSkip, skipFsyncAt \} from (.*);$/m, 'const { parseFsyncSkip, skipFsyncAt } = await import($1);');
  if (!body.includes("'./main.js'") || !body.includes("'../core/io/durable.js'")) throw new Error('ferry-with-seams.mjs changed: self-home.ts cannot point it at a release tree');
  return body;
}

/**
 * A ferry tree at `version`, made by copying the base tree into `into/<version>` (links kept):
 * package.json's version set, dist/cli/ferry.js rewritten as the header says. Returns its folder.
 */
export async function makeVariant(into: string, version: string, options: VariantOptions = {}): Promise<string> {
  const { dir: baseDir } = await baseSelfTree();
  const dir = join(into, `${version}${options.break ? `-${options.break}` : ''}`);
  await rm(dir, { recursive: true, force: true });
  await copyTree(baseDir, dir, { timestamps: true });
  const pkgPath = join(dir, 'package.json');
  const pkg = JSON.parse(await readFile(pkgPath, 'utf8')) as Record<string, unknown>;
  await writeFile(pkgPath, JSON.stringify({ ...pkg, version }, null, 2) + '\n');
  if (options.plain) {
    if (options.break || options.seams) throw new Error('a plain variant has no break and no seams');
    return dir;
  }
  const entry = join(dir, SELF_ENTRY);
  const body = options.seams ? await seamsBody() : PLAIN_BODY;
  // The seams body has no shebang of its own; the prelude's comes first.
  await writeFile(entry, prelude(options.label ?? version, options.break) + body.replace(/^#!.*\n/, ''));
  await chmod(entry, 0o755);
  return dir;
}

// ---------------------------------------------------------------------------------------------
// A signed repository and a self home

export interface ReleaseOut {
  version: string;
  target: string;
  full: { size: number; path: string };
  deltas: { from: string; size: number }[];
}

export interface SelfRepo {
  dir: string;
  repo: string;
  trustPath: string;
  releaseKey: string;
  /** Publishes the tree at `treeDir` as `version` with the real `ferry release`. */
  publish(treeDir: string, version: string, extra?: string[]): Promise<ReleaseOut>;
}

/** Keys and a repository for `app` under `dir`, made with `ferry keygen` and `ferry repo init`. */
export async function makeSelfRepo(dir: string, app = 'ferry'): Promise<SelfRepo> {
  await mkdir(dir, { recursive: true });
  const p = (...parts: string[]) => join(dir, ...parts);
  await mustCli(['keygen', '--out', p('root')], 'keygen root');
  await mustCli(['keygen', '--out', p('release')], 'keygen release');
  await mustCli(['repo', 'init', p('repo'), '--app', app, '--root-key', p('root.key'), '--release-key', p('release.pub')], `repo init ${app}`);
  return {
    dir,
    repo: p('repo'),
    trustPath: p('repo', 'root.json'),
    releaseKey: p('release.key'),
    async publish(treeDir, version, extra = []) {
      const r = await mustCli(['release', treeDir, '--version', version, '--repo', p('repo'), '--key', p('release.key'), '--json', ...extra], `release ${version}`, { timeoutMs: 300_000 });
      return JSON.parse(r.stdout) as ReleaseOut;
    },
  };
}

export interface SelfHome {
  /** The temp folder holding everything below; removed by cleanup(). */
  dir: string;
  repo: SelfRepo;
  /** The self home S. */
  home: string;
  /** The launcher script `ferry self launcher` wrote (null when not asked for). */
  launcher: string | null;
  /** Where variants are built. */
  variants: string;
  /**
   * Builds a variant of the base tree and publishes it. `extra` are `ferry release` arguments,
   * default `--deltas 1` (a delta from the latest release only: each bsdiff of a ferry tree takes
   * ~6 s here, the full artifact ~5 s).
   */
  publishVariant(version: string, options?: VariantOptions, extra?: string[]): Promise<ReleaseOut>;
  /** `node S/current/dist/cli/ferry.js …args`: the ferry the home runs now. */
  installed(args: string[]): Promise<CliRun>;
  cleanup(): Promise<void>;
}

export interface SelfHomeOptions {
  /** The repository's app (default "ferry"; another for an agent that embeds ferry). */
  app?: string;
  /** Builds the release tree of `version` under `into` (default makeVariant: ferry itself). */
  tree?: (into: string, version: string, options: VariantOptions) => Promise<string>;
  /** ferry's executable inside a release, run by installed() (default dist/cli/ferry.js). */
  keeper?: string;
  /** The first version, installed with `ferry update --home S` (default 1.0.0, a plain variant). */
  first?: string;
  firstOptions?: VariantOptions;
  /** Write the launcher with `ferry self launcher --home S --out FILE` (default true). */
  launcher?: boolean;
  /** Extra arguments for `ferry self launcher` (e.g. ['--entry', 'agent.js']). */
  launcherArgs?: string[];
  /** Extra arguments for `ferry init` (e.g. ['--keep', '1']). */
  initArgs?: string[];
}

// ---------------------------------------------------------------------------------------------
// An agent that embeds ferry: examples/self-updating-agent

export const EXAMPLE_AGENT_DIR = join(ROOT, 'examples', 'self-updating-agent');
/** Where ferry's executable is inside the example agent's release (its keeper). */
export const EMBEDDED_KEEPER = 'node_modules/ferry/dist/cli/ferry.js';

/**
 * examples/self-updating-agent at `version` under `into/<version>`: its agent.js and package.json
 * (version set), with ferry vendored as node_modules/ferry (a copy of the base tree, its own
 * node_modules inside). A break is put right after agent.js's imports: `crash` throws, `exit0`
 * exits 0, `hang` waits forever; none of them checks or confirms.
 */
export async function exampleAgentVariant(into: string, version: string, options: VariantOptions = {}): Promise<string> {
  const { dir: baseDir } = await baseSelfTree();
  const dir = join(into, `${version}${options.break ? `-${options.break}` : ''}`);
  await rm(dir, { recursive: true, force: true });
  await mkdir(join(dir, 'node_modules'), { recursive: true });
  await copyTree(baseDir, join(dir, 'node_modules', 'ferry'), { timestamps: true });
  const pkg = JSON.parse(await readFile(join(EXAMPLE_AGENT_DIR, 'package.json'), 'utf8')) as Record<string, unknown>;
  await writeFile(join(dir, 'package.json'), JSON.stringify({ ...pkg, version }, null, 2) + '\n');
  let agent = await readFile(join(EXAMPLE_AGENT_DIR, 'agent.js'), 'utf8');
  if (options.break) {
    const lastImport = [...agent.matchAll(/^import .*;$/gm)].pop();
    if (!lastImport) throw new Error('examples/self-updating-agent/agent.js has no import line to put a break after');
    const at = lastImport.index! + lastImport[0].length;
    const brk = {
      crash: `throw new Error(${JSON.stringify(`agent ${version}: crashed at start (test variant)`)});`,
      exit0: 'process.exit(0);',
      hang: 'setInterval(() => {}, 1 << 30);\nawait new Promise(() => {});',
    }[options.break];
    agent = `${agent.slice(0, at)}\nconsole.log(${JSON.stringify(`agent ${version} (test variant ${options.break}) pid `)} + process.pid);\n${brk}\n${agent.slice(at)}`;
  }
  await writeFile(join(dir, 'agent.js'), agent);
  return dir;
}

/**
 * A ferry self home on its first version: repository for app "ferry" (also the home's source),
 * the first variant published and installed, and the launcher script written.
 */
export async function makeSelfHome(options: SelfHomeOptions = {}): Promise<SelfHome> {
  const dir = await temp('ferry-self-home-');
  const home = join(dir, 'self');
  const variants = join(dir, 'variants');
  await mkdir(variants, { recursive: true });
  const repo = await makeSelfRepo(join(dir, 'publisher'), options.app ?? 'ferry');
  const first = options.first ?? '1.0.0';
  const tree = options.tree ?? makeVariant;
  const publishVariant = async (version: string, o: VariantOptions = {}, extra = ['--deltas', '1']) => repo.publish(await tree(variants, version, o), version, extra);
  await publishVariant(first, options.firstOptions);
  await mustCli(['init', home, '--trust', repo.trustPath, '--source', repo.repo, ...(options.initArgs ?? [])], 'init self home');
  await mustCli(['update', '--home', home], `install ${first} into the self home`, { timeoutMs: 300_000 });
  let launcher: string | null = null;
  if (options.launcher ?? true) {
    launcher = join(dir, 'ferry-launcher.sh');
    await mustCli(['self', 'launcher', '--home', home, '--out', launcher, ...(options.launcherArgs ?? [])], 'self launcher');
  }
  return {
    dir,
    repo,
    home,
    launcher,
    variants,
    publishVariant,
    installed: (args) => runCli(args, { cli: join(home, 'current', options.keeper ?? SELF_ENTRY) }),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}

/** The version a release folder holds (its package.json), e.g. for `S/current`. */
export async function treeVersion(dir: string): Promise<string> {
  return (JSON.parse(await readFile(join(dir, 'package.json'), 'utf8')) as { version: string }).version;
}

/** True when `path` is a symlink (lstat), for checks that a copy kept links as links. */
export async function isSymlink(path: string): Promise<boolean> {
  return (await lstat(path).catch(() => null))?.isSymbolicLink() ?? false;
}

