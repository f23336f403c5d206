// ferry as a user installs it: `npm pack` of the built checkout, then `npm install ferry` into an
// empty project (production dependencies only) and `npm install -g --prefix`, both from a registry
// on 127.0.0.1 (loopback-registry.ts) so nothing leaves loopback. The installed `ferry` runs
// `--version` and the README walkthrough's first block (read from the installed README), and a
// tiny ESM app type-checks against the shipped declarations (module nodenext) and runs.
//
// Install scripts: npm 11 runs a dependency's install scripts but lists those its allowScripts
// policy does not cover, and `--strict-allow-scripts` (future npm's default) refuses to install
// them at all. ferry's two native dependencies need theirs (bsdiff-node compiles with node-gyp;
// classic-level picks a prebuild). So the project approves them in package.json (what
// `npm install-scripts approve bsdiff-node classic-level` writes) and the global install passes
// `--allow-scripts=bsdiff-node,classic-level`, and both installs run strict: they fail if ferry
// ever needs an approval the README does not name.
//
// Run after `npm run build` (npm test does); it packs with --ignore-scripts, so it never rebuilds
// dist/ under the tests running beside it.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir, type TempDir } from '../helpers/repo.ts';
import { freePort } from '../helpers/net.ts';
import { fencedBlocks } from '../readme/fenced-blocks.ts';
import { startLoopbackRegistry, type LoopbackRegistry } from './loopback-registry.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const OWN = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { name: string; version: string };
/** What a user approves (README "Installing ferry"). */
const NATIVE = ['bsdiff-node', 'classic-level'];
const INSTALL_TIMEOUT_MS = 5 * 60_000;

const pkg = suite('the packed package, installed');

let tmp: TempDir;
let tarball = '';
let packed: string[] = [];
let registry: LoopbackRegistry;
const p = (...parts: string[]) => join(tmp.path, ...parts);

/** The environment of every child: no npm_* of an outer `npm test` (they would steer npm), except the headers' location. */
function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { NO_COLOR: '1', FORCE_COLOR: '0' };
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.toLowerCase().startsWith('npm_') || k.toLowerCase() === 'npm_config_nodedir') env[k] = v;
  }
  return { ...env, ...extra };
}

interface Ran {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a child to its end (killed past `timeout`). Asynchronous: the registry answers from this process. */
function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = childEnv(), timeout = 60_000): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], timeout, killSignal: 'SIGKILL' });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr = (stderr + d).slice(-20_000); });
    child.on('error', reject);
    child.on('close', (status, signal) => resolve({ status, signal, stdout, stderr }));
  });
}

function ok(r: Ran, what: string): string {
  assert.ok(r.status === 0, `${what} exited ${r.status ?? r.signal}:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/** `npm install …` against the loopback registry, with a private cache (the user's is left alone). */
async function npmInstall(args: string[], cwd: string): Promise<string> {
  const r = await run('npm', ['install', ...args, '--registry', registry.url, '--cache', p('npm-cache'), '--strict-allow-scripts', '--no-audit', '--no-fund', '--no-update-notifier'], cwd, childEnv(), INSTALL_TIMEOUT_MS);
  const out = ok(r, `npm install ${args.join(' ')}`);
  assert.not.match(r.stdout + r.stderr, /not yet covered by allowScripts/, `every install script is approved:\n${r.stderr}`);
  return out;
}

/** The first `sh` block of the walkthrough's step 1 in a README. */
function walkthroughStep1(readme: string): string {
  const m = /^### 1\. [^\n]*\n[\s\S]*?^```sh\n([\s\S]*?)^```/m.exec(readme);
  assert.ok(m, 'README.md has a "### 1." step with an sh block');
  return m![1]!;
}

/** The `js` blocks of the README's "Embedding ferry" section, in order. */
function embeddingExamples(readme: string): string[] {
  const section = /^## Embedding ferry\n([\s\S]*?)^## /m.exec(readme);
  assert.ok(section, 'README.md has an "Embedding ferry" section');
  return fencedBlocks(section![1]!).filter((b) => b.lang === 'js').map((b) => b.body);
}

/**
 * Runs step 1 of the installed package's README (at `installed`) in an empty folder with `bin`
 * first on PATH, then a second release; returns the folder.
 */
async function walkthrough(bin: string, installed: string, name: string): Promise<string> {
  const dir = p(name);
  await mkdir(dir);
  const readme = await readFile(join(installed, 'README.md'), 'utf8');
  const env = childEnv({ PATH: `${bin}${delimiter}${process.env.PATH ?? ''}` });
  const out = ok(await run('sh', ['-e', '-c', walkthroughStep1(readme)], dir, env, 120_000), `the README's step 1 with ${bin}/ferry`);
  assert.match(out, /1\.0\.0/, 'the release is reported');
  // A second release carries a delta: bsdiff-node's native module was built by its install script.
  await writeFile(join(dir, 'app', 'data.txt'), (await readFile(join(dir, 'app', 'data.txt'), 'utf8')).replace('\n12345\n', '\n12345 changed\n'));
  const second = ok(await run(join(bin, 'ferry'), ['release', 'app', '--repo', 'repo', '--version', '1.1.0', '--key', 'keys/release.key', '--json'], dir, env), 'ferry release 1.1.0');
  const result = JSON.parse(second) as { deltas: { from: string }[] };
  assert.equal(result.deltas.map((d) => d.from), ['1.0.0'], 'a delta from 1.0.0 was made');
  ok(await run(join(bin, 'ferry'), ['verify', 'repo', '--trust', 'repo/root.json'], dir, env), 'ferry verify after 1.1.0');
  return dir;
}

pkg.before(async () => {
  assert.ok(existsSync(join(ROOT, 'dist/cli/ferry.js')), 'dist/ is built (npm run build)');
  tmp = await tempDir('ferry-pkg-');
  await mkdir(p('pack'));
  const out = ok(await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', p('pack')], ROOT), 'npm pack');
  const [info] = JSON.parse(out) as { filename: string; files: { path: string }[] }[];
  tarball = p('pack', info!.filename);
  packed = info!.files.map((f) => f.path);
  registry = await startLoopbackRegistry(ROOT, tarball);
});

pkg.after(async () => {
  await registry?.close();
  await tmp?.cleanup();
});

pkg('the tarball holds the built package and its documents, no tests, benches, sources or source maps', () => {
  for (const f of ['package.json', 'README.md', 'SECURITY.md', 'LICENSE', 'CHANGELOG.md', 'dist/cli/ferry.js', 'dist/core/index.js', 'dist/core/index.d.ts', 'dist/plugins/bsdiff/bspatch-child.mjs', 'examples/app/server.js']) {
    assert.ok(packed.includes(f), `${f} is packed`);
  }
  const unwanted = packed.filter((f) => /^(test|bench|scratch|node_modules)\//.test(f) || f.endsWith('.map') || (f.endsWith('.ts') && !f.endsWith('.d.ts') && !f.startsWith('examples/')));
  assert.equal(unwanted, [], 'nothing but dist/, documents and examples/');
});

pkg('npm install ferry into an empty project: production dependencies only, the bin, the walkthrough, an ESM app on the declarations', async () => {
  const project = p('project');
  await mkdir(project);
  await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module', allowScripts: Object.fromEntries(NATIVE.map((n) => [n, true])) }, null, 2));
  await npmInstall(['--omit=dev', OWN.name], project);
  for (const dev of ['typescript', 'tsx', 'uvu', '@types/node']) assert.not.ok(existsSync(join(project, 'node_modules', dev)), `devDependency ${dev} is not installed`);

  const bin = join(project, 'node_modules', '.bin');
  assert.is(ok(await run(join(bin, 'ferry'), ['--version'], project), 'ferry --version').trim(), OWN.version);
  assert.is(ok(await run(join(bin, 'ferry'), ['-V'], project), 'ferry -V').trim(), OWN.version);
  const walked = await walkthrough(bin, join(project, 'node_modules', OWN.name), 'walk-local');

  // The app imports the library, a plugin and ferry/app by their package names, as a user's would.
  await writeFile(join(project, 'app.ts'), `
import { readFile } from 'node:fs/promises';
import { FerryError, isFerryError, verifyRepository, runFleet, type ErrorCode, type VerifyReport } from 'ferry';
import { createDirSource, type Source } from 'ferry/plugins/ports';
import { deliverReports } from 'ferry/plugins/fleet';
import { createHttpHealthCheck } from 'ferry/plugins/health';
import { serve, reportReady } from 'ferry/app';

const [repo, scratch] = process.argv.slice(2) as [string, string];
const source: Source = createDirSource(repo);
const report: VerifyReport = await verifyRepository(source, await readFile(repo + '/root.json'), { now: new Date(), scratch, partial: false });
const code: ErrorCode = 'ERR_USAGE';
const app = await serve((_req, res) => res.end('served by ferry/app\\n'), { port: 0, host: '127.0.0.1', handleSignals: false });
const address = app.servers[0]!.address();
const port = typeof address === 'object' && address ? address.port : 0;
const health = await createHttpHealthCheck('http://127.0.0.1:' + port + '/', 5000).check({ version: '1.1.0', dir: repo });
const body = await (await fetch('http://127.0.0.1:' + port + '/')).text();
await app.close();
const internal = 'ferry/dist/core/errors.js';
const hidden = await import(internal).then(() => 'importable', (e: NodeJS.ErrnoException) => e.code);
console.log(JSON.stringify({ ok: report.ok, releases: report.releases.map((r) => r.version), isFerryError: isFerryError(new FerryError(code, 'x'), 'ERR_USAGE'), healthy: health.healthy, body, reportReady: typeof reportReady, fleet: [typeof runFleet, typeof deliverReports], hidden }));
`);
  await writeFile(join(project, 'tsconfig.json'), JSON.stringify({
    compilerOptions: { target: 'ES2022', module: 'nodenext', moduleResolution: 'nodenext', strict: true, skipLibCheck: false, outDir: 'out', types: ['node'], typeRoots: [join(ROOT, 'node_modules/@types')] },
    files: ['app.ts'],
  }, null, 2));
  ok(await run(join(ROOT, 'node_modules/.bin/tsc'), ['-p', '.'], project), 'tsc on the ESM app against the shipped declarations');
  await mkdir(p('scratch'));
  const printed = ok(await run(process.execPath, ['out/app.js', join(walked, 'repo'), p('scratch')], project), 'the ESM app');
  assert.equal(JSON.parse(printed.trim()), {
    ok: true,
    releases: ['1.0.0', '1.1.0'],
    isFerryError: true,
    healthy: true,
    body: 'served by ferry/app\n',
    reportReady: 'function',
    fleet: ['function', 'function'],
    hidden: 'ERR_PACKAGE_PATH_NOT_EXPORTED',
  });
  // The README's "Embedding ferry" programs, run as written against the installed package.
  const [updateOnce, server] = embeddingExamples(await readFile(join(project, 'node_modules', OWN.name, 'README.md'), 'utf8'));
  assert.ok(updateOnce && server, 'two js examples');
  await writeFile(join(project, 'update-once.mjs'), updateOnce!);
  await writeFile(join(project, 'server.mjs'), server!);
  const env = childEnv({ PATH: `${bin}${delimiter}${process.env.PATH ?? ''}` });
  ok(await run(join(bin, 'ferry'), ['init', join(walked, 'device'), '--trust', join(walked, 'repo/root.json'), '--source', join(walked, 'repo')], project, env), 'ferry init');
  assert.match(ok(await run(process.execPath, ['update-once.mjs', join(walked, 'device')], project, env), 'update-once.mjs'), /^updated to 1\.1\.0$/m);
  assert.match(ok(await run(process.execPath, ['update-once.mjs', join(walked, 'device')], project, env), 'update-once.mjs again'), /^up-to-date$/m);
  const port = await freePort();
  const app = spawn(process.execPath, ['server.mjs'], { cwd: project, env: { ...env, PORT: String(port) }, stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    let said = '';
    app.stdout.setEncoding('utf8').on('data', (d: string) => { said += d; });
    for (let i = 0; i < 100 && !said.includes('serving on'); i++) await new Promise((r) => setTimeout(r, 100));
    assert.match(said, new RegExp(`serving on .*${port}`), 'server.mjs says where it listens');
    assert.is(await (await fetch(`http://127.0.0.1:${port}/healthz`)).text(), 'ok\n');
    assert.is(await (await fetch(`http://127.0.0.1:${port}/`)).text(), 'hello\n');
  } finally {
    const exited = new Promise<number | null>((resolve) => app.on('close', (code) => resolve(code)));
    app.kill('SIGTERM');
    assert.is(await exited, 0, 'server.mjs drains and exits 0 on SIGTERM');
  }
});

pkg('npm install -g --prefix: the global bin runs --version and the walkthrough', async () => {
  const prefix = p('global');
  await mkdir(join(prefix, 'lib'), { recursive: true }); // npm -g wants <prefix>/lib to exist
  await npmInstall(['-g', '--prefix', prefix, `--allow-scripts=${NATIVE.join(',')}`, OWN.name], tmp.path);
  const bin = join(prefix, 'bin');
  assert.is(ok(await run(join(bin, 'ferry'), ['--version'], tmp.path), 'global ferry --version').trim(), OWN.version);
  await walkthrough(bin, join(prefix, 'lib', 'node_modules', OWN.name), 'walk-global');
});

pkg.run();
