// `ferry serve` as a process: prints its URL as JSON, serves the repository, and on SIGTERM or
// SIGINT closes and exits 0. The command module runs under a bare yargs here (the CLI wiring in
// cli/main.ts is tested with the rest of the CLI).

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import http from 'node:http';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeRepo, type TestRepo } from '../helpers/repo.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SCRIPT = `import yargs from 'yargs';
import { serveCommand } from ${JSON.stringify(join(ROOT, 'cli/commands/serve.ts'))};
await yargs(process.argv.slice(1)).option('json', { type: 'boolean', default: false }).command(serveCommand).strict().parseAsync();`;

function get(url: string): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
    });
    req.setTimeout(5000, () => req.destroy(new Error('timed out')));
    req.on('error', reject);
  });
}

const s = suite<{ repo: TestRepo }>('ferry serve prints its URL, serves, and exits 0 on a signal', {} as { repo: TestRepo });
s.before(async (ctx) => { ctx.repo = await makeRepo(); });
s.after(async (ctx) => { await ctx.repo?.cleanup(); });

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  s(`serves root.json, then ${signal} → exit 0`, async (ctx) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', SCRIPT, '--', 'serve', ctx.repo.repo, '--port', '0', '--json'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const killer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    try {
      for (let i = 0; i < 200 && !out.includes('}'); i++) await new Promise((r) => setTimeout(r, 50));
      const printed = JSON.parse(out) as { url: string; port: number };
      assert.match(printed.url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
      assert.ok(printed.port > 0);
      const r = await get(`${printed.url}root.json`);
      assert.is(r.status, 200);
      assert.ok(r.body.equals(await readFile(join(ctx.repo.repo, 'root.json'))));
      child.kill(signal);
      assert.is(await exited, 0, `exit code (stderr: ${err})`);
    } finally {
      clearTimeout(killer);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  });
}

s('a folder without root.json is refused', async (ctx) => {
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', SCRIPT, '--', 'serve', join(ctx.repo.repo, 'channels'), '--port', '0'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const killer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  let err = '';
  child.stderr.on('data', (d) => { err += d; });
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  clearTimeout(killer);
  assert.is.not(code, 0);
  assert.match(err, /ferry repository/);
});

s.run();
