// `ferry init`: makes a device home — the folders, the device key pair and id
// (core/fleet/device-identity.ts), the pinned root (verified), the device config.
// Every source must have one of the accepted forms (core/device/source-spec.ts); checkSourcesPresent
// also wants each folder or bundle to be there (the CLI asks for it; a `usb:` mount may be absent).

import { mkdir, readFile, stat } from 'node:fs/promises';
import { FerryError, fromFsError } from '../errors.ts';
import { homeLayout } from './layout.ts';
import { writeDeviceConfig, type DeviceConfig, type HealthConfig } from './config.ts';
import { writeFileAtomic } from '../io/durable.ts';
import { verifyTrustedRoot } from '../trust/root.ts';
import { printable } from '../io/printable.ts';
import { parseSourceSpec } from './source-spec.ts';
import { parsePolicy } from '../policy/policy.ts';
import { targetKey } from '../trust/metadata.ts';
import type { UpdatePolicy } from '../spec.ts';
import { createDeviceIdentity } from '../fleet/device-identity.ts';

export async function initDevice(input: {
  home: string;
  trustBytes: Uint8Array;
  sources: string[];
  platform: string;
  arch: string;
  policy?: Partial<UpdatePolicy>;
  health?: HealthConfig | null;
  keepRestorePoints?: number;
  maxBytesPerSecond?: number | null;
  linkUnchanged?: boolean;
}): Promise<DeviceConfig> {
  const layout = homeLayout(input.home);
  const existing = await readFile(layout.config).catch(() => undefined);
  if (existing) throw new FerryError('ERR_USAGE', `${layout.config} exists: this home is already initialised`);
  const root = verifyTrustedRoot(input.trustBytes, 'the --trust root');
  targetKey(input.platform, input.arch);
  if (input.sources.length === 0) throw new FerryError('ERR_USAGE', 'a device needs at least one --source');
  for (const spec of input.sources) parseSourceSpec(spec, '--source');
  const config: DeviceConfig = {
    app: root.app,
    platform: input.platform,
    arch: input.arch,
    sources: input.sources,
    policy: parsePolicy(input.policy ?? {}),
    health: input.health ?? null,
    keepRestorePoints: input.keepRestorePoints ?? 3,
    offlineGraceDays: 180,
    maxBytesPerSecond: input.maxBytesPerSecond ?? null,
    linkUnchanged: input.linkUnchanged ?? false,
  };
  try {
    for (const dir of [layout.releases, layout.staging, layout.cache, layout.manifests, layout.trustDir, layout.state]) await mkdir(dir, { recursive: true });
  } catch (err) {
    throw fromFsError(err, `creating ${input.home}`);
  }
  // The device key pair (mode 0600), before ferry.json: a key left by an earlier home is never
  // overwritten (ERR_USAGE), and then no config is written either.
  await createDeviceIdentity(layout);
  await writeFileAtomic(layout.trustRoot, input.trustBytes);
  await writeDeviceConfig(layout.config, config);
  return config;
}

/**
 * ERR_USAGE for a folder or bundle source that is not there now: a mistyped path would otherwise
 * offer nothing, update after update. Origins, sticks (`usb:`, whose mount may be empty until a
 * stick comes) and LAN peers are not looked for.
 */
export async function checkSourcesPresent(sources: string[]): Promise<void> {
  for (const spec of sources) {
    const parsed = parseSourceSpec(spec, '--source');
    if (parsed.kind !== 'path') continue;
    const st = await stat(parsed.path).catch(() => null);
    if (!st || !(st.isDirectory() || st.isFile())) {
      throw new FerryError('ERR_USAGE', `--source "${printable(spec)}": no folder or .ferry bundle there (for a stick that comes and goes, use usb:<mount>)`);
    }
  }
}
