// The health-check port: after a switch, is the new release working? Implementations live in
// plugins/health (a command, an HTTP URL); `ferry run` supplies its own (the new process became
// ready). Deadline handling is the implementation's job: check() always settles in its timeout.

export interface HealthResult {
  healthy: boolean;
  detail: string;
}

export interface HealthCheck {
  check(target: { version: string; dir: string }): Promise<HealthResult>;
}
