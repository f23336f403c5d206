// Issue 13 item 16, what a new user trips on: `--version`/`-V`/`-h`/`--help` answer and exit 0;
// the progress line keeps its percentage and ETA whatever the width (a pure layout table) and a
// resumed download's rate counts only this run's bytes; Ctrl-C and SIGTERM print one line saying
// what is left and exit 130/143; every --json names the installed version `currentVersion`.
// One signed repository (built in-process) serves every test; the CLI runs as a user runs it.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { readFile } from 'node:fs/promises';
import { makeRepo, sampleApp, type TestRepo } from '../helpers/repo.ts';
import { initDevice } from '../../core/device/init.ts';
import { ferry, json, ok, ROOT } from '../helpers/cli.ts';
import { createProgressSink, layoutProgressLine, progressParts, type ProgressParts, type ProgressStream } from '../../cli/progress.ts';
import type { ProgressEvent } from '../../core/ports/progress.ts';

const MiB = 1024 * 1024;
let repo: TestRepo;
/** A device home made in-process (no CLI start-up to pay for), taking updates from `source`. */
const deviceHome = async (name: string, source: string) => {
  const home = join(repo.dir, name);
  await initDevice({ home, trustBytes: await repo.trust(), sources: [source], platform: 'linux', arch: 'x64' });
  return home;
};
const pkgVersion = async () => (JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

const start = suite('issue 13 item 16: getting started');

start.before(async () => {
  repo = await makeRepo();
  await repo.release('1.0.0', sampleApp('1.0.0'));
});

start.after(async () => {
  await repo.cleanup();
});

start('issue 13 item 16: --version and -V print the version, -h and --help print help, all exit 0', async () => {
  const version = await pkgVersion();
  for (const flag of ['--version', '-V']) {
    const r = ferry(flag);
    assert.is(r.status, 0, `${flag}: ${r.stderr}`);
    assert.is(r.stdout.trim(), version, flag);
  }
  for (const flag of ['-h', '--help']) {
    const r = ferry(flag);
    assert.is(r.status, 0, `${flag}: ${r.stderr}`);
    assert.is(r.stderr, '', flag);
    assert.match(r.stdout, /^ferry <command>/, flag);
    assert.match(r.stdout, /ferry promote <version>/, `${flag} lists the commands`);
  }
  const verbHelp = ferry('status', '-h');
  assert.is(verbHelp.status, 0, verbHelp.stderr);
  assert.match(verbHelp.stdout, /^ferry status/);
});

start('issue 13 item 16: every --json names the installed version currentVersion (check, status, update, self status)', async () => {
  const home = await deviceHome('json-home', repo.repo);
  ok(ferry('update', '--home', home), 'first update');
  const update = json<Record<string, unknown>>(ok(ferry('update', '--home', home, '--json'), 'update --json'));
  const check = json<Record<string, unknown>>(ok(ferry('check', '--home', home, '--json'), 'check --json'));
  const status = json<Record<string, unknown>>(ok(ferry('status', '--home', home, '--json'), 'status --json'));
  const self = json<Record<string, unknown>>(ok(ferry('self', 'status', '--home', home, '--json'), 'self status --json'));
  assert.is(update.status, 'up-to-date');
  for (const [name, doc] of Object.entries({ update, check, status, self })) {
    assert.is(doc.currentVersion, '1.0.0', `${name} --json: ${JSON.stringify(doc)}`);
    assert.not.ok('current' in doc, `${name} --json has no "current" field`);
  }
});

/** A loopback origin that accepts connections and never answers: a command waiting on it is stopped by a signal. */
async function silentOrigin(): Promise<{ server: Server; port: number; connected: () => Promise<void>; close: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  let waiting: (() => void)[] = [];
  /** Resolves at the next connection. */
  const connected = () => new Promise<void>((resolve) => { waiting.push(resolve); });
  const server = createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
    for (const resolve of waiting) resolve();
    waiting = [];
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  const close = () => new Promise<void>((resolve) => { for (const s of sockets) s.destroy(); server.close(() => resolve()); });
  return { server, port, connected, close };
}

start('issue 13 item 16: SIGINT (Ctrl-C) and SIGTERM during ferry update print one line saying what is left and exit 130 and 143', async () => {
  const origin = await silentOrigin();
  try {
    const home = await deviceHome('signal-home', `http://127.0.0.1:${origin.port}`);
    for (const [signal, exit, word] of [['SIGINT', 130, 'interrupted'], ['SIGTERM', 143, 'stopped']] as const) {
      const connection = origin.connected(); // before the child starts: its connection cannot be missed
      const child = spawn(process.execPath, ['dist/cli/ferry.js', 'update', '--home', home], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      let stdout = '';
      child.stderr.on('data', (d) => { stderr += d; });
      child.stdout.on('data', (d) => { stdout += d; });
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('close', (code, sig) => resolve({ code, signal: sig })));
      const timeout = setTimeout(() => child.kill('SIGKILL'), 20_000);
      await Promise.race([connection, exited]);
      child.kill(signal);
      const end = await exited;
      clearTimeout(timeout);
      assert.equal(end, { code: exit, signal: null }, `exit status (stderr: ${stderr})`);
      assert.is(stdout, '');
      const lines = stderr.split('\n').filter(Boolean);
      assert.is(lines.length, 1, stderr);
      assert.match(lines[0]!, new RegExp(`^ferry: ${word} \\(${signal}\\) during update; the device's journal is kept`));
    }
    ok(ferry('status', '--home', home), 'the home still answers after the signals');
  } finally {
    await origin.close();
  }
});

start.run();

// ---------------------------------------------------------------------------------------------

const layout = suite('issue 13 item 16: progress line layout');

const long: ProgressParts = {
  verb: 'downloading',
  label: 'releases/1.1.0/linux-x64.from-1.0.0.delta.tar',
  source: 'http://updates.example.internal:8080/fleet/edge-gateways',
  detail: '12.0 MiB of 40.0 MiB',
  tail: '  30%  4.00 MiB/s  ETA 7s',
};

// [width, the line]: each fits its width and ends with the percentage, rate and ETA (the label is
// elided first, then the source, then the source and the byte counts go; only a width too narrow
// for the tail itself cuts it).
const rows: [number, string][] = [
  [Infinity, 'downloading releases/1.1.0/linux-x64.from-1.0.0.delta.tar from http://updates.example.internal:8080/fleet/edge-gateways  12.0 MiB of 40.0 MiB  30%  4.00 MiB/s  ETA 7s'],
  [140, 'downloading releases/1.1.0/lin…rom-1.0.0.delta.tar from http://updates.exa…leet/edge-gateways  12.0 MiB of 40.0 MiB  30%  4.00 MiB/s  ETA 7s'],
  [120, 'downloading releases/1.1.….0.0.delta.tar from http://update…edge-gateways  12.0 MiB of 40.0 MiB  30%  4.00 MiB/s  ETA 7s'],
  [100, 'downloading releases/1.1.0/linux…from-1.0.0.delta.tar  12.0 MiB of 40.0 MiB  30%  4.00 MiB/s  ETA 7s'],
  [79, 'downloading releases/….delta.tar  12.0 MiB of 40.0 MiB  30%  4.00 MiB/s  ETA 7s'],
  [60, 'downloading releases/1.…0.delta.tar  30%  4.00 MiB/s  ETA 7s'],
  [40, '30%  4.00 MiB/s  ETA 7s'],
  [10, '30%  4.00 '],
];
for (const [width, want] of rows) {
  layout(`issue 13 item 16: width ${width}`, () => {
    const line = layoutProgressLine(long, width);
    assert.is(line, want);
    assert.ok(line.length <= width, `${line.length} > ${width}`);
    if (width >= 40) assert.ok(line.endsWith('30%  4.00 MiB/s  ETA 7s'), 'percentage, rate and ETA whole');
  });
}

layout('issue 13 item 16: a short line is never changed, and a finished step keeps its time', () => {
  const staged: ProgressParts = { verb: 'staged', label: '1.1.0', source: null, detail: null, tail: ' in 1.5s' };
  assert.is(layoutProgressLine(staged, 79), 'staged 1.1.0 in 1.5s');
  const done = progressParts({ step: 'download', label: long.label, source: long.source, done: 40 * MiB, total: 40 * MiB }, 10_000, { ms: 0, done: 0 });
  const line = layoutProgressLine(done, 79);
  assert.ok(line.length <= 79, line);
  assert.match(line, /  40\.0 MiB  4\.00 MiB\/s  in 10\.0s$/);
});

function terminal(columns: number | undefined): ProgressStream & { text: string } {
  const s = { isTTY: true, columns, text: '', write(t: string) { s.text += t; return true; } };
  return s;
}

const ev = (done: number, total = 40 * MiB): ProgressEvent => ({ step: 'download', label: long.label, source: long.source, done, total });

layout('issue 13 item 16: on an 80-column terminal (and one that gives no width) the percentage and ETA show', () => {
  for (const columns of [80, undefined]) {
    const out = terminal(columns);
    let t = 0;
    const sink = createProgressSink(out, false, () => t)!;
    sink(ev(0));
    t = 1000;
    sink(ev(4 * MiB));
    const draws = out.text.split('\r').filter(Boolean).map((d) => d.trimEnd());
    assert.ok(draws.every((d) => d.length <= 79), `${columns}: ${JSON.stringify(draws)}`);
    assert.match(draws.at(-1)!, /  10%  4\.00 MiB\/s  ETA 9s$/, String(columns));
  }
});

layout('issue 13 item 16: after a resume the rate and ETA count only the bytes moved in this run', () => {
  const out = terminal(200);
  let t = 0;
  const sink = createProgressSink(out, false, () => t)!;
  // fetch-artifact's first report is the .part file's size: 30 MiB fetched by an earlier run.
  sink(ev(30 * MiB));
  t = 1000;
  sink(ev(34 * MiB)); // 4 MiB in this run's first second (a 4 MiB/s cap)
  const running = out.text.split('\r').filter(Boolean).at(-1)!.trimEnd();
  assert.match(running, /  34\.0 MiB of 40\.0 MiB  85%  4\.00 MiB\/s  ETA 2s$/, running);
  t = 2500;
  sink(ev(40 * MiB));
  const done = out.text.split('\r').filter(Boolean).at(-1)!.trim();
  assert.match(done, /  40\.0 MiB \(resumed at 30\.0 MiB\)  4\.00 MiB\/s  in 2\.5s$/, done);
});

layout.run();
