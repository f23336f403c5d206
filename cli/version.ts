// ferry's version, for `ferry --version`: read at run time from the package.json of the package
// this file belongs to (dist/cli/version.js in an installed package or a built checkout,
// cli/version.ts under tsx), so it is always the version npm installed, never a copy.

import { readFileSync } from 'node:fs';
import { FerryError } from '../core/errors.ts';

function readText(url: URL): string | undefined {
  try {
    return readFileSync(url, 'utf8');
  } catch {
    return undefined;
  }
}

/** The version in the nearest package.json named "ferry" at or above `from`. */
export function packageVersion(from: URL = new URL('.', import.meta.url)): string {
  for (let dir = from; ; dir = new URL('..', dir)) {
    const text = readText(new URL('package.json', dir));
    if (text !== undefined) {
      const pkg = JSON.parse(text) as { name?: unknown; version?: unknown };
      if (pkg.name === 'ferry' && typeof pkg.version === 'string') return pkg.version;
    }
    // A package without its package.json is a broken install, not a user's mistake.
    if (new URL('..', dir).href === dir.href) throw new FerryError('ERR_INTERNAL', `no package.json of ferry above ${from.pathname}`);
  }
}
