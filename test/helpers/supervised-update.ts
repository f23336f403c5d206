// `ferry update` the way it runs once cli/device.ts asks a running supervisor for the health
// check: the device's sources and patcher, health = createSupervisorHealthCheck(home). Prints the
// ApplyResult as JSON; exits 10 (EXIT.rolledBack) on a rollback, like the CLI.
// Usage: node --import tsx test/helpers/supervised-update.ts <home> [health-timeout-ms]

import { homeLayout } from '../../core/device-layout.ts';
import { readDeviceConfig } from '../../core/device-config.ts';
import { Updater } from '../../core/updater.ts';
import { createBsdiffPatcher } from '../../plugins/bsdiff/patcher.ts';
import { createSupervisorHealthCheck } from '../../plugins/supervisor/health.ts';
import { sourcesFor } from './device.ts';

const home = process.argv[2];
if (!home) throw new Error('usage: supervised-update.ts <home> [timeout-ms]');
const timeoutMs = Number(process.argv[3] ?? 30_000);
const layout = homeLayout(home);
const config = await readDeviceConfig(layout.config);
const updater = await Updater.open({ home, sources: await sourcesFor(config.sources, layout), patcher: createBsdiffPatcher(), health: createSupervisorHealthCheck(home, timeoutMs) });
try {
  const result = await updater.apply({ trigger: 'manual' });
  process.stdout.write(JSON.stringify(result) + '\n');
  if (result.status === 'rolled-back') process.exitCode = 10;
} finally {
  await updater.close();
}
