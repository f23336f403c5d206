// examples/self-updating-agent, run the way its README says (issue 12 "the same for any Node agent
// that embeds ferry"): its releases (agent.js, package.json, ferry vendored in node_modules/ferry;
// test/helpers/self-home.ts) are published with the real `ferry release` into a real repository,
// the first installed with `ferry update`, and the agent started through the launcher script
// `ferry self launcher --entry agent.js` wrote. Through the library alone (SelfUpdate: prepare,
// drain, switch, restart; confirm): 1.0.0 → 1.1.0 confirms; a 1.2.0 that crashes at start and a
// 1.3.0 that hangs are rolled back to 1.1.0 by the keeper, refused, and not tried again.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { readlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { UpdateRecord } from '../../core/spec.ts';
import { keepLines, type TimedLine } from '../helpers/agent-log.ts';
import { EMBEDDED_KEEPER, exampleAgentVariant, makeSelfHome, mustCli, runCli, type SelfHome } from '../helpers/self-home.ts';
import { within } from '../helpers/within.ts';

const test = suite('examples/self-updating-agent');

const TRIES = 2;
// Long enough for a good version to restart and confirm on a loaded 2-core machine; a hang is
// still caught within seconds.
const CONFIRM_WITHIN_MS = 15_000;
const CHECK_MS = 500;
const CASE_MS = 90_000;

let self: SelfHome;
let child: ChildProcess;
let exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
const lines: TimedLine[] = [];

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const t0 = Date.now();
/** The last lines, each check that found nothing new counted once (they repeat every CHECK_MS). */
const tail = () => lines.filter((l, i) => !/: check: (up-to-date|refused|busy)/.test(l.text) || lines[i + 1]?.text !== l.text).slice(-80).map((l) => `${((l.at - t0) / 1000).toFixed(1)} ${l.stream}: ${l.text}`).join('\n');

/** "agent <version> (pid N): <message>" lines the agent printed since `since`. */
function said(since = 0): { at: number; version: string; message: string }[] {
  return lines.flatMap((l) => {
    const m = /^agent (\S+) \(pid \d+\): (.*)$/.exec(l.text);
    return l.stream === 'out' && l.at >= since && m ? [{ at: l.at, version: m[1]!, message: m[2]! }] : [];
  });
}

/**
 * When the keeper started `version` (its "starting <v> on trial" line): a broken variant may be
 * killed at the deadline before its own first line, while node still loads its imports.
 */
function brokenStarts(version: string, since = 0): number[] {
  return lines.filter((l) => l.at >= since && l.stream === 'err' && l.text.startsWith(`ferry self: starting ${version} on trial`)).map((l) => l.at);
}

async function until<T>(probe: () => Promise<T | undefined> | T | undefined, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const v = await probe();
    if (v !== undefined) return v;
    if (child.exitCode !== null || child.signalCode !== null) break;
    await sleep(100);
  }
  throw new Error(`no ${what} within ${timeoutMs} ms; last lines:\n${tail()}`);
}

async function current(): Promise<string> {
  return (await readlink(join(self.home, 'current'))).replace(/^releases\//, '');
}

async function selfStatus(): Promise<{ tentative: { version: string } | null; refused: { version: string; reason: string }[] }> {
  return JSON.parse((await mustCli(['self', 'status', '--home', self.home, '--json'], 'self status')).stdout);
}

async function history(): Promise<UpdateRecord[]> {
  let last = '';
  for (let i = 0; i < 40; i++) {
    const r = await runCli(['history', '--home', self.home, '--json']);
    if (r.code === 0) return JSON.parse(r.stdout) as UpdateRecord[];
    last = r.stderr;
    await sleep(250);
  }
  throw new Error(`ferry history kept failing: ${last}`);
}

test.before(async () => {
  self = await makeSelfHome({ app: 'self-updating-agent', tree: exampleAgentVariant, keeper: EMBEDDED_KEEPER, launcherArgs: ['--entry', 'agent.js'] });
  child = spawn('sh', [self.launcher!], {
    cwd: self.dir,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
    env: { ...process.env, AGENT_CHECK_MS: String(CHECK_MS), AGENT_SELF_TRIES: String(TRIES), AGENT_CONFIRM_WITHIN_MS: String(CONFIRM_WITHIN_MS) },
  });
  keepLines(child, lines);
  exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  await until(() => said().find((s) => s.version === '1.0.0' && s.message.startsWith('check:')), 30_000, 'a first check by 1.0.0');
});

test.after(async () => {
  if (child && child.exitCode === null && child.signalCode === null) {
    child.kill('SIGTERM');
    if (!(await within(exited, 20_000, null))) {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // the group is gone
      }
    }
  }
  if (self) {
    // An agent a failed case left running in its own group (the keeper starts it detached).
    for (const name of readdirSync('/proc')) {
      if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
      try {
        if (readFileSync(`/proc/${name}/cmdline`, 'utf8').includes(self.dir)) process.kill(Number(name), 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
    await self.cleanup();
  }
});

test('1.0.0 → 1.1.0: prepare, drain, switch, restart; 1.1.0 confirms itself', async () => {
  const since = Date.now();
  await self.publishVariant('1.1.0');
  const confirmed = await until(() => said(since).find((s) => s.version === '1.1.0' && s.message.startsWith('confirmed 1.1.0')), CASE_MS, '1.1.0 confirming');
  assert.match(confirmed.message, /from 1\.0\.0/);
  const old = said(since).filter((s) => s.version === '1.0.0').map((s) => s.message);
  assert.ok(old.some((m) => /^drained after \d+ jobs$/.test(m)), `1.0.0 drained: ${old}`);
  assert.ok(old.includes('switching to 1.1.0; restarting'), `1.0.0 switched and restarted: ${old}`);
  assert.ok(said(since).some((s) => s.version === '1.1.0' && s.message === 'started (on trial)'), '1.1.0 started on trial');
  assert.is(await current(), '1.1.0');
  assert.is((await selfStatus()).tentative, null);
  const record = (await history()).find((h) => h.to === '1.1.0');
  assert.ok(record);
  assert.is(record.from, '1.0.0');
  assert.is(record.outcome, 'committed');
});

for (const [version, brk] of [['1.2.0', 'crash'], ['1.3.0', 'hang']] as const) {
  test(`${version} ${brk === 'crash' ? 'crashes at start' : 'hangs at start'}: rolled back to 1.1.0 on its own, refused, not tried again`, async () => {
    const since = Date.now();
    await self.publishVariant(version, { break: brk });
    const first = await until(() => brokenStarts(version, since)[0], CASE_MS, `a start of ${version}`);
    const back = await until(() => said(first).find((s) => s.version === '1.1.0' && s.message === 'started'), CASE_MS, `1.1.0 started again after ${version}`);
    console.log(`  ${version} (${brk}): back on 1.1.0 ${((back.at - first) / 1000).toFixed(1)} s after its first start (${brokenStarts(version, since).length} start(s); tries ${TRIES}, deadline ${CONFIRM_WITHIN_MS / 1000} s)`);
    assert.ok(back.at - first <= CONFIRM_WITHIN_MS + 20_000, `recovered within the deadline: ${back.at - first} ms`);
    assert.is(await current(), '1.1.0');
    const status = await selfStatus();
    assert.is(status.tentative, null);
    assert.ok(status.refused.some((r) => r.version === version), `${version} refused: ${JSON.stringify(status.refused)}`);
    // The 1.1.0 agent keeps checking, sees it refused, and never starts it again.
    await until(() => (said(back.at).filter((s) => s.version === '1.1.0' && s.message === `check: refused ${version}`).length >= 3 ? true : undefined), 60_000, `three checks finding ${version} refused`);
    assert.ok(brokenStarts(version, since).length <= TRIES, `${version} started at most ${TRIES} times`);
    const starts = brokenStarts(version, since).length;
    await sleep(2 * CHECK_MS);
    assert.is(brokenStarts(version, since).length, starts, `${version} not started again`);
    const record = (await history()).find((h) => h.to === version);
    assert.ok(record, `history has ${version}`);
    assert.is(record.from, '1.1.0');
    assert.is(record.outcome, 'rolled-back');
    assert.match(record.message ?? '', /did not confirm/);
  });
}

test('SIGTERM to the launcher stops the agent; the launcher exits 0', async () => {
  child.kill('SIGTERM');
  const ended = await within(exited, 20_000, null);
  assert.ok(ended, 'the launcher exited within 20 s');
  assert.is(ended.code, 0, `launcher exit ${JSON.stringify(ended)}; ${tail()}`);
});

test.run();
