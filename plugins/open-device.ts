// openDevice: the one place a device home's ferry.json becomes plugin instances — sources from
// their specs, the health check from the config, the patcher — handed to an Updater. The `ferry`
// command and any program that embeds ferry open a device the same way.

import { rm, stat } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { homeLayout, type HomeLayout } from '../core/device/layout.ts';
import { readDeviceConfig, type DeviceConfig, type HealthConfig } from '../core/device/config.ts';
import { createDirSource } from '../core/ports/dir-source.ts';
import { parseSourceSpec } from '../core/device/source-spec.ts';
import { FerryError } from '../core/errors.ts';
import type { Source } from '../core/ports/source.ts';
import { Updater, type UpdaterDeps } from '../core/update/updater.ts';
import { createBsdiffPatcher } from './bsdiff/patcher.ts';
import { createCommandHealthCheck } from './health/command.ts';
import { createHttpHealthCheck } from './health/http.ts';
import { createSupervisorHealthCheck, supervisorRunning } from './run/health.ts';
import type { HealthCheck } from '../core/ports/health.ts';
import type { ContainerContext } from './container/start-container.ts';
import type { ContainerEngine } from './container/engine.ts';
import type { ProgressSink } from '../core/ports/progress.ts';

export interface OpenedSource {
  source: Source;
  close(): Promise<void>;
}

/**
 * Turns one --source spec into a Source — the one place specs become transports:
 *   <folder> | dir:<folder>      a repository folder
 *   <file.ferry>                 an offline bundle
 *   http(s)://…                  an origin (conditional GETs cached in cache/http)
 *   usb:<mount>[,<mount>…]       bundles or repository folders dropped on sticks
 *   lan | lan:<host:port>,…      LAN peers (mDNS, or a static list): the metadata each peer
 *                                verified, and artifacts in chunks from all of them
 * Any other form is ERR_USAGE (core/device/source-spec.ts). Bundles and sticks are unpacked into
 * `privateDir` (inside staging/, created on first use, so only once the updater holds the home's
 * lock). Each transport's code is loaded only when a spec names it, so a command that opens a
 * device pays only for the transports its ferry.json uses.
 */
export async function sourceFromSpec(spec: string, config: DeviceConfig, layout: HomeLayout, privateDir: string): Promise<OpenedSource> {
  const none = async () => {};
  const parsed = parseSourceSpec(spec, `${layout.config} sources`);
  switch (parsed.kind) {
    case 'http': {
      const { createHttpTransport } = await import('./http/transport.ts');
      const http = createHttpTransport({ url: parsed.url, cacheDir: join(layout.cache, 'http'), ...(config.maxBytesPerSecond ? { maxBytesPerSecond: config.maxBytesPerSecond } : {}) });
      return { source: http, close: async () => http.close() };
    }
    case 'usb': {
      const { createUsbSource, parseUsbSpec } = await import('./usb/source.ts');
      const usb = createUsbSource({ mounts: parseUsbSpec(parsed.spec), privateDir });
      return { source: usb, close: () => usb.close() };
    }
    case 'lan': {
      const [{ createLanDiscovery, parseLanSpec }, { createLanSource }] = await Promise.all([import('./lan/discovery.ts'), import('./lan/source.ts')]);
      const discovery = createLanDiscovery({ app: config.app, ...parseLanSpec(parsed.spec) });
      const source = createLanSource({ discovery, timeoutMs: 10_000 });
      return { source, close: async () => { source.close(); await discovery.close(); } };
    }
    case 'path': {
      const st = await stat(parsed.path).catch(() => null);
      if (st?.isFile()) {
        const { createBundleSource } = await import('../core/publish/bundle.ts');
        return { source: createBundleSource(parsed.path, privateDir), close: none };
      }
      return { source: folderThatMayBeGone(parsed.path), close: none };
    }
  }
}

/**
 * A repository folder that is not there right now (an unplugged disk, a mistyped path) is not
 * fatal — it may come back — but it is no answer either: reads fail with ERR_NO_SOURCE, so a
 * device whose every source is like this says "no source answered", not "up to date"
 * (core/trust/discover.ts).
 */
function folderThatMayBeGone(path: string): Source {
  const dir = createDirSource(path);
  const present = async () => {
    const st = await stat(path).catch(() => null);
    if (!st?.isDirectory()) throw new FerryError('ERR_NO_SOURCE', `${dir.name}: ${st ? 'not a folder' : 'no folder there'} (a disk not mounted? a mistyped path?)`);
  };
  return {
    name: dir.name,
    offline: dir.offline,
    async read(p, maxBytes) {
      await present();
      return dir.read(p, maxBytes);
    },
    async fetch(p, dest, maxBytes, offset) {
      await present();
      return dir.fetch(p, dest, maxBytes, offset);
    },
    async list(d) {
      await present();
      return dir.list!(d);
    },
  };
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

/** What an embedding program may hand a device besides its home; all optional. */
export interface OpenDeviceOptions {
  /** Notes for people (a source skipped, a delta that fell back to the full artifact). */
  log?: (message: string) => void;
  /** Progress of downloads and staging, for a display. */
  progress?: ProgressSink;
  /** The device's clock; the real one when absent. */
  clock?: () => Date;
  /** A test seam handed to the Updater unchanged (see UpdaterDeps.killPoint). */
  killPoint?: UpdaterDeps['killPoint'];
  /** For a device whose ferry.json has `container`: the engine (default: detected) and the settle time of the switch. */
  container?: { engine?: ContainerEngine; settleMs?: number };
}

/** An opened device home: the Updater (holding the home's lock) and what closes it all. */
export interface Device {
  updater: Updater;
  close(): Promise<void>;
}

/**
 * The health check a device's ferry.json asks for: while `ferry run` supervises the app, the
 * supervisor's handover; for an app shipped as an image (ferry.json `container`), the container
 * switch (plugins/container/container-switch.ts) with ferry.json `health` as the new container's
 * check; otherwise ferry.json `health`.
 */
async function deviceHealth(home: string, config: DeviceConfig, options: OpenDeviceOptions): Promise<HealthCheck | null> {
  if (await supervisorRunning(home)) return createSupervisorHealthCheck(home, config.health?.timeoutMs ?? 60_000);
  const container = config.container;
  if (container === null || container === undefined) return healthFromConfig(config.health);
  // The container plugin (engines, bundles, OCI layouts) is loaded only for a device that runs an
  // image: `ferry update` of any other device pays neither its start-up time nor its memory.
  const [{ createContainerSwitch }, { containerContext }] = await Promise.all([import('./container/container-switch.ts'), import('./container/start-container.ts')]);
  let context: Promise<ContainerContext> | null = null;
  const log = options.log ?? (() => {});
  return createContainerSwitch({
    // Detected at the first switch, not at open: a device that only reads its status never probes engines.
    context: () => (context ??= containerContext(home, { ...config, container }, { ...(options.container?.engine ? { engine: options.container.engine } : {}), log })),
    health: healthFromConfig(config.health),
    timeoutMs: config.health?.timeoutMs ?? 60_000,
    ...(options.container?.settleMs !== undefined ? { settleMs: options.container.settleMs } : {}),
  });
}

/**
 * Opens a device home wired from its ferry.json exactly as the `ferry` command does: its sources,
 * the bsdiff patcher, and its health check (deviceHealth: ferry.json health, the supervisor's
 * handover under `ferry run`, or the container switch). Takes the home's lock (ERR_BUSY while another ferry process holds it)
 * and recovers an interrupted update; `close()` releases everything.
 */
export async function openDevice(home: string, options: OpenDeviceOptions = {}): Promise<Device> {
  const layout = homeLayout(home);
  const config = await readDeviceConfig(layout.config);
  // Every spec is judged before any transport opens: a hand-edited ferry.json with a bad one is
  // refused whole, with nothing left open.
  for (const spec of config.sources) parseSourceSpec(spec, `${layout.config} sources`);
  const privateDirs = config.sources.map(() => join(layout.staging, `source-${randomBytes(6).toString('hex')}`));
  const opened = await Promise.all(config.sources.map((s, i) => sourceFromSpec(s, config, layout, privateDirs[i]!)));
  const closeSources = async () => {
    for (const o of opened) await o.close().catch(() => {});
  };
  try {
    const health = await deviceHealth(home, config, options);
    const { container: _container, ...updaterOptions } = options;
    const updater = await Updater.open({ home, sources: opened.map((o) => o.source), patcher: createBsdiffPatcher(), health, ...updaterOptions });
    return {
      updater,
      async close() {
        try {
          for (const dir of privateDirs) await rm(dir, { recursive: true, force: true });
          await updater.close();
        } finally {
          await closeSources();
        }
      },
    };
  } catch (err) {
    await closeSources();
    throw err;
  }
}

/** Opens the device, runs `fn` with its Updater, and closes the device whatever happens. */
export async function withDevice<T>(home: string, fn: (updater: Updater) => Promise<T>, options: OpenDeviceOptions = {}): Promise<T> {
  const device = await openDevice(home, options);
  try {
    return await fn(device.updater);
  } finally {
    await device.close();
  }
}
