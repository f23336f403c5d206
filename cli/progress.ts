// Progress for people, on stderr (stdout stays the command's result). On a terminal one line per
// artifact is redrawn in place with \r (at most ~10 times a second, a newline when it completes);
// anywhere else plain lines at the start and end of each step (and at most every 5 s between);
// with --json nothing at all.

import type { ProgressEvent, ProgressSink } from '../core/ports/progress.ts';
import { formatBytes } from './format.ts';

const TTY_INTERVAL_MS = 100;
const PLAIN_INTERVAL_MS = 5_000;

/** "4s", "2m05s", "1h02m". */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** What each step is called while it runs and once it is done. */
const VERBS: Record<ProgressEvent['step'], [running: string, done: string]> = {
  download: ['downloading', 'downloaded'],
  patch: ['patching', 'patched'],
  stage: ['staging', 'staged'],
};

/**
 * One line for `e`, `startedMs` being when its step began: bytes done of total, percent, rate, ETA
 * (and the source while downloading) as it runs; the size, rate or time taken once done. Staging
 * and patching count the bytes of the new tree written so far.
 */
export function renderProgress(e: ProgressEvent, nowMs: number, startedMs: number): string {
  const elapsed = Math.max(0, nowMs - startedMs) / 1000;
  const complete = e.total > 0 && e.done >= e.total;
  const [running, finished] = VERBS[e.step];
  const from = e.source === null ? '' : ` from ${e.source}`;
  if (complete) {
    if (e.step !== 'download') return `${finished} ${e.label} in ${elapsed.toFixed(1)}s`;
    if (e.source === null) return `cached ${e.label}  ${formatBytes(e.total)} (verified, nothing to download)`;
    const rate = elapsed > 0 ? `  ${formatBytes(Math.round(e.total / elapsed))}/s` : '';
    return `downloaded ${e.label}${from}  ${formatBytes(e.total)}${rate}  in ${elapsed.toFixed(1)}s`;
  }
  if (e.step !== 'download' && e.done === 0) return `${running} ${e.label}`;
  const percent = e.total > 0 ? Math.floor((e.done / e.total) * 100) : 0;
  const rate = elapsed > 0 && e.done > 0 ? e.done / elapsed : null;
  const speed = rate === null ? '-' : `${formatBytes(Math.round(rate))}/s`;
  const eta = rate === null ? '-' : formatDuration((e.total - e.done) / rate);
  return `${running} ${e.label}${from}  ${formatBytes(e.done)} of ${formatBytes(e.total)}  ${percent}%  ${speed}  ETA ${eta}`;
}

/** What a sink writes to: process.stderr, or a test's collector. */
export interface ProgressStream {
  isTTY?: boolean;
  columns?: number;
  write(text: string): boolean;
}

/** The sink for a command: undefined with --json (nothing printed). */
export function createProgressSink(stream: ProgressStream, json: boolean | undefined, now: () => number = Date.now): ProgressSink | undefined {
  if (json) return undefined;
  const tty = stream.isTTY === true;
  /** Per step and label: when it started and when a line was last written. */
  const seen = new Map<string, { startedMs: number; wroteMs: number; finished: boolean }>();
  let open: { key: string; width: number } | null = null; // the TTY line being redrawn

  const endOpenLine = () => {
    if (open) stream.write('\n');
    open = null;
  };

  return (e) => {
    const key = `${e.step}\u0000${e.label}`;
    const t = now();
    const complete = e.total > 0 && e.done >= e.total;
    let state = seen.get(key);
    const first = !state || state.finished;
    if (!state || state.finished) {
      state = { startedMs: t, wroteMs: -Infinity, finished: false };
      seen.set(key, state);
    }
    const interval = tty ? TTY_INTERVAL_MS : PLAIN_INTERVAL_MS;
    if (!first && !complete && t - state.wroteMs < interval) return;
    state.wroteMs = t;
    if (complete) state.finished = true;
    let line = renderProgress(e, t, state.startedMs);
    if (!tty) {
      stream.write(line + '\n');
      return;
    }
    if (open && open.key !== key) endOpenLine(); // another step began before this one finished
    const max = stream.columns && stream.columns > 1 ? stream.columns - 1 : Infinity;
    if (line.length > max) line = line.slice(0, max);
    const width = line.length;
    stream.write(`\r${line}${' '.repeat(Math.max(0, (open?.width ?? 0) - width))}`);
    open = { key, width };
    if (complete) endOpenLine();
  };
}
