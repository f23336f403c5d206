// The JSON lines `ferry agent --log-format json` prints on stdout, read back by the tests that run
// the agent as a child through test/helpers/crash.ts (startFerry): every line parsed (a line that
// is not JSON fails the test), and a bounded wait for the first line that matches.

import type { ChildProcess } from 'node:child_process';
import { running, sleep, type Started } from './crash.ts';

export interface AgentEvent {
  time: string;
  event: string;
  [key: string]: unknown;
}

/** Every line the agent printed so far, in order. */
export function events(agent: Started): AgentEvent[] {
  return agent.stdout().split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as AgentEvent);
}

/** Polls the agent's JSON lines until one matches; bounded in time, and over once the agent exits. */
export async function waitForEvent(agent: Started, pred: (e: AgentEvent) => boolean, timeoutMs: number, what: string): Promise<AgentEvent> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const hit = events(agent).find(pred);
    if (hit) return hit;
    if (!running(agent.child)) break;
    await sleep(100);
  }
  throw new Error(`no ${what} within ${timeoutMs} ms; events: ${agent.stdout().trim().slice(-2000)}`);
}

/** A line a process printed, kept with the time it arrived (ms since the epoch). */
export interface TimedLine {
  at: number;
  stream: 'out' | 'err';
  text: string;
}

/** Appends each whole line `child` prints on stdout ('out') and stderr ('err') to `lines`, with its arrival time. */
export function keepLines(child: ChildProcess, lines: TimedLine[]): void {
  for (const [stream, s] of [['out', child.stdout!], ['err', child.stderr!]] as const) {
    let partial = '';
    s.on('data', (d: Buffer) => {
      const parts = (partial + d.toString()).split('\n');
      partial = parts.pop()!;
      for (const text of parts) lines.push({ at: Date.now(), stream, text });
    });
  }
}

/** An agent event read from timed lines: the JSON object, and when its line arrived. */
export interface TimedAgentEvent {
  at: number;
  event: string;
  [key: string]: unknown;
}

/**
 * The agent's JSON events among `lines` that arrived at or after `since`: stdout lines that are
 * JSON objects. A line cut short by a killed process, or another process's output on the same
 * stream (the app's), is not an event and is skipped.
 */
export function timedEvents(lines: readonly TimedLine[], since = 0): TimedAgentEvent[] {
  const out: TimedAgentEvent[] = [];
  for (const l of lines) {
    if (l.stream !== 'out' || l.at < since || !l.text.startsWith('{')) continue;
    try {
      out.push({ ...(JSON.parse(l.text) as { event: string }), at: l.at });
    } catch {
      // not an event
    }
  }
  return out;
}
