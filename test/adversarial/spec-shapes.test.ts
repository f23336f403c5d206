// Issue 13 item 15, the spec's shapes, through the library on real device homes and one real
// signed repository (stable 1.0.0 -> 1.1.0, beta 1.2.0, later security 1.3.0):
//   - UpdateInfo carries checksum and signature: the signed sha256 of what it would download and
//     the release-key signatures of the manifest, which verify against the pinned root;
//   - UpdatePackage carries platform and arch of the signed target;
//   - download({ version }) fetches one of the versions the channels offer, and refuses one they
//     do not offer (ERR_NOT_FOUND), a downgrade without allowDowngrade, and anything below the
//     security floor even with it (ERR_DOWNGRADE);
//   - ferry.json's policy takes the spec's dayOfWeek and durations for checkInterval;
//   - enabled: false: the agent makes no attempt at all (nothing checked, fetched or staged), and
//     takes up again when ferry.json says true; a person's apply still installs.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Agent, createIntegrityVerifier, type UpdatePolicy } from '../../core/index.ts';
import { readDeviceConfig } from '../../core/device/config.ts';
import { parseEnvelope, PAYLOAD_TYPES } from '../../core/trust/dsse.ts';
import { MANIFEST_MAX_BYTES, type ManifestDoc } from '../../core/trust/metadata.ts';
import { verifyTrustedRoot } from '../../core/trust/root.ts';
import { keyIdOf } from '../../core/trust/keys.ts';
import { assertCodeAsync } from '../helpers/assert-code.ts';
import { ferry } from '../helpers/cli.ts';
import { makeDevice, type TestDevice } from '../helpers/device.ts';
import { makeRepo, sampleApp, type TestRepo } from '../helpers/repo.ts';
import { readPayload } from '../helpers/tamper.ts';
import { MANIFEST_PAYLOAD_TYPES } from '../../core/trust/manifest-envelope.ts';

const TARGET = 'linux-x64';
let repo: TestRepo;
const devices: TestDevice[] = [];

async function device(policy: Partial<UpdatePolicy>): Promise<TestDevice> {
  const d = await makeDevice({ trust: await repo.trust(), sources: [repo.repo], policy });
  devices.push(d);
  return d;
}

const manifestFile = (version: string) => join(repo.repo, 'releases', version, 'manifest.json');
const signedFull = async (version: string) => (await readPayload<ManifestDoc>(manifestFile(version))).targets[TARGET]!.full;
const cached = async (d: TestDevice) => (await readdir(d.layout.cache).catch(() => [] as string[])).sort();

const shapes = suite('issue 13 item 15: the spec\'s shapes');

shapes.before(async () => {
  repo = await makeRepo();
  await repo.release('1.0.0', sampleApp('1.0.0'), { deltas: 0 });
  await repo.release('1.1.0', sampleApp('1.1.0'), { deltas: 0 });
  await repo.release('1.2.0', sampleApp('1.2.0'), { deltas: 0, channel: 'beta' });
});

shapes.after(async () => {
  for (const d of devices) await d.cleanup();
  await repo?.cleanup();
});

shapes('issue 13 item 15: UpdateInfo carries the signed checksum and the manifest\'s signatures, which verify against the pinned root', async () => {
  const d = await device({ channel: 'beta' });
  const info = await d.with((u) => u.checkUpdate());
  assert.is(info.latestVersion, '1.2.0');
  const full = await signedFull('1.2.0');
  assert.is(info.checksum, full.sha256);
  assert.ok(info.downloadUrl?.endsWith(full.path), `${info.downloadUrl} names the artifact the checksum is of`);
  // The signatures are the manifest's own: rebuilt into the envelope, they verify with the release key.
  const envelope = parseEnvelope(await readFile(manifestFile('1.2.0')), MANIFEST_MAX_BYTES, 'manifest');
  assert.equal(info.signature, envelope.signatures);
  assert.is(info.signature![0]!.keyid, keyIdOf(repo.releaseKey.publicKey));
  const root = verifyTrustedRoot(await repo.trust(), 'root.json');
  // The manifest's own payload type (compressed JSON for a separate-list manifest, issue 14 item 5).
  assert.ok(MANIFEST_PAYLOAD_TYPES.includes(envelope.payloadType), envelope.payloadType);
  createIntegrityVerifier().verifySignature({ ...envelope, signatures: info.signature! }, envelope.payloadType, root, 'release');
  // Up to date: nothing to vouch for.
  await d.with((u) => u.apply());
  const after = await d.with((u) => u.checkUpdate());
  assert.is(after.updateAvailable, false);
  assert.is(after.checksum, null);
  assert.is(after.signature, null);
});

shapes('issue 13 item 15: download() reports the signed target\'s platform and arch; download({ version }) picks an offered version', async () => {
  const d = await device({ channel: 'beta' });
  const policyPick = await d.with((u) => u.download());
  assert.is(policyPick?.version, '1.2.0');
  assert.is(policyPick?.platform, 'linux');
  assert.is(policyPick?.arch, 'x64');
  const chosen = await d.with((u) => u.download({ version: '1.1.0' }));
  assert.is(chosen?.version, '1.1.0');
  assert.is(chosen?.checksum, (await signedFull('1.1.0')).sha256);
  assert.ok((await cached(d)).includes((await signedFull('1.1.0')).sha256), 'the chosen version\'s artifact is in the cache');
  // The same choice from the command line: `ferry download <version>`.
  const cli = await device({ channel: 'beta' });
  const run = ferry('download', '--home', cli.home, '1.1.0', '--json');
  assert.is(run.status, 0, run.stderr);
  assert.is((JSON.parse(run.stdout) as { version: string }).version, '1.1.0');
  const none = ferry('download', '--home', cli.home, '1.0.0');
  assert.is(none.status, 6, `a version no channel offers: ERR_NOT_FOUND, exit 6 (${none.stderr})`);
  assert.match(none.stderr, /ERR_NOT_FOUND/);
});

shapes('issue 13 item 15: download({ version }) refuses what no channel offers, and what is not a version', async () => {
  const d = await device({ channel: 'beta' });
  // 1.0.0 is signed and in the repository, but no pointer offers it any more.
  const old = await assertCodeAsync(() => d.with((u) => u.download({ version: '1.0.0' })), 'ERR_NOT_FOUND');
  assert.match(old.message, /beta 1\.2\.0/);
  await assertCodeAsync(() => d.with((u) => u.download({ version: '9.9.9' })), 'ERR_NOT_FOUND');
  await assertCodeAsync(() => d.with((u) => u.download({ version: 'latest' })), 'ERR_USAGE');
  // A stable device does not read beta: 1.2.0 is not offered to it.
  const stable = await device({});
  await assertCodeAsync(() => stable.with((u) => u.download({ version: '1.2.0' })), 'ERR_NOT_FOUND');
  assert.equal(await cached(d), [], 'nothing was fetched');
});

shapes('issue 13 item 15: download({ version }) refuses a downgrade unless allowed, and the security floor always', async () => {
  const strict = await device({ channel: 'beta' });
  const loose = await device({ channel: 'beta', allowDowngrade: true });
  for (const d of [strict, loose]) assert.is((await d.with((u) => u.apply())).status, 'committed');
  assert.is(await strict.with((u) => u.download({ version: '1.2.0' })), null, 'the installed version: nothing to fetch');
  const refused = await assertCodeAsync(() => strict.with((u) => u.download({ version: '1.1.0' })), 'ERR_DOWNGRADE');
  assert.match(refused.message, /allowDowngrade/);
  assert.is((await loose.with((u) => u.download({ version: '1.1.0' })))?.version, '1.1.0', 'allowDowngrade lets a caller pick an older offered version');
  // A security fix raises the floor to 1.3.0: 1.2.0 is still offered (beta), but never again installable.
  await repo.release('1.3.0', sampleApp('1.3.0'), { deltas: 0, channel: 'security', securityFix: true });
  assert.is((await loose.with((u) => u.apply())).status, 'committed');
  const floor = await assertCodeAsync(() => loose.with((u) => u.download({ version: '1.2.0' })), 'ERR_DOWNGRADE');
  assert.match(floor.message, /floor 1\.3\.0/);
});

shapes('issue 13 item 15: ferry.json takes the spec\'s dayOfWeek and checkInterval durations', async () => {
  const d = await device({});
  const config = JSON.parse(await readFile(d.layout.config, 'utf8'));
  config.policy = { checkInterval: '90s', maintenanceWindow: { dayOfWeek: [0, 6], startHour: 1, endHour: 5, timezone: 'Europe/Berlin' } };
  await writeFile(d.layout.config, JSON.stringify(config));
  const read = await readDeviceConfig(d.layout.config);
  assert.is(read.policy.checkInterval, 90);
  assert.equal(read.policy.maintenanceWindow?.days, [0, 6]);
  config.policy.maintenanceWindow.days = [0];
  await writeFile(d.layout.config, JSON.stringify(config));
  const both = await assertCodeAsync(() => readDeviceConfig(d.layout.config), 'ERR_USAGE');
  assert.match(both.message, /dayOfWeek/);
});

shapes('issue 13 item 15: enabled false: the agent checks, fetches and stages nothing, and resumes when enabled again', async () => {
  const d = await device({ enabled: false, checkInterval: 60 });
  const events: string[] = [];
  const once = await new Agent({ home: d.home, log: (event) => events.push(event) }).once();
  assert.is(once.outcome, 'disabled');
  assert.equal(events, ['disabled']);
  assert.equal(await cached(d), []);
  assert.equal(await readdir(d.layout.releases).catch(() => []), []);
  assert.equal(await d.with((u) => u.history()), [], 'no attempt, not even a refused one');

  // The daemon: disabled rounds, then ferry.json says enabled and the next round installs.
  const stop = new AbortController();
  const naps: number[] = [];
  const agentEvents: string[] = [];
  let committed: unknown = null;
  const agent = new Agent({
    home: d.home,
    log: (event, fields) => {
      agentEvents.push(event);
      if (event === 'committed') committed = fields.version;
    },
    random: () => 0.5,
    sleep: async (ms) => {
      naps.push(ms);
      if (naps.length === 2) await d.setConfig({ policy: { ...(await d.config()).policy, enabled: true } });
      if (naps.length === 3) stop.abort('test');
    },
  });
  await agent.run(stop.signal);
  const rounds = agentEvents.filter((e) => ['disabled', 'check', 'committed'].includes(e));
  assert.equal(rounds, ['disabled', 'disabled', 'check', 'committed']);
  assert.equal(naps, [60_000, 60_000, 60_000], 'disabled rounds wait the check interval');
  assert.ok(committed !== null);
  assert.is(await d.current(), committed);
});

shapes('issue 13 item 15: enabled false: a person\'s apply still installs; an automatic apply waits', async () => {
  const d = await device({ enabled: false });
  const auto = await d.with((u) => u.apply({ trigger: 'auto' }));
  assert.is(auto.status, 'waiting');
  assert.is(auto.status === 'waiting' && auto.reason, 'disabled');
  assert.equal(await cached(d), [], 'an automatic apply downloads nothing');
  assert.equal(await readdir(d.layout.releases).catch(() => []), [], 'and stages nothing');
  const manual = await d.with((u) => u.apply());
  assert.is(manual.status, 'committed');
  assert.ok(manual.status === 'committed' && manual.record.to !== null);
  assert.is(await d.current(), manual.status === 'committed' ? manual.record.to : null);
  // From the command line, the person is told the policy is disabled, and the update goes ahead.
  const cli = await device({ enabled: false });
  const run = ferry('update', '--home', cli.home);
  assert.is(run.status, 0, run.stderr);
  assert.match(run.stderr, /updates are disabled by policy \(ferry\.json policy\.enabled\); switching to \S+ because a person asked/);
});

shapes.run();
