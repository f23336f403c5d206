// The four things every adversarial test asserts about a refused attempt, checked through the
// real CLI (a child `ferry` process), so the exit code and the printed code are what a user sees:
//   1. the stable error code (stderr JSON with --json),
//   2. the exit code the README's table gives that code,
//   3. the device still on a complete working version: `current` links to the expected version
//      and every file under it hashes, sizes and moded as signed (an own walk, not ferry's),
//   4. a history record of the refused attempt carrying that code.

import * as assert from 'uvu/assert';
import { EXIT_CODE } from '../../cli/exit-codes.ts';
import type { ErrorCode } from '../../core/errors.ts';
import type { TreeEntry } from '../../core/trust/metadata.ts';
import type { UpdateRecord } from '../../core/spec.ts';
import { describeRun, ferry, history, treeProblems, type Run } from './crash.ts';
import { readlink } from 'node:fs/promises';
import { join } from 'node:path';

export interface RefusalExpectation {
  home: string;
  /** The command after `ferry`, e.g. ['update', '--home', home]; `--json` is added. */
  args: string[];
  code: ErrorCode;
  /** The version `current` must still link to (null: nothing installed, and `current` must not exist). */
  version: string | null;
  /** That version's signed file list (ignored when version is null). */
  files?: TreeEntry[];
  env?: Record<string, string>;
}

export interface Refusal {
  run: Run;
  /** The history record written for this attempt. */
  record: UpdateRecord;
}

/** Runs the command and asserts all four; returns what it saw for further, case-specific checks. */
export async function assertRefusedByCli(e: RefusalExpectation): Promise<Refusal> {
  const before = (await history(e.home)).records ?? [];
  const run = await ferry([...e.args, '--json'], e.env);
  const what = `ferry ${e.args.join(' ')}`;

  // 1 and 2: the code and its exit code.
  let printed: { error?: { code?: string } } = {};
  try {
    printed = JSON.parse(run.stderr.trim().split('\n').pop() ?? '{}');
  } catch {
    assert.unreachable(`${what}: stderr is not one JSON error: ${describeRun(run)}`);
  }
  assert.is(printed.error?.code, e.code, `${what}: error code (${describeRun(run)})`);
  assert.is(run.code, EXIT_CODE[e.code], `${what}: exit code for ${e.code}`);

  // 3: a complete, working version.
  await assertCompleteVersion(e.home, e.version, e.files);

  // 4: a new history record of the refused attempt with that code.
  const after = (await history(e.home)).records;
  assert.ok(after, `${what}: history readable afterwards`);
  const known = new Set(before.map((r) => r.id));
  const fresh = after!.filter((r) => !known.has(r.id));
  const record = fresh.find((r) => r.errorCode === e.code);
  assert.ok(record, `${what}: a history record with ${e.code} (new records: ${JSON.stringify(fresh)})`);
  assert.ok(record!.outcome === 'refused' || record!.outcome === 'failed', `${what}: record outcome ${record!.outcome}`);
  assert.ok(record!.finishedAt, `${what}: the record is closed`);
  return { run, record: record! };
}

/** `current` links to `version` and its tree is exactly `files` (or, for null, there is no `current`). */
export async function assertCompleteVersion(home: string, version: string | null, files?: TreeEntry[]): Promise<void> {
  let link: string | null = null;
  try {
    link = await readlink(join(home, 'current'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (version === null) {
    assert.is(link, null, 'nothing was installed');
    return;
  }
  assert.is(link, `releases/${version}`, `current links to releases/${version}`);
  assert.ok(files, `the signed file list of ${version} is given`);
  const problems = await treeProblems(join(home, 'current'), files!);
  assert.equal(problems, [], `current (${version}) is complete and exactly as signed`);
}
