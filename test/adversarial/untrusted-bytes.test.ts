// Issue 13 items 8, 9 and 10 (SECURITY.md rows 14 and 16): untrusted bytes that say too much or
// cost too much. An unsigned bundle, a file name on a stick or a release note is anyone's text and
// must not write to the terminal; data after a tar's end marker must cost nothing to refuse; and a
// bundle of the wrong shape must be refused at its first stray entry, before folders are made for
// it. Each is met through the real CLI (`node dist/cli/ferry.js` in a child process) by a real
// device home already on 1.0.0, and the costs are counted, never timed: bytes read (the kernel's
// count in /proc/self/io while the same code runs in this process) and what was created on disk.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { EXIT_CODE } from '../../cli/exit-codes.ts';
import { FerryError, isFerryError } from '../../core/errors.ts';
import { createAgentLog, logError } from '../../plugins/agent/agent-log.ts';
import { printable, printableJson } from '../../core/io/printable.ts';
import { openBundle, writeBundle } from '../../core/publish/bundle.ts';
import { createUsbSource } from '../../plugins/usb/source.ts';
import { assertRefusedByCli } from '../helpers/refusal.ts';
import { describeRun, ferry, history, smallApp } from '../helpers/crash.ts';
import { deviceOnFirstVersion, type OnFirstVersion } from '../helpers/adversarial-trust.ts';
import { tempDir } from '../helpers/repo.ts';
import { tarEntryBytes, TAR_END } from '../helpers/tar-writer.ts';

const MiB = 1024 * 1024;

/** The entry name of the issue: erase the line, go to its start, print a success, start a new line. */
const FORGED = '\x1b[2K\rferry: verified OK, installed 9.9.9\nx';
/** The same name as ferry must print it. */
const FORGED_SHOWN = '\\x1b[2K\\x0dferry: verified OK, installed 9.9.9\\x0ax';

/** Any character that can move a terminal's cursor, start a sequence or reorder text. */
const CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

/** Bytes this process has read through read(2) and friends so far (the kernel's own count). */
async function bytesRead(): Promise<number> {
  const io = await readFile('/proc/self/io', 'utf8');
  return Number(/^rchar: (\d+)$/m.exec(io)![1]);
}

/** Bytes read by this process while `fn` runs, and what it returned or threw. */
async function countRead<T>(fn: () => Promise<T>): Promise<{ read: number; result?: T; error?: unknown }> {
  const before = await bytesRead();
  try {
    const result = await fn();
    return { read: (await bytesRead()) - before, result };
  } catch (error) {
    return { read: (await bytesRead()) - before, error };
  }
}

/** Every file and folder under `dir`. */
async function created(dir: string): Promise<number> {
  return (await readdir(dir, { recursive: true }).catch(() => [])).length;
}

/** Stdout and stderr hold no control character but line ends, and no line pretends success. */
function assertNoForgedLine(run: { stdout: string; stderr: string }, what: string): void {
  for (const [stream, text] of [['stdout', run.stdout], ['stderr', run.stderr]] as const) {
    assert.not.match(text, CONTROL, `${what}: ${stream} carries no control character: ${JSON.stringify(text)}`);
    for (const line of text.split('\n')) assert.not.match(line, /^ferry: verified OK/, `${what}: no forged line on ${stream}`);
  }
}

// ---------------------------------------------------------------------------------------------
// The fixture: a repository with 1.0.0 and 1.1.0, a device on 1.0.0, a genuine 1.1.0 bundle.

interface Scene extends OnFirstVersion {
  bundle: Buffer;
  trust: string;
  /** A folder standing for a mounted stick. */
  stick: string;
}

async function withScene(fn: (s: Scene) => Promise<void>): Promise<void> {
  const t = await deviceOnFirstVersion();
  try {
    await t.repo.release('1.1.0', smallApp('1.1.0'));
    const out = join(t.repo.dir, 'genuine.ferry');
    await writeBundle({ repo: t.repo.repo, version: '1.1.0', platform: 'linux', arch: 'x64', out });
    const trust = join(t.repo.dir, 'trust.json');
    await writeFile(trust, await t.repo.trust());
    const stick = join(t.repo.dir, 'stick');
    await mkdir(stick);
    await fn({ ...t, bundle: await readFile(out), trust, stick });
  } finally {
    await t.cleanup();
  }
}

/** `tree` as the private folder a bundle is unpacked into, removed afterwards. */
async function withPrivateDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const tmp = await tempDir('ferry-untrusted-');
  try {
    return await fn(join(tmp.path, 'open'));
  } finally {
    await tmp.cleanup();
  }
}

// ---------------------------------------------------------------------------------------------

const item8 = suite('issue 13 item 8: untrusted text never reaches the terminal raw');

item8('issue 13 item 8: a bundle entry name cannot forge a terminal line: ferry verify and ferry update from a usb: stick print it escaped in one error line, exit 3', () => withScene(async (s) => {
  // The genuine bundle with the entry in front of it.
  const evil = Buffer.concat([tarEntryBytes({ name: FORGED, content: 'x' }), s.bundle]);
  const file = join(s.stick, 'update.ferry');
  await writeFile(file, evil);

  const verify = await ferry(['verify', file, '--trust', s.trust]);
  assert.is(verify.code, EXIT_CODE.ERR_UNSAFE_ARCHIVE, `ferry verify exits 3: ${describeRun(verify)}`);
  assert.is(verify.stdout, '', 'ferry verify prints no report');
  assertNoForgedLine(verify, 'ferry verify');
  const lines = verify.stderr.split('\n');
  assert.is(lines.length, 2, `one line, then the final newline: ${JSON.stringify(verify.stderr)}`);
  assert.is(lines[0], `ferry: ERR_UNSAFE_ARCHIVE: bundle entry ${FORGED_SHOWN} is not a repository file`);

  // The same bundle on a stick, read by `ferry update` (human output: what a terminal shows).
  await s.device.setConfig({ sources: [`usb:${s.stick}`] });
  const update = await ferry(['update', '--home', s.device.home]);
  assert.is(update.code, EXIT_CODE.ERR_UNSAFE_ARCHIVE, `ferry update exits 3: ${describeRun(update)}`);
  assertNoForgedLine(update, 'ferry update');
  const last = update.stderr.trimEnd().split('\n').pop()!;
  assert.match(last, /^ferry: ERR_UNSAFE_ARCHIVE: /, 'the error is the last line');
  assert.ok(last.includes(FORGED_SHOWN), `the name is shown escaped: ${last}`);

  // The refusal is recorded, the device stays on 1.0.0, and the record prints safely too.
  const { record } = await assertRefusedByCli({ home: s.device.home, args: ['update', '--home', s.device.home], code: 'ERR_UNSAFE_ARCHIVE', version: '1.0.0', files: await s.files('1.0.0') });
  assert.ok(record.message?.includes(FORGED_SHOWN), `the record quotes the name escaped: ${record.message}`);
  const shown = await ferry(['history', '--home', s.device.home]);
  assert.is(shown.code, 0, describeRun(shown));
  assertNoForgedLine(shown, 'ferry history');
  assert.ok((await history(s.device.home)).records?.length, 'history readable');
}));

item8('issue 13 item 8: signed release notes and a stick file name with escapes, C1 codes and bidi overrides are printed escaped by ferry check and ferry update', () => withScene(async (s) => {
  // Text a compromised publisher could sign: retitle the window, an 8-bit CSI, a right-to-left override.
  const notes = 'fixes\x1b]0;owned\x07 and \x9b2J and \u202eexe.txt';
  await s.repo.release('1.2.0', smallApp('1.2.0'), { notes });
  await s.device.setConfig({ sources: [s.repo.repo] });
  const check = await ferry(['check', '--home', s.device.home]);
  assert.is(check.code, 0, describeRun(check));
  assertNoForgedLine(check, 'ferry check');
  assert.ok(check.stdout.includes(printable(notes)), `the notes are shown escaped: ${check.stdout}`);
  const json = await ferry(['check', '--home', s.device.home, '--json']);
  assert.not.match(json.stdout, CONTROL, 'the JSON carries no raw control character');
  assert.is((JSON.parse(json.stdout) as { releaseNotes: string }).releaseNotes, notes, 'and still decodes to the exact notes');

  // A stick whose only bundle is named with an escape sequence and is not a bundle at all.
  await writeFile(join(s.stick, '\x1b[31mred\u202e.ferry'), 'not a tar');
  await s.device.setConfig({ sources: [`usb:${s.stick}`] });
  const update = await ferry(['update', '--home', s.device.home]);
  assert.is(update.code, EXIT_CODE.ERR_UNSAFE_ARCHIVE, describeRun(update));
  assertNoForgedLine(update, 'ferry update');
  assert.ok(update.stderr.includes('\\x1b[31mred\\u{202e}.ferry'), `the file name is shown escaped: ${update.stderr}`);
}));

item8('issue 13 item 8: printable() escapes every C0 and C1 control, DEL, bidi control, line separator and lone surrogate, and keeps all other text', () => {
  assert.is(printable('\x00\x07\t\n\r\x1b\x7f'), '\\x00\\x07\\x09\\x0a\\x0d\\x1b\\x7f');
  assert.is(printable('\x80\x9b\x9f'), '\\x80\\x9b\\x9f');
  assert.is(printable('\u202a\u202e\u2066\u2069\u200e\u200f\u061c'), '\\u{202a}\\u{202e}\\u{2066}\\u{2069}\\u{200e}\\u{200f}\\u{61c}');
  assert.is(printable('a\u2028b\u2029c'), 'a\\u{2028}b\\u{2029}c');
  assert.is(printable('\ud800x\udc00'), '\\u{d800}x\\u{dc00}');
  const plain = 'releases/1.1.0/linux-x64.full.tar.gz — é 日本 😀 "q" \\x1b';
  assert.is(printable(plain), plain, 'printable text, other Unicode and backslashes are kept');
  const value = { name: FORGED, notes: '\x9b\u202e\u2028' };
  const json = printableJson(value);
  assert.not.match(json, CONTROL);
  assert.equal(JSON.parse(json), value, 'printableJson decodes to the same value');
});

item8('issue 13 item 8: the agent\'s log escapes an error message carrying a forged line, in human and JSON lines', () => {
  for (const format of ['human', 'json'] as const) {
    const lines: string[] = [];
    const log = createAgentLog(format, (line) => lines.push(line), () => new Date('2026-12-05T12:00:00Z'));
    logError(log, new FerryError('ERR_UNSAFE_ARCHIVE', `unexpected entry ${FORGED} \u202e\x9b`), 5000);
    assert.is(lines.length, 1);
    assert.not.match(lines[0]!, CONTROL, `${format}: ${JSON.stringify(lines[0])}`);
    assert.not.match(lines[0]!, /\n/, `${format}: one line`);
    if (format === 'human') assert.ok(lines[0]!.includes(FORGED_SHOWN), lines[0]);
    else assert.is((JSON.parse(lines[0]!) as { message: string }).message, `unexpected entry ${FORGED} \u202e\x9b`, 'JSON decodes to the message');
  }
});

item8.run();

// ---------------------------------------------------------------------------------------------

const item9 = suite('issue 13 item 9: data after the tar end marker costs nothing');

item9('issue 13 item 9: a genuine bundle with 32 MiB of zeros appended is opened without reading the zeros, and ferry update installs 1.1.0 from it', () => withScene(async (s) => {
  const padded = join(s.repo.dir, 'padded.ferry');
  await writeFile(padded, Buffer.concat([s.bundle, Buffer.alloc(32 * MiB)]));

  const { read, result, error } = await withPrivateDir((dir) => countRead(() => openBundle(padded, dir)));
  assert.is(error, undefined, `the bundle opens: ${String(error)}`);
  assert.ok(result, 'a source over it');
  // Reading the file once would be 32 MiB and more; the zeros after the marker are not read.
  assert.ok(read < s.bundle.length + MiB, `bytes read while opening: ${read}, the bundle itself is ${s.bundle.length}`);

  await s.device.setConfig({ sources: [padded] });
  const run = await ferry(['update', '--home', s.device.home, '--json']);
  assert.is(run.code, 0, describeRun(run));
  assert.is((JSON.parse(run.stdout) as { status: string }).status, 'committed');
}));

item9('issue 13 item 9: a 64 MiB all-zero x.ferry on a stick is refused (ERR_UNSAFE_ARCHIVE) having read it once, to copy it', () => withScene(async (s) => {
  const size = 64 * MiB;
  await writeFile(join(s.stick, 'x.ferry'), Buffer.alloc(size));

  const tmp = await tempDir('ferry-untrusted-usb-');
  const usb = createUsbSource({ mounts: [s.stick], privateDir: join(tmp.path, 'usb') });
  try {
    const { read, error } = await countRead(() => usb.read('channels/stable.json', 64 * 1024));
    assert.ok(isFerryError(error, 'ERR_UNSAFE_ARCHIVE'), `refused: ${String(error)}`);
    // The copy off the stick reads it once; unpacking the copy stops at its first two blocks.
    assert.ok(read >= size, `the copy read the stick once: ${read}`);
    assert.ok(read < size + 4 * MiB, `bytes read to refuse a ${size}-byte file: ${read} (the file once, not twice)`);
    assert.match((error as Error).message, /holds no repository file/, 'an empty tar: its end marker comes first');
  } finally {
    await usb.close();
    await tmp.cleanup();
  }

  await s.device.setConfig({ sources: [`usb:${s.stick}`] });
  await assertRefusedByCli({ home: s.device.home, args: ['update', '--home', s.device.home], code: 'ERR_UNSAFE_ARCHIVE', version: '1.0.0', files: await s.files('1.0.0') });
}));

item9.run();

// ---------------------------------------------------------------------------------------------

const item10 = suite('issue 13 item 10: a bundle is checked against its layout while it is read');

/** 4,000 empty files, each under its own chain of 31 folders (d<i>/b/c/…/e/f): 124,000 folders in about 2 MB. */
function deepBundle(): Buffer {
  const below = Array.from({ length: 30 }, (_, i) => String.fromCharCode(98 + (i % 25))).join('/');
  const entries = Array.from({ length: 4000 }, (_, i) => tarEntryBytes({ name: `d${i}/${below}/f`, content: '' }));
  return Buffer.concat([...entries, TAR_END]);
}

item10('issue 13 item 10: a bundle of 4,000 empty files 31 folders deep is refused (ERR_UNSAFE_ARCHIVE) at its first entry, having created nothing', () => withScene(async (s) => {
  const bytes = deepBundle();
  const deep = join(s.stick, 'deep.ferry');
  await writeFile(deep, bytes);

  const { read, error, made } = await withPrivateDir(async (dir) => ({ ...(await countRead(() => openBundle(deep, dir))), made: await created(dir) }));
  assert.ok(isFerryError(error, 'ERR_UNSAFE_ARCHIVE'), `refused: ${String(error)}`);
  assert.is(made, 0, 'no folder or file was created for it');
  assert.ok(read < bytes.length / 4, `bytes read: ${read} of ${bytes.length}: reading stopped at the refusal`);
  assert.match((error as Error).message, /^bundle entry d0\/b\/c\/.*\/f is not a repository file$/, 'at the first entry');

  const verify = await ferry(['verify', deep, '--trust', s.trust]);
  assert.is(verify.code, EXIT_CODE.ERR_UNSAFE_ARCHIVE, describeRun(verify));
  assert.match(verify.stderr, /^ferry: ERR_UNSAFE_ARCHIVE: bundle entry d0\/b\/c\/\S+\/f is not a repository file\n$/);

  await s.device.setConfig({ sources: [`usb:${s.stick}`] });
  await assertRefusedByCli({ home: s.device.home, args: ['update', '--home', s.device.home], code: 'ERR_UNSAFE_ARCHIVE', version: '1.0.0', files: await s.files('1.0.0') });
}));

item10.run();
