// Progress for people, on stderr (stdout stays the command's result). On a terminal one line per
// artifact is redrawn in place with \r (at most ~10 times a second, a newline when it completes);
// anywhere else plain lines at the start and end of each step (and at most every 5 s between);
// with --json nothing at all. A redrawn line is laid out to the terminal's width (80 columns when
// it does not say) so that the percentage, rate and ETA always show: the artifact name and source
// are elided first (layoutProgressLine). Plain lines are logs and stay whole.

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

/** Where a step began: when, and how many bytes were already there (a resumed download's .part). */
export interface ProgressStart {
  ms: number;
  done: number;
}

/**
 * A progress line in parts, most important last: `tail` (percent, rate and ETA, or what a finished
 * step took) always shows; `label` and `source` are shortened, then `source` and `detail` dropped,
 * to fit a width (layoutProgressLine).
 */
export interface ProgressParts {
  verb: string;
  label: string;
  source: string | null;
  detail: string | null;
  /** With its leading separator ("  50%  1.00 MiB/s  ETA 3s", " in 1.5s"). */
  tail: string | null;
}

/**
 * The parts of `e`'s line, `start` being where its step began: bytes done of total, percent, rate,
 * ETA (and the source while downloading) as it runs; the size, rate or time taken once done. Rate
 * and ETA count only the bytes moved since `start` (a resumed download does not count the bytes
 * an earlier run fetched). Staging and patching count the bytes of the new tree written so far.
 */
export function progressParts(e: ProgressEvent, nowMs: number, start: ProgressStart): ProgressParts {
  const elapsed = Math.max(0, nowMs - start.ms) / 1000;
  const complete = e.total > 0 && e.done >= e.total;
  const [running, finished] = VERBS[e.step];
  const moved = Math.max(0, e.done - start.done);
  const resumed = start.done > 0 && start.done < e.total ? ` (resumed at ${formatBytes(start.done)})` : '';
  if (complete) {
    if (e.step !== 'download') return { verb: finished, label: e.label, source: null, detail: null, tail: ` in ${elapsed.toFixed(1)}s` };
    if (e.source === null) return { verb: 'cached', label: e.label, source: null, detail: null, tail: `  ${formatBytes(e.total)} (verified, nothing to download)` };
    const rate = elapsed > 0 && moved > 0 ? `  ${formatBytes(Math.round(moved / elapsed))}/s` : '';
    return { verb: finished, label: e.label, source: e.source, detail: `${formatBytes(e.total)}${resumed}`, tail: `${rate}  in ${elapsed.toFixed(1)}s` };
  }
  if (e.step !== 'download' && e.done === 0) return { verb: running, label: e.label, source: null, detail: null, tail: null };
  const percent = e.total > 0 ? Math.floor((e.done / e.total) * 100) : 0;
  const rate = elapsed > 0 && moved > 0 ? moved / elapsed : null;
  const speed = rate === null ? '-' : `${formatBytes(Math.round(rate))}/s`;
  const eta = rate === null ? '-' : formatDuration((e.total - e.done) / rate);
  return { verb: running, label: e.label, source: e.source, detail: `${formatBytes(e.done)} of ${formatBytes(e.total)}`, tail: `  ${percent}%  ${speed}  ETA ${eta}` };
}

/** `text` cut to `max` characters by taking out its middle ("artifacts/…x64.full.tar.gz"). */
export function elide(text: string, max: number): string {
  if (text.length <= max) return text;
  if (max <= 1) return '…'.slice(0, Math.max(0, max));
  const keepEnd = Math.ceil((max - 1) / 2);
  return `${text.slice(0, max - 1 - keepEnd)}…${text.slice(text.length - keepEnd)}`;
}

/** Shortest a label or a source is elided to before the source is dropped. */
const MIN_LABEL = 24;
const MIN_SOURCE = 16;
/** Shortest a label is elided to, alone, before the byte counts (then the label) are dropped. */
const MIN_LABEL_ALONE = 12;

/**
 * The line for `p` in at most `width` columns, keeping its tail whole: first the label (then the
 * source) is elided in the middle, then the source is dropped, then the byte counts; only a
 * terminal too narrow for the tail alone cuts it.
 */
export function layoutProgressLine(p: ProgressParts, width: number = Infinity): string {
  const tail = p.tail ?? '';
  const detail = p.detail === null ? '' : `  ${p.detail}`;
  const fits = (line: string) => line.length <= width;
  const full = `${p.verb} ${p.label}${p.source === null ? '' : ` from ${p.source}`}${detail}${tail}`;
  if (fits(full)) return full;
  // 1. Elide the label, then the source, keeping every part.
  if (p.source !== null) {
    const room = width - `${p.verb}  from ${detail}${tail}`.length; // for label + source
    // The label is elided first, but never below half of the room while the source gets more.
    const label = Math.min(p.label.length, Math.max(MIN_LABEL, room - p.source.length, Math.ceil(room / 2)));
    const source = room - label;
    if (source >= MIN_SOURCE) return `${p.verb} ${elide(p.label, label)} from ${elide(p.source, source)}${detail}${tail}`;
  }
  // 2. Without the source, then without the byte counts: the label takes what is left.
  for (const rest of [`${detail}${tail}`, tail]) {
    const room = width - `${p.verb} ${rest}`.length;
    if (room >= Math.min(MIN_LABEL_ALONE, p.label.length)) return `${p.verb} ${elide(p.label, room)}${rest}`;
  }
  // 3. A terminal narrower than the verb, a short label and the tail: the tail first.
  return (p.tail?.trimStart() ?? `${p.verb} ${p.label}`).slice(0, Math.max(0, width));
}

/** One line for `e` (see progressParts), laid out in `width` columns (layoutProgressLine). */
export function renderProgress(e: ProgressEvent, nowMs: number, start: number | ProgressStart, width: number = Infinity): string {
  return layoutProgressLine(progressParts(e, nowMs, typeof start === 'number' ? { ms: start, done: 0 } : start), width);
}

/** Columns a redrawn line may use: one less than the terminal's (a full line wraps on some), 80 when it does not say. */
export function progressWidth(stream: ProgressStream): number {
  const columns = stream.columns && stream.columns > 1 ? stream.columns : 80;
  return columns - 1;
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
  const seen = new Map<string, { start: ProgressStart; wroteMs: number; finished: boolean }>();
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
    // A download that starts over (its partial file was refused) is a new start for its rate.
    const first = !state || state.finished || e.done < state.start.done;
    if (!state || first) {
      // A download's first event says where it begins: the bytes an earlier run left in its
      // partial file. Staging and patching always start from nothing.
      const resumedAt = e.step === 'download' && !complete ? e.done : 0;
      state = { start: { ms: t, done: resumedAt }, wroteMs: -Infinity, finished: false };
      seen.set(key, state);
    }
    const interval = tty ? TTY_INTERVAL_MS : PLAIN_INTERVAL_MS;
    if (!first && !complete && t - state.wroteMs < interval) return;
    state.wroteMs = t;
    if (complete) state.finished = true;
    if (!tty) {
      // A log line is never redrawn, so it is never cut: the whole artifact name and source stay.
      stream.write(renderProgress(e, t, state.start) + '\n');
      return;
    }
    if (open && open.key !== key) endOpenLine(); // another step began before this one finished
    const line = renderProgress(e, t, state.start, progressWidth(stream));
    const width = line.length;
    stream.write(`\r${line}${' '.repeat(Math.max(0, (open?.width ?? 0) - width))}`);
    open = { key, width };
    if (complete) endOpenLine();
  };
}
