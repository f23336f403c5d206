// The agent's log: one line per event, human text or one JSON object, with the event's name and
// fields. The Agent (plugins/agent/agent.ts) calls an AgentLog; createAgentLog makes the one
// `ferry agent` prints on stdout. The event names and fields are what scripts and the tests read
// (`started`, `check`, `disabled`, `committed`, `waiting`, `error`, `usb`, `peer`, `app` (with `adopted`),
// `stopping`, `stopped`, `reports`, `container` (the container watchdog restarted one) …, and for the agent's own update, plugins/agent/self-round.ts: `self`,
// `self-confirmed`, `self-update`, `self-waiting`, `self-refused`, `self-trial`, `self-error`).

import type { ApplyResult } from '../../core/spec.ts';
import { isFerryError } from '../../core/errors.ts';
import { formatBytes } from '../../core/io/format-bytes.ts';
import { printable, printableJson } from '../../core/io/printable.ts';

/** One event: its name, its fields (for JSON), and the sentence for people. */
export type AgentLog = (event: string, fields: Record<string, unknown>, text: string) => void;

/**
 * `2026-11-26T12:00:00Z ferry: committed 1.1.0 (delta, 6.0 KiB)`, or one JSON object per line.
 * Messages carry untrusted text (entry names, server answers, metadata fields), so every line is
 * escaped before it is written: one event stays one line, and nothing reaches the terminal or the
 * journal as a control sequence (SECURITY.md row 14).
 */
export function createAgentLog(format: 'human' | 'json', write: (line: string) => void, clock: () => Date = () => new Date()): AgentLog {
  return (event, fields, text) => {
    const time = clock().toISOString().replace(/\.\d{3}Z$/, 'Z');
    write(format === 'json' ? printableJson({ time, event, ...fields }) : `${time} ferry: ${printable(text)}`);
  };
}

/** The line for what an apply came to. */
export function logResult(log: AgentLog, result: ApplyResult): void {
  switch (result.status) {
    case 'up-to-date':
      log('up-to-date', { version: result.current }, `up to date (${result.current ?? 'nothing installed'})`);
      return;
    case 'waiting':
      log('waiting', { version: result.version, reason: result.reason, why: result.why }, `waiting: ${result.version} is staged (${result.reason}): ${result.why}`);
      return;
    case 'committed': {
      const r = result.record;
      log('committed', { version: r.to, from: r.from, kind: r.kind, bytes: r.bytesMoved, source: r.source }, `committed ${r.to} (${r.kind ?? 'full'}${r.fellBackToFull ? ' after a failed delta' : ''}, ${formatBytes(r.bytesMoved)})`);
      return;
    }
    case 'rolled-back': {
      const r = result.record;
      log('rolled-back', { version: r.to, from: r.from, code: r.errorCode, message: r.message ?? null }, `rolled back ${r.to}: ${r.errorCode ?? 'ERR_UNHEALTHY'} ${r.message ?? ''}; still on ${r.from ?? 'nothing'}`);
      return;
    }
  }
}

/** The line for an attempt that threw; `retryInMs` is when the next one runs (null: none follows). */
export function logError(log: AgentLog, error: Error, retryInMs: number | null): void {
  const code = isFerryError(error) ? error.code : 'ERR_INTERNAL';
  const retry = retryInMs === null ? '' : ` (next try in ${Math.round(retryInMs / 1000)} s)`;
  log('error', { code, message: error.message, ...(retryInMs === null ? {} : { retryInMs }) }, `error ${code}: ${error.message}${retry}`);
}
