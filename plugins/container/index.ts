// ferry/plugins/container: running image releases on the device (ARCHITECTURE.md "Containers") —
// engine detection (runc via umoci, podman), the runtime bundle of a version, the container switch
// as the health-check port, and reconcile (exactly the container of `current` runs).

export { detectEngine, defaultProbe, runcRoot, runtimeStateDir, type ContainerEngine, type ContainerStatus, type HandIn, type StartRequest, type ExecResult, type EngineDirs, type Probe } from './engine.ts';
export { prepareBundle, containerId, versionOfContainer, bundleDir, removeBundlesExcept, type PreparedBundle, type PrepareBundleInput } from './bundle.ts';
export { runtimeSpec, imageArgs, mergeEnv, handoverEnv, numericUser, DEFAULT_CAPABILITIES, ALL_CAPABILITIES, NOTHING_HANDED_IN, type RuntimeSpecInput, type OciRuntimeConfig, type ImageConfig, type HandedIn } from './runtime-spec.ts';
export { readLayoutImage, type LayoutImage } from './image-layout.ts';
export { listenOn, listeningHandIn, type ListeningSockets } from './host-sockets.ts';
export { createRuncEngine } from './runc.ts';
export { createPodmanEngine, podmanGlobalArgs, podmanRunArgs } from './podman.ts';
export { createContainerSwitch, checkContainer, type ContainerSwitchOptions } from './container-switch.ts';
export { ensureCurrentContainer, reconcileContainers, stopAllContainers, containerReport, type ReconcileResult, type ContainerReport } from './reconcile.ts';
export { containerContext, hasContainer, startVersion, stopContainer, ownContainers, containerLog, type ContainerContext, type ContainerContextOptions } from './start-container.ts';
export { containersUp, containersDown, containersStatus } from './device-containers.ts';
