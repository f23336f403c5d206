// The roles of the LAN report path (plugins/lan/report-relay.ts, the peer server's report route),
// usable in-process (the loopback test) or as a child process inside a network namespace:
//   node --import tsx test/plugins/report-lan-roles.ts <role> '<json config>'
// A child prints one JSON line per event on stdout ({"event":"ready"|"sent"|"forwarded"|"error"});
// the device sends on a "go" line; the peer takes "forward <endpoint>" lines on stdin and stops
// when stdin closes. Every child also
// stops on its own after `lifetimeMs`, so nothing outlives a test that died.

import { readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { homeLayout } from '../../core/device/layout.ts';
import { readInbox } from '../../core/fleet/report-inbox.ts';
import { putReport } from '../../plugins/fleet/http-report.ts';
import type { RelayResult } from '../../plugins/lan/report-relay.ts';

/** A peer passing on what its inbox holds: every kept report PUT to `endpoint`. */
export async function forwardInbox(home: string, endpoint: string): Promise<{ sent: string[]; failed: string[] }> {
  const sent: string[] = [];
  const failed: string[] = [];
  for (const { deviceId, bytes } of await readInbox(homeLayout(home).reportsInbox)) {
    try {
      await putReport(endpoint, deviceId, bytes, { timeoutMs: 5000 });
      sent.push(deviceId);
    } catch (err) {
      failed.push(`${deviceId}: ${(err as Error).message}`);
    }
  }
  return { sent, failed };
}

interface RoleConfig {
  host: string;
  port?: number;
  home?: string;
  peers?: string[];
  reportFiles?: string[];
  lifetimeMs?: number;
}

function emit(event: string, data: object = {}): void {
  process.stdout.write(`${JSON.stringify({ event, ...data })}\n`);
}

async function main(role: string, config: RoleConfig): Promise<void> {
  const lifetime = setTimeout(() => { emit('error', { message: `lifetime of ${config.lifetimeMs} ms over` }); process.exit(3); }, config.lifetimeMs ?? 30_000);
  lifetime.unref();
  switch (role) {
    case 'peer': {
      // A device sharing on the LAN: its peer server takes reports into <home>/reports/.
      // (Each role imports only what it runs: a child's start-up is most of this test's time.)
      const { startPeerServer } = await import('../../plugins/lan/peer-server.ts');
      const server = await startPeerServer({ cacheDir: homeLayout(config.home!).cache, metadataHome: config.home!, host: config.host, port: config.port ?? 0 });
      emit('ready', { url: server.url });
      for await (const line of createInterface({ input: process.stdin })) {
        const [command, arg] = line.trim().split(' ');
        if (command === 'forward') emit('forwarded', await forwardInbox(config.home!, arg!));
        if (command === 'stats') emit('stats', server.stats);
      }
      await server.close();
      break;
    }
    case 'device': {
      // A device handing its report(s) to the peers it knows, once told "go" (so it can start
      // while the peer does).
      const { sendReportsToPeers } = await import('../../plugins/lan/report-relay.ts');
      emit('ready');
      for await (const line of createInterface({ input: process.stdin })) if (line.trim() === 'go') break;
      const reports = await Promise.all(config.reportFiles!.map((f) => readFile(f)));
      const result: RelayResult = await sendReportsToPeers(config.peers!.map((url) => ({ name: url, url })), reports, { timeoutMs: 3000, totalTimeoutMs: 10_000 });
      emit('sent', { result });
      break;
    }
    default:
      throw new Error(`unknown role ${role}`);
  }
  clearTimeout(lifetime);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const [role = '', json = '{}'] = process.argv.slice(2);
  main(role, JSON.parse(json) as RoleConfig).then(
    () => process.exit(0),
    (err: Error) => { emit('error', { message: `${err.message}\n${err.stack ?? ''}` }); process.exit(1); },
  );
}
