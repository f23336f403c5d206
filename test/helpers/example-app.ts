// The example app (examples/app) as a release tree that runs where ferry is not installed: a device
// home has no node_modules of its own, so `import { serve } from 'ferry/app'` is resolved from the
// tree itself. Every test, examples/demo.ts and the handover bench publish or run examples/app
// through here, so the app they run is the one in the repository, on the ferry/app just built.
//
// The tree is examples/app's files plus node_modules/ferry/: the built dist/plugins/run/app.js and its
// app-*.js siblings (it imports only node: built-ins and those) and a minimal package.json mapping
// `ferry/app` to it. Copies, not links to this checkout: a release tree's links must stay inside it.

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TreeSpec } from './repo.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const APP_DIR = join(ROOT, 'examples', 'app');
const BUILT_RUN_DIR = join(ROOT, 'dist', 'plugins', 'run');

/** examples/app/server.js as in the repository, for callers that publish a variant of it. */
export const EXAMPLE_APP_SERVER = readFileSync(join(APP_DIR, 'server.js'), 'utf8');

/** The package.json that makes `ferry/app` resolve inside a tree, and nothing else of ferry. */
const VENDORED_PACKAGE_JSON = JSON.stringify({ name: 'ferry', type: 'module', exports: { './app': './app.js' } }, null, 2) + '\n';

function filesUnder(dir: string): string[] {
  // An app folder someone ran `npm install` in keeps its node_modules out: the tree's is ferry's.
  return readdirSync(dir).sort().filter((name) => name !== 'node_modules').flatMap((name) => {
    const full = join(dir, name);
    return statSync(full).isDirectory() ? filesUnder(full) : [full];
  });
}

/** node_modules/ferry/ of a tree: ferry/app as built (dist/), so `npm run build` must have run. */
export function vendoredFerryApp(): TreeSpec {
  let built: string[];
  try {
    built = readdirSync(BUILT_RUN_DIR).filter((name) => /^app(-[a-z0-9-]+)?\.js$/.test(name)).sort();
  } catch {
    built = [];
  }
  if (!built.includes('app.js')) throw new Error(`${join(BUILT_RUN_DIR, 'app.js')} is missing: run \`npm run build\` first`);
  const tree: TreeSpec = { 'node_modules/ferry/package.json': VENDORED_PACKAGE_JSON };
  for (const name of built) tree[`node_modules/ferry/${name}`] = readFileSync(join(BUILT_RUN_DIR, name));
  return tree;
}

/**
 * examples/app at `version` as a release tree, with ferry/app vendored. `server` replaces server.js
 * (a variant of EXAMPLE_APP_SERVER); package.json is `{ name, version, type: "module" }`.
 */
export function exampleAppTree(version: string, options: { server?: string; name?: string } = {}): TreeSpec {
  const tree: TreeSpec = {};
  for (const file of filesUnder(APP_DIR)) tree[relative(APP_DIR, file)] = readFileSync(file);
  tree['package.json'] = JSON.stringify({ name: options.name ?? 'sample-app', version, type: 'module' }, null, 2) + '\n';
  if (options.server !== undefined) tree['server.js'] = options.server;
  return { ...tree, ...vendoredFerryApp() };
}
