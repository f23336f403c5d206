// `ferry agent` wakes when the maintenance window opens (core/policy/maintenance-window.ts,
// core/policy/agent-schedule.ts): a device with a one-weekday window and an interval of hours stages a
// release while the window is shut, logs when it will try again, and applies the release right
// after the window opens instead of hours later at its interval.
//
// The window has hour granularity, so the agent runs under a shifted clock:
// FERRY_TEST_CLOCK_START (read by the test entry test/helpers/ferry-with-seams.mjs, which startFerry
// runs when a seam is set, and handed to the CLI as its clock seam) makes the agent process's clock
// (its own and the Updater's) read FAKE_START when it starts, then move in real time, where
// FAKE_START is LEAD_MS before a whole hour. Only the agent child's clock moves; timers, the disk and the network are real.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { makeDevice, type TestDevice } from '../helpers/device.ts';
import { makeRepo, tempDir, type TempDir, type TestRepo } from '../helpers/repo.ts';
import { inMaintenanceWindow } from '../../core/policy/policy.ts';
import type { TimeWindow } from '../../core/spec.ts';
import { events, waitForEvent } from '../helpers/agent-log.ts';
import { describeRun, ferry, history, running, signedFiles, smallApp, startFerry, treeProblems, type Started } from '../helpers/crash.ts';

/** How long after the agent process starts its clock reaches the window's opening. Long enough for
 * a loaded machine to start the agent and stage the release while the window is still shut. */
const LEAD_MS = 15_000;
const CHECK_INTERVAL_S = 3 * 3600;
const TIMEZONE = 'Europe/Berlin';

/** Local weekday (0 = Sunday) and hour of `at` in `timeZone`. */
function localDayHour(at: Date, timeZone: string): { day: number; hour: number } {
  const parts = new Intl.DateTimeFormat('en-US', { timeZone, hourCycle: 'h23', weekday: 'short', hour: 'numeric' }).formatToParts(at);
  const day = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'].indexOf(parts.find((p) => p.type === 'weekday')!.value);
  return { day, hour: Number(parts.find((p) => p.type === 'hour')!.value) };
}

/** A one-hour window on one weekday whose local hour starts at `opening`. */
function windowOpeningAt(opening: Date): TimeWindow {
  const { day, hour } = localDayHour(opening, TIMEZONE);
  return { days: [day], startHour: hour, endHour: hour + 1, timezone: TIMEZONE };
}

let tmp: TempDir;
let repo: TestRepo;
const devices: TestDevice[] = [];
const agents: Started[] = [];

const windowSuite = suite('ferry agent and the maintenance window');

windowSuite.before(async () => {
  tmp = await tempDir('ferry-agent-window-');
  repo = await makeRepo({ dir: join(tmp.path, 'publisher') });
  await repo.release('1.0.0', smallApp('1.0.0'));
});

windowSuite.after(async () => {
  for (const a of agents) if (running(a.child)) a.child.kill('SIGKILL');
  for (const d of devices) await d.cleanup();
  await tmp.cleanup();
});

windowSuite('a release staged while the window is shut is applied right after the window opens, not at the 3-hour interval', async () => {
  // The opening: a whole hour (Berlin's hours start on whole UTC hours) one to two hours ahead,
  // and not the second pass of a fall-back day's repeated hour (then the window would already be
  // open LEAD_MS before it).
  let opening = new Date(Math.ceil(Date.now() / 3_600_000) * 3_600_000 + 3_600_000);
  let window = windowOpeningAt(opening);
  for (let i = 0; i < 3 && inMaintenanceWindow(window, new Date(opening.getTime() - LEAD_MS)); i++) {
    opening = new Date(opening.getTime() + 3_600_000);
    window = windowOpeningAt(opening);
  }
  const d = await makeDevice({ trust: await repo.trust(), sources: [repo.repo], policy: { checkInterval: CHECK_INTERVAL_S, maintenanceWindow: window } });
  devices.push(d);
  const first = await ferry(['update', '--home', d.home, '--ignore-window']);
  assert.is(first.code, 0, `install 1.0.0: ${describeRun(first)}`);
  await repo.release('1.1.0', smallApp('1.1.0'));

  const agent = startFerry(['agent', '--home', d.home, '--log-format', 'json', '--no-share'], { FERRY_TEST_CLOCK_START: new Date(opening.getTime() - LEAD_MS).toISOString() });
  agents.push(agent);
  try {
    const waiting = await waitForEvent(agent, (e) => e.event === 'waiting', 60_000, 'waiting line');
    assert.is(waiting.reason, 'window', `waits for the window: ${JSON.stringify(waiting)}`);
    assert.is(waiting.version, '1.1.0');
    assert.ok(new Date(waiting.time) < opening, `the first attempt ended before the window opened (${waiting.time} < ${opening.toISOString()}); a machine this slow needs a longer LEAD_MS`);

    // One line saying when the next attempt is: after the opening (never before it), and with the
    // jitter of a wait this short, within a few seconds of it; not three hours later.
    const wake = await waitForEvent(agent, (e) => e.event === 'window-wait', 5_000, 'window-wait line');
    const nextAt = new Date(String(wake.at));
    assert.ok(nextAt > opening, `next attempt ${nextAt.toISOString()} is after the opening ${opening.toISOString()}`);
    assert.ok(nextAt.getTime() <= opening.getTime() + 1_000 + LEAD_MS / 10, `next attempt ${nextAt.toISOString()} is just after the opening, not at the interval`);
    assert.match(String(wake.local), /\(Europe\/Berlin\)$/);

    const committed = await waitForEvent(agent, (e) => e.event === 'committed', 60_000, 'committed line');
    assert.is(committed.version, '1.1.0');
    assert.ok(new Date(committed.time) >= opening, `committed at ${committed.time}, not before the window opened at ${opening.toISOString()}`);
    // The attempt that applied it was the one woken for the window (check lines name their trigger).
    const checks = events(agent).filter((e) => e.event === 'check');
    assert.equal(checks.map((e) => e.trigger), ['start', 'window'], `attempts: ${JSON.stringify(checks)}`);
  } finally {
    agent.child.kill('SIGTERM');
    const run = await agent.done;
    assert.is(run.code, 0, `the agent exits 0 on SIGTERM: ${describeRun(run)}`);
  }

  // The device is on a complete 1.1.0, and its history says so.
  assert.equal(await treeProblems(join(d.home, 'current'), await signedFiles(repo.repo, '1.1.0')), []);
  assert.is(await d.current(), '1.1.0');
  const h = await history(d.home);
  assert.ok(h.records, `history: ${describeRun(h.run)}`);
  assert.ok(h.records!.some((r) => r.to === '1.1.0' && r.outcome === 'committed'), `a committed 1.1.0 record: ${JSON.stringify(h.records)}`);
});

windowSuite.run();
