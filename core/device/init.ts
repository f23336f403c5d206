// `ferry init`: makes a device home — the folders, the pinned root (verified), the device config.

import { mkdir, readFile } from 'node:fs/promises';
import { FerryError, fromFsError } from '../errors.ts';
import { homeLayout } from './layout.ts';
import { writeDeviceConfig, type DeviceConfig, type HealthConfig } from './config.ts';
import { writeFileAtomic } from '../io/durable.ts';
import { verifyTrustedRoot } from '../trust/root.ts';
import { parsePolicy } from '../policy/policy.ts';
import { targetKey } from '../trust/metadata.ts';
import type { UpdatePolicy } from '../spec.ts';

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
  await writeFileAtomic(layout.trustRoot, input.trustBytes);
  await writeDeviceConfig(layout.config, config);
  return config;
}
