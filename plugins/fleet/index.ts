// `ferry/plugins/fleet`: the routes that carry device reports off a device — the HTTP endpoint,
// the USB stick, and all of them at once (LAN peers: `ferry/plugins/lan`).
export { putReport } from './http-report.ts';
export { writeReportsToStick, stickPresent, STICK_REPORTS_MAX_BYTES } from './stick-reports.ts';
export { deliverReports, type DeliverInput, type Delivery } from './deliver-reports.ts';
