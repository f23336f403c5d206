// Device reports for fleet tests and the fleet bench: real ed25519 device identities (made
// directly, as `ferry init` would in a home) and reports signed with signReport, written into a
// folder the way an inbox or a stick holds them. Also the forgeries the tests need.

import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { generateKeyPair } from '../../core/trust/ed25519.ts';
import { keyIdOf, type SigningKey } from '../../core/trust/keys.ts';
import { deviceIdOf, type DeviceIdentity } from '../../core/fleet/device-identity.ts';
import { signReport, type DeviceReport } from '../../core/fleet/report.ts';

export function newIdentity(): DeviceIdentity {
  const { publicKey, secretKey } = generateKeyPair();
  const key: SigningKey = { keyid: keyIdOf(publicKey), publicKey, secretKey };
  return { id: deviceIdOf(publicKey), key };
}

export const hexKey = (identity: DeviceIdentity) => Buffer.from(identity.key.publicKey).toString('hex');

/** A plausible report of `identity`; `over` replaces any field. */
export function reportOf(identity: DeviceIdentity, over: Partial<DeviceReport> = {}): DeviceReport {
  const time = over.time ?? new Date().toISOString();
  const currentVersion = over.currentVersion === undefined ? '1.0.0' : over.currentVersion;
  return {
    type: 'ferry/report',
    deviceId: identity.id,
    publicKey: hexKey(identity),
    app: 'sample-app',
    target: 'linux-x64',
    channel: 'stable',
    sequence: 1,
    time,
    currentVersion,
    lastAttempt: currentVersion === null ? null : {
      from: null, to: currentVersion, kind: 'full', outcome: 'committed', errorCode: null,
      bytesMoved: 1_234_567, source: 'https://updates.example.com/sample-app', startedAt: time, finishedAt: time,
    },
    freeDiskBytes: 12_345_678_901,
    versions: currentVersion === null ? [] : [{ version: currentVersion, since: time }],
    ...over,
  };
}

export async function writeReport(file: string, report: DeviceReport, identity: DeviceIdentity): Promise<Buffer> {
  const bytes = signReport(report, identity);
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, bytes);
  return bytes;
}

/** A signed report whose payload was changed afterwards (the signature kept): a forgery. */
export function forge(bytes: Buffer, change: (r: DeviceReport) => void): Buffer {
  const envelope = JSON.parse(bytes.toString('utf8')) as { payload: string };
  const report = JSON.parse(Buffer.from(envelope.payload, 'base64').toString('utf8')) as DeviceReport;
  change(report);
  envelope.payload = Buffer.from(JSON.stringify(report)).toString('base64');
  return Buffer.from(JSON.stringify(envelope));
}
