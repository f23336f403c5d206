// The device-level container operations behind `ferry container up|down|status` and the agent's
// start: each opens the device (taking its lock, so no update runs meanwhile, and running the
// updater's recovery first, which may move `current` back after a kill or power cut), then
// reconciles, stops or reports the containers (reconcile.ts). ERR_USAGE when ferry.json has no
// `container` section.

import { readDeviceConfig, type ContainerConfig, type DeviceConfig } from '../../core/device/config.ts';
import { homeLayout } from '../../core/device/layout.ts';
import { FerryError } from '../../core/errors.ts';
import { withDevice, type OpenDeviceOptions } from '../open-device.ts';
import { containerReport, reconcileContainers, refuseWhileSupervised, stopAllContainers, type ContainerReport, type ReconcileResult } from './reconcile.ts';
import { containerContext, hasContainer, type ContainerContext, type ContainerContextOptions } from './start-container.ts';

async function withContainers<T>(home: string, options: ContainerContextOptions & Pick<OpenDeviceOptions, 'log'>, fn: (ctx: ContainerContext) => Promise<T>): Promise<T> {
  const config: DeviceConfig = await readDeviceConfig(homeLayout(home).config);
  if (!hasContainer(config)) throw new FerryError('ERR_USAGE', `${homeLayout(home).config} has no "container" section: this device's app is not an image`);
  const c: DeviceConfig & { container: ContainerConfig } = config;
  return withDevice(home, async () => fn(await containerContext(home, c, options)), options.log ? { log: options.log } : {});
}

/** `ferry container up`: recovery, then exactly the container of `current` runs. */
export async function containersUp(home: string, options: ContainerContextOptions = {}): Promise<ReconcileResult> {
  await refuseWhileSupervised(home);
  return withContainers(home, options, reconcileContainers);
}

/** `ferry container down`: every container of this app stopped and deleted; returns their ids. */
export function containersDown(home: string, options: ContainerContextOptions = {}): Promise<string[]> {
  return withContainers(home, options, stopAllContainers);
}

/** `ferry container status`: the engine, `current`, and this app's containers. */
export function containersStatus(home: string, options: ContainerContextOptions = {}): Promise<ContainerReport> {
  return withContainers(home, options, containerReport);
}
