// The `ferry` command with test seams: the same runCli as the executable (dist/cli/ferry.js), but
// handed a kill point, a clock and an fsync skip list built from THIS process's environment. The
// library and the executable never read these variables (cli/seams.ts); only tests spawn this
// file, in place of dist/cli/ferry.js, when they need one of them (run `npm run build` first):
//   FERRY_TEST_KILL_AT=<when>:<phase>   SIGKILL this process right there, e.g. "after:switching"
//                                        (journaled, side effect not yet done) or "before:committed"
//   FERRY_TEST_CLOCK_START=<ISO instant> the device's and the agent's clock reads that instant when
//                                        the process starts, then moves in real time (timers, the
//                                        disk and the network stay real)
//   FERRY_UNSAFE_SKIP_FSYNC=1 | <site>,… those fsync sites become no-ops (core/io/durable.ts)
// Plain JavaScript, so it runs on the built code with no tsx.

import { parseFsyncSkip, skipFsyncAt } from '../../dist/core/io/durable.js';

/** @returns {((when: 'before' | 'after', phase: string) => void) | undefined} */
function killPointFrom(value) {
  if (!value) return undefined;
  if (!/^(before|after):[a-z-]+$/.test(value)) throw new Error(`FERRY_TEST_KILL_AT is not <before|after>:<phase>: ${value}`);
  return (when, phase) => {
    if (value === `${when}:${phase}`) process.kill(process.pid, 'SIGKILL');
  };
}

/** @returns {(() => Date) | undefined} */
function clockFrom(value) {
  if (!value) return undefined;
  const at = Date.parse(value);
  if (!Number.isFinite(at)) throw new Error(`FERRY_TEST_CLOCK_START is not an instant: ${value}`);
  const started = Date.now();
  return () => new Date(at + (Date.now() - started));
}

const env = process.env;
try {
  skipFsyncAt(parseFsyncSkip(env.FERRY_UNSAFE_SKIP_FSYNC ?? ''));
} catch (err) {
  throw new Error(`FERRY_UNSAFE_SKIP_FSYNC ${err.message}`);
}
const killPoint = killPointFrom(env.FERRY_TEST_KILL_AT);
const clock = clockFrom(env.FERRY_TEST_CLOCK_START);

// Imported only now, so nothing the CLI loads can act before the seams are in place.
const { runCli } = await import('../../dist/cli/main.js');
await runCli(process.argv.slice(2), { ...(killPoint ? { killPoint } : {}), ...(clock ? { clock } : {}) });
