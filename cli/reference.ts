// The README's CLI reference, generated from the real command line: runs `node dist/cli/ferry.js
// <cmd> --help` for every command path (found by walking the "Commands:" lists of `ferry --help`
// and of each command group), and renders each as a `### ferry <cmd>` heading over its help text.
// `node --import tsx cli/reference.ts --write` rewrites the README section between the
// cli-reference markers; test/cli/reference.test.ts checks the README matches.
// cli/ferry.ts runs the CLI when imported, so help is read from child processes, as users see it.

import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const README = join(ROOT, 'README.md');
export const START_MARKER = '<!-- cli-reference:start -->';
export const END_MARKER = '<!-- cli-reference:end -->';

/** How many `--help` children run at once. */
const PARALLEL = 6;

/** `ferry <path…> --help`, printed for a 100-column terminal with colour off. */
export async function helpText(path: string[]): Promise<string> {
  const { stdout } = await run(process.execPath, ['dist/cli/ferry.js', ...path, '--help'], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, COLUMNS: '100', NO_COLOR: '1', FORCE_COLOR: '0' },
  });
  return hostIndependent(stdout.replace(/[ \t]+$/gm, '').trimEnd());
}

/**
 * The --platform and --arch defaults are this machine's (process.platform/arch); name them as
 * such so the reference reads the same on every host, keeping yargs' right-aligned columns.
 */
export function hostIndependent(help: string): string {
  const hostDefaults: [string, string][] = [['platform', process.platform], ['arch', process.arch]];
  return help.split('\n').map((line) => {
    for (const [option, value] of hostDefaults) {
      const from = `[default: ${JSON.stringify(value)}]`;
      const to = `[default: this host's ${option}]`;
      if (!new RegExp(`^\\s+--${option}\\b`).test(line) || !line.endsWith(from)) continue;
      // Shrink (or grow) the last run of padding so the annotations stay right-aligned.
      const head = line.slice(0, -from.length);
      const pad = [...head.matchAll(/ {2,}/g)].pop();
      if (!pad || pad.index === undefined) return head + to;
      const spaces = Math.max(2, pad[0].length - (to.length - from.length));
      return head.slice(0, pad.index) + ' '.repeat(spaces) + head.slice(pad.index + pad[0].length) + to;
    }
    return line;
  }).join('\n');
}

/** The command paths in a help text's "Commands:" list, e.g. `ferry repo init <repo>` → ['repo', 'init']. */
export function listedCommands(help: string): string[][] {
  const out: string[][] = [];
  let inCommands = false;
  for (const line of help.split('\n')) {
    if (/^Commands:\s*$/.test(line)) { inCommands = true; continue; }
    if (!inCommands) continue;
    if (line.trim() === '') { inCommands = false; continue; }
    const m = /^ {2}ferry (\S.*?)(?: {2,}|$)/.exec(line);
    if (!m) continue; // a wrapped description line
    const words = m[1]!.split(/\s+/);
    const firstArg = words.findIndex((w) => /^[<[]/.test(w));
    const path = firstArg < 0 ? words : words.slice(0, firstArg);
    if (path.length) out.push(path);
  }
  return out;
}

/** Runs `fn` over `items` with at most `limit` in flight, keeping order. */
async function mapBounded<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/** Every leaf command path with its help text, in the order `ferry --help` lists them. */
export async function commandHelps(): Promise<{ path: string[]; help: string }[]> {
  const top = listedCommands(await helpText([]));
  if (top.length === 0) throw new Error('ferry --help lists no commands');
  const expand = async (path: string[]): Promise<{ path: string[]; help: string }[]> => {
    const help = await helpText(path);
    const subs = listedCommands(help).filter((s) => s.length > path.length && path.every((w, i) => s[i] === w));
    if (subs.length === 0) return [{ path, help }];
    const nested = await mapBounded(subs, PARALLEL, expand);
    return nested.flat();
  };
  return (await mapBounded(top, PARALLEL, expand)).flat();
}

/** The Markdown that goes between the README markers. */
export async function cliReference(): Promise<string> {
  const sections = (await commandHelps()).map(({ path, help }) =>
    `### ferry ${path.join(' ')}\n\n\`\`\`text\n${help}\n\`\`\`\n`);
  return sections.join('\n');
}

/** The text between the README markers, or undefined when they are missing. */
export function readmeSection(readme: string): string | undefined {
  const start = readme.indexOf(START_MARKER);
  const end = readme.indexOf(END_MARKER);
  if (start < 0 || end < start) return undefined;
  return readme.slice(start + START_MARKER.length, end).replace(/^\n/, '').replace(/\n$/, '');
}

/** `readme` with the text between the markers replaced by `reference`. */
export function withSection(readme: string, reference: string): string {
  const start = readme.indexOf(START_MARKER);
  const end = readme.indexOf(END_MARKER);
  if (start < 0 || end < start) throw new Error(`README.md has no ${START_MARKER} … ${END_MARKER} section`);
  return `${readme.slice(0, start + START_MARKER.length)}\n${reference}\n${readme.slice(end)}`;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const reference = await cliReference();
  if (process.argv.includes('--write')) {
    await writeFile(README, withSection(await readFile(README, 'utf8'), reference));
    console.log(`README.md: CLI reference rewritten (${reference.length} characters)`);
  } else {
    process.stdout.write(reference);
  }
}
