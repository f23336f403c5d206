// `ferry/plugins/bsdiff`: the Patcher over bsdiff-node — the publisher's matcher (raw streams for
// FERRYBD1, windowed on large files) and bspatch in a worker process for old BSDIFF40 entries.

export { createBsdiffPatcher, DEFAULT_DIFF_WINDOWS } from './patcher.ts';
