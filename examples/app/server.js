// An app run under `ferry run` (ARCHITECTURE.md "Zero-downtime switch"), built on ferry/app: serve()
// listens on every socket ferry passes (including the private "ferry-health" one `--health` probes),
// or on $PORT when run alone, reports ready, and on SIGTERM drains with no failed request.
//   GET /          its version (FERRY_VERSION, else package.json)
//   GET /healthz   200 while it can serve
//   GET /slow?ms=N answers after N ms (an in-flight request for drain tests)
// Its release tree carries ferry/app in node_modules/ferry/ (test/helpers/example-app.ts puts it there).

import { readFileSync } from 'node:fs';
import { serve } from 'ferry/app';

const version = process.env.FERRY_VERSION ?? JSON.parse(readFileSync(new URL('./package.json', import.meta.url), 'utf8')).version;
const HEALTHZ_STATUS = 200;

function send(res, status, body) {
  res.writeHead(status, { 'content-type': 'text/plain' });
  res.end(body);
}

const app = await serve((req, res) => {
  const url = new URL(req.url ?? '/', 'http://app');
  if (url.pathname === '/') return send(res, 200, `${version}\n`);
  if (url.pathname === '/healthz') return send(res, HEALTHZ_STATUS, HEALTHZ_STATUS === 200 ? 'ok\n' : 'unhealthy\n');
  if (url.pathname === '/slow') {
    const ms = Math.min(60_000, Math.max(0, Number(url.searchParams.get('ms') ?? 1000)));
    setTimeout(() => send(res, 200, `${version}\n`), ms);
    return;
  }
  send(res, 404, 'not found\n');
});
console.log(`app ${version} (pid ${process.pid}) serving ${app.listening.join(', ')}`);
