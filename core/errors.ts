// One error type for everything ferry refuses. The code is the stable contract (the CLI maps it to
// an exit code, tests assert it); the message is for people and may change.

export type ErrorCode =
  | 'ERR_USAGE' // a caller passed something that cannot work (bad flag, bad config)
  | 'ERR_KEY' // a key file is missing, malformed, or not an ed25519 key
  | 'ERR_JSON' // not strict JSON: syntax, duplicate keys, unsafe integers
  | 'ERR_SCHEMA' // valid JSON of the wrong shape
  | 'ERR_TOO_LARGE' // over a fixed cap (metadata size, artifact length, archive expansion)
  | 'ERR_SIGNATURE' // a signature does not verify, or is malformed / non-canonical
  | 'ERR_THRESHOLD' // fewer distinct trusted keys signed than the role requires
  | 'ERR_UNKNOWN_KEY' // signed by a key root does not delegate for that role
  | 'ERR_ROOT_CHAIN' // a root rotation that does not chain to the trusted root
  | 'ERR_HASH_MISMATCH' // bytes differ from their signed sha256
  | 'ERR_SIZE' // bytes differ from their signed length
  | 'ERR_EXPIRED' // signed metadata past its expiry
  | 'ERR_DOWNGRADE' // a lower sequence or version than already seen
  | 'ERR_VERSION' // not a semver version, or not greater than the channel's latest
  | 'ERR_ALREADY_PUBLISHED' // that version is already in the repository for that target
  | 'ERR_WRONG_TARGET' // another application, platform or architecture
  | 'ERR_NOT_FOUND' // a file or release the caller named does not exist
  | 'ERR_UNSAFE_ARCHIVE' // traversal, links, special files, setuid, entries outside the signed list
  | 'ERR_UNSUPPORTED_FILE' // a release tree holds something other than regular files and directories
  | 'ERR_PATCH' // a delta patch is malformed or does not apply
  | 'ERR_UNHEALTHY' // the new release failed its health check and was rolled back
  | 'ERR_GAVE_UP' // a release failed its health check too often; it is not tried again automatically
  | 'ERR_INTERRUPTED' // an update was cut short (kill, power loss) and undone on the next start
  | 'ERR_NOT_INSTALLED' // nothing is installed yet (rollback, restore point of nothing)
  | 'ERR_BUSY' // another ferry process holds this home
  | 'ERR_NO_SPACE' // the disk filled up
  | 'ERR_IO' // any other filesystem failure
  | 'ERR_NO_SOURCE' // no source answered (missing folder, connection refused, no peer): none delivered anything
  | 'ERR_NO_PATCHER' // no binary patcher on this device (bsdiff not built): deltas cannot be applied or made
  | 'ERR_NOT_GRANTED' // a container image asks for a privilege (privileged, host network, a capability, a mount) ferry.json does not grant
  | 'ERR_CONTAINER_ENGINE' // no usable container engine (runc, podman), or the engine failed to create, start or stop a container
  | 'ERR_INTERNAL'; // a bug in ferry (an impossible state), never a verdict on an input

/** Codes where trying again later (another source, another moment) can help. */
const RETRYABLE: ReadonlySet<ErrorCode> = new Set(['ERR_BUSY', 'ERR_IO', 'ERR_NO_SPACE', 'ERR_NO_SOURCE']);

export class FerryError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;

  constructor(code: ErrorCode, message: string, options: { cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'FerryError';
    this.code = code;
    this.retryable = RETRYABLE.has(code);
  }
}

export function isFerryError(err: unknown, code?: ErrorCode): err is FerryError {
  return err instanceof FerryError && (code === undefined || err.code === code);
}

/** Wraps a filesystem error in a FerryError, keeping ENOSPC distinct: disk full is an outcome. */
export function fromFsError(err: unknown, what: string): FerryError {
  if (err instanceof FerryError) return err;
  const errno = (err as NodeJS.ErrnoException | undefined)?.code;
  if (errno === 'ENOSPC' || errno === 'EDQUOT') return new FerryError('ERR_NO_SPACE', `no space left while ${what}`, { cause: err });
  if (errno === 'ENOENT') return new FerryError('ERR_NOT_FOUND', `not found while ${what}`, { cause: err });
  return new FerryError('ERR_IO', `${what} failed: ${(err as Error)?.message ?? String(err)}`, { cause: err });
}
