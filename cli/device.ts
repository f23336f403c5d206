// The one place device commands turn flags and ferry.json into core objects: sources from their
// specs, the health check from the config, the patcher. Then an Updater is opened (taking the
// home's lock), used, and closed.

import { rm, stat } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { FerryError } from '../core/errors.ts';
import { homeLayout } from '../core/device-layout.ts';
import { readDeviceConfig, type HealthConfig } from '../core/device-config.ts';
import { createDirSource } from '../core/dir-source.ts';
import type { Source } from '../core/source.ts';
import { createBundleSource } from '../core/bundle.ts';
import { Updater } from '../core/updater.ts';
import { createBsdiffPatcher } from '../plugins/bsdiff/patcher.ts';
import { createCommandHealthCheck } from '../plugins/health/command.ts';
import { createHttpHealthCheck } from '../plugins/health/http.ts';
import type { HealthCheck } from '../core/health.ts';

/**
 * Turns one --source spec into a Source: a repository folder or a .ferry bundle file. A bundle is
 * unpacked on first use into `privateDir` (inside the home's staging folder, so it is only
 * created once the updater holds the home's lock).
 */
export async function sourceFromSpec(spec: string, privateDir: string): Promise<Source> {
  if (/^(https?:\/\/|usb:|lan$)/.test(spec)) {
    throw new FerryError('ERR_USAGE', `source "${spec}": HTTP, USB and LAN transports are not built yet; use a repository folder or a .ferry bundle`);
  }
  const path = spec.startsWith('dir:') ? spec.slice(4) : spec;
  const st = await stat(path).catch(() => null);
  if (st?.isDirectory()) return createDirSource(path);
  if (st?.isFile()) return createBundleSource(path, privateDir);
  // A folder or stick that is not there right now (unplugged) is not fatal: it offers nothing.
  return createDirSource(path);
}

export function healthFromConfig(health: HealthConfig | null): HealthCheck | null {
  if (!health) return null;
  const checks: HealthCheck[] = [];
  if (health.command) checks.push(createCommandHealthCheck(health.command, health.timeoutMs));
  if (health.url) checks.push(createHttpHealthCheck(health.url, health.timeoutMs));
  if (checks.length === 0) return null;
  return {
    async check(target) {
      for (const c of checks) {
        const r = await c.check(target);
        if (!r.healthy) return r;
      }
      return { healthy: true, detail: 'all health checks passed' };
    },
  };
}

export async function withUpdater<T>(home: string, fn: (updater: Updater) => Promise<T>, log?: (m: string) => void): Promise<T> {
  const layout = homeLayout(home);
  const config = await readDeviceConfig(layout.config);
  const privateDirs = config.sources.map(() => join(layout.staging, `source-${randomBytes(6).toString('hex')}`));
  const sources = await Promise.all(config.sources.map((s, i) => sourceFromSpec(s, privateDirs[i]!)));
  const updater = await Updater.open({ home, sources, patcher: createBsdiffPatcher(), health: healthFromConfig(config.health), ...(log ? { log } : {}) });
  try {
    return await fn(updater);
  } finally {
    for (const dir of privateDirs) await rm(dir, { recursive: true, force: true });
    await updater.close();
  }
}
