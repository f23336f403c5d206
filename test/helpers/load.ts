// A bounded HTTP load on a local server, for the tests that update or hand over an app while it
// serves (test/plugins/supervisor.test.ts, test/plugins/socket-activation.test.ts,
// test/adversarial/supervised.test.ts): keep-alive and fresh-connection request loops that count
// every failed request and every version that answered, and stop when told or at their bounds.

import http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';

export interface Reply {
  status: number;
  body: string;
}

/** GET on 127.0.0.1:`port`, or on the unix socket at `port` when it is a path. */
export function get(port: number | string, path: string, agent: http.Agent | false, timeoutMs = 10_000): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const where = typeof port === 'string' ? { socketPath: port } : { host: '127.0.0.1', port };
    const req = http.get({ ...where, path, agent, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}

/** Where a load stops on its own even if never told to: every loop is bounded in time and count. */
export interface LoadLimits {
  maxMs: number;
  maxRequests: number;
}

/** A stretch of the load (set by phase()) and the versions it may see; failures name it. */
export interface LoadWindow {
  label: string;
  allowed: Set<string>;
  seen: Set<string>;
}

/**
 * A bounded load on `port`: keep-alive loops (one connection each, reused) and fresh loops (a new
 * connection per request). It stops when told, after `limits.maxMs`, or after `limits.maxRequests`,
 * whichever comes first (`hitCap` says it stopped on a bound); every error or non-200 is a failure.
 */
export class Load {
  requests = 0;
  failures: string[] = [];
  /** Every body (trimmed: the version) a 200 answered with. */
  versions = new Set<string>();
  /** The current window, once phase() was called. */
  window: LoadWindow | null = null;
  windows: LoadWindow[] = [];
  hitCap = false;
  private stopped = false;
  private done: Promise<void>[] = [];
  private agents: http.Agent[] = [];

  constructor(private readonly port: number | string, private readonly limits: LoadLimits) {}

  start(kinds: ('keep-alive' | 'fresh')[] = ['keep-alive', 'keep-alive', 'fresh', 'fresh']): this {
    const deadline = Date.now() + this.limits.maxMs;
    for (const kind of kinds) {
      const agent = kind === 'keep-alive' ? new http.Agent({ keepAlive: true, maxSockets: 1 }) : false;
      if (agent) this.agents.push(agent);
      this.done.push((async () => {
        while (!this.stopped) {
          if (Date.now() > deadline || this.requests >= this.limits.maxRequests) {
            this.hitCap = true;
            return;
          }
          this.requests++;
          const w = this.window;
          const during = w ? ` during ${w.label}` : '';
          try {
            const r = await get(this.port, '/', agent);
            if (r.status !== 200) {
              this.failures.push(`${kind}: HTTP ${r.status}${during}`);
            } else {
              this.versions.add(r.body.trim());
              w?.seen.add(r.body.trim());
            }
          } catch (err) {
            this.failures.push(`${kind}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}${during}`);
          }
          await sleep(kind === 'fresh' ? 8 : 4);
        }
      })());
    }
    return this;
  }

  /** From now on, requests belong to a window named `label` in which only `allowed` versions may answer. */
  phase(label: string, allowed: string[]): void {
    this.window = { label, allowed: new Set(allowed), seen: new Set() };
    this.windows.push(this.window);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.done);
    for (const a of this.agents) a.destroy();
  }

  describe(): string {
    return `${this.failures.length} of ${this.requests} requests failed${this.failures.length ? `:\n${this.failures.slice(0, 20).join('\n')}` : ''}`;
  }
}
