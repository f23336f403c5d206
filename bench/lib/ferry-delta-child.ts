// Runs one ferry delta step in its own process so the bench can read that step's peak memory:
// process.resourceUsage().maxRSS covers the whole process, bsdiff-node's native threads included,
// and a fresh process per step keeps one step's heap from inflating the next one's figure.
//
//   node --import tsx bench/lib/ferry-delta-child.ts diff <oldDir> <newDir> <outFile> <workDir> <metaFile>
//   node --import tsx bench/lib/ferry-delta-child.ts apply <baseDir> <metaFile> <artifact> <outDir> <workDir>
//   node --import tsx bench/lib/ferry-delta-child.ts noop
//
// Prints one JSON line on stdout (ChildReport). `seconds` times makeDelta / applyDelta only: the
// file lists are inputs a publisher already has (publish scans the tree to sign it), like the
// tars handed to xdelta3 and zstd.

import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { applyDelta } from '../../core/delta/apply-delta.ts';
import { makeDelta } from '../../core/delta/make-delta.ts';
import { scanTree } from '../../core/publish/tree.ts';
import { createBsdiffPatcher } from '../../plugins/bsdiff/patcher.ts';
import { regularFiles, type DeltaOp, type FileEntry } from '../../core/trust/metadata.ts';

/** What the diff step leaves for the apply step: the signed parts of a delta. */
export interface DeltaMeta {
  ops: DeltaOp[];
  newFiles: FileEntry[];
}

/** For a file that was neither copied nor unchanged: both candidates makeDelta weighed. */
export interface Candidate {
  path: string;
  chosen: 'patch' | 'whole';
  newSize: number;
  wholeBytes: number;
  /** null when there was no old file at that path to patch against. */
  patchBytes: number | null;
}

export interface ChildReport {
  seconds: number;
  maxRssKiB: number;
  /** diff only */
  candidates?: Candidate[];
}

async function sizeOrNull(path: string): Promise<number | null> {
  return stat(path).then((s) => s.size, () => null);
}

async function diff(oldDir: string, newDir: string, outFile: string, workDir: string, metaFile: string): Promise<ChildReport> {
  const [oldFiles, newFiles] = (await Promise.all([scanTree(oldDir), scanTree(newDir)])).map(regularFiles) as [FileEntry[], FileEntry[]];
  const start = process.hrtime.bigint();
  const made = await makeDelta({ oldDir, oldFiles, newDir, newFiles, workDir, outFile, patcher: createBsdiffPatcher() });
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const maxRssKiB = process.resourceUsage().maxRSS;

  // makeDelta names the entries of new file i `${i}.br` and `${i}.bsdiff` and leaves both in
  // workDir, so the losing candidate's size can still be read (to judge the choice).
  const index = new Map(newFiles.map((f, i) => [f.path, i]));
  const candidates: Candidate[] = [];
  for (const op of made.ops) {
    if (op.op === 'copy' || op.op === 'link') continue;
    const i = index.get(op.path)!;
    const whole = await sizeOrNull(join(workDir, `${i}.br`));
    candidates.push({
      path: op.path,
      chosen: op.op,
      newSize: newFiles[i]!.size,
      wholeBytes: whole ?? -1,
      patchBytes: await sizeOrNull(join(workDir, `${i}.bsdiff`)),
    });
  }
  const meta: DeltaMeta = { ops: made.ops, newFiles };
  await writeFile(metaFile, JSON.stringify(meta));
  return { seconds, maxRssKiB, candidates };
}

async function apply(baseDir: string, metaFile: string, artifact: string, outDir: string, workDir: string): Promise<ChildReport> {
  const meta = JSON.parse(await readFile(metaFile, 'utf8')) as DeltaMeta;
  const start = process.hrtime.bigint();
  await applyDelta({ baseDir, ops: meta.ops, targetFiles: meta.newFiles, artifact, outDir, workDir, patcher: createBsdiffPatcher() });
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  return { seconds, maxRssKiB: process.resourceUsage().maxRSS };
}

async function main(argv: string[]): Promise<ChildReport> {
  const [verb, ...args] = argv;
  const need = (n: number): string[] => {
    if (args.length !== n) throw new Error(`ferry-delta-child ${verb} takes ${n} arguments, got ${args.length}`);
    return args;
  };
  switch (verb) {
    case 'diff': {
      const [a, b, c, d, e] = need(5) as [string, string, string, string, string];
      return diff(a, b, c, d, e);
    }
    case 'apply': {
      const [a, b, c, d, e] = need(5) as [string, string, string, string, string];
      return apply(a, b, c, d, e);
    }
    case 'noop':
      // The floor under every ferry figure: node plus the tsx loader plus ferry's imports.
      need(0);
      return { seconds: 0, maxRssKiB: process.resourceUsage().maxRSS };
    default:
      throw new Error(`usage: ferry-delta-child diff|apply|noop ... (got ${String(verb)})`);
  }
}

main(process.argv.slice(2)).then(
  (report) => { process.stdout.write(JSON.stringify(report) + '\n'); },
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
