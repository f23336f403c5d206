// The child process that runs fuzz cases (started by campaign.ts with an IPC channel). It loads
// the seed corpus, makes its sandbox, and runs cases [from, to) of one target in order, telling
// the parent when each starts and how it ended. Running here, not in the test process, means a
// case that hangs (even in a synchronous loop) or crashes the process is stopped and reported by
// the parent, which then starts a fresh worker after that case.

import { caseSeed, makeRng } from './mutate.ts';
import { makeSandbox, type Sandbox } from './sandbox.ts';
import { loadSeeds } from './seeds.ts';
import { Finding, targetByName } from './targets.ts';
import { parseFsyncSkip, skipFsyncAt } from '../../core/io/durable.ts';

// The fuzz runs ask for FERRY_UNSAFE_SKIP_FSYNC (fsync is not what fuzzing checks); the library
// never reads it, so this test process sets the seam itself.
skipFsyncAt(parseFsyncSkip(process.env.FERRY_UNSAFE_SKIP_FSYNC ?? ''));

export interface Job {
  target: string;
  seed: number;
  from: number;
  to: number;
  /** Start no case after this time (epoch ms); 0 for no limit. */
  until: number;
  seedsDir: string;
  /** Sandboxes go in here; the parent removes it (a killed worker cannot clean up). */
  workDir: string;
}

export type WorkerMessage =
  | { t: 'ready' }
  | { t: 'start'; i: number }
  | { t: 'done'; i: number; outcome: string }
  | { t: 'finding'; i: number; kind: string; message: string }
  | { t: 'end' };

function send(message: WorkerMessage): Promise<void> {
  return new Promise((resolve) => {
    if (!process.send) throw new Error('test/fuzz/worker.ts must be started with an IPC channel (campaign.ts does)');
    process.send(message, undefined, undefined, () => resolve());
  });
}

async function run(job: Job): Promise<void> {
  const target = targetByName(job.target);
  let current = -1;
  let sandbox: Sandbox | undefined;
  // An exception no case awaited (an 'error' event nobody listens to, a throw in a timer) would
  // kill the process silently: it is reported against the case that was running.
  const crash = (err: unknown) => {
    const e = err as Error;
    void send({ t: 'finding', i: current, kind: 'crash', message: `uncaught ${e?.name ?? ''}: ${e?.message ?? String(err)}\n${e?.stack?.split('\n').slice(1, 6).join('\n') ?? ''}` })
      .then(() => process.exit(1));
  };
  process.on('uncaughtException', crash);
  process.on('unhandledRejection', crash);

  const seeds = await loadSeeds(job.seedsDir);
  sandbox = await makeSandbox(job.workDir);
  const runCase = await target.prepare(seeds, sandbox);
  await send({ t: 'ready' });
  for (let i = job.from; i < job.to && (job.until === 0 || Date.now() < job.until); i++) {
    current = i;
    await send({ t: 'start', i });
    try {
      await send({ t: 'done', i, outcome: await runCase(makeRng(caseSeed(job.seed, target.name, i)), i) });
    } catch (err) {
      const e = err as Error;
      await send({ t: 'finding', i, kind: err instanceof Finding ? err.kind : 'harness', message: err instanceof Finding ? e.message : `${e?.name}: ${e?.message}\n${e?.stack ?? ''}` });
    }
  }
  await sandbox.cleanup();
  await send({ t: 'end' });
  process.exit(0);
}

process.once('message', (job: Job) => {
  run(job).catch((err: Error) => {
    process.stderr.write(`fuzz worker failed outside a case: ${err?.stack ?? String(err)}\n`);
    process.exit(2);
  });
});
