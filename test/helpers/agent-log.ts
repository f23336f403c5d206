// The JSON lines `ferry agent --log-format json` prints on stdout, read back by the tests that run
// the agent as a child through test/helpers/crash.ts (startFerry): every line parsed (a line that
// is not JSON fails the test), and a bounded wait for the first line that matches.

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
