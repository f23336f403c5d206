// ferry.json: what a device is (app, platform, arch), where it takes updates from, its policy and
// its health check. Written by `ferry init`, read by every device command.

import { readFile } from 'node:fs/promises';
import { FerryError } from '../errors.ts';
import { parseStrictJson } from '../io/strict-json.ts';
import { writeFileAtomic } from '../io/durable.ts';
import { arr, bool, obj, str, int, NAME, type JsonObject } from '../io/schema.ts';
import { parsePolicy } from '../policy/policy.ts';
import type { UpdatePolicy } from '../spec.ts';
import { NO_GRANTS, type ContainerGrants } from '../image/requests.ts';

export interface HealthConfig {
  /** A command run in the new release's folder; exit 0 = healthy. */
  command?: string[];
  /** An HTTP URL that must answer 2xx. */
  url?: string;
  /** Deadline for the check, in milliseconds. */
  timeoutMs: number;
}

export interface DeviceConfig {
  app: string;
  platform: string;
  arch: string;
  /** Source specs in the order they are tried: a folder, a .ferry bundle, later http(s)://, usb:, lan. */
  sources: string[];
  policy: UpdatePolicy;
  health: HealthConfig | null;
  /** Restore points kept by cleanup. */
  keepRestorePoints: number;
  /** Days an offline source (folder, bundle) may be used past its channel pointer's expiry. */
  offlineGraceDays: number;
  /** Bandwidth cap for network downloads (bytes per second), for metered links; null = none. */
  maxBytesPerSecond: number | null;
  /**
   * Hard-link files a delta leaves unchanged from the installed release instead of copying them:
   * faster and half the disk, but the releases then share those files (an app that writes into
   * its own folder changes both). Off by default.
   */
  linkUnchanged: boolean;
  /**
   * Where this device's signed reports go (ARCHITECTURE.md "Fleet reports"). Always set by
   * parseDeviceConfig (DEFAULT_REPORTS when ferry.json has none); optional only so a config built
   * in code without it still type-checks: read it with reportsOf().
   */
  reports?: ReportsConfig;
  /**
   * Present when the app ships as an OCI image (ARCHITECTURE.md "Containers"): how the device runs
   * it. null or absent: releases are plain file trees (an image release is still verified, and its
   * requests checked against no grants, but nothing starts it).
   */
  container?: ContainerConfig | null;
}

export interface ContainerMount {
  /** A folder or file on the device. */
  source: string;
  /** Where it appears in the container. */
  destination: string;
  readOnly: boolean;
}

export interface ContainerConfig {
  /** Which engine runs the image: "auto" (runc, then podman: the first that is installed and works), "runc" or "podman". */
  engine: 'auto' | 'runc' | 'podman';
  /** The container's name (each version's container is `<name>-<version>`); default `ferry-<app>`. */
  name: string;
  /** Environment added to the image's own. */
  env: Record<string, string>;
  /** The device's own bind mounts (the operator's choice, so not subject to `allow`). */
  mounts: ContainerMount[];
  /**
   * Listening addresses ("8080", "127.0.0.1:8080", "[::1]:8080") ferry binds on the host and hands
   * the container as inherited sockets (LISTEN_FDS from fd 3): how a container in its own network
   * namespace serves the host's ports, and what `ferry run --container` holds across versions.
   */
  listen: string[];
  /** A health command run inside the new container (exit 0 = healthy), beside ferry.json `health`. */
  exec: string[] | null;
  /** How long a stopping container has after SIGTERM before SIGKILL. */
  stopTimeoutMs: number;
  /**
   * How often the agent checks that the container of `current` still runs, and starts it again
   * when it exited or was killed (plugins/container/watchdog.ts); 0: only when the agent starts.
   */
  watchSeconds: number;
  /** What the device grants an image that asks (core/image/requests.ts). */
  allow: ContainerGrants;
}

const CONTAINER_FIELDS = ['engine', 'name', 'env', 'mounts', 'listen', 'exec', 'stopTimeoutMs', 'watchSeconds', 'allow'];
const ALLOW_FIELDS = ['privileged', 'hostNetwork', 'capabilities', 'mountSources'];
const ABSOLUTE_PATH = /^\/[^\0]*$/;

function onlyFields(o: JsonObject, fields: string[], what: string): void {
  for (const key of Object.keys(o)) {
    if (!fields.includes(key)) throw new FerryError('ERR_SCHEMA', `${what}.${key} is not a field (${fields.join(', ')})`);
  }
}

function parseContainer(value: JsonObject[string] | undefined, app: string): ContainerConfig | null {
  if (value === undefined || value === null) return null;
  const o = obj(value, 'ferry.json container');
  onlyFields(o, CONTAINER_FIELDS, 'container');
  const engine = o.engine === undefined ? 'auto' : str(o.engine, 'container.engine', /^(auto|runc|podman)$/);
  const envObj = o.env === undefined ? {} : obj(o.env, 'container.env');
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(envObj)) env[str(k, 'container.env key', /^[A-Za-z_][A-Za-z0-9_]*$/)] = str(v, `container.env.${k}`);
  const mounts = (o.mounts === undefined ? [] : arr(o.mounts, 'container.mounts')).map((m, i) => {
    const mo = obj(m, `container.mounts[${i}]`);
    onlyFields(mo, ['source', 'destination', 'readOnly'], `container.mounts[${i}]`);
    return {
      source: str(mo.source, `container.mounts[${i}].source`, ABSOLUTE_PATH),
      destination: str(mo.destination, `container.mounts[${i}].destination`, ABSOLUTE_PATH),
      readOnly: mo.readOnly === undefined ? true : bool(mo.readOnly, `container.mounts[${i}].readOnly`),
    };
  });
  const a = o.allow === undefined ? {} : obj(o.allow, 'container.allow');
  onlyFields(a, ALLOW_FIELDS, 'container.allow');
  return {
    engine: engine as ContainerConfig['engine'],
    name: o.name === undefined ? `ferry-${app}` : str(o.name, 'container.name', NAME),
    env,
    mounts,
    listen: (o.listen === undefined ? [] : arr(o.listen, 'container.listen')).map((l, i) => str(l, `container.listen[${i}]`)),
    exec: o.exec === undefined || o.exec === null ? null : arr(o.exec, 'container.exec').map((c, i) => str(c, `container.exec[${i}]`)),
    stopTimeoutMs: o.stopTimeoutMs === undefined ? 10_000 : int(o.stopTimeoutMs, 'container.stopTimeoutMs', 0),
    watchSeconds: o.watchSeconds === undefined ? 10 : int(o.watchSeconds, 'container.watchSeconds', 0, 86_400),
    allow: {
      privileged: a.privileged === undefined ? NO_GRANTS.privileged : bool(a.privileged, 'container.allow.privileged'),
      hostNetwork: a.hostNetwork === undefined ? NO_GRANTS.hostNetwork : bool(a.hostNetwork, 'container.allow.hostNetwork'),
      capabilities: (a.capabilities === undefined ? [] : arr(a.capabilities, 'container.allow.capabilities')).map((c, i) => str(c, `container.allow.capabilities[${i}]`, /^CAP_[A-Z_]{2,32}$/)),
      mountSources: (a.mountSources === undefined ? [] : arr(a.mountSources, 'container.allow.mountSources')).map((c, i) => str(c, `container.allow.mountSources[${i}]`, ABSOLUTE_PATH)),
    },
  };
}

/** The grants of a device: its container.allow, or nothing granted when it has no container section. */
export function grantsOf(config: Pick<DeviceConfig, 'container'>): ContainerGrants {
  return config.container?.allow ?? NO_GRANTS;
}

export interface ReportsConfig {
  /** The report endpoint reports are PUT to (<url>/<deviceId>.json; no query or fragment), or null for none. */
  url: string | null;
  /** Write reports onto the USB sticks of `usb:` sources (a reports/ folder, bounded). */
  stick: boolean;
}

/** A ferry.json from before reports (or without the field): no endpoint, sticks carry them. */
export const DEFAULT_REPORTS: ReportsConfig = { url: null, stick: true };

/** The config's report routes, the default when it names none. */
export function reportsOf(config: Pick<DeviceConfig, 'reports'>): ReportsConfig {
  return config.reports ?? DEFAULT_REPORTS;
}

/** A `reports` value from outside ferry.json (`ferry init --report-url`): ERR_USAGE when it is wrong. */
export function parseReportsConfig(value: unknown, what: string): ReportsConfig {
  try {
    return parseReports(value as JsonObject[string]);
  } catch (err) {
    if (err instanceof FerryError && err.code === 'ERR_SCHEMA') throw new FerryError('ERR_USAGE', `${what}: ${err.message}`, { cause: err });
    throw err;
  }
}

function parseReports(value: JsonObject[string] | undefined): ReportsConfig {
  if (value === undefined) return { ...DEFAULT_REPORTS };
  const o = obj(value, 'ferry.json reports');
  for (const key of Object.keys(o)) {
    if (key !== 'url' && key !== 'stick') throw new FerryError('ERR_SCHEMA', `ferry.json reports.${key} is not a field (url, stick)`);
  }
  return {
    url: o.url === undefined || o.url === null ? null : str(o.url, 'reports.url', /^https?:\/\/[^\s?#]+$/),
    stick: o.stick === undefined ? DEFAULT_REPORTS.stick : bool(o.stick, 'reports.stick'),
  };
}

export async function readDeviceConfig(path: string): Promise<DeviceConfig> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (err) {
    throw new FerryError('ERR_NOT_FOUND', `${path} not found: run \`ferry init\` first`, { cause: err });
  }
  return parseDeviceConfig(parseStrictJson(bytes, 1024 * 1024, path));
}

export function parseDeviceConfig(value: unknown): DeviceConfig {
  try {
    const o = obj(value as never, 'ferry.json');
    const h = o.health === undefined || o.health === null ? null : obj(o.health, 'ferry.json health');
    const health: HealthConfig | null = h
      ? {
          ...(h.command !== undefined ? { command: arr(h.command, 'health.command').map((c, i) => str(c, `health.command[${i}]`)) } : {}),
          ...(h.url !== undefined ? { url: str(h.url, 'health.url', /^https?:\/\//) } : {}),
          timeoutMs: h.timeoutMs === undefined ? 30_000 : int(h.timeoutMs, 'health.timeoutMs', 1),
        }
      : null;
    const container = parseContainer(o.container, str(o.app, 'ferry.json app', NAME));
    return {
      app: str(o.app, 'ferry.json app', NAME),
      platform: str(o.platform, 'ferry.json platform'),
      arch: str(o.arch, 'ferry.json arch'),
      sources: arr(o.sources, 'ferry.json sources').map((s, i) => str(s, `sources[${i}]`)),
      policy: parsePolicy(o.policy ?? {}),
      health,
      keepRestorePoints: o.keepRestorePoints === undefined ? 3 : int(o.keepRestorePoints, 'keepRestorePoints', 1),
      offlineGraceDays: o.offlineGraceDays === undefined ? 180 : int(o.offlineGraceDays, 'offlineGraceDays', 0),
      maxBytesPerSecond: o.maxBytesPerSecond === undefined || o.maxBytesPerSecond === null ? null : int(o.maxBytesPerSecond, 'maxBytesPerSecond', 1),
      linkUnchanged: o.linkUnchanged === undefined ? false : bool(o.linkUnchanged, 'linkUnchanged'),
      reports: parseReports(o.reports),
      // Only present when set, so a plain app's ferry.json is written back without the field.
      ...(container ? { container } : {}),
    };
  } catch (err) {
    if (err instanceof FerryError && err.code === 'ERR_SCHEMA') throw new FerryError('ERR_USAGE', `ferry.json: ${err.message}`, { cause: err });
    throw err;
  }
}

export async function writeDeviceConfig(path: string, config: DeviceConfig): Promise<void> {
  await writeFileAtomic(path, JSON.stringify(config, null, 2) + '\n');
}
