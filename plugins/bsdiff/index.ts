// `ferry/plugins/bsdiff`: the Patcher over bsdiff-node (bspatch in a worker process).

export { createBsdiffPatcher } from './patcher.ts';
