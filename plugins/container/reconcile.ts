// Reconcile: exactly the container of `current` runs, and no other container of this app — what a
// device comes back to after a kill or a power cut during a container switch (ARCHITECTURE.md
// "Containers"; SECURITY.md rows 18-20 for the file side). Run it holding the home's lock AFTER the
// updater's recovery (which may move `current` back), as the agent does when it starts and
// `ferry container up` does. Idempotent: a second run finds nothing to do.
// Bundles of versions no longer installed (cleanup removed their releases) are removed too.

import { readdir } from 'node:fs/promises';
import { FerryError } from '../../core/errors.ts';
import { supervisorRunning } from '../run/health.ts';
import { readCurrent } from '../../core/device/switch.ts';
import { homeLayout } from '../../core/device/layout.ts';
import { removeBundlesExcept, containerId } from './bundle.ts';
import { readDeviceConfig } from '../../core/device/config.ts';
import { containerContext, hasContainer, ownContainers, startVersion, stopContainer, type ContainerContext, type ContainerContextOptions } from './start-container.ts';

export interface ReconcileResult {
  /** The version of `current` (null: nothing installed). */
  version: string | null;
  /** The container running it afterwards (null: nothing installed). */
  running: string | null;
  /** Whether it had to be started. */
  started: boolean;
  /** Containers stopped and deleted (other versions, exited ones). */
  stopped: string[];
}

/**
 * Reconciles the device at `home` (see the file header); null when its ferry.json has no
 * `container` section (nothing to run). The caller holds the home's lock, after recovery.
 */
export async function ensureCurrentContainer(home: string, options: ContainerContextOptions = {}): Promise<ReconcileResult | null> {
  const config = await readDeviceConfig(homeLayout(home).config);
  if (!hasContainer(config)) return null;
  await refuseWhileSupervised(home);
  return reconcileContainers(await containerContext(home, config, options));
}

/**
 * ERR_BUSY while `ferry run --container` supervises `home`: its generations are the app's containers
 * (under its own runc root), so a reconcile would start a second copy beside them, one that could not
 * take container.listen anyway.
 */
export async function refuseWhileSupervised(home: string): Promise<void> {
  if (await supervisorRunning(home)) {
    throw new FerryError('ERR_BUSY', `ferry run --container supervises ${home}: its supervisor runs the container of current (stop it to manage containers here)`);
  }
}

/** ensureCurrentContainer for an opened context. */
export async function reconcileContainers(ctx: ContainerContext): Promise<ReconcileResult> {
  const layout = homeLayout(ctx.home);
  const version = await readCurrent(layout);
  const want = version === null ? null : containerId(ctx.config.container.name, version);
  const stopped: string[] = [];
  let keep = false;
  for (const c of await ownContainers(ctx)) {
    if (c.id === want && c.status === 'running') {
      keep = true;
      continue;
    }
    await stopContainer(ctx, c.id);
    stopped.push(c.id);
  }
  const installed = new Set(await readdir(layout.releases).catch(() => [] as string[]));
  await removeBundlesExcept(ctx.home, installed);
  if (version === null) return { version, running: null, started: false, stopped };
  if (!keep) await startVersion(ctx, version);
  return { version, running: want, started: !keep, stopped };
}

/** Stops and deletes every container of this app (`ferry container down`); returns their ids. */
export async function stopAllContainers(ctx: ContainerContext): Promise<string[]> {
  const out: string[] = [];
  for (const c of await ownContainers(ctx)) {
    await stopContainer(ctx, c.id);
    out.push(c.id);
  }
  return out;
}

export interface ContainerReport {
  engine: string;
  current: string | null;
  containers: { id: string; version: string; status: string; current: boolean }[];
}

/** What runs, for `ferry container status`. */
export async function containerReport(ctx: ContainerContext): Promise<ContainerReport> {
  const current = await readCurrent(homeLayout(ctx.home));
  const containers = (await ownContainers(ctx)).map((c) => ({ id: c.id, version: c.version, status: c.status, current: c.version === current }));
  return { engine: ctx.engine.kind, current, containers };
}
