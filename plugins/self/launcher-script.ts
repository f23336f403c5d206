// The launcher of a self home (ARCHITECTURE.md "Self-update"): a POSIX sh script, written
// once by `ferry self launcher` and run by systemd's ExecStart (or by hand). It runs the keeper
// from `S/current` (`ferry self launch`, confirmed code), forwards TERM/INT/HUP to it, and starts
// it again while it exits with 75 (RESTART_EXIT_CODE) and no stop signal came; otherwise it exits
// with the keeper's code. It decides nothing: every choice of version is the keeper's, so the
// script never has to change when ferry does.
//
// Why it is shaped so:
//   - the keeper runs in the background and the script `wait`s for it: a shell running a
//     foreground command only takes its traps after that command ends, so a TERM would not reach
//     the keeper until it had exited on its own;
//   - a trap interrupts `wait` (it returns >128 at once, POSIX), so the script waits again for the
//     keeper's real status. If the signal came just after `wait` had collected it, the second
//     `wait` answers 127 (no such job) and the first status stands;
//   - the values are single-quoted ('\'' for a quote inside), so any path is taken literally,
//     spaces, quotes, `$` and all; dash (Debian's /bin/sh) is the shell it is written for.

import { RESTART_EXIT_CODE } from './restart-exit-code.ts';

export interface LauncherScriptOptions {
  /** The self home S (absolute). */
  home: string;
  /** The node executable (absolute). */
  node: string;
  /** The keeper's file relative to a release folder (dist/cli/ferry.js, or node_modules/ferry/dist/cli/ferry.js). */
  keeper: string;
  /** The agent's entry relative to a release folder. */
  entry: string;
}

/** `value` as one single-quoted sh word. */
export function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** A comment line for the header: the value with line breaks shown, so it cannot end the comment. */
function commentValue(value: string): string {
  return value.replace(/[\r\n]/g, '?');
}

export function launcherScript(options: LauncherScriptOptions): string {
  const { home, node, keeper, entry } = options;
  return `#!/bin/sh
# ferry self-update launcher for the self home ${commentValue(home)}
# Written by \`ferry self launcher\`; it never changes, whatever version of ferry is installed.
# It runs the keeper (\`ferry self launch\`) from the home's confirmed \`current\` release, which
# decides what starts: the confirmed version, a new version on trial, or a rollback. Exit code
# ${RESTART_EXIT_CODE} from the keeper means "start me again"; any other code, or a TERM/INT/HUP
# received here (forwarded to the keeper), ends this script with the keeper's code.
# Arguments given to this script are passed to the agent.

home=${shellQuote(home)}
node=${shellQuote(node)}
keeper=${shellQuote(keeper)}
entry=${shellQuote(entry)}

child=
stopped=
interrupted=
forward() {
  stopped=$1
  interrupted=1
  if [ -n "$child" ]; then kill -s "$1" "$child" 2>/dev/null; fi
}
trap 'forward TERM' TERM
trap 'forward INT' INT
trap 'forward HUP' HUP

while :; do
  interrupted=
  "$node" "$home/current/$keeper" self launch --home "$home" --entry "$entry" -- "$@" &
  child=$!
  # A stop that came just before the keeper started: it is the keeper's too.
  if [ -n "$stopped" ]; then kill -s "$stopped" "$child" 2>/dev/null; fi
  wait "$child"
  code=$?
  while [ -n "$interrupted" ]; do
    interrupted=
    wait "$child"
    again=$?
    [ "$again" -eq 127 ] || code=$again
  done
  child=
  if [ "$code" -eq ${RESTART_EXIT_CODE} ] && [ -z "$stopped" ]; then continue; fi
  exit "$code"
done
`;
}
