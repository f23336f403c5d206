// Health check by URL: polls until a 2xx answer or the deadline. Polling (not one request) lets a
// freshly started app take a moment to listen; a 5xx or refused connection is retried until then.

import type { HealthCheck } from '../../core/ports/health.ts';

export function createHttpHealthCheck(url: string, timeoutMs: number, intervalMs = 250): HealthCheck {
  return {
    async check() {
      const deadline = Date.now() + timeoutMs;
      let last = 'no answer';
      while (Date.now() < deadline) {
        try {
          const res = await fetch(url, { signal: AbortSignal.timeout(Math.max(1, Math.min(5000, deadline - Date.now()))) });
          await res.arrayBuffer();
          if (res.ok) return { healthy: true, detail: `${url} answered ${res.status}` };
          last = `${url} answered ${res.status}`;
        } catch (err) {
          last = `${url}: ${(err as Error).message}`;
        }
        await new Promise((r) => setTimeout(r, Math.min(intervalMs, Math.max(0, deadline - Date.now()))));
      }
      return { healthy: false, detail: `not healthy within ${timeoutMs} ms (last: ${last})` };
    },
  };
}
