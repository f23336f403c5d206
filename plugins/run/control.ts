// The supervisor's control socket, <home>/run/control.sock (mode 0600 in a 0700 folder): one JSON
// object per line each way.
//   → {"op":"handover","version":"1.2.0","timeoutMs":30000}   ← {"healthy":true,"detail":"…"}
//   → {"op":"status"}                                          ← SupervisorStatus
// A handover reply comes once the new generation is ready and the old one was told to drain, or
// once it failed (the old one never stopped). If the asking connection closes before the answer,
// the handover is abandoned: nobody would learn of it, and `current` would not match.

import net from 'node:net';
import { join } from 'node:path';
import { FerryError } from '../../core/errors.ts';
import type { HealthResult } from '../../core/ports/health.ts';

export interface GenerationInfo {
  generation: number;
  pid: number;
  version: string;
  dir: string;
  state: string;
  startedAt: string;
}

export interface SupervisorStatus {
  pid: number;
  home: string;
  listen: string[];
  readiness: string;
  active: GenerationInfo | null;
  candidate: GenerationInfo | null;
  draining: GenerationInfo[];
  restarts: number;
  handovers: { healthy: number; unhealthy: number };
}

export type ControlRequest = { op: 'handover'; version?: string; timeoutMs?: number } | { op: 'status' };

export function runDir(home: string): string {
  return join(home, 'run');
}

export function controlSocketPath(home: string): string {
  return join(runDir(home), 'control.sock');
}

export function pidFilePath(home: string): string {
  return join(runDir(home), 'supervisor.pid');
}

/** Sends one request and waits for its one-line answer (ERR_IO on no supervisor or no answer in time). */
export function requestSupervisor(home: string, request: { op: 'status' }, timeoutMs: number): Promise<SupervisorStatus>;
export function requestSupervisor(home: string, request: { op: 'handover'; version?: string; timeoutMs?: number }, timeoutMs: number): Promise<HealthResult>;
export function requestSupervisor(home: string, request: ControlRequest, timeoutMs: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(controlSocketPath(home));
    let buffer = '';
    let settled = false;
    const finish = (err: Error | null, value?: unknown) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(value);
    };
    const timer = setTimeout(() => finish(new FerryError('ERR_IO', `the supervisor of ${home} did not answer ${request.op} within ${timeoutMs} ms`)), timeoutMs);
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write(JSON.stringify(request) + '\n'));
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      const nl = buffer.indexOf('\n');
      if (nl < 0) return;
      try {
        const reply = JSON.parse(buffer.slice(0, nl)) as { error?: string };
        if (reply.error) finish(new FerryError('ERR_IO', `the supervisor refused ${request.op}: ${reply.error}`));
        else finish(null, reply);
      } catch (err) {
        finish(new FerryError('ERR_IO', `the supervisor sent a line that is not JSON`, { cause: err }));
      }
    });
    socket.on('error', (err) => finish(new FerryError('ERR_IO', `no supervisor answers on ${controlSocketPath(home)}: ${err.message}`, { cause: err })));
    socket.on('close', () => finish(new FerryError('ERR_IO', `the supervisor closed the control connection before answering ${request.op}`)));
  });
}

export interface ControlHandlers {
  handover(version: string | undefined, timeoutMs: number | undefined, signal: AbortSignal): Promise<HealthResult>;
  status(): SupervisorStatus;
}

/** Serves the control protocol on an already-created net.Server. */
export function serveControl(server: net.Server, handlers: ControlHandlers, log: (m: string) => void): void {
  server.on('connection', (socket) => {
    const abort = new AbortController();
    let buffer = '';
    socket.setEncoding('utf8');
    socket.on('error', () => {});
    socket.on('close', () => abort.abort());
    const reply = (value: unknown) => {
      if (!socket.destroyed) socket.write(JSON.stringify(value) + '\n');
    };
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      if (buffer.length > 64 * 1024) {
        reply({ error: 'request line too long' });
        socket.destroy();
        return;
      }
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, nl).trim();
        buffer = buffer.slice(nl + 1);
        if (!line) continue;
        let request: Record<string, unknown>;
        try {
          const parsed: unknown = JSON.parse(line);
          if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not an object');
          request = parsed as Record<string, unknown>;
        } catch {
          reply({ error: 'not a JSON object' });
          continue;
        }
        if (request.op === 'status') {
          reply(handlers.status());
        } else if (request.op === 'handover') {
          const version = request.version;
          const timeoutMs = request.timeoutMs;
          if ((version !== undefined && typeof version !== 'string') || (timeoutMs !== undefined && (typeof timeoutMs !== 'number' || !(timeoutMs > 0)))) {
            reply({ error: 'handover takes {"version": string, "timeoutMs": number}' });
            continue;
          }
          handlers.handover(version, timeoutMs, abort.signal).then(reply, (err: unknown) => {
            log(`handover failed: ${(err as Error).message}`);
            reply({ healthy: false, detail: (err as Error).message });
          });
        } else {
          reply({ error: `unknown op ${JSON.stringify(request.op)}` });
        }
      }
    });
  });
}
