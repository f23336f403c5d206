// `npm run fuzz`: the fuzz targets of the test suite, run longer and with a fresh seed.
//
//   npm run fuzz -- [--seconds 60] [--cases N] [--seed S] [--target json,extract]
//   npm run fuzz -- --target extract --seed S --case I      replays one case
//
// Prints the seed, each target's case count and outcomes, and every finding with the command
// that replays it; exits 1 when there is a finding. --seconds bounds the whole run (split evenly
// between the targets), --cases bounds each target.

import { parseArgs } from 'node:util';
import { buildSeeds } from './seeds.ts';
import { reproducer, runCampaign, type CampaignResult } from './campaign.ts';
import { TARGETS, targetByName } from './targets.ts';
import { tempDir } from '../helpers/repo.ts';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '60' },
    cases: { type: 'string' },
    seed: { type: 'string' },
    target: { type: 'string' },
    case: { type: 'string' },
  },
});

function count(name: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 0) {
    console.error(`--${name} must be a whole number, got "${text}"`);
    process.exit(64);
  }
  return n;
}

const seed = count('seed', values.seed, Date.now() % 2 ** 32);
const seconds = count('seconds', values.seconds, 60);
const replay = values.case === undefined ? undefined : count('case', values.case, 0);
const targets = values.target ? values.target.split(',').map((n) => targetByName(n.trim())) : [...TARGETS];
const casesPerTarget = replay !== undefined ? 1 : count('cases', values.cases, 1_000_000);
const secondsPerTarget = Math.max(1, seconds / targets.length);

console.log(`ferry fuzz: seed ${seed}; targets ${targets.map((t) => t.name).join(', ')}; ` +
  (replay !== undefined ? `replaying case ${replay}` : `at most ${casesPerTarget} cases per target, ${seconds} s in all`));

const seeds = await buildSeeds();
const work = await tempDir('ferry-fuzz-work-');
const results: CampaignResult[] = [];
try {
  for (const t of targets) {
    const r = await runCampaign({
      target: t.name,
      seed,
      cases: casesPerTarget,
      ...(replay !== undefined ? { from: replay } : { seconds: secondsPerTarget }),
      seedsDir: seeds.path,
      workDir: work.path,
      // fsync is not what fuzzing checks; skipping it lets many more cases run.
      env: { FERRY_UNSAFE_SKIP_FSYNC: '1' },
    });
    results.push(r);
    const outcomes = Object.entries(r.outcomes).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(', ');
    console.log(`${t.name.padEnd(9)} ${String(r.cases).padStart(7)} cases in ${(r.ms / 1000).toFixed(1)} s; ${r.findings.length} finding(s); ${outcomes}`);
  }
} finally {
  await work.cleanup();
  await seeds.cleanup();
}

const findings = results.flatMap((r) => r.findings);
for (const f of findings) {
  console.log(`\nFINDING ${f.target} case ${f.index} (${f.kind})\n  ${f.message.split('\n').join('\n  ')}\n  replay: ${reproducer(f)}`);
}
console.log(`\n${results.reduce((n, r) => n + r.cases, 0)} cases, ${findings.length} finding(s), seed ${seed}`);
process.exit(findings.length > 0 ? 1 : 0);
