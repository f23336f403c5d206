// `ferry/plugins/health`: HealthCheck implementations — a command (exit 0 is healthy) and an HTTP
// URL (a 2xx answer is healthy), each bounded by its deadline.

export { createCommandHealthCheck } from './command.ts';
export { createHttpHealthCheck } from './http.ts';
