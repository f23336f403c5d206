// `ferry/plugins/run`: `ferry run`'s parts for programs that embed the supervisor — the Supervisor
// (the spec's GracefulUpdater), its control socket client, the health check `ferry update` uses
// while it runs, and socket activation (the sockets systemd passes). An app served by ferry wants `ferry/app`.

export { Supervisor, type SupervisorOptions } from './supervisor.ts';
export { requestSupervisor, controlSocketPath, type SupervisorStatus, type GenerationInfo } from './control.ts';
export { createSupervisorHealthCheck, supervisorRunning } from './health.ts';
export { takeSystemdListenFds, resolveListen, type InheritedFd, type ListenSocket } from './listen-fds.ts';
export { parseListen, chooseReadiness, DEFAULT_BACKOFF, type ListenAddress, type Readiness, type BackoffPolicy } from './supervision.ts';
