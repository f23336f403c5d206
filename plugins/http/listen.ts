// Starts an http.Server on host:port and gives back its base URL and a close() that also ends
// idle keep-alive connections (server.close alone waits for them). Shared by the repository
// server and the LAN peer server.

import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export async function listenHttp(server: Server, host: string, port: number): Promise<{ url: string; port: number; close(): Promise<void> }> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = (server.address() as AddressInfo).port;
  const hostInUrl = host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${hostInUrl}:${bound}`,
    port: bound,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
