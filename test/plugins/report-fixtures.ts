// Signed device reports for the report transport tests (report-http, report-lan): a device home
// with its real key pair (core/fleet/device-identity.ts) and reports signed by it, plus the
// tampered variants the routes must refuse.

import { mkdir, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { homeLayout } from '../../core/device/layout.ts';
import { createDeviceIdentity, type DeviceIdentity } from '../../core/fleet/device-identity.ts';
import { signReport, type DeviceReport } from '../../core/fleet/report.ts';
import { encodeEnvelope, type Envelope } from '../../core/trust/dsse.ts';

export interface TestDevice {
  home: string;
  identity: DeviceIdentity;
  /** A report of this device, signed by it. */
  report(fields?: Partial<DeviceReport>): Buffer;
}

/** A device home under `dir` with a fresh key pair. */
export async function makeDevice(dir: string, app = 'sample-app'): Promise<TestDevice> {
  const home = join(dir, `device-${Math.random().toString(16).slice(2, 10)}`);
  await mkdir(home, { recursive: true });
  const identity = await createDeviceIdentity(homeLayout(home));
  return {
    home,
    identity,
    report(fields = {}) {
      const report: DeviceReport = {
        type: 'ferry/report',
        deviceId: identity.id,
        publicKey: Buffer.from(identity.key.publicKey).toString('hex'),
        app,
        target: 'linux-x64',
        channel: 'stable',
        sequence: 1,
        time: '2026-12-05T20:00:00.000Z',
        currentVersion: '1.0.0',
        lastAttempt: null,
        freeDiskBytes: 1_000_000,
        versions: [{ version: '1.0.0', since: '2026-12-01T00:00:00.000Z' }],
        ...fields,
      };
      return signReport(report, identity);
    },
  };
}

/** The envelope with one bit of its signature flipped: still well-formed, no longer valid. */
export function forge(envelope: Buffer): Buffer {
  const env = JSON.parse(envelope.toString('utf8')) as Envelope;
  const sig = Buffer.from(env.signatures[0]!.sig, 'base64');
  sig[5] = sig[5]! ^ 0x01;
  env.signatures[0]!.sig = sig.toString('base64');
  return encodeEnvelope(env);
}

/** Every file of a folder and its bytes (to show a refusal left an inbox unchanged). */
export async function snapshot(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const name of (await readdir(dir).catch(() => [])).sort()) out[name] = (await readFile(join(dir, name))).toString('base64');
  return out;
}
