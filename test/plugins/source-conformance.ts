// The one test suite every Source runs, as a uvu suite: the cases are ferry/testing's
// (plugins/testing/source-conformance.ts, ARCHITECTURE.md "Transports"), the suite a third-party
// transport runs too. A real signed repository with two releases; the contract of
// core/ports/source.ts: whole reads, absent files, caps, resumable copies, refused paths. A
// transport passes this before anything transport-specific is tested.

import { suite } from 'uvu';
import { sourceConformance as registerConformance, type ConformanceSubject } from '../../plugins/testing/index.ts';

export { CONFORMANCE_VERSIONS, type ConformanceSubject } from '../../plugins/testing/index.ts';

export function sourceConformance(name: string, make: (repoDir: string) => Promise<ConformanceSubject>): void {
  const s = suite(`Source conformance: ${name}`);
  registerConformance(name, make, {
    test: (title, fn) => s(title, fn),
    before: (fn) => s.before(fn),
    after: (fn) => s.after(fn),
  });
  s.run();
}
