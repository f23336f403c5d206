// Runs one target's cases in worker processes under a watchdog: each case must finish within the
// target's deadline, or the worker is killed (by its pid), the case reported as a hang, and a new
// worker started after it. A worker that dies mid-case is reported as a crash the same way. Used
// by the test suite (fixed seed and count) and by `npm run fuzz` (a longer, time-bounded run).

import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Job, WorkerMessage } from './worker.ts';
import { targetByName } from './targets.ts';

const WORKER = fileURLToPath(new URL('./worker.ts', import.meta.url));
/** Loading the seeds and making the sandbox, on a busy machine. */
const SETUP_DEADLINE_MS = 120_000;
/** A run where every case kills its worker stops here rather than restarting forever. */
const MAX_WORKERS = 25;

export interface FindingReport {
  target: string;
  seed: number;
  index: number;
  kind: string;
  message: string;
}

export interface CampaignResult {
  target: string;
  seed: number;
  /** Cases that ran to an outcome or a finding. */
  cases: number;
  /** How many cases ended each way: "accepted" or a FerryError code. */
  outcomes: Record<string, number>;
  findings: FindingReport[];
  ms: number;
}

export interface CampaignOptions {
  target: string;
  seed: number;
  /** Cases [from, from + cases). */
  cases: number;
  from?: number;
  /** Start no case after this many ms from now. */
  seconds?: number;
  seedsDir: string;
  workDir: string;
  /** Extra environment for the workers. */
  env?: NodeJS.ProcessEnv;
}

/** The command that replays one case. */
export function reproducer(f: Pick<FindingReport, 'target' | 'seed' | 'index'>): string {
  return `npm run fuzz -- --target ${f.target} --seed ${f.seed} --case ${f.index}`;
}

export async function runCampaign(o: CampaignOptions): Promise<CampaignResult> {
  const started = Date.now();
  const deadlineMs = targetByName(o.target).deadlineMs;
  const end = (o.from ?? 0) + o.cases;
  const until = o.seconds === undefined ? 0 : started + o.seconds * 1000;
  const result: CampaignResult = { target: o.target, seed: o.seed, cases: 0, outcomes: {}, findings: [], ms: 0 };
  const ran = new Set<number>();

  let next = o.from ?? 0;
  for (let workers = 0; next < end && (until === 0 || Date.now() < until); workers++) {
    if (workers >= MAX_WORKERS) throw new Error(`fuzz ${o.target}: ${MAX_WORKERS} workers died; giving up (see the findings so far)`);
    const job: Job = { target: o.target, seed: o.seed, from: next, to: end, until, seedsDir: o.seedsDir, workDir: o.workDir };
    next = await runWorker(job, deadlineMs, {
      done: (i, outcome) => { ran.add(i); result.outcomes[outcome] = (result.outcomes[outcome] ?? 0) + 1; },
      finding: (index, kind, message) => { ran.add(index); result.findings.push({ target: o.target, seed: o.seed, index, kind, message }); },
    }, o.env);
  }
  result.cases = ran.size;
  result.ms = Date.now() - started;
  return result;
}

/** Runs one worker until it ends or dies; returns the next case index to run. */
function runWorker(job: Job, deadlineMs: number, on: { done(i: number, outcome: string): void; finding(i: number, kind: string, message: string): void }, env: NodeJS.ProcessEnv = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const child: ChildProcess = fork(WORKER, [], {
      execArgv: ['--import', 'tsx'],
      env: { ...process.env, ...env },
      stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
    });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => { stderr = (stderr + d.toString()).slice(-4000); });
    let current = -1; // the case running, -1 between cases
    let last = job.from - 1; // the last case that ended
    let reported = false; // the running case already has its finding (crash reported by the worker)
    let ended = false;
    let timer: NodeJS.Timeout | undefined;
    const arm = (ms: number, what: () => void) => { clearTimeout(timer); timer = setTimeout(what, ms); };

    arm(SETUP_DEADLINE_MS, () => { child.kill('SIGKILL'); reject(new Error(`fuzz ${job.target}: the worker did not start within ${SETUP_DEADLINE_MS} ms\n${stderr}`)); });
    child.on('message', (m: WorkerMessage) => {
      switch (m.t) {
        case 'ready': clearTimeout(timer); break;
        case 'start':
          current = m.i;
          reported = false;
          arm(deadlineMs, () => {
            on.finding(m.i, 'hang', `case still running after ${deadlineMs} ms; worker (pid ${child.pid}) killed`);
            reported = true;
            child.kill('SIGKILL');
          });
          break;
        case 'done':
          clearTimeout(timer);
          on.done(m.i, m.outcome);
          last = m.i; current = -1;
          break;
        case 'finding':
          clearTimeout(timer);
          if (!reported) on.finding(m.i, m.kind, m.message);
          reported = true;
          if (m.kind !== 'crash') { last = m.i; current = -1; }
          break;
        case 'end': ended = true; break;
      }
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (ended) return resolve(job.to);
      if (last < job.from && current < 0 && !reported) {
        return reject(new Error(`fuzz ${job.target}: the worker exited (${signal ?? code}) before running a case\n${stderr}`));
      }
      if (current >= 0) {
        if (!reported) on.finding(current, 'crash', `worker exited (${signal ?? `code ${code}`}) during the case\n${stderr.slice(-1500)}`);
        return resolve(current + 1);
      }
      // Exited between cases: the time budget ran out, or it crashed after a case ended.
      resolve(job.until !== 0 && Date.now() >= job.until ? job.to : last + 1);
    });
    child.send(job);
  });
}
