// Issue 13 item 2 (SECURITY.md row 5): a signed date in the future must not freeze a device. The
// time floor keeps the device's own clock readings; a signed release date is kept apart with the
// release-key set that signed it, may add at most SIGNED_DATE_LEAD_MS past what the clock justifies,
// and is dropped when the release keys change. First the rules as a table (pure functions of
// core/trust/trust-marks.ts), then the two ways a future date reaches a fleet, each met by a device
// home through the real CLI: a compromised release key signing a date two years ahead, and a
// publisher whose clock ran two years ahead for one release.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { cp, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  effectiveNow,
  EMPTY_MARKS,
  raiseSignedFloor,
  raiseTimeFloor,
  readMarks,
  releaseKeysOf,
  SIGNED_DATE_LEAD_MS,
  signedDateBound,
  type TrustMarks,
} from '../../core/trust/trust-marks.ts';
import type { RootDoc } from '../../core/trust/root.ts';
import { channelPath } from '../../core/trust/metadata.ts';
import { generateKeyFiles, loadSigningKey } from '../../core/trust/keys.ts';
import { rotateRoot } from '../../core/publish/repository.ts';
import { assertCodeAsync } from '../helpers/assert-code.ts';
import { cliUpdateTo, onFirstVersion } from '../helpers/adversarial-trust.ts';
import { smallApp } from '../helpers/crash.ts';
import { resignChannel, resignManifest } from '../helpers/tamper.ts';
import { tempDir } from '../helpers/repo.ts';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const TWO_YEARS = 2 * 365 * DAY;

// ---------------------------------------------------------------------------------------------

const rules = suite('issue 13 item 2: what a signed date may add to the time floor (trust-marks rules)');

const T0 = Date.parse('2026-06-01T12:00:00.000Z');
const iso = (ms: number): string => new Date(ms).toISOString();
/** Two release-key sets, as releaseKeysOf fingerprints them. */
const rootWith = (keyid: string): RootDoc => ({ roles: { release: { keyids: [keyid], threshold: 1 } } }) as unknown as RootDoc;
const OLD_KEYS = rootWith('a'.repeat(64));
const NEW_KEYS = rootWith('b'.repeat(64));

const marksAt = (clockFloor: number, signed: { at: number; root: RootDoc } | null = null): TrustMarks => ({
  ...EMPTY_MARKS,
  timeFloor: iso(clockFloor),
  signedFloor: signed ? { time: iso(signed.at), releaseKeys: releaseKeysOf(signed.root) } : null,
});

interface FloorCase {
  name: string;
  marks: TrustMarks;
  clock: number;
  releaseDate: number;
  root: RootDoc;
  /** The signed floor afterwards (under `root`'s keys), and effectiveNow at `clock`. */
  signed: number;
  now: number;
}

const floorCases: FloorCase[] = [
  { name: 'a genuine date a minute behind the clock is taken whole', marks: marksAt(T0 - DAY), clock: T0, releaseDate: T0 - 60_000, root: OLD_KEYS, signed: T0 - 60_000, now: T0 },
  { name: 'a date within the lead ahead of the clock (publisher skew) is taken whole and counts', marks: marksAt(T0 - DAY), clock: T0, releaseDate: T0 + 10 * 60_000, root: OLD_KEYS, signed: T0 + 10 * 60_000, now: T0 + 10 * 60_000 },
  { name: 'a date two years ahead counts only up to the clock + the lead', marks: marksAt(T0 - DAY), clock: T0, releaseDate: T0 + TWO_YEARS, root: OLD_KEYS, signed: T0 + SIGNED_DATE_LEAD_MS, now: T0 + SIGNED_DATE_LEAD_MS },
  { name: 'a clock set back a year: the bound is the clock floor + the lead, not the clock', marks: marksAt(T0), clock: T0 - 365 * DAY, releaseDate: T0 + TWO_YEARS, root: OLD_KEYS, signed: T0 + SIGNED_DATE_LEAD_MS, now: T0 + SIGNED_DATE_LEAD_MS },
  { name: 'a lower date never lowers the signed floor under the same keys', marks: marksAt(T0, { at: T0 + HOUR / 2, root: OLD_KEYS }), clock: T0, releaseDate: T0 - DAY, root: OLD_KEYS, signed: T0 + HOUR / 2, now: T0 + HOUR / 2 },
  { name: 'repeated far dates do not ratchet: the bound is from the clock, not from the signed floor', marks: marksAt(T0, { at: T0 + SIGNED_DATE_LEAD_MS, root: OLD_KEYS }), clock: T0, releaseDate: T0 + TWO_YEARS, root: OLD_KEYS, signed: T0 + SIGNED_DATE_LEAD_MS, now: T0 + SIGNED_DATE_LEAD_MS },
  { name: 'after a release-key rotation, a lower genuine date replaces the floor the old keys raised', marks: marksAt(T0, { at: T0 + SIGNED_DATE_LEAD_MS, root: OLD_KEYS }), clock: T0, releaseDate: T0 - DAY, root: NEW_KEYS, signed: T0 - DAY, now: T0 },
];

for (const c of floorCases) {
  rules(c.name, () => {
    const after = raiseSignedFloor(c.marks, iso(c.releaseDate), new Date(c.clock), c.root);
    assert.equal(after.signedFloor, { time: iso(c.signed), releaseKeys: releaseKeysOf(c.root) });
    assert.is(after.timeFloor, c.marks.timeFloor, 'a signed date never moves the clock floor');
    assert.is(effectiveNow(after, new Date(c.clock), c.root).getTime(), c.now);
  });
}

rules('effectiveNow ignores a signed floor recorded under other release keys, and uses it under the same', () => {
  const marks = marksAt(T0 - DAY, { at: T0 + SIGNED_DATE_LEAD_MS, root: OLD_KEYS });
  assert.is(effectiveNow(marks, new Date(T0), OLD_KEYS).getTime(), T0 + SIGNED_DATE_LEAD_MS);
  assert.is(effectiveNow(marks, new Date(T0), NEW_KEYS).getTime(), T0);
  assert.is(effectiveNow(marks, new Date(T0 - 2 * DAY), NEW_KEYS).getTime(), T0 - DAY, 'the clock floor still holds after a rotation');
});

rules('the clock floor takes clock readings and never goes down; the bound follows it', () => {
  const m = raiseTimeFloor(marksAt(T0), new Date(T0 - DAY));
  assert.is(m.timeFloor, iso(T0));
  assert.is(raiseTimeFloor(m, new Date(T0 + DAY)).timeFloor, iso(T0 + DAY));
  assert.is(signedDateBound(m, new Date(T0 - DAY)), T0 + SIGNED_DATE_LEAD_MS);
  assert.is(signedDateBound(m, new Date(T0 + DAY)), T0 + DAY + SIGNED_DATE_LEAD_MS);
});

rules('a marks.json written before the signed floor existed still reads (signedFloor: null), and one with it reads back', async () => {
  const tmp = await tempDir('ferry-marks-');
  try {
    const file = join(tmp.path, 'marks.json');
    const old = { channels: { stable: { sequence: 3, sha256: 'c'.repeat(64), releaseKeys: 'k/1' } }, timeFloor: iso(T0), securityFloor: '1.1.0' };
    await writeFile(file, JSON.stringify(old, null, 2) + '\n');
    assert.equal(await readMarks(file), { ...old, signedFloor: null });
    const now = { ...old, signedFloor: { time: iso(T0 + HOUR), releaseKeys: 'k/1' } };
    await writeFile(file, JSON.stringify(now));
    assert.equal(await readMarks(file), now);
    await writeFile(file, JSON.stringify({ ...old, signedFloor: { time: 'tomorrow', releaseKeys: 'k/1' } }));
    await assertCodeAsync(() => readMarks(file), 'ERR_SCHEMA');
  } finally {
    await tmp.cleanup();
  }
});

rules.run();

// ---------------------------------------------------------------------------------------------

const fleet = suite('issue 13 item 2: a release date two years ahead does not freeze a device (ferry update through the CLI)');

interface MarksFile {
  timeFloor: string;
  signedFloor: { time: string; releaseKeys: string } | null;
}
const readMarksFile = async (path: string): Promise<MarksFile> => JSON.parse(await readFile(path, 'utf8')) as MarksFile;

fleet('issue 13 item 2: a compromised release key signs a manifest dated two years ahead: genuine 1.1.0 still installs; a 30-minute pointer is refused (1.2.0) until the release key is rotated, then one installs (1.3.0)', () => onFirstVersion({}, async (t) => {
  await t.device.setConfig({ offlineGraceDays: 0 });
  // The attacker holds the release key and a mirror: a security pointer naming 1.0.0, whose
  // manifest is re-signed with a release date two years ahead. The device reads it as an offer.
  const mirror = join(t.repo.dir, 'attacker-mirror');
  await cp(t.repo.repo, mirror, { recursive: true });
  await resignChannel(mirror, 'stable', [t.repo.releaseKey], (doc) => { doc.channel = 'security'; });
  await rename(join(mirror, channelPath('stable')), join(mirror, channelPath('security')));
  const attackedAt = Date.now();
  const forged = await resignManifest(mirror, '1.0.0', [t.repo.releaseKey], (doc) => { doc.releaseDate = new Date(attackedAt + TWO_YEARS).toISOString(); });
  assert.ok(Date.parse(forged.releaseDate) > attackedAt + 700 * DAY);
  await t.device.setConfig({ sources: [mirror] });
  const seen = await t.device.with((u) => u.checkUpdate());
  assert.is(seen.updateAvailable, false, 'the device read the forged offer (nothing newer in it)');
  const checkedAt = Date.now();
  const hit = await readMarksFile(t.device.layout.marks);
  assert.ok(hit.signedFloor, 'the forged date was recorded as a signed date');
  assert.ok(Date.parse(hit.signedFloor!.time) <= checkedAt + SIGNED_DATE_LEAD_MS, `the forged date counts at most the lead past the clock: ${hit.signedFloor!.time}`);
  assert.ok(Date.parse(hit.timeFloor) <= checkedAt, 'the clock floor holds clock readings only');

  // Not frozen even before the rotation: the genuine publisher's next release (30-day pointer) installs.
  await t.device.setConfig({ sources: [t.repo.repo] });
  await t.repo.release('1.1.0', smallApp('1.1.0'));
  await cliUpdateTo(t.device.home, '1.1.0');

  // What the stolen key can still do before a rotation: take up to the lead (an hour) off a
  // pointer's life, so a 30-minute pointer is refused.
  await t.repo.release('1.2.0', smallApp('1.2.0'), { expiresIn: 30 * 60 });
  await t.device.with((u) => assertCodeAsync(() => u.checkUpdate(), 'ERR_EXPIRED'));

  // The publisher rotates the release key; the next pointer lives only 30 minutes, less than the
  // lead: it installs only because the rotation dropped what the stolen key raised.
  await generateKeyFiles(join(t.repo.keysDir, 'release2'));
  const release2 = await loadSigningKey(join(t.repo.keysDir, 'release2.key'));
  await rotateRoot({ repo: t.repo.repo, signers: [t.repo.rootKey], releaseKeys: [release2], releaseSigners: [release2], revoke: [t.repo.releaseKey.keyid], now: new Date() });
  const r3 = await t.repo.release('1.3.0', smallApp('1.3.0'), { keys: [release2], expiresIn: 30 * 60 });
  await cliUpdateTo(t.device.home, '1.3.0');
  const after = await readMarksFile(t.device.layout.marks);
  assert.equal(after.signedFloor, { time: r3.manifest.releaseDate, releaseKeys: `${release2.keyid}/1` }, 'the signed floor is the genuine date, under the new key');
  assert.ok(Date.parse(after.signedFloor!.time) < Date.parse(hit.signedFloor!.time), 'the floor the stolen key raised was dropped, not kept');
}));

fleet('issue 13 item 2: the publisher\'s clock ran two years ahead for 1.1.0; the next, correctly dated 1.2.0 installs', () => onFirstVersion({}, async (t) => {
  await t.device.setConfig({ offlineGraceDays: 0 });
  const wrong = await t.repo.release('1.1.0', smallApp('1.1.0'), { now: new Date(Date.now() + TWO_YEARS) });
  assert.ok(Date.parse(wrong.manifest.releaseDate) > Date.now() + 700 * DAY, 'published with a date two years ahead');
  await cliUpdateTo(t.device.home, '1.1.0');
  const marks = await readMarksFile(t.device.layout.marks);
  assert.ok(Date.parse(marks.signedFloor!.time) <= Date.now() + SIGNED_DATE_LEAD_MS, `the wrong date counts at most the lead past the clock: ${marks.signedFloor!.time}`);
  // The clock is fixed: a 30-day pointer from today.
  const right = await t.repo.release('1.2.0', smallApp('1.2.0'));
  assert.ok(Date.parse(right.manifest.releaseDate) < Date.parse(wrong.manifest.releaseDate));
  await cliUpdateTo(t.device.home, '1.2.0');
}));

fleet.run();
