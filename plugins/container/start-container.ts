// Starting one version's container, the one way the switch and reconcile both do it: the bundle
// prepared (bundle.ts), the host's listening sockets bound and handed in (host-sockets.ts), the
// engine started detached with its output appended to <home>/containers/<id>.log, and this
// process's socket copies closed at once, so the container alone holds the ports.

import { rename, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { homeLayout } from '../../core/device/layout.ts';
import { grantsOf, type ContainerConfig, type DeviceConfig } from '../../core/device/config.ts';
import { detectEngine, type ContainerEngine } from './engine.ts';
import { containerId, prepareBundle, versionOfContainer } from './bundle.ts';
import { listeningHandIn } from './host-sockets.ts';

/** What the container code needs of a device: its home, its ferry.json (with a container section), an engine. */
export interface ContainerContext {
  home: string;
  config: DeviceConfig & { container: ContainerConfig };
  engine: ContainerEngine;
  log: (message: string) => void;
}

/** The engine ferry.json names (or the first that works), for a device with a container section. */
export interface ContainerContextOptions {
  /** The engine to use (default: detectEngine on ferry.json container.engine). */
  engine?: ContainerEngine;
  log?: (message: string) => void;
}

export async function containerContext(home: string, config: DeviceConfig & { container: ContainerConfig }, options: ContainerContextOptions = {}): Promise<ContainerContext> {
  const engine = options.engine ?? (await detectEngine(config.container, homeLayout(home)));
  return { home, config, engine, log: options.log ?? (() => {}) };
}

export function hasContainer(config: DeviceConfig): config is DeviceConfig & { container: ContainerConfig } {
  return config.container !== null && config.container !== undefined;
}

/** <home>/containers/<id>.log */
export function containerLog(home: string, id: string): string {
  return join(homeLayout(home).containers, `${id}.log`);
}

/** A log past this size is moved to <id>.log.1 when its container starts again (one old log kept). */
const LOG_ROTATE_BYTES = 1 << 20;

/** Starts `version`'s container (any stale container of that id is replaced); returns its id. */
export async function startVersion(ctx: ContainerContext, version: string): Promise<string> {
  const c = ctx.config.container;
  const bundle = await prepareBundle({
    home: ctx.home,
    version,
    container: c,
    grants: grantsOf(ctx.config),
    handedIn: { listenFds: c.listen.length, notifyFd: null },
  });
  const logFile = containerLog(ctx.home, bundle.id);
  const size = await stat(logFile).then((s) => s.size, () => 0);
  if (size > LOG_ROTATE_BYTES) await rename(logFile, `${logFile}.1`);
  // Bound when the engine spawns and closed right after (host-sockets.ts), ERR_USAGE if a port is taken.
  await ctx.engine.start({ id: bundle.id, bundle: bundle.dir, logFile, handIn: c.listen.length > 0 ? listeningHandIn(c.listen) : null });
  ctx.log(`started container ${bundle.id} (${ctx.engine.kind})`);
  return bundle.id;
}

/** Stops and deletes one container (quiet when it is not there). */
export async function stopContainer(ctx: ContainerContext, id: string): Promise<void> {
  await ctx.engine.stop(id, ctx.config.container.stopTimeoutMs);
  ctx.log(`stopped container ${id}`);
}

/**
 * This app's containers: every container in the engine's state for this home (runtimeStateDir and
 * podman's storage are the home's own, so all of them are ferry's for this app). Ids are
 * `<container.name>-<version>`; one under another name (ferry.json container.name changed since it
 * started) has version "" — it is still this app's, so reconcile, the switch and `container down`
 * stop it rather than leave a second copy of the app running beside the new name's.
 */
export async function ownContainers(ctx: ContainerContext): Promise<{ id: string; status: string; version: string }[]> {
  const name = ctx.config.container.name;
  return (await ctx.engine.list('')).map((c) => ({ ...c, version: versionOfContainer(name, c.id) ?? '' }));
}

export { containerId };
