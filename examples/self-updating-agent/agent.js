// A small Node agent that updates ITSELF with ferry (README.md beside this file). It is started by
// ferry's keeper (`ferry self launcher --home S --entry agent.js`), which sets FERRY_SELF_HOME and
// FERRY_SELF_VERSION. Every CHECK_MS it checks its self home's sources:
//   Prepare          self.prepare(): check, download, verify and stage the next version (no switch)
//   HealthCheck      self.confirm(): after its first successful check a version on trial confirms
//   DrainConnections drain(): finish the work in hand, take no new work
//   Execute          self.switch(v), then self.restart(): exit 75, the launcher starts version v
// A version that never confirms (crashes, exits, hangs) is rolled back by the keeper on its own.

import { readFileSync } from 'node:fs';
import { SelfUpdate } from 'ferry/plugins/self';

const VERSION = JSON.parse(readFileSync(new URL('./package.json', import.meta.url), 'utf8')).version;
const CHECK_MS = Number(process.env.AGENT_CHECK_MS ?? 60_000);
const log = (message) => console.log(`agent ${VERSION} (pid ${process.pid}): ${message}`);

const self = SelfUpdate.fromEnv(process.env, {
  tries: Number(process.env.AGENT_SELF_TRIES ?? 3),
  confirmWithinMs: Number(process.env.AGENT_CONFIRM_WITHIN_MS ?? 120_000),
  log,
});
if (!self) {
  console.error('agent.js is started by ferry: ferry self launcher --home S --entry agent.js --out agent.sh; sh agent.sh');
  process.exit(2);
}

// The agent's own work: a job every second. A real agent holds connections, queues, sensors…
let jobs = 0;
let inFlight = Promise.resolve();
const work = setInterval(() => {
  inFlight = new Promise((done) => setTimeout(() => { jobs++; done(); }, 50));
}, 1000);

/** DrainConnections: no new work, and the work in hand finished. */
async function drain() {
  clearInterval(work);
  await inFlight;
  log(`drained after ${jobs} jobs`);
}

let checked = false;
async function check() {
  const prepared = await self.prepare();
  if (!checked) {
    // The first check went through, so this version works: on trial, it confirms (else a no-op).
    const confirmed = await self.confirm();
    if (confirmed.confirmed) log(`confirmed ${confirmed.version}${confirmed.from ? ` (from ${confirmed.from})` : ''}`);
    checked = true;
  }
  log(`check: ${prepared.status}${prepared.version ? ` ${prepared.version}` : ''}`);
  if (prepared.status !== 'staged') return;
  await drain();
  await self.switch(prepared.version);
  log(`switching to ${prepared.version}; restarting`);
  self.restart();
}

process.once('SIGTERM', () => drain().then(() => process.exit(0)));
log(`started${(await self.onTrial()) ? ' (on trial)' : ''}`);
for (;;) {
  await check().catch((err) => log(`check failed: ${err.code ?? ''} ${err.message}`));
  await new Promise((resolve) => setTimeout(resolve, CHECK_MS));
}
