// One naming for every command's --json: the installed version is `currentVersion` (the spec's
// UpdateInfo name, also DeviceStatus's), the version offered `latestVersion`, a transition's ends
// `from`/`to` (UpdateRecord). Library results that name them otherwise are renamed here, at the
// edge, so scripts read the same field whichever command they ran.

import type { ApplyResult } from '../core/spec.ts';

/** `ferry update/apply --json`: an up-to-date result says `currentVersion`, as check and status do. */
export function applyResultJson(result: ApplyResult): unknown {
  if (result.status !== 'up-to-date') return result;
  const { current, ...rest } = result;
  return { ...rest, currentVersion: current };
}
