// The README's generated CLI reference (between the cli-reference markers) must equal what
// cli/reference.ts produces from the real `ferry … --help` output, so the README cannot drift
// from the CLI; regenerate with `node --import tsx cli/reference.ts --write`.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readFile } from 'node:fs/promises';
import { cliReference, helpText, listedCommands, readmeSection, README } from '../../cli/reference.ts';

const reference = suite('the README CLI reference');

let generated = '';

reference.before(async () => {
  generated = await cliReference();
});

reference('the README section between the markers equals the generated reference', async () => {
  const section = readmeSection(await readFile(README, 'utf8'));
  assert.ok(section !== undefined, 'README.md has the cli-reference markers');
  assert.fixture(section!, generated, 'README is stale: run `node --import tsx cli/reference.ts --write`');
});

reference('every command `ferry --help` lists has a section', async () => {
  const top = listedCommands(await helpText([]));
  assert.ok(top.length >= 15, `ferry --help lists commands (got ${top.length})`);
  const headings = new Set([...generated.matchAll(/^### ferry (.+)$/gm)].map((m) => m[1]));
  for (const path of top) {
    const name = path.join(' ');
    const covered = headings.has(name) || [...headings].some((h) => h!.startsWith(`${name} `));
    assert.ok(covered, `ferry ${name} appears in the reference`);
  }
  for (const group of ['repo init', 'repo rotate']) assert.ok(headings.has(group), `ferry ${group} appears`);
});

reference.run();
