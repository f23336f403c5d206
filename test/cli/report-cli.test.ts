// issue 16 item 3: the CLI side of device reports, through the built `ferry` (two runs):
// `ferry init --report-url` writes the endpoint into ferry.json, and `ferry report --to DIR` writes a
// fresh signed report (and the ones the device relays) into DIR/reports/, the way a person carries
// reports out by hand.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ferry, json, ok } from '../helpers/cli.ts';
import { makeRepo, sampleApp, tempDir, type TempDir, type TestRepo } from '../helpers/repo.ts';
import { assertCode } from '../helpers/assert-code.ts';
import { withDevice } from '../../plugins/open-device.ts';
import { homeLayout } from '../../core/device/layout.ts';
import { parseReportsConfig } from '../../core/device/config.ts';
import { acceptReport, readInbox } from '../../core/fleet/report-inbox.ts';
import { createDeviceIdentity } from '../../core/fleet/device-identity.ts';
import { parseReport, signReport } from '../../core/fleet/report.ts';

const test = suite('issue 16 item 3: ferry init --report-url, ferry report --to');

let repo: TestRepo;
let tmp: TempDir;
test.before(async () => {
  repo = await makeRepo();
  await repo.release('1.0.0', sampleApp('1.0.0'));
  tmp = await tempDir('ferry-report-cli-');
});
test.after(async () => {
  await repo.cleanup();
  await tmp.cleanup();
});

test('init --report-url sets reports.url; report --to DIR writes the fresh report and the relayed ones', async () => {
  const home = join(tmp.path, 'home');
  const trust = join(repo.repo, 'root.json');
  ok(ferry('init', home, '--trust', trust, '--source', repo.repo, '--report-url', 'http://127.0.0.1:9/reports', '--json'), 'ferry init');
  const config = JSON.parse(await readFile(join(home, 'ferry.json'), 'utf8'));
  assert.equal(config.reports, { url: 'http://127.0.0.1:9/reports', stick: true });
  assertCode(() => parseReportsConfig({ url: 'ftp://example/' }, '--report-url'), 'ERR_USAGE');

  // An install (which writes a report), and one report this device relays for a peer.
  assert.is((await withDevice(home, (u) => u.apply())).status, 'committed');
  const installed = parseReport(await readFile(homeLayout(home).deviceReport)).report;
  const peer = await createDeviceIdentity(homeLayout(join(tmp.path, 'peer')));
  const relayed = signReport({ ...installed, deviceId: peer.id, publicKey: Buffer.from(peer.key.publicKey).toString('hex'), sequence: 7 }, peer);
  await acceptReport(homeLayout(home).reportsInbox, relayed);

  const out = join(tmp.path, 'carried');
  const printed = json<{ deviceId: string; currentVersion: string; sequence: number; bytes: number; to: { written: number } }>(ok(ferry('report', '--home', home, '--to', out, '--json'), 'ferry report --to'));
  assert.is(printed.deviceId, installed.deviceId);
  assert.is(printed.currentVersion, '1.0.0');
  assert.ok(printed.sequence > installed.sequence, `a fresh report: ${printed.sequence} > ${installed.sequence}`);
  assert.is(printed.to.written, 2);
  const carried = await readInbox(join(out, 'reports'));
  assert.equal(carried.map((c) => c.deviceId).sort(), [installed.deviceId, peer.id].sort());
  const own = carried.find((c) => c.deviceId === installed.deviceId)!;
  assert.is(own.bytes.length, printed.bytes);
  assert.is(parseReport(own.bytes).report.sequence, printed.sequence);
  assert.ok(carried.find((c) => c.deviceId === peer.id)!.bytes.equals(relayed), 'the relayed report is carried as signed');
});

test.run();
