// Bounded fuzzing (SECURITY.md rows 6, 13-16): a fixed seed and a fixed number of cases per target,
// so every run of the suite tries the same hostile inputs, built from real signed data made at test
// time. Each target runs in worker processes under a watchdog (campaign.ts); `npm run fuzz` runs
// the same targets longer with a fresh seed. A failing case is printed with the command that
// replays it.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { buildSeeds } from './seeds.ts';
import { reproducer, runCampaign, type CampaignResult } from './campaign.ts';
import { targetByName } from './targets.ts';
import { tempDir, type TempDir } from '../helpers/repo.ts';

const SEED = 0x5eed_f022;
/** Sized so the whole file stays well under a minute on the shared two-core machine. */
const CASES: Record<string, number> = { json: 2000, metadata: 1500, envelope: 400, bundle: 100, extract: 200, patch: 200, solid: 150 };
/** Distinct refusal codes each target must reach with that many cases (strict JSON has only two). */
const MIN_CODES: Record<string, number> = { json: 1, metadata: 3, envelope: 5, bundle: 4, extract: 2, patch: 2, solid: 2 };

let seeds: TempDir;
let work: TempDir;

function run(target: string, cases: number): Promise<CampaignResult> {
  return runCampaign({ target, seed: SEED, cases, seedsDir: seeds.path, workDir: work.path, env: { FERRY_UNSAFE_SKIP_FSYNC: '1' } });
}

function summary(r: CampaignResult): string {
  const outcomes = Object.entries(r.outcomes).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(', ');
  return `${r.target}: ${r.cases} cases in ${(r.ms / 1000).toFixed(1)} s (${outcomes})`;
}

const fuzz = suite('bounded fuzzing with a fixed seed');

fuzz.before(async () => {
  seeds = await buildSeeds();
  work = await tempDir('ferry-fuzz-work-');
});

fuzz.after(async () => {
  await work?.cleanup();
  await seeds?.cleanup();
});

const SENTENCES: Record<string, string> = {
  json: 'mutated envelopes and payloads given to parseStrictJson: each is refused with a FerryError or read exactly as JSON.parse reads it, with only safe integers and bounded depth',
  metadata: 'mutated root, channel and manifest payloads given to their parsers: each is refused with a FerryError or accepted as a document that survives a round trip',
  envelope: 'mutated, unsigned-edited and hostile re-signed envelopes verified against the real root: each is refused with a FerryError, and what verifies is exactly the payload that was signed',
  bundle: 'mutated .ferry bundles opened and read through: each is refused with a FerryError or yields only the signed root, channel, manifest and artifact bytes, and nothing is written outside staging',
  extract: 'mutated full and delta artifacts extracted with and without the signed file list: each is refused with a FerryError or yields exactly its files, no link or setuid file, nothing written outside staging',
  patch: 'issue 14 item 8: mutated FERRYBD1 patches (with and without the x86-64 branch filter) given to applyPatchEntry: each is refused with a FerryError (leaving no output) or builds exactly the signed size, never writing past it, and reports the hash of what it wrote (the genuine seeds: their own new bytes), leaving no filtered base behind',
  solid: 'issue 14 item 8: mutated FERRYSB1 solid blocks given to applyPatchEntry and applySolidMember: each is refused with a FerryError (leaving no output) or builds exactly the signed size, never writing past it, and reports the hash of what it wrote',
};

for (const [name, cases] of Object.entries(CASES)) {
  fuzz(`${SENTENCES[name]} (${cases} cases, no hang)`, async () => {
    const r = await run(name, cases);
    console.log(`  ${summary(r)}`);
    const findings = r.findings.map((f) => `case ${f.index} (${f.kind}): ${f.message.split('\n')[0]}\n    replay: ${reproducer(f)}`);
    assert.equal(findings, [], `${targetByName(name).what}:\n${findings.join('\n')}`);
    assert.is(r.cases, cases, 'every case ran');
    // The inputs must reach past the first check: some are accepted, and they are refused for
    // more than one reason (a fuzzer whose every input dies at the same check tests nothing).
    assert.ok((r.outcomes.accepted ?? 0) + (r.outcomes['accepted (no channel)'] ?? 0) > 0, `no case was accepted: ${summary(r)}`);
    assert.ok(Object.keys(r.outcomes).filter((k) => k.startsWith('ERR_')).length >= MIN_CODES[name]!, `fewer than ${MIN_CODES[name]} refusal codes: ${summary(r)}`);
  });
}

fuzz('regression found by fuzzing (envelope, seed 438783825, case 137): a channel pointer with 3,000 forged signatures naming the trusted release key ahead of the real one is refused (ERR_SIGNATURE) without a hang; behind the real one it verifies', async () => {
  const r = await run('regress', 2);
  assert.equal(r.findings.map((f) => `case ${f.index} (${f.kind}): ${f.message.split('\n')[0]}`), []);
  assert.equal(r.outcomes, { ERR_SIGNATURE: 1, accepted: 1 });
});

fuzz('the runner has teeth: a planted non-FerryError, a synchronous hang, a write outside staging and a crash are each reported at their case index, and the run goes on', async () => {
  const r = await run('selftest', 5);
  assert.equal(r.findings.map((f) => [f.index, f.kind]), [[1, 'non-FerryError'], [2, 'hang'], [3, 'write-outside-staging'], [4, 'crash']]);
  assert.equal(r.outcomes, { ERR_JSON: 1 });
  assert.is(r.cases, 5);
  assert.match(r.findings[2]!.message, /sibling\/planted\.txt/);
});

fuzz.run();
