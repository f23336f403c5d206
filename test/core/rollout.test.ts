// Issue 16 item 2, the pure parts: the device's rollout decision (core/policy/rollout.ts) as table
// tests, the `rollout` field of a channel pointer as the device parses it (core/trust/metadata.ts),
// and the publisher's choices of salt, steps and `previous` (core/publish/rollout.ts).

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import { sha256 } from '../../core/io/hash.ts';
import { BUCKETS, decideRollout, offerUnderRollout, rolloutBucket, rolloutPercentAt } from '../../core/policy/rollout.ts';
import { channelPayload, parseChannelPayload, type ChannelTarget, type Rollout } from '../../core/trust/metadata.ts';
import { checkRolloutPlan, lastFullyRolledOut, parseStep, rolloutField } from '../../core/publish/rollout.ts';
import { FerryError, type ErrorCode } from '../../core/errors.ts';

// Plain objects the tests copy and break.
type Doc = any;

/** `fn` throws a FerryError with `code`; `what` names the case when it does not. */
function assertCode(fn: () => unknown, code: ErrorCode, what: string): void {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof FerryError, `${what}: a FerryError, got ${String(err)}`);
    assert.is((err as FerryError).code, code, `${what}: ${(err as FerryError).message}`);
    return;
  }
  assert.unreachable(`${what}: accepted`);
}

const SALT = 'a3'.repeat(16);
const ids = (n: number, seed = 'device') => Array.from({ length: n }, (_, i) => sha256(`${seed}-${i}`).slice(0, 32));
const pin = (v: string) => ({ path: `releases/${v}/manifest.json`, size: 1000, sha256: sha256(`manifest ${v}`) });
const rollout = (percent: number, extra: Partial<Rollout> = {}): Rollout => ({ percent, salt: SALT, steps: [], previous: { version: '1.0.0', manifest: pin('1.0.0') }, ...extra });
const at = (iso: string) => new Date(iso);
const NOW = at('2026-12-05T12:00:00.000Z');

// ---------------------------------------------------------------------------------------------

const decision = suite('issue 16 item 2: the rollout decision');

decision('issue 16 item 2: a bucket is sha256(salt ":" id), first 4 bytes, mod 10,000: the same inputs give the same bucket', () => {
  for (const id of ids(50)) {
    const expected = createHash('sha256').update(`${SALT}:${id}`).digest().readUInt32BE(0) % BUCKETS;
    assert.is(rolloutBucket(id, SALT), expected, id);
    assert.is(rolloutBucket(id, SALT), rolloutBucket(id, SALT));
    assert.ok(expected >= 0 && expected < BUCKETS);
  }
  // Another salt deals the buckets again: the same devices are not always first.
  const first = ids(200).filter((id) => rolloutBucket(id, SALT) < 1000);
  const again = ids(200).filter((id) => rolloutBucket(id, 'b4'.repeat(16)) < 1000);
  assert.ok(first.length > 0 && again.length > 0);
  assert.not.equal(first, again, 'a new salt picks other devices');
});

decision('issue 16 item 2: 10,000 synthetic ids land within 1.5 points of each percentage', () => {
  const fleet = ids(10_000, 'fleet');
  for (const percent of [1, 10, 33.33, 50, 90]) {
    const taken = fleet.filter((deviceId) => decideRollout({ deviceId, rollout: rollout(percent), now: NOW, security: false }).take).length;
    const share = (taken / fleet.length) * 100;
    assert.ok(Math.abs(share - percent) < 1.5, `${percent}%: ${share.toFixed(2)}% of the fleet took it`);
  }
});

decision('issue 16 item 2: widening keeps every device that was in (10% ⊂ 50% ⊂ 100%); 0% takes none, 100% all', () => {
  const fleet = ids(2000);
  const inAt = (percent: number) => new Set(fleet.filter((deviceId) => decideRollout({ deviceId, rollout: rollout(percent), now: NOW, security: false }).take));
  const ten = inAt(10);
  const fifty = inAt(50);
  for (const id of ten) assert.ok(fifty.has(id), `${id} was in at 10% and is in at 50%`);
  assert.ok(fifty.size > ten.size);
  assert.is(inAt(0).size, 0, 'percent 0 halts: no device takes it');
  assert.is(inAt(100).size, fleet.length, 'percent 100: every device');
  // The decision says why, with the bucket and the percentage in force.
  const out = fleet.find((id) => !ten.has(id))!;
  const d = decideRollout({ deviceId: out, rollout: rollout(10), now: NOW, security: false });
  assert.is(d.take, false);
  if (!d.take) {
    assert.is(d.bucket, rolloutBucket(out, SALT));
    assert.is(d.percent, 10);
    assert.ok(d.bucket >= 1000);
  }
});

decision('issue 16 item 2: steps by date: the last step reached is in force, the rollout\'s own percent before the first', () => {
  const r = rollout(5, { steps: [{ at: '2026-12-06T00:00:00.000Z', percent: 25 }, { at: '2026-12-08T00:00:00.000Z', percent: 100 }] });
  const table: [string, number][] = [
    ['2026-12-05T23:59:59.999Z', 5],
    ['2026-12-06T00:00:00.000Z', 25],
    ['2026-12-07T12:00:00.000Z', 25],
    ['2026-12-08T00:00:00.000Z', 100],
    ['2030-01-01T00:00:00.000Z', 100],
  ];
  for (const [when, percent] of table) assert.is(rolloutPercentAt(r, at(when)), percent, when);
  // A step down (a halt scheduled ahead) applies like any other.
  assert.is(rolloutPercentAt(rollout(50, { steps: [{ at: '2026-12-06T00:00:00.000Z', percent: 0 }] }), at('2026-12-07T00:00:00.000Z')), 0);
  const late = ids(2000).find((id) => rolloutBucket(id, SALT) >= 2500)!;
  assert.is(decideRollout({ deviceId: late, rollout: r, now: at('2026-12-07T00:00:00.000Z'), security: false }).take, false);
  assert.is(decideRollout({ deviceId: late, rollout: r, now: at('2026-12-08T00:00:00.000Z'), security: false }).take, true);
});

decision('issue 16 item 2: a security release ignores its rollout, even at 0%; no rollout means every device', () => {
  for (const deviceId of ids(200)) {
    assert.is(decideRollout({ deviceId, rollout: rollout(0), now: NOW, security: true }).take, true);
    assert.is(decideRollout({ deviceId, rollout: undefined, now: NOW, security: false }).take, true);
  }
});

decision('issue 16 item 2: what a pointer offers a device outside its rollout: previous when above what it runs, else nothing', () => {
  const pointer: ChannelTarget = { version: '1.1.0', manifest: pin('1.1.0'), rollout: rollout(10) };
  const inside = { take: true as const, why: 'in' };
  const outside = { take: false as const, why: 'out', bucket: 9000, percent: 10 };
  const table: [string, typeof inside | typeof outside, string | null, ChannelTarget, string | null][] = [
    ['in: the version itself', inside, '1.0.0', pointer, '1.1.0'],
    ['out, nothing installed: previous', outside, null, pointer, '1.0.0'],
    ['out, below previous: previous', outside, '0.9.0', pointer, '1.0.0'],
    ['out, on previous: nothing (stays)', outside, '1.0.0', pointer, null],
    ['out, between previous and the rolled version: nothing (no downgrade)', outside, '1.0.5', pointer, null],
    ['out, on the rolled version (a halted rollout): nothing, it keeps it', outside, '1.1.0', pointer, null],
    ['out, above it: nothing', outside, '2.0.0', pointer, null],
    ['out, no previous: nothing', outside, null, { ...pointer, rollout: rollout(10, { previous: null }) }, null],
  ];
  for (const [what, d, current, p, expected] of table) {
    const got = offerUnderRollout({ pointer: p, decision: d, current });
    assert.is(got?.version ?? null, expected, what);
    if (got) assert.equal(got.manifest, pin(got.version), `${what}: the pin of the version offered`);
  }
});

decision.run();

// ---------------------------------------------------------------------------------------------

const parsing = suite('issue 16 item 2: the rollout field of a channel pointer');

function channel(target: Doc): Doc {
  return { type: 'ferry/channel', app: 'demo', channel: 'stable', sequence: 3, expires: '2030-01-01T00:00:00.000Z', targets: { 'linux-x64': target } };
}
// The wire form: percentages as integer basis points (12.5% is 1250), what strict JSON allows.
const goodRollout = (): Doc => ({ basisPoints: 1250, salt: SALT, steps: [{ at: '2026-12-06T00:00:00.000Z', basisPoints: 5000 }, { at: '2026-12-07T00:00:00Z', basisPoints: 10_000 }], previous: { version: '1.0.0', manifest: pin('1.0.0') } });
const goodTarget = (): Doc => ({ version: '1.1.0', manifest: pin('1.1.0'), rollout: goodRollout() });
const parse = (target: Doc) => parseChannelPayload(Buffer.from(JSON.stringify(channel(target))));

parsing('issue 16 item 2: a valid rollout parses to what was written, and back; a pointer without one parses exactly as before', () => {
  const t = parse(goodTarget()).targets['linux-x64']!;
  assert.equal(t.rollout, { percent: 12.5, salt: SALT, steps: [{ at: '2026-12-06T00:00:00.000Z', percent: 50 }, { at: '2026-12-07T00:00:00Z', percent: 100 }], previous: { version: '1.0.0', manifest: pin('1.0.0') } });
  assert.equal(JSON.parse(JSON.stringify(t)), goodTarget(), 'JSON.stringify gives the wire form again');
  const doc = parse(goodTarget());
  assert.equal(JSON.parse(channelPayload(doc).toString()), channel(goodTarget()), 'channelPayload writes the wire form');
  const plain = { version: '1.1.0', manifest: pin('1.1.0') };
  const p = parse(plain).targets['linux-x64']!;
  assert.equal(p, plain);
  assert.not.ok('rollout' in p, 'no rollout key at all');
  assert.equal(JSON.parse(channelPayload(parse(plain)).toString()), channel(plain));
  // previous null (a channel's first version), no steps, two decimals, the bounds.
  const cases: [Doc, number][] = [[{ ...goodRollout(), previous: null }, 12.5], [{ ...goodRollout(), steps: [] }, 12.5], [{ ...goodRollout(), basisPoints: 3333 }, 33.33], [{ ...goodRollout(), basisPoints: 0 }, 0], [{ ...goodRollout(), basisPoints: 10_000 }, 100]];
  for (const [r, percent] of cases) {
    const got = parse({ ...goodTarget(), rollout: r }).targets['linux-x64']!.rollout!;
    assert.is(got.percent, percent);
    assert.equal(JSON.parse(JSON.stringify(got)), r);
  }
  // A percentage with decimals on the wire is not strict JSON (a device from before rollouts would
  // refuse the whole pointer): the publisher never writes one.
  assertCode(() => parse({ ...goodTarget(), rollout: { ...goodRollout(), basisPoints: 12.5 } }), 'ERR_JSON', 'a fractional number');
});

parsing('issue 16 item 2: each malformed rollout field is ERR_SCHEMA (an escaping path ERR_UNSAFE_ARCHIVE)', () => {
  const bad: [string, (r: Doc) => void][] = [
    ['basisPoints missing', (r) => delete r.basisPoints],
    ['basisPoints below 0', (r) => (r.basisPoints = -1)],
    ['basisPoints above 10000', (r) => (r.basisPoints = 10_001)],
    ['basisPoints as a string', (r) => (r.basisPoints = '10')],
    ['a float-percent field instead', (r) => { delete r.basisPoints; r.percent = 10; }],
    ['salt missing', (r) => delete r.salt],
    ['salt too short', (r) => (r.salt = 'abcd')],
    ['salt in capitals', (r) => (r.salt = SALT.toUpperCase())],
    ['steps missing', (r) => delete r.steps],
    ['steps not a list', (r) => (r.steps = {})],
    ['a step not an object', (r) => (r.steps[0] = 5000)],
    ['a step time not ISO', (r) => (r.steps[0].at = 'tomorrow')],
    ['a step time missing', (r) => delete r.steps[0].at],
    ['a step above 10000', (r) => (r.steps[0].basisPoints = 10_100)],
    ['a step basisPoints missing', (r) => delete r.steps[1].basisPoints],
    ['steps out of order', (r) => r.steps.reverse()],
    ['two steps at one time', (r) => (r.steps[1].at = r.steps[0].at)],
    ['previous missing', (r) => delete r.previous],
    ['previous not an object', (r) => (r.previous = '1.0.0')],
    ['previous version not semver', (r) => (r.previous.version = 'one')],
    ['previous version equal to the rolled version', (r) => { r.previous.version = '1.1.0'; r.previous.manifest = pin('1.1.0'); }],
    ['previous version above the rolled version', (r) => { r.previous.version = '2.0.0'; r.previous.manifest = pin('2.0.0'); }],
    ['previous manifest missing', (r) => delete r.previous.manifest],
    ['previous manifest path not its manifestPath', (r) => (r.previous.manifest.path = 'releases/0.9.0/manifest.json')],
    ['previous manifest hash not hex', (r) => (r.previous.manifest.sha256 = 'zz')],
    ['previous manifest size negative', (r) => (r.previous.manifest.size = -1)],
  ];
  for (const [what, change] of bad) {
    const t = goodTarget();
    change(t.rollout);
    assertCode(() => parse(t), 'ERR_SCHEMA', what);
  }
  // A path out of the repository is refused as it is in the pointer's own pin (SECURITY.md row 14).
  const escaping = goodTarget();
  escaping.rollout.previous.manifest.path = '../releases/1.0.0/manifest.json';
  assertCode(() => parse(escaping), 'ERR_UNSAFE_ARCHIVE', 'previous manifest path escaping');
  for (const notObject of [null, 10, 'ten', []]) assertCode(() => parse({ ...goodTarget(), rollout: notObject }), 'ERR_SCHEMA', `rollout ${JSON.stringify(notObject)}`);
});

parsing.run();

// ---------------------------------------------------------------------------------------------

const publisher = suite('issue 16 item 2: the publisher\'s rollout choices');

publisher('issue 16 item 2: steps are sorted and signed as toISOString; bad percentages, times and salts are ERR_USAGE', () => {
  const plan = checkRolloutPlan({ percent: 10, steps: [parseStep('2026-12-08T00:00:00Z=100'), parseStep('2026-12-06=50')] });
  assert.equal(plan.steps, [{ at: '2026-12-06T00:00:00.000Z', percent: 50 }, { at: '2026-12-08T00:00:00.000Z', percent: 100 }]);
  for (const [what, fn] of [
    ['percent 101', () => checkRolloutPlan({ percent: 101 })],
    ['percent -1', () => checkRolloutPlan({ percent: -1 })],
    ['percent 0.001', () => checkRolloutPlan({ percent: 0.001 })],
    ['a step time that is no time', () => checkRolloutPlan({ percent: 1, steps: [{ at: 'soon', percent: 5 }] })],
    ['two steps at one time', () => checkRolloutPlan({ percent: 1, steps: [parseStep('2026-12-06T00:00:00Z=5'), parseStep('2026-12-06T00:00:00.000Z=6')] })],
    ['a step without =', () => parseStep('2026-12-06T00:00:00Z')],
    ['a step without a percent', () => parseStep('2026-12-06T00:00:00Z=')],
    ['a salt of capitals', () => checkRolloutPlan({ percent: 1, salt: SALT.toUpperCase() })],
  ] as const) assertCode(fn, 'ERR_USAGE', what);
});

publisher('issue 16 item 2: previous is the last fully rolled-out version; 100% without steps drops the field', () => {
  const v = (version: string, r?: Rollout): ChannelTarget => (r ? { version, manifest: pin(version), rollout: r } : { version, manifest: pin(version) });
  assert.is(lastFullyRolledOut(undefined, NOW), null, 'a channel\'s first version has none');
  assert.equal(lastFullyRolledOut(v('1.1.0'), NOW), { version: '1.1.0', manifest: pin('1.1.0') }, 'the prior version, when it had no rollout');
  assert.equal(lastFullyRolledOut(v('1.1.0', rollout(100)), NOW)?.version, '1.1.0', 'or its rollout was at 100%');
  assert.equal(lastFullyRolledOut(v('1.1.0', rollout(40, { steps: [{ at: '2026-12-01T00:00:00.000Z', percent: 100 }] })), NOW)?.version, '1.1.0', 'or a step had taken it to 100%');
  assert.equal(lastFullyRolledOut(v('1.1.0', rollout(40)), NOW)?.version, '1.0.0', 'else the prior rollout\'s own previous');
  assert.is(lastFullyRolledOut(v('1.1.0', rollout(40, { previous: null })), NOW), null);
  assert.is(rolloutField({ percent: 100, steps: [] }, SALT, null), undefined);
  assert.equal(rolloutField({ percent: 0, steps: [] }, SALT, null), { percent: 0, salt: SALT, steps: [], previous: null });
  assert.ok(rolloutField({ percent: 100, steps: [{ at: '2026-12-06T00:00:00.000Z', percent: 0 }] }, SALT, null), 'steps keep it even at 100%');
});

publisher.run();
