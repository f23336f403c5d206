// What `ferry` prints when SIGINT (Ctrl-C) or SIGTERM stops a command that has no stop handling of
// its own (serve, share, run and agent drain and exit by themselves): one line naming the signal
// and what state the command leaves, then exit 128 + the signal's number (130, 143), as a shell
// reports a process killed by it. Stopping at any instant is safe by design (ARCHITECTURE.md: the
// journal and the publisher's write order), so nothing is cleaned up here; the line says what the
// next run does about it.

/** The signals a command is stopped with, and their exit statuses. */
export const STOP_SIGNALS = { SIGINT: 130, SIGTERM: 143 } as const;
export type StopSignal = keyof typeof STOP_SIGNALS;

const DEVICE_CHANGING = new Set(['update', 'apply', 'download', 'rollback']);
const PUBLISHING = new Set(['release', 'promote']);

/** The one line (without the `ferry: ` prefix) for `verb` stopped by `signal`. */
export function interruptedLine(verb: string | undefined, signal: StopSignal): string {
  const what = `${signal === 'SIGINT' ? 'interrupted' : 'stopped'} (${signal})${verb ? ` during ${verb}` : ''}`;
  if (verb && DEVICE_CHANGING.has(verb)) return `${what}; the device's journal is kept: the next ferry command or the agent resumes the download, and finishes or undoes a switch that had begun`;
  if (verb && PUBLISHING.has(verb)) return `${what}; devices still see the repository's last complete state (channel pointers are written last); a .ferry-work-* folder left in the repository can be removed`;
  if (verb === 'bundle') return `${what}; the bundle was not written (a .tmp file next to it can be removed)`;
  if (verb === 'repo') return `${what}; the repository may be partly rewritten: check it with ferry verify and run the command again`;
  if (verb === 'init') return `${what}; the home may be half-made: remove it and run ferry init again`;
  return `${what}; nothing to resume: run the command again`;
}
