// ferry/testing: what a transport author needs to prove a Source the way ferry's own transports
// are proved (ARCHITECTURE.md "Entry points"): real signed repositories in temp folders, and the
// shared Source conformance suite, which runs under any test framework (or none) and asserts with
// node:assert.
//
//   import { sourceConformance } from 'ferry/testing';
//   import { test, after } from 'node:test';
//   sourceConformance('my transport', async (repoDir) => ({ source: mySource(repoDir), close: async () => {} }), { test, after });

export {
  CONFORMANCE_VERSIONS,
  runSourceConformance,
  sourceConformance,
  type ConformanceResult,
  type ConformanceSubject,
  type MakeSubject,
  type TestRegistrar,
} from './source-conformance.ts';
export { makeRepo, type ReleaseOptions, type TestRepo } from './repo.ts';
export { pseudoRandomBytes, sampleApp, writeTree, type TreeSpec } from './sample-app.ts';
export { tempDir, type TempDir } from './temp-dir.ts';
export { assertRefused } from './assert-refused.ts';
