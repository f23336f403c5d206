// One table from error codes to process exit codes, documented in the README. Scripts branch on
// the exit code; `--json` output carries the exact error code.

import type { ErrorCode } from '../core/errors.ts';

export const EXIT = {
  ok: 0,
  internal: 1,
  usage: 2,
  refused: 3,
  expired: 4,
  version: 5,
  notFound: 6,
  busy: 7,
  noSpace: 8,
  io: 9,
  rolledBack: 10,
  noSource: 11,
} as const;

export const EXIT_CODE: Record<ErrorCode, number> = {
  ERR_USAGE: EXIT.usage,
  ERR_KEY: EXIT.usage,
  ERR_JSON: EXIT.refused,
  ERR_SCHEMA: EXIT.refused,
  ERR_TOO_LARGE: EXIT.refused,
  ERR_SIGNATURE: EXIT.refused,
  ERR_THRESHOLD: EXIT.refused,
  ERR_UNKNOWN_KEY: EXIT.refused,
  ERR_ROOT_CHAIN: EXIT.refused,
  ERR_HASH_MISMATCH: EXIT.refused,
  ERR_SIZE: EXIT.refused,
  ERR_WRONG_TARGET: EXIT.refused,
  ERR_UNSAFE_ARCHIVE: EXIT.refused,
  ERR_UNSUPPORTED_FILE: EXIT.refused,
  ERR_PATCH: EXIT.refused,
  ERR_EXPIRED: EXIT.expired,
  ERR_DOWNGRADE: EXIT.version,
  ERR_VERSION: EXIT.version,
  ERR_ALREADY_PUBLISHED: EXIT.version,
  ERR_NOT_FOUND: EXIT.notFound,
  ERR_BUSY: EXIT.busy,
  ERR_UNHEALTHY: EXIT.rolledBack,
  ERR_GAVE_UP: EXIT.rolledBack,
  ERR_INTERRUPTED: EXIT.rolledBack,
  ERR_NOT_INSTALLED: EXIT.notFound,
  ERR_NO_SPACE: EXIT.noSpace,
  ERR_IO: EXIT.io,
  ERR_NO_SOURCE: EXIT.noSource,
  ERR_NO_PATCHER: EXIT.usage,
  ERR_NOT_GRANTED: EXIT.refused,
  ERR_CONTAINER_ENGINE: EXIT.io,
  ERR_INTERNAL: EXIT.internal,
};
