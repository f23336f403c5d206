// The ports a plugin implements (`import … from 'ferry/plugins/ports'`): Source (a transport),
// Patcher (binary diffs), HealthCheck (is the new release working?) and ProgressSink (progress of
// long steps). The core verifies whatever a plugin hands it; see each port's file for its contract.

export { hasChunkPeers, type Source, type PeerSource, type ChunkPeer } from './source.ts';
export { createDirSource } from './dir-source.ts';
export type { Patcher } from './patcher.ts';
export type { HealthCheck, HealthResult } from './health.ts';
export type { ProgressEvent, ProgressSink } from './progress.ts';
