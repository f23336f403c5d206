// Update planning as a table: full artifact, one delta or a chain of deltas, whichever downloads
// fewest bytes, with cached artifacts free, ties going to fewer moving parts, and chains bounded
// in length. Fixtures are TargetRelease objects with fake hashes: planning never reads bytes.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { ArtifactRef, DeltaOp, TargetRelease } from '../../core/trust/metadata.ts';
import { planUpdate, type Plan } from '../../core/update/plan.ts';
import { assertCode } from '../helpers/assert-code.ts';

/** 64 hex chars that name `label` (not a hash of anything); labels are at most 32 characters. */
function fakeHash(label: string): string {
  if (label.length > 32) throw new Error(`label too long for a fake hash: ${label}`);
  return Buffer.from(label).toString('hex').padEnd(64, '0');
}

function artifact(label: string, size: number): ArtifactRef {
  return { path: `${label}.tar`, size, sha256: fakeHash(label), chunkSize: 1 << 20, chunks: [fakeHash(`${label}#0`)] };
}

const fullLabel = (v: string): string => `full-${v}`;
const deltaLabel = (from: string, to: string): string => `d-${from}-${to}`;

/** Compact fixture: version -> full size and the delta sizes listed in that release, by base version. */
type ReleaseSpec = Record<string, { full: number; deltas?: Record<string, number> }>;

function releases(spec: ReleaseSpec): Map<string, TargetRelease> {
  const map = new Map<string, TargetRelease>();
  for (const [version, r] of Object.entries(spec)) {
    const ops: DeltaOp[] = [{ op: 'copy', path: 'app', from: 'app', sha256: fakeHash(`app-${version}`) }];
    map.set(version, {
      files: [{ path: 'app', size: 1, sha256: fakeHash(`app-${version}`), mode: 0o644 }],
      full: artifact(fullLabel(version), r.full),
      deltas: Object.entries(r.deltas ?? {}).map(([from, size]) => ({ from, artifact: artifact(deltaLabel(from, version), size), ops })),
    });
  }
  return map;
}

/** Cache entries named like the fixture: 'full-1.1.0' or 'd-1.0.0-1.1.0'. */
const cache = (...labels: string[]): Set<string> => new Set(labels.map(fakeHash));

interface PlanCase {
  name: string;
  input: { installed: string | null; target: string; releases: ReleaseSpec; cached?: string[]; maxHops?: number };
  /** `via` lists every version the plan passes through, installed first and target last. */
  expected: { kind: 'full'; bytes: number } | { kind: 'delta' | 'chain'; bytes: number; via: string[] };
}

// A straight line of releases 1.0.0 -> 1.1.0 -> ... -> 1.<n>.0, each delta `size` bytes, fulls 10 000.
function line(n: number, size: number, extra: ReleaseSpec = {}): ReleaseSpec {
  const spec: ReleaseSpec = {};
  for (let i = 1; i <= n; i++) spec[`1.${i}.0`] = { full: 10_000, deltas: { [`1.${i - 1}.0`]: size } };
  return { ...spec, ...extra };
}

const planCases: PlanCase[] = [
  { name: 'no installed version: full', input: { installed: null, target: '1.1.0', releases: { '1.1.0': { full: 1000, deltas: { '1.0.0': 10 } } } }, expected: { kind: 'full', bytes: 1000 } },
  { name: 'installed is already the target: full (a repair)', input: { installed: '1.1.0', target: '1.1.0', releases: { '1.1.0': { full: 1000, deltas: { '1.1.0': 10 } } } }, expected: { kind: 'full', bytes: 1000 } },
  { name: 'a delta smaller than the full artifact: delta', input: { installed: '1.0.0', target: '1.1.0', releases: { '1.1.0': { full: 1000, deltas: { '1.0.0': 100 } } } }, expected: { kind: 'delta', bytes: 100, via: ['1.0.0', '1.1.0'] } },
  { name: 'a delta larger than the full artifact: full', input: { installed: '1.0.0', target: '1.1.0', releases: { '1.1.0': { full: 1000, deltas: { '1.0.0': 1200 } } } }, expected: { kind: 'full', bytes: 1000 } },
  { name: 'tie between full and delta: full', input: { installed: '1.0.0', target: '1.1.0', releases: { '1.1.0': { full: 1000, deltas: { '1.0.0': 1000 } } } }, expected: { kind: 'full', bytes: 1000 } },
  { name: 'no delta from the installed version: full', input: { installed: '1.0.0', target: '1.2.0', releases: { '1.2.0': { full: 1000, deltas: { '1.1.0': 10 } } } }, expected: { kind: 'full', bytes: 1000 } },
  {
    name: 'a chain when there is no direct delta',
    input: { installed: '1.0.0', target: '1.2.0', releases: { '1.1.0': { full: 900, deltas: { '1.0.0': 100 } }, '1.2.0': { full: 1000, deltas: { '1.1.0': 150 } } } },
    expected: { kind: 'chain', bytes: 250, via: ['1.0.0', '1.1.0', '1.2.0'] },
  },
  {
    name: 'a chain that costs more than the full artifact: full',
    input: { installed: '1.0.0', target: '1.2.0', releases: { '1.1.0': { full: 900, deltas: { '1.0.0': 600 } }, '1.2.0': { full: 1000, deltas: { '1.1.0': 500 } } } },
    expected: { kind: 'full', bytes: 1000 },
  },
  {
    name: 'a chain cheaper than the direct delta: chain',
    input: { installed: '1.0.0', target: '1.2.0', releases: { '1.1.0': { full: 900, deltas: { '1.0.0': 100 } }, '1.2.0': { full: 1000, deltas: { '1.0.0': 600, '1.1.0': 150 } } } },
    expected: { kind: 'chain', bytes: 250, via: ['1.0.0', '1.1.0', '1.2.0'] },
  },
  {
    name: 'tie between delta and chain: delta',
    input: { installed: '1.0.0', target: '1.2.0', releases: { '1.1.0': { full: 900, deltas: { '1.0.0': 100 } }, '1.2.0': { full: 1000, deltas: { '1.1.0': 150, '1.0.0': 250 } } } },
    expected: { kind: 'delta', bytes: 250, via: ['1.0.0', '1.2.0'] },
  },
  {
    name: 'tie between two chains: fewer hops',
    input: { installed: '1.0.0', target: '1.3.0', releases: line(3, 50, { '1.3.0': { full: 1000, deltas: { '1.2.0': 100, '1.1.0': 150 } } }) },
    expected: { kind: 'chain', bytes: 200, via: ['1.0.0', '1.1.0', '1.3.0'] },
  },
  {
    name: 'tie between two deltas to the same version: the first listed',
    input: { installed: '1.0.0', target: '1.3.0', releases: { '1.1.0': { full: 900, deltas: { '1.0.0': 100 } }, '1.2.0': { full: 900, deltas: { '1.0.0': 100 } }, '1.3.0': { full: 1000, deltas: { '1.2.0': 100, '1.1.0': 100 } } } },
    expected: { kind: 'chain', bytes: 200, via: ['1.0.0', '1.2.0', '1.3.0'] },
  },
  {
    name: 'a chain may pass through an older version when that is cheapest',
    input: { installed: '1.2.0', target: '1.3.0', releases: { '1.1.0': { full: 900, deltas: { '1.2.0': 10 } }, '1.3.0': { full: 1000, deltas: { '1.1.0': 20, '1.2.0': 500 } } } },
    expected: { kind: 'chain', bytes: 30, via: ['1.2.0', '1.1.0', '1.3.0'] },
  },

  { name: 'a cached full artifact costs 0: full', input: { installed: '1.0.0', target: '1.1.0', releases: { '1.1.0': { full: 1000, deltas: { '1.0.0': 100 } } }, cached: [fullLabel('1.1.0')] }, expected: { kind: 'full', bytes: 0 } },
  {
    name: 'a cached delta costs 0 and beats a smaller chain',
    input: { installed: '1.0.0', target: '1.2.0', releases: { '1.1.0': { full: 900, deltas: { '1.0.0': 100 } }, '1.2.0': { full: 1000, deltas: { '1.0.0': 600, '1.1.0': 150 } } }, cached: [deltaLabel('1.0.0', '1.2.0')] },
    expected: { kind: 'delta', bytes: 0, via: ['1.0.0', '1.2.0'] },
  },
  {
    name: 'a cached hop makes a chain cheapest',
    input: { installed: '1.0.0', target: '1.2.0', releases: { '1.1.0': { full: 900, deltas: { '1.0.0': 400 } }, '1.2.0': { full: 1000, deltas: { '1.0.0': 300, '1.1.0': 150 } } }, cached: [deltaLabel('1.0.0', '1.1.0')] },
    expected: { kind: 'chain', bytes: 150, via: ['1.0.0', '1.1.0', '1.2.0'] },
  },
  {
    name: 'everything cached: full wins the tie at 0 bytes',
    input: { installed: '1.0.0', target: '1.1.0', releases: { '1.1.0': { full: 1000, deltas: { '1.0.0': 100 } } }, cached: [fullLabel('1.1.0'), deltaLabel('1.0.0', '1.1.0')] },
    expected: { kind: 'full', bytes: 0 },
  },
  {
    name: 'an intermediate release’s cached full artifact does not count for the target',
    input: { installed: '1.0.0', target: '1.2.0', releases: { '1.1.0': { full: 900, deltas: { '1.0.0': 100 } }, '1.2.0': { full: 1000, deltas: { '1.1.0': 150 } } }, cached: [fullLabel('1.1.0')] },
    expected: { kind: 'chain', bytes: 250, via: ['1.0.0', '1.1.0', '1.2.0'] },
  },

  { name: 'a 4-hop chain is allowed by default', input: { installed: '1.0.0', target: '1.4.0', releases: line(4, 100) }, expected: { kind: 'chain', bytes: 400, via: ['1.0.0', '1.1.0', '1.2.0', '1.3.0', '1.4.0'] } },
  { name: 'a 5-hop chain is too long by default: full', input: { installed: '1.0.0', target: '1.5.0', releases: line(5, 100) }, expected: { kind: 'full', bytes: 10_000 } },
  { name: 'maxHops 5 allows the 5-hop chain', input: { installed: '1.0.0', target: '1.5.0', releases: line(5, 100), maxHops: 5 }, expected: { kind: 'chain', bytes: 500, via: ['1.0.0', '1.1.0', '1.2.0', '1.3.0', '1.4.0', '1.5.0'] } },
  {
    name: 'maxHops 2 takes a dearer 2-hop chain over a cheaper 3-hop one',
    input: { installed: '1.0.0', target: '1.3.0', releases: line(3, 10, { '1.2.0': { full: 10_000, deltas: { '1.1.0': 10, '1.0.0': 200 } } }), maxHops: 2 },
    expected: { kind: 'chain', bytes: 210, via: ['1.0.0', '1.2.0', '1.3.0'] },
  },
  {
    name: 'the same graph without the bound takes the cheaper 3-hop chain',
    input: { installed: '1.0.0', target: '1.3.0', releases: line(3, 10, { '1.2.0': { full: 10_000, deltas: { '1.1.0': 10, '1.0.0': 200 } } }) },
    expected: { kind: 'chain', bytes: 30, via: ['1.0.0', '1.1.0', '1.2.0', '1.3.0'] },
  },
  {
    name: 'maxHops 1 allows only a direct delta',
    input: { installed: '1.0.0', target: '1.2.0', releases: { '1.1.0': { full: 900, deltas: { '1.0.0': 100 } }, '1.2.0': { full: 1000, deltas: { '1.0.0': 600, '1.1.0': 150 } } }, maxHops: 1 },
    expected: { kind: 'delta', bytes: 600, via: ['1.0.0', '1.2.0'] },
  },
  { name: 'maxHops 0 always downloads the full artifact', input: { installed: '1.0.0', target: '1.1.0', releases: { '1.1.0': { full: 1000, deltas: { '1.0.0': 1 } } }, maxHops: 0 }, expected: { kind: 'full', bytes: 1000 } },
];

/** The versions a plan passes through, installed first. */
function via(plan: Extract<Plan, { kind: 'delta' | 'chain' }>): string[] {
  return [plan.steps[0]?.from ?? '?', ...plan.steps.map((s) => s.to)];
}

const planning = suite('plans full, delta or chain by fewest bytes');

for (const c of planCases) {
  planning(c.name, () => {
    const rel = releases(c.input.releases);
    const plan = planUpdate({
      installed: c.input.installed,
      target: c.input.target,
      releases: rel,
      ...(c.input.cached ? { cached: cache(...c.input.cached) } : {}),
      ...(c.input.maxHops !== undefined ? { maxHops: c.input.maxHops } : {}),
    });
    const target = rel.get(c.input.target)!;
    assert.is(plan.to, c.input.target);
    if (plan.kind === 'full') {
      assert.equal({ kind: plan.kind, bytes: plan.bytes }, c.expected);
      assert.is(plan.artifact, target.full);
      return;
    }
    assert.equal({ kind: plan.kind, bytes: plan.bytes, via: via(plan) }, c.expected);
    assert.is(plan.fallback, target.full, 'the fallback is always the target’s full artifact');
    // Every step is the delta its destination release lists for that base, ops and all.
    for (const step of plan.steps) {
      const listed = rel.get(step.to)?.deltas.find((d) => d.from === step.from);
      assert.ok(listed, `step ${step.from} -> ${step.to} is listed in ${step.to}`);
      assert.is(step.artifact, listed.artifact);
      assert.is(step.ops, listed.ops);
    }
  });
}

planning('the plan is the same whatever the fake hashes look like', () => {
  // Upper-case, repeated and non-hex "hashes": planning compares them, never checks them.
  const rel = releases({ '1.1.0': { full: 1000, deltas: { '1.0.0': 100 } } });
  const r = rel.get('1.1.0')!;
  r.full = { ...r.full, sha256: 'X'.repeat(64) };
  r.deltas[0]!.artifact = { ...r.deltas[0]!.artifact, sha256: 'X'.repeat(64) };
  const plan = planUpdate({ installed: '1.0.0', target: '1.1.0', releases: rel, cached: new Set(['X'.repeat(64)]) });
  assert.equal({ kind: plan.kind, bytes: plan.bytes }, { kind: 'full', bytes: 0 });
});

planning.run();

// ---------------------------------------------------------------------------------------------

const refusing = suite('refuses to plan what cannot be planned');

const refusedCases: { name: string; input: { installed: string | null; target: string; releases: ReleaseSpec; maxHops?: number }; code: 'ERR_NOT_FOUND' | 'ERR_USAGE' }[] = [
  { name: 'an unknown target (ERR_NOT_FOUND)', input: { installed: '1.0.0', target: '9.9.9', releases: { '1.1.0': { full: 1000 } } }, code: 'ERR_NOT_FOUND' },
  { name: 'an unknown target with no installed version (ERR_NOT_FOUND)', input: { installed: null, target: '1.1.0', releases: {} }, code: 'ERR_NOT_FOUND' },
  { name: 'a negative maxHops (ERR_USAGE)', input: { installed: '1.0.0', target: '1.1.0', releases: { '1.1.0': { full: 1000 } }, maxHops: -1 }, code: 'ERR_USAGE' },
  { name: 'a fractional maxHops (ERR_USAGE)', input: { installed: '1.0.0', target: '1.1.0', releases: { '1.1.0': { full: 1000 } }, maxHops: 1.5 }, code: 'ERR_USAGE' },
];

for (const c of refusedCases) {
  refusing(`refuses ${c.name}`, () => {
    assertCode(
      () => planUpdate({ installed: c.input.installed, target: c.input.target, releases: releases(c.input.releases), ...(c.input.maxHops !== undefined ? { maxHops: c.input.maxHops } : {}) }),
      c.code,
    );
  });
}

refusing.run();
