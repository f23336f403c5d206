// Builds ferry's own release tree for `ferry release --self`: the complete runnable ferry that a
// ferry home holds in releases/<v>/ (ARCHITECTURE.md "Self-update"). The tree is the built
// JavaScript (dist/) of the checkout this ferry runs from, its package.json (scripts removed,
// version set), package-lock.json, LICENSE/README when present, and the production dependencies
// installed by `npm ci --omit=dev`, which builds the native modules (bsdiff-node, classic-level)
// for this machine. npm's .bin links are relative links inside the tree, which a release carries
// as they are (SECURITY.md row 14).
//
// Why here: it spawns npm and knows ferry's package layout, so it is neither a decision (core/)
// nor printing (cli/); like the other plugins it is the part that talks to the outside world.
//
// Why the scripts go: npm ci runs the root package's own `prepare` script, and ferry's is
// `npm run build`, which needs the TypeScript sources and devDependencies the tree does not have.
// `--ignore-scripts` would also skip the dependencies' install scripts, i.e. the native builds, so
// the copied package.json simply has no `scripts`; the dependencies' scripts run as usual.

import { access, chmod, copyFile, cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FerryError, fromFsError } from '../../core/errors.ts';
import { outputTail, runCommand } from '../run-command.ts';

/** Files copied beside dist/ when the checkout has them. */
const OPTIONAL_FILES = ['README.md', 'README', 'LICENSE', 'LICENSE.md', 'LICENSE.txt'];

/** The built executable every ferry tree must hold (package.json "bin"). */
export const SELF_ENTRY = 'dist/cli/ferry.js';

/** npm ci is given this long: a cold cache compiles native code on a slow board. */
const NPM_TIMEOUT_MS = 15 * 60 * 1000;

export interface SelfPackage {
  name: string;
  version: string;
  bin: string[];
}

/**
 * The package.json a release tree carries: the checkout's, without `scripts` (see the header) and
 * with the release's version, so the installed ferry states which release it is. Dependencies
 * stay as they are: npm ci checks them against the lock file.
 */
export function releasePackageJson(pkg: Record<string, unknown>, version: string): Record<string, unknown> {
  const { scripts: _scripts, ...rest } = pkg;
  return { ...rest, version };
}

/** Name, version and bin paths of a package.json, or ERR_SCHEMA when they are not there. */
export function readSelfPackage(pkg: Record<string, unknown>, where: string): SelfPackage {
  const { name, version, bin } = pkg;
  if (typeof name !== 'string' || typeof version !== 'string') throw new FerryError('ERR_SCHEMA', `${where} has no name or version`);
  const bins = typeof bin === 'string' ? [bin] : bin && typeof bin === 'object' ? Object.values(bin).filter((b): b is string => typeof b === 'string') : [];
  return { name, version, bin: bins };
}

/** The folder holding the package.json of the ferry this code runs from (a checkout or an installed release). */
export async function selfCheckout(from: string = fileURLToPath(import.meta.url)): Promise<string> {
  for (let dir = dirname(from); ; dir = dirname(dir)) {
    if (await access(join(dir, 'package.json')).then(() => true, () => false)) return dir;
    if (dirname(dir) === dir) throw new FerryError('ERR_NOT_FOUND', `no package.json above ${from}: cannot tell which ferry to release`);
  }
}

/** The package.json of the ferry at `checkout`, read as it is and as name, version and bins. */
export async function loadSelfPackage(checkout: string): Promise<{ json: Record<string, unknown>; pkg: SelfPackage }> {
  const path = join(checkout, 'package.json');
  const json = await readJson(path);
  return { json, pkg: readSelfPackage(json, path) };
}

async function readJson(path: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw fromFsError(err, `reading ${path}`);
  }
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch (err) {
    throw new FerryError('ERR_JSON', `${path} is not JSON`, { cause: err });
  }
}

/** Runs a command in `cwd`; resolves with its output, or fails with ERR_IO naming the last lines. */
async function run(cmd: string, args: string[], cwd: string, timeoutMs: number): Promise<string> {
  const what = `${cmd} ${args.join(' ')}`;
  const r = await runCommand(cmd, args, { cwd, timeoutMs, keepBytes: 20_000 });
  if (r.kind === 'not-started') throw new FerryError('ERR_IO', `${what} could not start: ${r.error.message}`, { cause: r.error });
  if (r.kind === 'exited' && r.code === 0) return r.output;
  const tail = outputTail(r.output, 8, '\n  ');
  const how = r.kind === 'timed-out' ? `was killed after ${timeoutMs} ms` : r.signal ? `was killed (${r.signal})` : `exited ${r.code}`;
  throw new FerryError('ERR_IO', `${what} in ${cwd} ${how}${tail ? `:\n  ${tail}` : ''}`);
}

export interface SelfTree {
  /** The release tree, ready for publishRelease's appDir. */
  dir: string;
  app: string;
  version: string;
  /** How long copying and `npm ci` took. */
  buildMs: number;
  /** Removes the tree and its temp folder. */
  cleanup(): Promise<void>;
}

/**
 * Builds the release tree of the ferry at `checkout` in a new temp folder. `checkout` must already
 * be built (dist/cli/ferry.js present): `npm run release:self` builds first. The finished tree is
 * checked by loading both native modules with this Node, so a release whose native builds were
 * skipped (npm's ignore-scripts) is refused here instead of failing on devices.
 */
export async function buildSelfTree(input: { checkout: string; version?: string; log?: (line: string) => void }): Promise<SelfTree> {
  const started = Date.now();
  const { checkout } = input;
  const { json: pkgJson, pkg } = await loadSelfPackage(checkout);
  const version = input.version ?? pkg.version;
  for (const needed of [SELF_ENTRY, 'package-lock.json']) {
    try {
      await access(join(checkout, needed));
    } catch (err) {
      throw new FerryError('ERR_NOT_FOUND', `${join(checkout, needed)} is missing (${needed === SELF_ENTRY ? 'run `npm run build` first' : 'npm ci needs the lock file'})`, { cause: err });
    }
  }

  const temp = await mkdtemp(join(tmpdir(), 'ferry-self-')).catch((err) => { throw fromFsError(err, 'creating a temp folder'); });
  const cleanup = () => rm(temp, { recursive: true, force: true });
  const dir = join(temp, pkg.name);
  try {
    try {
      await cp(join(checkout, 'dist'), join(dir, 'dist'), { recursive: true, verbatimSymlinks: true });
      await copyFile(join(checkout, 'package-lock.json'), join(dir, 'package-lock.json'));
      for (const name of OPTIONAL_FILES) await copyFile(join(checkout, name), join(dir, name)).catch(() => undefined);
      await writeFile(join(dir, 'package.json'), JSON.stringify(releasePackageJson(pkgJson, version), null, 2) + '\n');
      // npm makes bins executable when it links them; the tree is run as it is, so do the same.
      for (const bin of pkg.bin) await chmod(join(dir, bin), 0o755);
    } catch (err) {
      throw fromFsError(err, `copying ${checkout} into ${dir}`);
    }
    input.log?.(`installing production dependencies: npm ci --omit=dev in ${dir}`);
    await run('npm', ['ci', '--omit=dev', '--no-audit', '--no-fund', '--prefer-offline'], dir, NPM_TIMEOUT_MS);
    await run(process.execPath, ['--input-type=module', '-e', "await import('bsdiff-node'); await import('classic-level');"], dir, 60_000);
    return { dir, app: pkg.name, version, buildMs: Date.now() - started, cleanup };
  } catch (err) {
    await cleanup();
    throw err;
  }
}
