// Fleet reports bench (issue 16): what reports cost to carry and to read.
//  1. Report bytes per device per day at a one-hour check interval: a realistic report and the
//     largest the schema allows (8 versions, a 256-character source), signed with signReport;
//     a day is 24 of them. Target: a report under 2 KB.
//  2. `ferry fleet` over 10,000 report files (one per device, as an inbox holds them), through the
//     built CLI with --json: a first run (every signature checked, trust on first use) and a re-run
//     (the same files, recognised by hash). Baseline in the same run: a node process that reads the
//     same files and JSON.parses each envelope and its payload, with no verification. Target: the
//     first run under 5 s.
//  3. Where the time goes: the 10,000 ed25519 checks alone with ferry's verifier
//     (core/trust/ed25519.ts, node:crypto behind ferry's checks), and with tweetnacl alone (what
//     ferry used before; timed on a sample and scaled), for the record.
// The 10,000 reports are signed with node:crypto directly (the same bytes signReport makes), and
// the first one is checked with parseReport.
//   npm run bench -- fleet-reports            (also run at the end of `npm run bench -- fleet`)
//   node --import tsx bench/fleet-reports.ts [N]   (after npm run build)

import { generateKeyPairSync, sign as nodeSign, type KeyObject } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir } from '../test/helpers/repo.ts';
import { newIdentity, reportOf } from '../test/helpers/fleet-report-maker.ts';
import { encodeEnvelope, pae, PAYLOAD_TYPES } from '../core/trust/dsse.ts';
import nacl from 'tweetnacl';
import { verify as ferryVerify } from '../core/trust/ed25519.ts';
import { keyIdOf } from '../core/trust/keys.ts';
import { deviceIdOf, type DeviceIdentity } from '../core/fleet/device-identity.ts';
import { parseReport, REPORT_MAX_VERSIONS, signReport, type DeviceReport } from '../core/fleet/report.ts';
import { FERRY_JS } from './lib/ferry-cli.ts';
import { measureCommand } from './lib/measure.ts';
import { formatTable, fmt } from './lib/table.ts';

const TARGET_REPORT_BYTES = 2048;
const TARGET_FLEET_SECONDS = 5;
const DAY = 86_400_000;

/** A device a year in: three releases, the last a delta from the origin. */
function typicalReport(identity: DeviceIdentity, now: Date): DeviceReport {
  const at = (days: number) => new Date(now.getTime() - days * DAY).toISOString();
  return reportOf(identity, {
    sequence: 8_760,
    time: now.toISOString(),
    currentVersion: '2.4.1',
    lastAttempt: { from: '2.4.0', to: '2.4.1', kind: 'delta', outcome: 'committed', errorCode: null, bytesMoved: 1_834_112, source: 'https://updates.example.com/sample-app', startedAt: at(3), finishedAt: at(3) },
    versions: [{ version: '2.3.0', since: at(200) }, { version: '2.4.0', since: at(60) }, { version: '2.4.1', since: at(3) }],
  });
}

/** The largest report the schema lets a device write (sources and version lists at their caps). */
function largestReport(identity: DeviceIdentity, now: Date): DeviceReport {
  const r = typicalReport(identity, now);
  const long = (i: number) => `10.${i}.0-rc.${'9'.repeat(50)}`;
  return {
    ...r,
    currentVersion: long(7),
    lastAttempt: { ...r.lastAttempt!, from: long(6), to: long(7), outcome: 'rolled-back', errorCode: 'ERR_UNHEALTHY', source: `https://${'u'.repeat(200)}.example.com/${'p'.repeat(35)}` },
    versions: Array.from({ length: REPORT_MAX_VERSIONS }, (_, i) => ({ version: long(i), since: r.time })),
  };
}

interface NodeDevice { id: string; publicKey: Buffer; privateKey: KeyObject; publicKeyObject: KeyObject }

function nodeDevice(): NodeDevice {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const raw = Buffer.from(publicKey.export({ format: 'jwk' }).x!, 'base64url');
  return { id: deviceIdOf(raw), publicKey: raw, privateKey, publicKeyObject: publicKey };
}

/** The envelope signReport would write, signed through node:crypto. */
function nodeSignedReport(d: NodeDevice, report: DeviceReport): { bytes: Buffer; message: Uint8Array; sig: Buffer } {
  const payload = Buffer.from(JSON.stringify(report));
  const message = pae(PAYLOAD_TYPES.report, payload);
  const sig = nodeSign(null, message, d.privateKey);
  const bytes = encodeEnvelope({ payloadType: PAYLOAD_TYPES.report, payload: payload.toString('base64'), signatures: [{ keyid: keyIdOf(d.publicKey), sig: sig.toString('base64') }] });
  return { bytes, message, sig };
}

const BASELINE = `
const fs = require('node:fs'), path = require('node:path');
const dir = process.argv[1]; let n = 0;
for (const name of fs.readdirSync(dir)) {
  if (!name.endsWith('.json')) continue;
  const env = JSON.parse(fs.readFileSync(path.join(dir, name), 'utf8'));
  JSON.parse(Buffer.from(env.payload, 'base64').toString('utf8'));
  n++;
}
process.stdout.write(JSON.stringify({ files: n }));
`;

export async function run({ log }: { log: (line: string) => void }, n = Number(process.env.FLEET_REPORTS ?? 10_000)): Promise<void> {
  if (!Number.isInteger(n) || n < 10 || n > 100_000) throw new Error('the report count must be 10..100000');
  const now = new Date();
  const tmp = await tempDir('ferry-fleet-reports-');
  try {
    // 1. Bytes per report and per day.
    const identity = newIdentity();
    const sizes = [['typical', typicalReport(identity, now)], ['largest allowed', largestReport(identity, now)]] as const;
    const rows = sizes.map(([what, r]) => {
      const bytes = signReport(r, identity);
      parseReport(bytes); // a report the fleet accepts
      return { what, bytes: bytes.length };
    });
    log(formatTable(
      [{ title: 'report' }, { title: 'bytes', align: 'right' }, { title: 'bytes/device/day (24 checks)', align: 'right' }],
      rows.map((r) => [r.what, fmt.bytes(r.bytes), fmt.bytes(24 * r.bytes)]),
    ));
    const typical = rows[0]!.bytes, largest = rows[1]!.bytes;
    log(`${typical < TARGET_REPORT_BYTES ? 'PASS' : 'MISS'}: a report under 2 KB (typical ${fmt.bytes(typical)} B, ${fmt.bytes(24 * typical)} B per device per day; the largest allowed is ${fmt.bytes(largest)} B: ${largest < TARGET_REPORT_BYTES ? 'also under' : 'over'} 2 KB)`);
    log('');

    // 2. ferry fleet over n files.
    const dir = join(tmp.path, 'reports');
    await mkdir(dir);
    const t0 = Date.now();
    let totalBytes = 0;
    const checks: { message: Uint8Array; sig: Buffer; device: NodeDevice }[] = [];
    for (let i = 0; i < n; i++) {
      const d = nodeDevice();
      const r = { ...typicalReport({ id: d.id, key: { keyid: '', publicKey: d.publicKey, secretKey: new Uint8Array() } }, now), channel: i % 10 === 0 ? 'beta' : 'stable' };
      const signed = nodeSignedReport(d, r);
      if (i === 0) parseReport(signed.bytes, 'the first node-signed report');
      await writeFile(join(dir, `${d.id}.json`), signed.bytes);
      totalBytes += signed.bytes.length;
      checks.push({ ...signed, device: d });
    }
    log(`${fmt.bytes(n)} report files written in ${fmt.seconds((Date.now() - t0) / 1000)} s, ${fmt.bytes(totalBytes)} bytes`);
    const scratch = join(tmp.path, 'time.out');
    const timeout = 30 * 60_000;
    const baseline = await measureCommand(process.execPath, ['-e', BASELINE, dir], scratch, timeout);
    const state = join(tmp.path, 'fleet-state.json');
    const fleetArgs = [FERRY_JS, 'fleet', dir, '--app', 'sample-app', '--state', state, '--json'];
    const first = await measureCommand(process.execPath, fleetArgs, scratch, timeout);
    const again = await measureCommand(process.execPath, fleetArgs, scratch, timeout);
    const firstJson = JSON.parse(first.stdout) as { devices: number; reports: { accepted: number } };
    const againJson = JSON.parse(again.stdout) as { reports: { alreadySeen: number } };
    if (firstJson.devices !== n || firstJson.reports.accepted !== n || againJson.reports.alreadySeen !== n) {
      throw new Error(`ferry fleet did not accept the ${n} reports: ${JSON.stringify({ first: firstJson.reports, again: againJson.reports })}`);
    }
    log(formatTable(
      [{ title: `${fmt.bytes(n)} reports` }, { title: 's', align: 'right' }, { title: 'x baseline', align: 'right' }, { title: 'peak RSS MiB', align: 'right' }],
      [
        ['baseline: read + JSON.parse, no verification', fmt.seconds(baseline.seconds), fmt.ratio(1), fmt.mib(baseline.maxRssKiB)],
        ['ferry fleet --json, first run (verifies all)', fmt.seconds(first.seconds), fmt.ratio(first.seconds / baseline.seconds), fmt.mib(first.maxRssKiB)],
        ['ferry fleet --json, re-run (same files)', fmt.seconds(again.seconds), fmt.ratio(again.seconds / baseline.seconds), fmt.mib(again.maxRssKiB)],
      ],
    ));
    log(`${first.seconds < TARGET_FLEET_SECONDS ? 'PASS' : 'MISS'}: ${fmt.bytes(n)} reports summarised in under ${TARGET_FLEET_SECONDS} s (first run ${fmt.seconds(first.seconds)} s, re-run ${fmt.seconds(again.seconds)} s)`);

    // 3. The signature checks alone.
    const sample = checks.slice(0, Math.min(n, 300));
    let t = performance.now();
    for (const c of sample) if (!nacl.sign.detached.verify(c.message, c.sig, c.device.publicKey)) throw new Error('tweetnacl refused a good signature');
    const naclAll = ((performance.now() - t) / sample.length) * n / 1000;
    t = performance.now();
    for (const c of checks) if (!ferryVerify(c.message, c.sig, c.device.publicKey)) throw new Error("ferry's verifier refused a good signature");
    const ferryAll = (performance.now() - t) / 1000;
    log(`${fmt.bytes(n)} ed25519 checks alone: ${fmt.seconds(ferryAll)} s with ferry's verifier (node:crypto), ${fmt.seconds(naclAll)} s with tweetnacl alone (timed on ${sample.length}, scaled)`);
  } finally {
    await tmp.cleanup();
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const n = process.argv[2] ? Number(process.argv[2]) : undefined;
  run({ log: (line) => process.stdout.write(`${line}\n`) }, n).then(() => process.exit(0), (err: Error) => { process.stderr.write(`${err.stack ?? err.message}\n`); process.exit(1); });
}
