// Issue 13 item 1: a security fix reaches every device it applies to (README "Policy"). One real
// signed repository: stable 1.2.0, then security 1.2.1 (a security fix), then a broken stable 1.3.0.
// Two device homes meet it through the real CLI (`ferry update` in a child process):
//   - a fresh device, which used to start on its own channel's 1.2.0 below the published fix;
//   - a device on 1.2.0 whose health check refused 1.3.0 until ferry gave up on it (ERR_GAVE_UP),
//     which used to stay on 1.2.0 for good instead of taking the fix below the broken release.
// The give-up itself is reached in-process (three unhealthy switches with a fake health check):
// that part is the updater's own test (test/core/updater.test.ts); the decision after it is the point.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { cp } from 'node:fs/promises';
import { join } from 'node:path';
import { MAX_ATTEMPTS } from '../../core/update/updater.ts';
import { cliUpdateTo } from '../helpers/adversarial-trust.ts';
import { assertRefusedByCli, assertCompleteVersion } from '../helpers/refusal.ts';
import { signedFiles, smallApp } from '../helpers/crash.ts';
import { fakeHealth, makeDevice, type TestDevice } from '../helpers/device.ts';
import { makeRepo, type TestRepo } from '../helpers/repo.ts';

const STABLE = '1.2.0';
const FIX = '1.2.1';
const BROKEN = '1.3.0';

interface World {
  repo: TestRepo;
  /** The repository as it was with stable 1.2.0 and security 1.2.1 only (before 1.3.0). */
  beforeBroken: string;
  /** A device that installed 1.2.0 before the fix was published. */
  onStable: TestDevice;
  fresh: TestDevice;
}

let w: World;

/** The security floor the device keeps (read in-process: one CLI run fewer). */
const securityFloor = (d: TestDevice): Promise<string | null> => d.with(async (u) => (await u.status()).securityFloor);

const reach = suite('issue 13 item 1: the security channel reaches every device the fix applies to');

reach.before(async () => {
  const repo = await makeRepo();
  const trust = await repo.trust();
  await repo.release(STABLE, smallApp(STABLE));
  const onStable = await makeDevice({ trust, sources: [repo.repo] });
  assert.is((await onStable.with((u) => u.apply())).status, 'committed', `the device installs ${STABLE} first`);
  await repo.release(FIX, smallApp(FIX), { channel: 'security', securityFix: true });
  const beforeBroken = join(repo.dir, 'before-broken');
  await cp(repo.repo, beforeBroken, { recursive: true });
  await repo.release(BROKEN, smallApp(BROKEN));
  const fresh = await makeDevice({ trust, sources: [beforeBroken] });
  w = { repo, beforeBroken, onStable, fresh };
});

reach.after(async () => {
  await w?.fresh.cleanup();
  await w?.onStable.cleanup();
  await w?.repo.cleanup();
});

reach(`issue 13 item 1: a fresh stable device, with stable ${STABLE} and security ${FIX} published: ferry update installs ${FIX}, not ${STABLE}`, async () => {
  assert.is(await w.fresh.current(), null, 'nothing installed yet');
  await cliUpdateTo(w.fresh.home, FIX);
  await assertCompleteVersion(w.fresh.home, FIX, await signedFiles(w.beforeBroken, FIX));
  assert.is(await securityFloor(w.fresh), FIX, 'the fix raised the security floor');
  assert.equal(await w.fresh.releases(), [FIX], `${STABLE} was never installed`);
});

reach(`issue 13 item 1: after stable ${BROKEN} gave up (ERR_GAVE_UP) on a device on ${STABLE}, ferry update installs security ${FIX}; the next update refuses ${BROKEN} again instead of retrying it`, async () => {
  const d = w.onStable;
  const sick = fakeHealth(false);
  for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
    const r = await d.with((u) => u.apply(), { health: sick });
    assert.is(r.status, 'rolled-back', `attempt ${attempt} at ${BROKEN} is rolled back`);
  }
  assert.equal(sick.calls.map((c) => c.version), Array(MAX_ATTEMPTS).fill(BROKEN), `the broken ${BROKEN} was tried ${MAX_ATTEMPTS} times`);
  assert.is(await d.current(), STABLE);

  // The fix below the broken release is taken (before: ERR_GAVE_UP, and 1.2.0 for good).
  await cliUpdateTo(d.home, FIX);
  await assertCompleteVersion(d.home, FIX, await signedFiles(w.repo.repo, FIX));
  assert.is(await securityFloor(d), FIX);

  // Nothing newer but the given-up release: refused as before, never a fourth switch to it.
  await assertRefusedByCli({ home: d.home, args: ['update', '--home', d.home], code: 'ERR_GAVE_UP', version: FIX, files: await signedFiles(w.repo.repo, FIX) });
  assert.equal(await d.releases(), [STABLE, FIX], `${BROKEN} is not staged again`);
});

reach.run();
