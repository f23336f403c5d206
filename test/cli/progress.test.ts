// Progress display: renderProgress's lines (bytes, percent, rate, ETA, source) as tables, and the
// sinks — plain lines off a terminal only at start and completion, \r redraws on one, none with --json.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createProgressSink, formatDuration, renderProgress, type ProgressStream } from '../../cli/progress.ts';
import type { ProgressEvent } from '../../core/ports/progress.ts';

const MiB = 1024 * 1024;
const dl = (done: number, total: number, source: string | null = '/srv/repo'): ProgressEvent => ({ step: 'download', label: 'artifacts/app-1.1.0.tar.gz', source, done, total });

const render = suite('renderProgress');

const rows: [string, ProgressEvent, number, string][] = [
  ['start: no rate, no ETA', dl(0, 4 * MiB), 0, 'downloading artifacts/app-1.1.0.tar.gz from /srv/repo  0 B of 4.00 MiB  0%  -  ETA -'],
  ['a quarter in 1 s', dl(MiB, 4 * MiB), 1000, 'downloading artifacts/app-1.1.0.tar.gz from /srv/repo  1.00 MiB of 4.00 MiB  25%  1.00 MiB/s  ETA 3s'],
  ['slow: minutes left', dl(1024, 200 * 1024), 1000, 'downloading artifacts/app-1.1.0.tar.gz from /srv/repo  1.00 KiB of 200.0 KiB  0%  1.00 KiB/s  ETA 3m19s'],
  ['done', dl(4 * MiB, 4 * MiB), 2000, 'downloaded artifacts/app-1.1.0.tar.gz from /srv/repo  4.00 MiB  2.00 MiB/s  in 2.0s'],
  ['cached: no source', dl(300, 300, null), 5, 'cached artifacts/app-1.1.0.tar.gz  300 B (verified, nothing to download)'],
  ['staging starts', { step: 'stage', label: '1.1.0', source: null, done: 0, total: 1 }, 0, 'staging 1.1.0'],
  ['staging ends', { step: 'stage', label: '1.1.0', source: null, done: 1, total: 1 }, 1500, 'staged 1.1.0 in 1.5s'],
  ['staging: half the tree written in 2 s', { step: 'stage', label: '1.1.0', source: null, done: 2 * MiB, total: 4 * MiB }, 2000, 'staging 1.1.0  2.00 MiB of 4.00 MiB  50%  1.00 MiB/s  ETA 2s'],
  ['patching starts', { step: 'patch', label: '1.0.0 → 1.1.0', source: null, done: 0, total: 4 * MiB }, 0, 'patching 1.0.0 → 1.1.0'],
  ['patching: a quarter in 1 s', { step: 'patch', label: '1.0.0 → 1.1.0', source: null, done: MiB, total: 4 * MiB }, 1000, 'patching 1.0.0 → 1.1.0  1.00 MiB of 4.00 MiB  25%  1.00 MiB/s  ETA 3s'],
  ['patching ends', { step: 'patch', label: '1.0.0 → 1.1.0', source: null, done: 4 * MiB, total: 4 * MiB }, 2500, 'patched 1.0.0 → 1.1.0 in 2.5s'],
];
for (const [name, e, elapsed, want] of rows) {
  render(name, () => assert.is(renderProgress(e, 10_000 + elapsed, 10_000), want));
}

render('formatDuration', () => {
  for (const [s, want] of [[0, '0s'], [59.4, '59s'], [60, '1m00s'], [125, '2m05s'], [3600, '1h00m'], [3725, '1h02m']] as const) assert.is(formatDuration(s), want, String(s));
});

render.run();

const sinks = suite('progress sinks');

// A wide terminal: these tests are about throttling and line endings, not about fitting a width
// (test/cli/new-user.test.ts lays lines out to 80 columns and to a terminal that gives none).
function collector(isTTY: boolean): ProgressStream & { text: string } {
  const s = { isTTY, columns: 200, text: '', write(t: string) { s.text += t; return true; } };
  return s;
}

sinks('--json: no sink at all', () => {
  assert.is(createProgressSink(collector(true), true), undefined);
  assert.is(createProgressSink(collector(false), true), undefined);
});

sinks('not a terminal: a line at start and at completion, none in between (under 5 s)', () => {
  const out = collector(false);
  let t = 0;
  const sink = createProgressSink(out, false, () => t)!;
  sink(dl(0, 4 * MiB));
  for (let i = 1; i < 4; i++) { t += 250; sink(dl(i * MiB, 4 * MiB)); }
  t += 250;
  sink(dl(4 * MiB, 4 * MiB));
  sink({ step: 'stage', label: '1.1.0', source: null, done: 0, total: 1 });
  t += 500;
  sink({ step: 'stage', label: '1.1.0', source: null, done: 1, total: 1 });
  assert.equal(out.text.split('\n'), [
    'downloading artifacts/app-1.1.0.tar.gz from /srv/repo  0 B of 4.00 MiB  0%  -  ETA -',
    'downloaded artifacts/app-1.1.0.tar.gz from /srv/repo  4.00 MiB  4.00 MiB/s  in 1.0s',
    'staging 1.1.0',
    'staged 1.1.0 in 0.5s',
    '',
  ]);
  assert.not.match(out.text, /\r/);
});

sinks('not a terminal: a long download gets a line every 5 s', () => {
  const out = collector(false);
  let t = 0;
  const sink = createProgressSink(out, false, () => t)!;
  for (let i = 0; i < 48; i++) { sink(dl(i * 1024, 48 * 1024)); t += 250; } // 12 s
  sink(dl(48 * 1024, 48 * 1024));
  assert.is(out.text.split('\n').filter(Boolean).length, 1 + 2 + 1, out.text);
});

sinks('a terminal: one line redrawn with \\r, throttled to ~10/s, a newline at completion', () => {
  const out = collector(true);
  let t = 0;
  const sink = createProgressSink(out, false, () => t)!;
  for (let i = 0; i < 20; i++) { sink(dl(i * 1024, 20 * 1024)); t += 25; } // 0.5 s of updates every 25 ms
  sink(dl(20 * 1024, 20 * 1024));
  const draws = out.text.split('\r').filter(Boolean);
  assert.ok(draws.length >= 5 && draws.length <= 7, `${draws.length} redraws`);
  assert.is(out.text.split('\n').length, 2, 'one newline, at completion');
  assert.ok(out.text.endsWith('\n'));
  assert.match(draws.at(-1)!, /^downloaded artifacts\/app-1\.1\.0\.tar\.gz from \/srv\/repo  20\.0 KiB/);
});

sinks('a terminal: a step that starts while another is open ends that line first', () => {
  const out = collector(true);
  const sink = createProgressSink(out, false, () => 0)!;
  sink(dl(0, 100));
  sink({ step: 'stage', label: '1.1.0', source: null, done: 0, total: 1 });
  assert.match(out.text, /ETA -\n\rstaging 1\.1\.0$/);
});

sinks.run();
