#!/usr/bin/env node
// Runs every test/**/*.test.ts in its own Node process (a crash or a leaked handle in one file
// cannot hide another's result), then prints the one line CI reads: "N passed, N failed".
// Usage: node test/run.mjs [substring-filter …]
// FERRY_TEST_JOBS (default 2, this machine's cores) files run at once; most of a test's time is
// spent waiting (deadlines, drains, child processes), and no test asserts on timing. Each file's
// output is printed whole when it finishes, so files never interleave.

import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const filters = process.argv.slice(2);
const FILE_TIMEOUT_MS = 10 * 60 * 1000;
const LINGER_WARN_MS = 3000;

function findTests(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...findTests(p));
    else if (name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

function runFile(file) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', file], {
      cwd: root,
      // Publishing at brotli quality 11 (ferry's default) costs seconds per release; the suite
      // publishes hundreds, so `ferry release` runs at 5 here unless the caller says otherwise.
      // test/core/full-artifact-brotli.test.ts checks the default itself with the variable unset.
      env: { FERRY_COMPRESSION_LEVEL: '5', ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    // When uvu printed its summary (after the last test and hook); the process should end then.
    let summaryAt = 0;
    const onData = (d) => {
      out += d;
      if (!summaryAt && /Duration:\s+[\d.]+ms/.test(out)) summaryAt = Date.now();
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    const timer = setTimeout(() => { out += `\n${file}: killed after ${FILE_TIMEOUT_MS} ms\n`; child.kill('SIGKILL'); }, FILE_TIMEOUT_MS);
    child.on('close', (code) => {
      clearTimeout(timer);
      // A timer or handle left pending keeps the process alive after its tests, CI time for nothing
      // (a bounded wait's timer: test/helpers/within.ts). Said, so it is seen and fixed.
      const lingered = summaryAt ? Date.now() - summaryAt : 0;
      if (lingered > LINGER_WARN_MS) out += `\n(${relative(root, file)} ran ${(lingered / 1000).toFixed(1)} s after its summary: something it left pending kept the process alive)\n`;
      const num = (label) => Number(new RegExp(`${label}:\\s+(\\d+)`).exec(out)?.[1] ?? 0);
      const total = num('Total'), passed = num('Passed'), skipped = num('Skipped');
      let failed = Math.max(0, total - passed - skipped);
      if (code !== 0 && failed === 0) failed = 1; // crashed, or failed outside a test
      resolve({ passed, failed, skipped, out });
    });
  });
}

const jobs = Math.max(1, Number(process.env.FERRY_TEST_JOBS) || 2);
// The slow suites start first, so the last file to finish is a short one: the crash files (2-3
// minutes each), then the single slow files of readme/ and package/ (over a minute with their
// installs) and the adversarial suite. Measured on CI's per-file times, this order ends the suite
// about 30 s sooner than crash and adversarial first (readme and package last).
const weight = (f) => (/[/\\]crash[/\\]/.test(f) ? 0 : /[/\\](readme|package|adversarial)[/\\]/.test(f) ? 1 : 2);
const files = findTests(join(root, 'test'))
  .filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)))
  .sort((a, b) => weight(a) - weight(b) || a.localeCompare(b));
let passed = 0, failed = 0, skipped = 0;
const failedFiles = [];
const queue = [...files];
const started = Date.now();
async function worker() {
  for (let file = queue.shift(); file; file = queue.shift()) {
    const name = relative(root, file);
    const t0 = Date.now();
    const r = await runFile(file);
    process.stdout.write(`\n=== ${name} (${((Date.now() - t0) / 1000).toFixed(1)} s)\n${r.out}`);
    passed += r.passed; failed += r.failed; skipped += r.skipped;
    if (r.failed) failedFiles.push(name);
  }
}
await Promise.all(Array.from({ length: Math.min(jobs, files.length) }, worker));
if (failedFiles.length) console.log(`\nfailing files: ${failedFiles.join(', ')}`);
if (skipped) console.log(`\n${skipped} test(s) skipped: see the SKIP lines above for why`);
console.log(`\n${files.length} files in ${((Date.now() - started) / 1000).toFixed(0)} s, ${jobs} at a time`);
console.log(`\n${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(failed > 0 || files.length === 0 ? 1 : 0);
