// Builds real signed repositories in temp folders: real ed25519 keys, real artifacts, real
// deltas. Tests, examples and benchmarks all make their fixtures through here; the code is the
// package's own ferry/testing (plugins/testing), so third-party transports test against exactly
// the repositories ferry's tests use.

export {
  makeRepo,
  pseudoRandomBytes,
  sampleApp,
  tempDir,
  writeTree,
  type TempDir,
  type TestRepo,
  type TreeSpec,
} from '../../plugins/testing/index.ts';
