// Boot counting for ferry's self-update (core/self/boot-decision.ts, core/self/boot-record.ts):
// what a start runs, when a trial version is committed or rolled back, and how the boot record
// survives damage and killed writers. Starts are simulated as tables of outcomes (crash, exit 0,
// hang, confirm) through the pure decisions, each record round-tripped through its on-disk
// format; the record itself is read and written on a real temp dir, and a real writer process is
// killed mid-write.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { mkdtemp, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FerryError, type ErrorCode } from '../../core/errors.ts';
import { beginSwitch, confirm, decideStart, type StartDecision } from '../../core/self/boot-decision.ts';
import {
  MAX_BOOT_RECORD_BYTES,
  MAX_REFUSED,
  bootRecordPath,
  emptyBootRecord,
  parseBootRecord,
  readBootRecord,
  serializeBootRecord,
  writeBootRecord,
  type BootRead,
  type BootRecord,
} from '../../core/self/boot-record.ts';

const OLD = '1.0.0';
const NEW = '2.0.0';
const T0 = new Date('2026-12-05T10:00:00.000Z');
const MINUTE = 60_000;
const at = (ms: number): Date => new Date(T0.getTime() + ms);
const ok = (record: BootRecord): BootRead => ({ state: 'ok', record });

function codeOf(fn: () => unknown): ErrorCode | 'no error' {
  try {
    fn();
    return 'no error';
  } catch (err) {
    if (err instanceof FerryError) return err.code;
    throw err;
  }
}

/** A trial of NEW from OLD begun at T0: 3 tries, 10 minutes. */
function trial(extra: Partial<BootRecord> = {}): BootRecord {
  return { ...beginSwitch(emptyBootRecord(), { version: NEW, previous: OLD, tries: 3, deadlineMs: 10 * MINUTE }, T0), ...extra };
}
const DEADLINE = at(10 * MINUTE).toISOString();

// ---------------------------------------------------------------------------------------------
// Whole trials: a sequence of starts, each ending in what the started process did.

/** What the process a start ran did before the next start. */
type Outcome =
  | 'crash' // died at start (exception, kill, missing module): never reached confirm
  | 'exit0' // exited 0 at once without working: never reached confirm
  | 'hang' // never confirmed, never exited; something restarted it later
  | 'confirm'; // reached confirm: switched `current` to itself, then wrote the cleared record

interface Start {
  /** When this start happens, in ms after the switch began. */
  atMs: number;
  /** What the started process does, when it ran the trial version. */
  then: Outcome;
}

/**
 * Runs the starts through decideStart as the launcher would (write first, then run), and the
 * outcomes as the started ferry would. Every written record goes through its on-disk format.
 */
function simulate(starts: Start[]): { decisions: StartDecision[]; record: BootRecord; current: string } {
  let record = trial();
  let current = OLD;
  const decisions: StartDecision[] = [];
  for (const start of starts) {
    const decision = decideStart(ok(record), current, at(start.atMs));
    decisions.push(decision);
    if (decision.write) record = parseBootRecord(serializeBootRecord(decision.write));
    const ran = decision.action === 'run' ? decision.version : decision.to;
    if (ran !== NEW) continue; // the confirmed version runs; it has nothing to confirm
    const outcome = start.then;
    switch (outcome) {
      case 'crash':
      case 'exit0':
      case 'hang':
        break; // none of them confirms: the record stays as the launcher wrote it
      case 'confirm': {
        const done = confirm(record, NEW, at(start.atMs + 1000));
        current = done.version; // switch first ...
        record = parseBootRecord(serializeBootRecord(done.write)); // ... then clear the record
        break;
      }
      default: {
        const never: never = outcome;
        throw new Error(`unknown outcome ${String(never)}`);
      }
    }
  }
  return { decisions, record, current };
}

const runs = suite('boot counting: whole trials, start by start');

const crashThrice: Start[] = [{ atMs: 0, then: 'crash' }, { atMs: 5_000, then: 'crash' }, { atMs: 10_000, then: 'crash' }, { atMs: 15_000, then: 'crash' }];

runs('a crash at start three times: each start spends a try first, and the 4th start rolls back with the reason', () => {
  const { decisions, record, current } = simulate(crashThrice);
  assert.equal(decisions.slice(0, 3).map((d) => [d.action, d.action === 'run' ? d.version : '', d.write?.tentative?.triesLeft]), [
    ['run', NEW, 2],
    ['run', NEW, 1],
    ['run', NEW, 0],
  ]);
  const last = decisions[3]!;
  assert.equal(last, {
    action: 'rollback',
    to: OLD,
    from: NEW,
    reason: 'did not confirm within 3 starts',
    write: { tentative: null, refused: [{ version: NEW, reason: 'did not confirm within 3 starts', at: at(15_000).toISOString() }] },
  });
  assert.is(current, OLD);
  assert.is(record.tentative, null);
  // And from then on the old version simply runs, with nothing more to write.
  assert.equal(decideStart(ok(record), current, at(20_000)), { action: 'run', version: OLD });
});

runs('an exit 0 at once is the same as a crash: the same decisions, start for start', () => {
  const exits = crashThrice.map((s) => ({ ...s, then: 'exit0' as const }));
  assert.equal(simulate(exits), simulate(crashThrice));
});

runs('a hang: the deadline passes without a confirm, and the start after it rolls back', () => {
  const { decisions, current } = simulate([{ atMs: 0, then: 'hang' }, { atMs: 10 * MINUTE + 1, then: 'hang' }]);
  assert.is(decisions[0]!.action, 'run');
  assert.equal(decisions[1], {
    action: 'rollback',
    to: OLD,
    from: NEW,
    reason: `did not confirm before ${DEADLINE}`,
    write: { tentative: null, refused: [{ version: NEW, reason: `did not confirm before ${DEADLINE}`, at: at(10 * MINUTE + 1).toISOString() }] },
  });
  assert.is(current, OLD);
});

runs('a hang restarted before the deadline is one more spent try, not yet a rollback', () => {
  const { decisions } = simulate([{ atMs: 0, then: 'hang' }, { atMs: 9 * MINUTE, then: 'hang' }]);
  assert.equal(decisions.map((d) => [d.action, d.write?.tentative?.triesLeft]), [['run', 2], ['run', 1]]);
});

runs('a confirm on the first start commits: the record is cleared and later starts run the new version', () => {
  const { decisions, record, current } = simulate([{ atMs: 0, then: 'confirm' }, { atMs: MINUTE, then: 'crash' }]);
  assert.is(decisions[0]!.action, 'run');
  assert.equal(record, emptyBootRecord());
  assert.is(current, NEW);
  assert.equal(decisions[1], { action: 'run', version: NEW });
});

runs('two crashes, then a confirm on the last try: committed, nothing refused', () => {
  const { record, current } = simulate([{ atMs: 0, then: 'crash' }, { atMs: 1000, then: 'crash' }, { atMs: 2000, then: 'confirm' }]);
  assert.is(current, NEW);
  assert.equal(record, emptyBootRecord());
});

runs.run();

// ---------------------------------------------------------------------------------------------
// decideStart, rule by rule.

interface StartCase {
  name: string;
  read: BootRead;
  current: string;
  now: Date;
  expect: StartDecision;
}

const refusedEarlier = { version: '1.5.0', reason: 'did not confirm within 3 starts', at: '2026-11-01T00:00:00.000Z' };
const withTries = (triesLeft: number, tries = 3): BootRecord => {
  const r = trial();
  return { ...r, tentative: { ...r.tentative!, tries, triesLeft } };
};

const startCases: StartCase[] = [
  { name: 'no trial: run current, write nothing', read: ok(emptyBootRecord()), current: OLD, now: T0, expect: { action: 'run', version: OLD } },
  { name: 'no trial but refusals: run current, write nothing', read: ok({ tentative: null, refused: [refusedEarlier] }), current: OLD, now: T0, expect: { action: 'run', version: OLD } },
  {
    name: 'tries left, before the deadline: write one try less, then run the trial version',
    read: ok(trial()),
    current: OLD,
    now: at(1),
    expect: { action: 'run', version: NEW, write: withTries(2) },
  },
  {
    name: 'one millisecond before the deadline still runs the trial',
    read: ok(withTries(1)),
    current: OLD,
    now: at(10 * MINUTE - 1),
    expect: { action: 'run', version: NEW, write: withTries(0) },
  },
  {
    name: 'exactly at the deadline: roll back',
    read: ok(withTries(1)),
    current: OLD,
    now: at(10 * MINUTE),
    expect: { action: 'rollback', to: OLD, from: NEW, reason: `did not confirm before ${DEADLINE}`, write: { tentative: null, refused: [{ version: NEW, reason: `did not confirm before ${DEADLINE}`, at: DEADLINE }] } },
  },
  {
    name: 'no tries left, before the deadline: roll back, naming the starts',
    read: ok(withTries(0)),
    current: OLD,
    now: at(1),
    expect: { action: 'rollback', to: OLD, from: NEW, reason: 'did not confirm within 3 starts', write: { tentative: null, refused: [{ version: NEW, reason: 'did not confirm within 3 starts', at: at(1).toISOString() }] } },
  },
  {
    name: 'no tries left and past the deadline: the tries are the reason (they need no clock)',
    read: ok(withTries(0)),
    current: OLD,
    now: at(60 * MINUTE),
    expect: { action: 'rollback', to: OLD, from: NEW, reason: 'did not confirm within 3 starts', write: { tentative: null, refused: [{ version: NEW, reason: 'did not confirm within 3 starts', at: at(60 * MINUTE).toISOString() }] } },
  },
  {
    name: 'a single try spent: the reason says "1 start"',
    read: ok(withTries(0, 1)),
    current: OLD,
    now: at(1),
    expect: { action: 'rollback', to: OLD, from: NEW, reason: 'did not confirm within 1 start', write: { tentative: null, refused: [{ version: NEW, reason: 'did not confirm within 1 start', at: at(1).toISOString() }] } },
  },
  {
    name: 'a clock set back before the switch: tries still count down',
    read: ok(withTries(2)),
    current: OLD,
    now: new Date('1970-01-01T00:00:10.000Z'),
    expect: { action: 'run', version: NEW, write: withTries(1) },
  },
  {
    name: 'a version refused before, failing again after a forced retry: one entry, the new reason, moved last',
    read: ok({ ...withTries(0), refused: [{ version: NEW, reason: 'old reason', at: '2026-11-01T00:00:00.000Z' }, refusedEarlier] }),
    current: OLD,
    now: at(1),
    expect: { action: 'rollback', to: OLD, from: NEW, reason: 'did not confirm within 3 starts', write: { tentative: null, refused: [refusedEarlier, { version: NEW, reason: 'did not confirm within 3 starts', at: at(1).toISOString() }] } },
  },
  {
    name: 'current already names the trial version (confirm cut between switch and record): finish the commit, even with no tries left',
    read: ok({ ...withTries(0), refused: [refusedEarlier] }),
    current: NEW,
    now: at(60 * MINUTE),
    expect: { action: 'run', version: NEW, write: { tentative: null, refused: [refusedEarlier] }, note: `${NEW} had confirmed; its commit is finished now` },
  },
  {
    name: 'current names neither side (moved by hand): run current, drop the trial, refuse nothing',
    read: ok({ ...trial(), refused: [refusedEarlier] }),
    current: '0.9.0',
    now: at(1),
    expect: { action: 'run', version: '0.9.0', write: { tentative: null, refused: [refusedEarlier] }, note: `the trial of ${NEW} from ${OLD} no longer matches the current version 0.9.0; dropped` },
  },
];

const starts = suite('decideStart: what a start runs, before any new code');
for (const c of startCases) {
  starts(c.name, () => {
    const before = structuredClone(c.read);
    assert.equal(decideStart(c.read, c.current, c.now), c.expect);
    assert.equal(c.read, before, 'the input record is not changed');
  });
}

starts('refusals are capped: the oldest is dropped past MAX_REFUSED', () => {
  const many = Array.from({ length: MAX_REFUSED }, (_, i) => ({ version: `0.${i}.0`, reason: 'r', at: T0.toISOString() }));
  const d = decideStart(ok({ ...withTries(0), refused: many }), OLD, at(1));
  assert.is(d.action, 'rollback');
  assert.is(d.write!.refused.length, MAX_REFUSED);
  assert.is(d.write!.refused[0]!.version, '0.1.0');
  assert.is(d.write!.refused.at(-1)!.version, NEW);
  parseBootRecord(serializeBootRecord(d.write!)); // still a valid record
});

starts.run();

// ---------------------------------------------------------------------------------------------
// Damaged records: always the safe decision.

const good = serializeBootRecord(trial());
const damagedCases: { name: string; bytes: string; code: ErrorCode }[] = [
  { name: 'torn in the middle (what a non-atomic write would leave)', bytes: good.slice(0, Math.floor(good.length / 2)), code: 'ERR_JSON' },
  { name: 'empty file', bytes: '', code: 'ERR_JSON' },
  { name: 'zeros (a block the file system never wrote)', bytes: '\0'.repeat(64), code: 'ERR_JSON' },
  { name: 'a duplicate key', bytes: '{"format":1,"tentative":null,"refused":[],"refused":[]}', code: 'ERR_JSON' },
  { name: 'another format', bytes: good.replace('"format": 1', '"format": 2'), code: 'ERR_SCHEMA' },
  { name: 'no format', bytes: '{"tentative":null,"refused":[]}', code: 'ERR_SCHEMA' },
  { name: 'an unknown field', bytes: good.replace('"format": 1', '"format": 1, "extra": true'), code: 'ERR_SCHEMA' },
  { name: 'an unknown field in the trial', bytes: good.replace('"triesLeft"', '"skip": true, "triesLeft"'), code: 'ERR_SCHEMA' },
  { name: 'a version that is a path', bytes: good.replace(`"version": "${NEW}"`, '"version": "../../bin"'), code: 'ERR_SCHEMA' },
  { name: 'more tries left than granted', bytes: good.replace('"triesLeft": 3', '"triesLeft": 4'), code: 'ERR_SCHEMA' },
  { name: 'negative tries left', bytes: good.replace('"triesLeft": 3', '"triesLeft": -1'), code: 'ERR_SCHEMA' },
  { name: 'tries left as text', bytes: good.replace('"triesLeft": 3', '"triesLeft": "3"'), code: 'ERR_SCHEMA' },
  { name: 'a deadline before the switch', bytes: good.replace(DEADLINE, '2026-12-05T09:00:00.000Z'), code: 'ERR_SCHEMA' },
  { name: 'a deadline that is not a time', bytes: good.replace(DEADLINE, 'soon'), code: 'ERR_SCHEMA' },
  { name: 'the trial version equal to the previous one', bytes: good.replace(`"version": "${NEW}"`, `"version": "${OLD}"`), code: 'ERR_SCHEMA' },
  { name: 'an array instead of an object', bytes: '[]', code: 'ERR_SCHEMA' },
  { name: 'over the size cap', bytes: good + ' '.repeat(MAX_BOOT_RECORD_BYTES), code: 'ERR_TOO_LARGE' },
];

const damaged = suite('a damaged record: a stable error code, and the start runs the confirmed version');

damaged('the undamaged record parses (so each case below differs from it by its damage only)', () => {
  assert.equal(parseBootRecord(good), trial());
  for (const c of damagedCases) assert.is.not(c.bytes, good, `${c.name}: the damage was applied`);
});

for (const c of damagedCases) {
  damaged(`${c.name}: ${c.code}, and run current (the trial had tries left)`, () => {
    assert.is(codeOf(() => parseBootRecord(c.bytes)), c.code);
    let error: FerryError | undefined;
    try {
      parseBootRecord(c.bytes);
    } catch (err) {
      error = err as FerryError;
    }
    const d = decideStart({ state: 'damaged', error: error! }, OLD, at(1));
    assert.is(d.action, 'run');
    assert.is(d.action === 'run' && d.version, OLD);
    assert.equal(d.write, emptyBootRecord(), 'a fresh record replaces the damaged one');
    assert.ok(d.action === 'run' && d.note?.includes(c.code), 'the note names the damage');
  });
}

damaged.run();

// ---------------------------------------------------------------------------------------------
// confirm and beginSwitch.

const confirms = suite('confirm: only the trial version, and then the record is cleared');

confirms('the trial version confirms: committed, trial cleared, refusals kept', () => {
  const record = { ...trial(), refused: [refusedEarlier] };
  assert.equal(confirm(record, NEW, at(MINUTE)), { committed: true, version: NEW, previous: OLD, at: at(MINUTE).toISOString(), write: { tentative: null, refused: [refusedEarlier] } });
});

confirms('a confirm after the deadline is still a commit (it proves the start did not hang)', () => {
  assert.is(confirm(withTries(0), NEW, at(60 * MINUTE)).committed, true);
});

const notTheTrial: [string, BootRecord, string][] = [
  ['another version than the trial one', trial(), '3.0.0'],
  ['the previous version', trial(), OLD],
  ['no trial under way', { tentative: null, refused: [refusedEarlier] }, NEW],
];
for (const [name, record, version] of notTheTrial) {
  confirms(`${name}: ERR_NOT_FOUND, nothing changed`, () => {
    const before = structuredClone(record);
    assert.is(codeOf(() => confirm(record, version, at(1))), 'ERR_NOT_FOUND');
    assert.equal(record, before);
  });
}

confirms.run();

const begins = suite('beginSwitch: a trial starts only from a settled record, never of a refused version by itself');

begins('a fresh trial: all tries left, the deadline counted from now', () => {
  const now = new Date('2026-12-05T12:00:00.000Z');
  assert.equal(beginSwitch({ tentative: null, refused: [refusedEarlier] }, { version: NEW, previous: OLD, tries: 3, deadlineMs: 5 * MINUTE }, now), {
    tentative: { version: NEW, previous: OLD, tries: 3, triesLeft: 3, switchedAt: now.toISOString(), deadline: '2026-12-05T12:05:00.000Z' },
    refused: [refusedEarlier],
  });
});

begins('a refused version: ERR_GAVE_UP; with force it begins and its refusal is cleared, others kept', () => {
  const record: BootRecord = { tentative: null, refused: [refusedEarlier, { version: NEW, reason: 'did not confirm within 3 starts', at: T0.toISOString() }] };
  const request = { version: NEW, previous: OLD, tries: 3, deadlineMs: MINUTE };
  assert.is(codeOf(() => beginSwitch(record, request, at(1))), 'ERR_GAVE_UP');
  const forced = beginSwitch(record, { ...request, force: true }, at(1));
  assert.is(forced.tentative!.version, NEW);
  assert.equal(forced.refused, [refusedEarlier]);
  // A newer version than the refused one is not held back by it.
  assert.is(beginSwitch(record, { ...request, version: '2.0.1' }, at(1)).tentative!.version, '2.0.1');
});

begins('the version a rollback just refused is not begun again without force', () => {
  const { record } = simulate(crashThrice);
  assert.is(codeOf(() => beginSwitch(record, { version: NEW, previous: OLD, tries: 3, deadlineMs: MINUTE }, at(MINUTE))), 'ERR_GAVE_UP');
});

begins('a trial already under way: ERR_BUSY, even with force', () => {
  assert.is(codeOf(() => beginSwitch(trial(), { version: '3.0.0', previous: OLD, tries: 3, deadlineMs: MINUTE }, at(1))), 'ERR_BUSY');
  assert.is(codeOf(() => beginSwitch(trial(), { version: '3.0.0', previous: OLD, tries: 3, deadlineMs: MINUTE, force: true }, at(1))), 'ERR_BUSY');
});

for (const [name, change] of [
  ['a version that is not semver', { version: '../2' }],
  ['a previous version that is not semver', { previous: 'latest' }],
  ['the confirmed version itself', { version: OLD }],
  ['zero tries', { tries: 0 }],
  ['fractional tries', { tries: 1.5 }],
  ['a zero deadline', { deadlineMs: 0 }],
  ['a deadline past the end of time', { deadlineMs: Number.MAX_SAFE_INTEGER }],
] as const) {
  begins(`${name}: ERR_USAGE`, () => {
    assert.is(codeOf(() => beginSwitch(emptyBootRecord(), { version: NEW, previous: OLD, tries: 3, deadlineMs: MINUTE, ...change }, T0)), 'ERR_USAGE');
  });
}

begins.run();

// ---------------------------------------------------------------------------------------------
// The record on a real disk.

const disk = suite('the boot record on disk: atomic, strict, and a killed writer leaves the last good record');

async function withHome(fn: (home: string) => Promise<void>): Promise<void> {
  const home = await mkdtemp(join(tmpdir(), 'ferry-boot-'));
  try {
    await fn(home);
  } finally {
    await rm(home, { recursive: true, force: true });
  }
}

disk('a missing file is no trial: the start runs current', () =>
  withHome(async (home) => {
    const read = await readBootRecord(home);
    assert.equal(read, { state: 'ok', record: emptyBootRecord() });
    assert.equal(decideStart(read, OLD, T0), { action: 'run', version: OLD });
  }));

disk('written then read back, in <home>/self/boot.json, with no temp file left', () =>
  withHome(async (home) => {
    const record = { ...trial(), refused: [refusedEarlier] };
    await writeBootRecord(home, record);
    assert.is(bootRecordPath(home), join(home, 'self', 'boot.json'));
    assert.equal(await readdir(join(home, 'self')), ['boot.json']);
    assert.equal(await readBootRecord(home), { state: 'ok', record });
    // The launcher's write-first step, on disk: the spent try is what the next read sees.
    const d = decideStart(await readBootRecord(home), OLD, at(1));
    await writeBootRecord(home, d.write!);
    const again = await readBootRecord(home);
    assert.is(again.state === 'ok' && again.record.tentative!.triesLeft, 2);
  }));

disk('a leftover temp file of a killed writer (torn or complete) is ignored: the last good record stands', () =>
  withHome(async (home) => {
    const last = trial();
    await writeBootRecord(home, last);
    const next = serializeBootRecord(withTries(2));
    // What writeFileAtomic leaves when killed before its rename: `.boot.json.<random>.tmp`.
    await writeFile(join(home, 'self', '.boot.json.0badc0ffee00.tmp'), next.slice(0, 20));
    await writeFile(join(home, 'self', '.boot.json.00c0ffee0bad.tmp'), next);
    assert.equal(await readBootRecord(home), { state: 'ok', record: last });
    // And the next write goes through regardless.
    await writeBootRecord(home, withTries(1));
    assert.equal(await readBootRecord(home), { state: 'ok', record: withTries(1) });
  }));

disk('a damaged file reads as damaged (never thrown), the start runs current, and its fresh record reads back', () =>
  withHome(async (home) => {
    await mkdir(join(home, 'self'));
    await writeFile(bootRecordPath(home), good.slice(0, 40));
    const read = await readBootRecord(home);
    assert.is(read.state, 'damaged');
    assert.is(read.state === 'damaged' && read.error.code, 'ERR_JSON');
    const d = decideStart(read, OLD, at(1));
    assert.is(d.action === 'run' && d.version, OLD);
    await writeBootRecord(home, d.write!);
    assert.equal(await readBootRecord(home), { state: 'ok', record: emptyBootRecord() });
  }));

disk('a record that cannot be read at all (a folder in its place) is damaged too: ERR_IO', () =>
  withHome(async (home) => {
    await mkdir(bootRecordPath(home), { recursive: true });
    const read = await readBootRecord(home);
    assert.is(read.state === 'damaged' && read.error.code, 'ERR_IO');
  }));

disk('writing a record its own parser would refuse is a bug: ERR_INTERNAL, and the file is untouched', () =>
  withHome(async (home) => {
    await writeBootRecord(home, trial());
    const before = await readFile(bootRecordPath(home), 'utf8');
    const bad = withTries(5); // more left than granted
    let code: string | undefined;
    await writeBootRecord(home, bad).catch((err: FerryError) => (code = err.code));
    assert.is(code, 'ERR_INTERNAL');
    assert.is(await readFile(bootRecordPath(home), 'utf8'), before);
  }));

disk('a real writer killed (SIGKILL) while rewriting the record in a loop leaves a whole record, at 4 kill moments', () =>
  withHome(async (home) => {
    await writeBootRecord(home, withTries(3));
    const module = fileURLToPath(new URL('../../core/self/boot-record.ts', import.meta.url));
    // The child rewrites the record with triesLeft 3,2,1,0,3,... at most 100000 times, printing
    // once it has begun; it is killed at a moment it does not choose.
    const script = `
      import { writeBootRecord } from ${JSON.stringify(module)};
      const base = ${JSON.stringify(trial())};
      for (let i = 0; i < 100_000; i++) {
        await writeBootRecord(process.argv[1], { ...base, tentative: { ...base.tentative, triesLeft: 3 - (i % 4) } });
        if (i === 10) process.stdout.write('writing\\n');
      }`;
    for (const delayMs of [5, 25, 50, 80]) {
      const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script, home], { stdio: ['ignore', 'pipe', 'inherit'] });
      const exited = new Promise((r) => child.once('exit', r));
      try {
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error('the writer did not start within 20 s')), 20_000);
          child.stdout.once('data', () => { clearTimeout(timer); resolve(); });
          child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`the writer exited (${code}) before it was killed`)); });
        });
        await new Promise((r) => setTimeout(r, delayMs));
      } finally {
        child.kill('SIGKILL');
        await exited;
      }
      assert.is(child.signalCode, 'SIGKILL', 'killed mid-loop, not finished');
      const read = await readBootRecord(home);
      assert.is(read.state, 'ok', `a whole record after a kill at +${delayMs} ms, never a torn one`);
      const left = read.state === 'ok' ? read.record.tentative!.triesLeft : -1;
      assert.equal(read.state === 'ok' && read.record, withTries(left), 'one of the records the writer wrote');
    }
  }));

disk.run();
