// Issue 16 item 4: the `ferry fleet` command as a user runs it (the built CLI): the app and the
// channel pointers from --repo (a 50% rollout on stable), --json's shape, the human tables, exit 0 with refused reports
// counted, and --html's page opened in headless Chromium: the DOM holds the tables and the chart
// with the expected counts, hostile strings from reports stay text (no element is injected), and
// a screenshot is a real PNG whose pixels show the chart's colours. The logic's exact numbers are
// test/core/fleet-reports.test.ts's.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { makeRepo, sampleApp, type TestRepo } from '../helpers/repo.ts';
import { ferry, json, ok } from '../helpers/cli.ts';
import { newIdentity, reportOf, writeReport } from '../helpers/fleet-report-maker.ts';
import { findChromium, runChromium } from '../helpers/chromium.ts';
import { countColour, decodePng } from '../helpers/png-reader.ts';
import { CHART_COLOURS } from '../../core/fleet/fleet-html.ts';
import type { FleetSummary } from '../../core/fleet/fleet-summary.ts';
import { rolloutRelease } from '../../core/publish/rollout.ts';
import { rolloutBucket } from '../../core/policy/rollout.ts';

const DAY = 86_400_000;
const ago = (ms: number) => new Date(Date.now() - ms).toISOString();
const HOSTILE_SOURCE = `<img src=x onerror="document.title='pwned'"><script>document.title='pwned'</script>`;
const HOSTILE_FILE = '<i id="injected">x.json'; // a file name cannot hold "/": an unclosed tag

let repo: TestRepo;
let dir: string;
let html: string;
const stableIds: string[] = [];
const SALT = 'c0ffee'.repeat(5) + 'ab';
/** The stable devices inside the 50% rollout, by the bucket function devices use. */
const inRollout = () => stableIds.filter((id) => rolloutBucket(id, SALT) < 5000).length;

const item = suite('issue 16 item 4: ferry fleet on the command line, --json and --html');

item.before(async () => {
  repo = await makeRepo();
  await repo.release('1.0.0', sampleApp('1.0.0'), { channel: 'stable', deltas: 0 });
  // 1.1.0 on stable under a 50% rollout (signed into the pointer, as `ferry rollout` does).
  await repo.release('1.1.0', sampleApp('1.1.0'), { channel: 'stable', deltas: 0 });
  await rolloutRelease({ repo: repo.repo, version: '1.1.0', channel: 'stable', plan: { percent: 50, salt: SALT }, keys: [repo.releaseKey], expiresIn: 86_400, now: new Date() });
  dir = join(repo.dir, 'reports');
  html = join(repo.dir, 'fleet.html');
  // Four stable devices on 1.0.0 (for 5 days); two beta devices moved to 1.1.0 a day ago, one failing since.
  for (let i = 0; i < 6; i++) {
    const d = newIdentity();
    const beta = i >= 4;
    if (!beta) stableIds.push(d.id);
    const versions = [{ version: '1.0.0', since: ago(5 * DAY) }, ...(beta ? [{ version: '1.1.0', since: ago(DAY) }] : [])];
    const time = ago(60_000);
    const failing = i === 5 ? { from: '1.1.0', to: '1.2.0', kind: 'full' as const, outcome: 'rolled-back' as const, errorCode: 'ERR_UNHEALTHY' as const, bytesMoved: 10, source: HOSTILE_SOURCE, startedAt: time, finishedAt: time } : undefined;
    await writeReport(join(dir, `${d.id}.json`), reportOf(d, { time, channel: beta ? 'beta' : 'stable', currentVersion: beta ? '1.1.0' : '1.0.0', versions, ...(failing ? { lastAttempt: failing } : {}) }), d);
  }
  await writeFile(join(dir, HOSTILE_FILE), 'not json');
});

item.after(async () => {
  await repo.cleanup();
});

item('--json: the summary document, app and channels from --repo, refused counted, exit 0', async () => {
  const run = ok(ferry('fleet', dir, '--repo', repo.repo, '--json', '--html', html), 'ferry fleet --json');
  const s = json<FleetSummary & { state: string; html: string }>(run);
  assert.equal(Object.keys(s).sort(), ['app', 'devices', 'failures', 'generatedAt', 'history', 'html', 'refusals', 'refused', 'reports', 'rollouts', 'silent', 'state', 'stateDropped', 'versions']);
  assert.is(s.app, 'sample-app');
  assert.is(s.devices, 6);
  assert.equal(s.reports, { files: 7, accepted: 6, alreadySeen: 0, refused: 1 });
  assert.equal(s.refusals, { ERR_JSON: 1 });
  assert.equal(s.refused.map((r) => [r.file, r.code]), [[HOSTILE_FILE, 'ERR_JSON']]);
  assert.equal(s.versions, [{ target: 'linux-x64', version: '1.1.0', devices: 2 }, { target: 'linux-x64', version: '1.0.0', devices: 4 }]);
  assert.equal(s.rollouts, [{ channel: 'stable', target: 'linux-x64', version: '1.1.0', percentNow: 50, phased: true, halted: false, running: 0, eligible: 4, inRollout: inRollout() }]);
  assert.equal(s.failures, [{ code: 'ERR_UNHEALTHY', devices: 1, versions: ['1.2.0'], sources: [HOSTILE_SOURCE] }]);
  assert.equal(s.silent.devices, []);
  assert.is(s.history.days.length, 6);
  assert.equal(s.history.counts.map((r) => r.join('/')), ['6/0', '6/0', '6/0', '6/0', '4/2', '4/2']);
  assert.is(s.state, join(dir, '.ferry-fleet.json'));
  assert.is(s.html, html);
});

item('human output: the tables; a re-run sees the same reports again; no app named is a usage error', () => {
  const out = ok(ferry('fleet', dir, '--repo', repo.repo), 'ferry fleet').stdout;
  assert.match(out, /fleet of sample-app: 6 device\(s\); 7 report file\(s\): 0 accepted, 6 already seen, 1 refused/);
  assert.match(out, /linux-x64 +1\.1\.0 +2\n/);
  assert.match(out, new RegExp(`stable +linux-x64 +1\\.1\\.0 +50% +0 +${inRollout()} +4`));
  assert.match(out, /ERR_UNHEALTHY +1 +1\.2\.0/);
  assert.match(out, /refused reports: ERR_JSON 1/);
  const usage = ferry('fleet', dir);
  assert.is.not(usage.status, 0);
  assert.match(usage.stderr, /ERR_USAGE/);
});

item('--html: one self-contained page with the tables and the chart, checked in headless Chromium', async () => {
  const page = await readFile(html, 'utf8');
  assert.not.match(page, /<script|<link|src=["']?http|url\(/i, 'nothing to load: no script, link, remote source or CSS url()');
  const chromium = findChromium();
  if (!chromium) {
    console.log('SKIP: chromium is not installed (Debian package "chromium"); the --html page was not rendered');
    return;
  }
  const dom = await runChromium(chromium, ['--dump-dom', pathToFileURL(html).href]);
  const rows = (id: string) => {
    const m = new RegExp(`<table id="${id}">([\\s\\S]*?)</table>`).exec(dom);
    assert.ok(m, `the page has table #${id}`);
    return (m![1]!.match(/<tr class="row">/g) ?? []).length;
  };
  assert.is(rows('fleet-versions'), 2);
  assert.is(rows('fleet-rollouts'), 1);
  assert.is(rows('fleet-failures'), 1);
  assert.is(rows('fleet-silent'), 0);
  assert.is(rows('fleet-refusals'), 1);
  assert.is(rows('fleet-refused'), 1);
  assert.match(dom, /<svg id="fleet-chart"/);
  // Six days of 1.0.0, two of them with 1.1.0 on top.
  assert.is((dom.match(/<rect class="bar"/g) ?? []).length, 8);
  assert.is((dom.match(/<rect class="bar"[^>]*data-version="1\.1\.0"/g) ?? []).length, 2);
  assert.is((dom.match(/<li class="legend-item"/g) ?? []).length, 2);
  // Hostile strings stayed text: no element from them, the title untouched, the text shown escaped.
  assert.not.match(dom, /<script|<img|<i id="injected"/);
  assert.match(dom, /<title>ferry fleet: sample-app<\/title>/);
  assert.ok(dom.includes('&lt;img src=x onerror="document.title=\'pwned\'"&gt;'), 'the hostile source is shown as text');
  assert.ok(dom.includes('&lt;i id="injected"&gt;x.json'), 'the hostile file name is shown as text');

  const shot = join(repo.dir, 'fleet.png');
  await runChromium(chromium, [`--screenshot=${shot}`, '--window-size=1200,1600', pathToFileURL(html).href]);
  const png = decodePng(await readFile(shot));
  assert.equal([png.width, png.height], [1200, 1600]);
  const older = countColour(png, CHART_COLOURS[0]), newer = countColour(png, CHART_COLOURS[1]);
  // Bars 80 px wide (6 of 150 px slots), up to 270 px high; 1.1.0 is 2 of 6 devices on 2 days.
  assert.ok(older > 20_000, `the chart's 1.0.0 colour covers ${older} pixels`);
  assert.ok(newer > 5_000 && newer < older, `the chart's 1.1.0 colour covers ${newer} pixels`);
  assert.is(countColour(png, CHART_COLOURS[2]), 0, 'no third version, no third colour');
});

item.run();
