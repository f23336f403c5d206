// The five semver functions ferry uses (valid, compare, rcompare, gt, lt), taken from the `semver`
// package's own function files rather than its index: the index loads all ~50 of its modules
// (ranges, coerce, …) at every `ferry` start-up, and importing a CommonJS package through ESM
// costs more again than require. Loading only these five (and the SemVer class they share) cuts
// ~25 ms and ~6 MiB from the start of every command (bench/README.md "apply"). Same code, same
// results: strict parsing, as ferry has always used; typed here for strings only, as ferry
// calls them (no options, no SemVer objects).

import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/** The version normalised (`v1.2.3` → `1.2.3`), or null when it is not one. */
export const valid = require('semver/functions/valid.js') as (version: string) => string | null;
/** -1, 0 or 1 in semver precedence (a sort comparator). */
export const compare = require('semver/functions/compare.js') as (a: string, b: string) => -1 | 0 | 1;
/** compare reversed (newest first). */
export const rcompare = require('semver/functions/rcompare.js') as (a: string, b: string) => -1 | 0 | 1;
export const gt = require('semver/functions/gt.js') as (a: string, b: string) => boolean;
export const lt = require('semver/functions/lt.js') as (a: string, b: string) => boolean;
