// Every example in README.md is run, so the README cannot show a command that does not work:
//   - each fenced `sh` block, in document order, with bash (`set -euo pipefail`) in one fresh
//     folder, with a `ferry` script (node dist/cli/ferry.js) first on PATH; it must exit 0, within a
//     bound, and where its output matters it must print the facts in EXPECT below; a block whose
//     `# needs: …` line names a tool this machine lacks (the container example: runc, umoci, root)
//     prints a SKIP line instead, and is counted as skipped, never as passed;
//   - each `json` block is a ferry.json example and is read by the parser it documents
//     (parseDeviceConfig): it must parse, and every value it sets must be the value ferry reads;
//   - each `js` block is at least syntax-checked by executing `node --check` on it;
//   - every other fence is `text`, so a new example cannot hide as an untagged block.
// At the end no process the examples started may still run (each block's processes carry a token
// in their environment; see tagged-processes.ts), and the number of blocks checked must equal the
// number of sh/json/js blocks in the README.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseDeviceConfig } from '../../core/device/config.ts';
import { fencedBlocks, type FencedBlock } from './fenced-blocks.ts';
import { killTagged, runScript, untilUntagged, type ScriptRun } from './tagged-processes.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const README = join(ROOT, 'README.md');
const FERRY = join(ROOT, 'dist', 'cli', 'ferry.js');
/** Generous: a block runs a dozen ferry commands, each a few seconds on a loaded machine. */
const BLOCK_TIMEOUT_MS = 4 * 60 * 1000;
/** How long processes stopped by the last block (`kill "$(cat serve.pid)"`) may take to exit. */
const EXIT_GRACE_MS = 20_000;

const CHECKED_LANGS = new Set(['sh', 'json', 'js']);
const KNOWN_LANGS = new Set([...CHECKED_LANGS, 'text']);

/**
 * Facts the walkthrough's output must show, each found by a command that appears in exactly one
 * `sh` block (so moving or dropping that command fails here instead of silently checking nothing).
 * `files` checks the working folder after the block.
 */
const EXPECT: { command: string; stdout: RegExp[]; files?: (work: string) => void }[] = [
  {
    command: 'ferry repo init repo --app hello',
    stdout: [/^created repo for app "hello"/m, /^released 1\.0\.0 \(\S+\) on stable, sequence 1$/m, /^OK: repository repo for app "hello"/m],
    files: (work) => assert.is(statSync(join(work, 'keys/root.key')).mode & 0o777, 0o600, 'keys/root.key is private (0600)'),
  },
  {
    command: 'ferry init device --trust repo/root.json --source http://127.0.0.1:18437',
    stdout: [/^updated nothing -> 1\.0\.0 \(full, .* from http:\/\/127\.0\.0\.1:18437\)$(?:[\s\S]*)^updated nothing -> 1\.0\.0 \(full, .* from http:\/\/127\.0\.0\.1:18437\)$/m],
  },
  {
    command: 'ferry check --home device --json',
    stdout: [/"updateAvailable": true/, /"latestVersion": "1\.1\.0"/, /"currentVersion": "1\.0\.0"/, /^downloaded 1\.1\.0 \(delta, /m, /^updated 1\.0\.0 -> 1\.1\.0 \(delta/m, /^version\s+1\.1\.0$/m, /^\S+ \S+\s+1\.0\.0\s+1\.1\.0\s+delta\s.*committed/m],
  },
  {
    command: 'ferry share --home device',
    stdout: [/^updated 1\.0\.0 -> 1\.1\.0 \(delta, .* from lan\)$/m],
  },
  {
    command: 'ferry rollback --home device',
    stdout: [/^rolled back 1\.1\.0 -> 1\.0\.0$/m, /^restore point \S+ of 1\.0\.0$/m, /ferry: waiting: 1\.1\.0 is staged \(held\)/, /ferry: committed 1\.1\.0/, /^version\s+1\.1\.0$/m],
  },
  {
    command: 'ferry init kiosk',
    stdout: [/^OK: bundle hello-1\.1\.0\.ferry/m, /^1\.1\.0 is staged and waits: .*approval/m, /^approved 1\.1\.0/m, /^updated nothing -> 1\.1\.0 \(full, .* from usb:stick\)$/m],
  },
  {
    command: 'ferry run --home device',
    stdout: [/^hello from 1\.1\.0$[\s\S]*^promoted 1\.2\.0 from beta to stable, sequence \d+$[\s\S]*^updated 1\.1\.0 -> 1\.2\.0 [\s\S]*^hello from 1\.2\.0$/m],
    files: (work) => assert.match(readFileSync(join(work, 'run.log'), 'utf8'), /handed over to 1\.2\.0/, 'ferry run handed the socket to 1.2.0'),
  },
  {
    command: 'ferry release app --repo repo --version 1.3.0 --key keys/release.key --rollout 0',
    stdout: [
      /^device id\s+[0-9a-f]{32}$/m,
      /^  rolling out to 0% of devices; the others go no further than 1\.2\.0$/m,
      /^up to date \(1\.2\.0\)$/m,
      /^1\.3\.0 on stable: 10% of devices, sequence \d+$/m,
      /^  linux-x64: 10%, 50% from 2030-01-01T00:00:00\.000Z; devices outside it go no further than 1\.2\.0$/m,
      /^1\.3\.0 on stable: every device \(rollout ended\), sequence \d+$/m,
      /^updated 1\.2\.0 -> 1\.3\.0 \(delta/m,
      /^  device id: [0-9a-f]{32}$/m,
      /^endpoint http:\/\/127\.0\.0\.1:18437\/reports: 1 delivered, 0 failed$/m,
      /^stick stick: 1 written, 0 unchanged$/m,
      /^stick\/reports: 1 written, 0 unchanged$/m,
      /^fleet of hello: 3 device\(s\); 3 report file\(s\): 3 accepted, 0 already seen, 0 refused$/m,
      /^linux-x64\s+1\.3\.0\s+2$/m,
      /^linux-x64\s+1\.1\.0\s+1$/m,
      /^stable\s+linux-x64\s+1\.3\.0\s+100% \(no rollout\)\s+2\s+3\s+3$/m,
    ],
    files: (work) => {
      assert.is(readdirSync(join(work, 'fleet-reports')).filter((f) => /^[0-9a-f]{32}\.json$/.test(f)).length, 1, 'the origin kept the edge device\'s report');
      assert.is(readdirSync(join(work, 'stick', 'reports')).filter((f) => /^[0-9a-f]{32}\.json$/.test(f)).length, 2, 'the stick carries the kiosk\'s and the device\'s reports');
      const page = readFileSync(join(work, 'fleet.html'), 'utf8');
      assert.match(page, /<svg[\s\S]*<\/svg>/, 'fleet.html holds the chart');
      assert.not.match(page, /<script|\b(?:src|href)\s*=\s*["']?https?:/i, 'fleet.html loads and runs nothing');
    },
  },
  {
    command: 'ferry release --image img --image-ref 1.0.0 --repo crepo',
    stdout: [
      /^released 1\.0\.0 \(linux-x64\) on stable, sequence 1\n  image 1\.0\.0 sha256:[0-9a-f]{64} \(2 layers, from oci-layout\)$/m,
      /^updated nothing -> 1\.0\.0 \(full, /m,
      /^ferry-web-1\.0\.0\s+1\.0\.0\s+running\s+yes$/m,
      /^updated 1\.0\.0 -> 1\.1\.0 \(delta, /m,
      /^ferry-web-1\.1\.0 already running$/m,
      /^stopped: ferry-web-1\.1\.0$/m,
    ],
  },
];

const blocks = fencedBlocks(readFileSync(README, 'utf8'));
const token = randomBytes(8).toString('hex');
let tmp = '';
let work = '';
let logs = '';
let env: NodeJS.ProcessEnv = {};
let checked = 0;
/** sh blocks not run because a tool they need is missing (each printed as a SKIP line). */
let skipped = 0;
let firstFailure: FencedBlock | null = null;

function tail(text: string, lines = 30): string {
  return text.split('\n').slice(-lines).join('\n');
}

/** The block's output and the tails of the logs its background processes write, for a failure message. */
function explain(block: FencedBlock, run: ScriptRun): string {
  const logFiles = readdirSync(work).filter((f) => f.endsWith('.log'));
  return [
    `README.md:${block.line}: ${run.timedOut ? `timed out after ${BLOCK_TIMEOUT_MS} ms` : `exit ${run.code ?? run.signal}`}`,
    `--- stdout\n${tail(run.stdout)}`,
    `--- stderr\n${tail(run.stderr)}`,
    ...logFiles.map((f) => `--- ${f}\n${tail(readFileSync(join(work, f), 'utf8'), 10)}`),
  ].join('\n');
}

/**
 * What a block's `# needs: a b c (as root)` line asks for and this machine lacks (empty: run it).
 * Such a block is reported as a visible SKIP, never as passed; CI installs everything (`.ci/run`).
 */
function missingFor(block: FencedBlock): string[] {
  const needs = /^# needs: ([^\n(]*)(\(as root\))?/m.exec(block.body);
  if (!needs) return [];
  const missing = needs[1]!.trim().split(/\s+/).filter((tool) => {
    const cmd = tool === 'busybox-static' ? 'busybox' : tool;
    try {
      execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
      return false;
    } catch {
      return true;
    }
  });
  if (needs[2] && process.getuid?.() !== 0) missing.push('root');
  return missing;
}

async function runShellBlock(block: FencedBlock, index: number): Promise<void> {
  const missing = missingFor(block);
  if (missing.length > 0) {
    console.log(`SKIP: README.md:${block.line} not run: ${missing.join(', ')} missing (apt-get install ${missing.join(' ')})`);
    skipped++;
    return;
  }
  const run = await runScript(`set -euo pipefail\n${block.body}`, { name: `block-${index}-line-${block.line}`, cwd: work, logDir: logs, env, token, timeoutMs: BLOCK_TIMEOUT_MS });
  checked++;
  if (run.timedOut || run.code !== 0) assert.unreachable(explain(block, run));
  for (const e of EXPECT.filter((x) => block.body.includes(x.command))) {
    for (const fact of e.stdout) assert.match(run.stdout, fact, `README.md:${block.line} (${e.command}) prints ${fact}\n--- stdout\n${tail(run.stdout, 60)}`);
    e.files?.(work);
  }
}

function checkDeviceConfigBlock(block: FencedBlock): void {
  const example = JSON.parse(block.body) as Record<string, unknown>;
  const parsed = parseDeviceConfig(example) as unknown as Record<string, unknown>;
  checked++;
  // parseDeviceConfig ignores top-level keys it does not know, so a misspelt one would be a
  // setting the README promises and ferry never reads: compare value by value.
  for (const [key, value] of Object.entries(example)) {
    assert.ok(key in parsed, `README.md:${block.line}: "${key}" is a ferry.json field`);
    if (key === 'container') {
      // Fields left out read as their defaults; each one the example sets must read as written.
      const container = parsed.container as Record<string, unknown>;
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        if (k === 'allow') {
          for (const [a, av] of Object.entries(v as Record<string, unknown>)) assert.equal((container.allow as Record<string, unknown>)[a], av, `README.md:${block.line}: container.allow.${a} reads as written`);
        } else {
          assert.equal(container[k], v, `README.md:${block.line}: container.${k} reads as written`);
        }
      }
    } else if (key === 'policy') {
      const policy = parsed.policy as Record<string, unknown>;
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) assert.equal(policy[k], v, `README.md:${block.line}: policy.${k} reads as written`);
    } else {
      assert.equal(parsed[key], value, `README.md:${block.line}: ${key} reads as written`);
    }
  }
}

function syntaxCheckJsBlock(block: FencedBlock, index: number): void {
  const file = join(logs, `block-${index}-line-${block.line}.mjs`);
  writeFileSync(file, block.body);
  checked++;
  try {
    execFileSync(process.execPath, ['--check', file], { stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 });
  } catch (err) {
    assert.unreachable(`README.md:${block.line}: the js block does not parse:\n${String((err as { stderr?: Buffer }).stderr ?? err)}`);
  }
}

const readme = suite('README examples');

readme.before(() => {
  tmp = mkdtempSync(join(tmpdir(), 'ferry-readme-'));
  work = join(tmp, 'work');
  logs = join(tmp, 'blocks');
  const bin = join(tmp, 'bin');
  for (const d of [work, logs, bin]) mkdirSync(d);
  const quote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;
  writeFileSync(join(bin, 'ferry'), `#!/bin/sh\nexec ${quote(process.execPath)} ${quote(FERRY)} "$@"\n`);
  chmodSync(join(bin, 'ferry'), 0o755);
  env = { ...process.env, PATH: [bin, dirname(process.execPath), process.env.PATH].join(':') };
});

readme.after(() => {
  killTagged(token);
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

readme('every fenced block in the README is tagged sh, json, js or text, so no example goes unchecked', () => {
  const untagged = blocks.filter((b) => !KNOWN_LANGS.has(b.lang)).map((b) => `README.md:${b.line} ("${b.lang}")`);
  assert.equal(untagged, [], 'blocks with another or no tag (commands are sh, everything else that is not json/js is text)');
  assert.ok(blocks.filter((b) => b.lang === 'sh').length >= 5, 'the README has its walkthrough');
});

readme('every fact this test expects names a command found in exactly one sh block', () => {
  for (const e of EXPECT) {
    const where = blocks.filter((b) => b.lang === 'sh' && b.body.includes(e.command)).map((b) => b.line);
    assert.is(where.length, 1, `"${e.command}" is in exactly one sh block (found at lines ${where.join(', ') || 'none'})`);
  }
});

for (const [index, block] of blocks.entries()) {
  if (!CHECKED_LANGS.has(block.lang)) continue;
  const firstLine = block.body.split('\n').find((l) => l.trim() !== '' && !l.startsWith('#')) ?? '';
  const what = block.lang === 'json' ? 'a ferry.json example' : firstLine.slice(0, 60);
  readme(`the ${block.lang} block at README.md:${block.line} works as written (${what})`, async () => {
    if (block.lang === 'sh' && firstFailure !== null) assert.unreachable(`not run: the block at README.md:${firstFailure.line} failed, and the examples build on each other`);
    try {
      if (block.lang === 'sh') await runShellBlock(block, index);
      else if (block.lang === 'json') checkDeviceConfigBlock(block);
      else syntaxCheckJsBlock(block, index);
    } catch (err) {
      if (block.lang === 'sh') firstFailure = block;
      throw err;
    }
  });
}

readme('every sh, json and js block was checked, and no process the examples started is left running', async () => {
  assert.is(checked + skipped, blocks.filter((b) => CHECKED_LANGS.has(b.lang)).length, 'blocks checked (or skipped with a SKIP line) = sh/json/js blocks in the README');
  const left = await untilUntagged(token, EXIT_GRACE_MS);
  killTagged(token);
  assert.equal(left.map((p) => `${p.pid} ${p.cmdline}`), [], 'processes the examples started and did not stop');
});

readme.run();
