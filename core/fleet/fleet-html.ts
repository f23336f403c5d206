// `ferry fleet --html FILE`: the fleet summary as ONE self-contained page, the same tables as the
// terminal and a stacked bar chart of devices per version per day, in inline CSS and inline SVG.
// It loads nothing (no script, font, image or style from anywhere; a Content-Security-Policy of
// default-src 'none' says so to the browser too), so it opens on an air-gapped laptop and can be
// mailed as it is. Every string that came from a report (versions, targets, channels, sources,
// messages, file names) is untrusted and escaped here (SECURITY.md, fleet rows: HTML injection);
// the CSP is the line behind that. Pure: summary in, string out. Stable ids and classes
// (#fleet-versions, tr.row, svg#fleet-chart rect.bar, …) are what the Chromium test reads.

import type { FleetSummary, History } from './fleet-summary.ts';

/** Chart colours by version index (oldest version first), repeating. */
export const CHART_COLOURS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#17becf'] as const;

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"'`]/g, (c) => `&#${c.charCodeAt(0)};`);
}

const e = escapeHtml;
const num = (n: number) => String(Math.round(n * 100) / 100);

function table(id: string, caption: string, header: string[], rows: string[][]): string {
  const head = header.map((h) => `<th>${e(h)}</th>`).join('');
  const body = rows.length === 0
    ? `<tr class="empty"><td colspan="${header.length}">none</td></tr>`
    : rows.map((r) => `<tr class="row">${r.map((c) => `<td>${e(c)}</td>`).join('')}</tr>`).join('\n');
  return `<table id="${id}"><caption>${e(caption)}</caption><thead><tr>${head}</tr></thead><tbody>\n${body}\n</tbody></table>`;
}

/** The stacked bar chart: one bar per day, one segment per version (oldest at the bottom). */
export function historyChart(history: History): string {
  const width = 1000, height = 320, left = 50, right = 10, top = 10, bottom = 40;
  const plotW = width - left - right, plotH = height - top - bottom;
  const totals = history.counts.map((row) => row.reduce((a, b) => a + b, 0));
  const max = Math.max(1, ...totals);
  const slot = plotW / Math.max(1, history.days.length);
  const barW = Math.max(1, slot * 0.8);
  const parts: string[] = [];
  history.days.forEach((day, d) => {
    let y = top + plotH;
    history.counts[d]!.forEach((count, v) => {
      if (count === 0) return;
      const h = (count / max) * plotH;
      y -= h;
      const version = history.versions[v]!;
      parts.push(`<rect class="bar" data-day="${e(day)}" data-version="${e(version)}" data-count="${count}" x="${num(left + d * slot + (slot - barW) / 2)}" y="${num(y)}" width="${num(barW)}" height="${num(h)}" fill="${CHART_COLOURS[v % CHART_COLOURS.length]}"><title>${e(`${day}: ${count} on ${version}`)}</title></rect>`);
    });
  });
  const labelEvery = Math.max(1, Math.ceil(history.days.length / 10));
  const labels = history.days
    .map((day, d) => (d % labelEvery === 0 ? `<text class="day" x="${num(left + d * slot + slot / 2)}" y="${height - bottom + 16}" text-anchor="middle">${e(day.slice(5))}</text>` : ''))
    .join('');
  const axis = `<line x1="${left}" y1="${top + plotH}" x2="${width - right}" y2="${top + plotH}" stroke="#444"/><line x1="${left}" y1="${top}" x2="${left}" y2="${top + plotH}" stroke="#444"/>` +
    `<text x="${left - 6}" y="${top + 10}" text-anchor="end">${max}</text><text x="${left - 6}" y="${top + plotH}" text-anchor="end">0</text>`;
  const legend = history.versions
    .map((v, i) => `<li class="legend-item" data-version="${e(v)}"><span class="swatch" style="background:${CHART_COLOURS[i % CHART_COLOURS.length]}"></span>${e(v)}</li>`)
    .join('');
  return `<figure id="fleet-history"><svg id="fleet-chart" xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="devices per version per day">${axis}${parts.join('')}${labels}</svg>` +
    `<figcaption>Devices per version at the end of each day (UTC)</figcaption><ul id="fleet-legend">${legend}</ul></figure>`;
}

const STYLE = `
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;background:#fff}
h1{font-size:20px;margin:0 0 4px}
p.meta{color:#555;margin:0 0 16px}
table{border-collapse:collapse;margin:0 0 20px;min-width:400px}
caption{text-align:left;font-weight:600;padding:4px 0}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:left;font-variant-numeric:tabular-nums}
th{background:#f2f2f2}
tr.empty td{color:#888}
figure{margin:0 0 20px}
#fleet-chart text{font-size:11px;fill:#333}
#fleet-legend{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:12px}
.swatch{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:middle}
`;

export function renderFleetHtml(s: FleetSummary): string {
  const overview = table('fleet-overview', 'Reports', ['devices', 'report files', 'accepted', 'already seen', 'refused'], [
    [String(s.devices), String(s.reports.files), String(s.reports.accepted), String(s.reports.alreadySeen), String(s.reports.refused)],
  ]);
  const versions = table('fleet-versions', 'Devices per version', ['target', 'version', 'devices'], s.versions.map((r) => [r.target, r.version ?? 'none', String(r.devices)]));
  const rollouts = table('fleet-rollouts', 'Rollouts', ['channel', 'target', 'version', 'percent now', 'running', 'in rollout', 'eligible'], s.rollouts.map((r) => [
    r.channel, r.target, r.version, r.phased ? `${r.percentNow}%${r.halted ? ' (halted)' : ''}` : '100% (no rollout)', String(r.running), String(r.inRollout), String(r.eligible),
  ]));
  const failures = table('fleet-failures', 'Failures (last attempt)', ['error code', 'devices', 'versions tried', 'sources'], s.failures.map((r) => [r.code, String(r.devices), r.versions.join(', '), r.sources.join(', ')]));
  const silent = table('fleet-silent', `Not heard from since ${s.silent.since}`, ['device', 'last report', 'version', 'channel', 'target'], s.silent.devices.map((r) => [
    r.deviceId, r.lastReport, r.currentVersion ?? 'none', r.channel, r.target,
  ]));
  const refusals = table('fleet-refusals', 'Refused reports', ['error code', 'reports'], Object.entries(s.refusals).map(([code, n]) => [code, String(n)]));
  const refused = table('fleet-refused', 'Refused files', ['file', 'error code', 'why'], s.refused.map((r) => [r.file, r.code, r.message]));
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${e(`ferry fleet: ${s.app}`)}</title>
<style>${STYLE}</style></head>
<body>
<h1 id="fleet-title">${e(`Fleet of ${s.app}`)}</h1>
<p class="meta">${e(`${s.devices} devices, generated ${s.generatedAt}`)}</p>
${overview}
${historyChart(s.history)}
${versions}
${rollouts}
${failures}
${silent}
${refusals}
${refused}
</body></html>
`;
}
