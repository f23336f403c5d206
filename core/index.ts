// The library's front door (`import … from 'ferry'`, package.json "exports" "."): the spec's
// interfaces and data types, the device (Updater, openDevice/withDevice), errors, publishing,
// verification and key files. Transports, patchers, health checks and the ports they implement are
// under `ferry/plugins/*`; the app's side of `ferry run` is `ferry/app`. Only what is exported here
// (and from those subpaths) is the public API: everything else in dist/ may change in any release.

// The spec: interfaces the device implements and the data it reports.
export type {
  UpdateInfo,
  ManifestSignature,
  UpdatePackage,
  DownloadOptions,
  TimeWindow,
  UpdatePolicy,
  UpdateOutcome,
  UpdateRecord,
  RestorePoint,
  ApplyResult,
  UpdateManager,
  RollbackManager,
  GracefulUpdater,
  IntegrityVerifier,
} from './spec.ts';

// Errors: one class, a stable code per refusal (README "Exit codes and error codes").
export { FerryError, isFerryError, type ErrorCode } from './errors.ts';

// The device: a home folder's UpdateManager and RollbackManager.
export { Updater, MAX_ATTEMPTS, type UpdaterDeps, type DeviceStatus, type ApplyOptions, type StageResult, type StagedVerdict } from './update/updater.ts';
export type { Phase } from './device/journal.ts';
export type { CleanupResult, KeptRelease, KeepReason } from './update/housekeeping.ts';
export type { RunningPin } from './device/running-pins.ts';
export { initDevice } from './device/init.ts';
export { readDeviceConfig, type DeviceConfig, type HealthConfig } from './device/config.ts';
export { openDevice, withDevice, sourceFromSpec, type OpenDeviceOptions, type Device, type OpenedSource } from '../plugins/open-device.ts';
// The agent: the daemon behind `ferry agent` (checks on a schedule, wakes on USB drops, LAN peers
// and maintenance windows, shares the cache, supervises the app through `ferry run`).
export { Agent, type AgentOptions } from '../plugins/agent/agent.ts';
// Self-update: an agent that updates itself through its self home (prepare, switch, restart, confirm).
export { GracefulSelfUpdate } from '../plugins/self/graceful-self-update.ts';
export { SelfUpdate, RESTART_EXIT_CODE, type SelfUpdateOptions, type PrepareResult, type ConfirmResult } from '../plugins/self/self-update.ts';

// Publishing: keys, a repository, releases, bundles.
export { generateKeyFiles, loadSigningKey, loadPublicKey, keyIdOf, publicKeyToPem, type PublicKey, type SigningKey } from './trust/keys.ts';
export { initRepository, rotateRoot, readRepoRoot, repoSource, type RotateInput } from './publish/repository.ts';
export { publishRelease, listManifests, type ReleaseInput, type ReleaseResult } from './publish/publish.ts';
export { writeBundle, openBundle, createBundleSource, type BundleInput, type BundleResult } from './publish/bundle.ts';
export { rolloutRelease, type RolloutInput, type RolloutResult, type RolloutPlan } from './publish/rollout.ts';

// Fleets: a device's id, and the phased-rollout decision each device makes from a signed pointer.
export { deviceIdOf, type DeviceIdentity } from './fleet/device-identity.ts';
export { decideRollout, rolloutBucket, rolloutPercentAt, type RolloutDecision } from './policy/rollout.ts';
// Reports: a device's signed report, the inbox every carrier keeps, and `ferry fleet` as a call.
export { parseReport, REPORT_MAX_BYTES, type DeviceReport, type ReportAttempt, type VerifiedReport } from './fleet/report.ts';
export { acceptReport, readInbox, type AcceptedReport } from './fleet/report-inbox.ts';
export { runFleet, type FleetOptions, type FleetRun } from './fleet/run-fleet.ts';
export type { FleetSummary } from './fleet/fleet-summary.ts';

// Verification: a whole repository or bundle as a device would check it, and the spec's verifier.
export { verifyRepository, type VerifyReport, type VerifyOptions, type Problem, type ArtifactStatus } from './trust/verify-repo.ts';
export { createIntegrityVerifier } from './trust/integrity.ts';

// The signed documents' types, for programs that read reports and manifests.
export { CHANNELS, isChannel, type Channel, type ManifestDoc, type ChannelDoc, type ChannelTarget, type Rollout, type TargetRelease, type ArtifactRef, type DeltaRef, type FileEntry, type LinkEntry, type TreeEntry, type FileRef } from './trust/metadata.ts';
export type { RootDoc, RoleName, RoleSpec } from './trust/root.ts';
export type { Envelope } from './trust/dsse.ts';
