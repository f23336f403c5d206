// One update run the way `ferry agent` runs it: inside a process that has already loaded ferry, so
// the update pays no start-up. Run by bench/lib/in-process.ts (plain node, no tsx: it imports the
// built library, dist/, as an embedding program would):
//
//   node bench/lib/in-process-update.mjs <home>
//
// 1. Loads the code (after cli/young-generation.js, as the agent's entry point does): plugins/open-device.js, and core/device/stage.js, which the updater imports on
//    its first stage (an agent has it loaded after its first update), then prints
//    `ready {"loadMs", "hwmKiB"}` (VmHWM: the peak resident memory so far).
// 2. Waits for a line `go` on stdin: the parent settles the disk first, untimed.
// 3. Runs one agent round's update: withDevice(home, apply) — open the home (lock, LevelDB, recovery),
//    apply (check, fetch, stage, verify, switch), close — and prints `result {"ms", "hwmKiB",
//    "loadedHwmKiB", "result"}`: the elapsed ms of that round, the process's peak resident memory
//    (VmHWM) at the end and after the load, and what apply returned.

import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';

/** The process's peak resident set so far, KiB (VmHWM in /proc/self/status). */
function hwmKiB() {
  const m = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'));
  if (!m) throw new Error('no VmHWM in /proc/self/status');
  return Number(m[1]);
}

const home = process.argv[2];
if (!home) throw new Error('usage: node bench/lib/in-process-update.mjs <home>');

// `ferry agent` runs through the CLI's entry point, which caps V8's young generation first
// (cli/young-generation.ts); so does this process, to measure what the agent does.
await import('../../dist/cli/young-generation.js');
const loadStart = performance.now();
const { withDevice } = await import('../../dist/plugins/open-device.js');
await import('../../dist/core/device/stage.js');
const loadMs = performance.now() - loadStart;
const loadedHwmKiB = hwmKiB();
process.stdout.write(`ready ${JSON.stringify({ loadMs, hwmKiB: loadedHwmKiB })}\n`);

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  if (line.trim() === 'go') break;
}
lines.close();

const start = performance.now();
const result = await withDevice(home, (u) => u.apply({ trigger: 'auto' }));
const ms = performance.now() - start;
process.stdout.write(`result ${JSON.stringify({ ms, hwmKiB: hwmKiB(), loadedHwmKiB, result })}\n`);
