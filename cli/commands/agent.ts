// `ferry agent`: the device's long-running daemon, the library Agent (plugins/agent/agent.ts) run
// from the command line.
//   ferry agent --home H [--log-format human|json] [--once] [--no-share] [--share-host A] [--share-port P]
//               [--interface-address A] [--listen PORT … [--health URL] [--drain-timeout 30s] -- <app command>]
//               [--self-tries 3] [--self-confirm-within 120s]   (for ferry's own update, under the launcher)
// This command parses the flags, builds the Agent, turns SIGTERM/SIGINT into its abort signal (an
// attempt under way is finished, never cut mid-switch, then children are stopped and the agent
// exits 0), and maps what it came to onto exit codes: `--once` exits with the code `ferry update`
// would give; the supervised app exiting on its own ends the agent with 1; a switch to a new
// version of itself ends it with RESTART_EXIT_CODE (75), for the keeper to start that version
// (ARCHITECTURE.md "Self-update"). Run by the keeper (FERRY_SELF_HOME and FERRY_SELF_VERSION
// set) it updates itself through SelfUpdate; otherwise it does not. One log line per event
// on stdout (human or JSON); `ferry run`'s own output goes to stderr. The clock is the test seam's
// when one is set (cli/seams.ts), else the real one.

import type { CommandModule } from 'yargs';
import { FerryError, isFerryError } from '../../core/errors.ts';
import { parseDurationMs } from '../../core/io/duration.ts';
import { Agent, createAgentLog, type AttemptResult } from '../../plugins/agent/agent.ts';
import { DEFAULT_CONFIRM_WITHIN_MS, DEFAULT_TRIES, RESTART_EXIT_CODE, SelfUpdate, type SelfUpdateOptions } from '../../plugins/self/self-update.ts';
import { EXIT, EXIT_CODE } from '../exit-codes.ts';
import type { OutputFlags } from '../output.ts';
import { seams } from '../seams.ts';

interface AgentArgs extends OutputFlags {
  home: string;
  logFormat: 'human' | 'json';
  once: boolean;
  share: boolean;
  shareHost: string;
  sharePort: number;
  interfaceAddress?: string;
  listen?: string[];
  health?: string;
  drainTimeout: string;
  selfTries: number;
  selfConfirmWithin: string;
  _: (string | number)[];
  '--'?: (string | number)[];
}

/** The app command: everything after the first `--` as typed (as cli/commands/run.ts reads it). */
function appCommand(args: AgentArgs): string[] {
  if (args['--']) return args['--'].map(String);
  const i = process.argv.indexOf('--');
  if (i >= 0) return process.argv.slice(i + 1);
  return args._.slice(1).map(String);
}

/** The exit code `ferry update` would have given for one attempt. */
function attemptExit(r: AttemptResult): number {
  if (r.error) return isFerryError(r.error) ? EXIT_CODE[r.error.code] : EXIT.internal;
  if (r.result?.status === 'rolled-back') return EXIT_CODE[r.result.record.errorCode ?? 'ERR_UNHEALTHY'];
  return EXIT.ok;
}

export const agentCommand: CommandModule<object, AgentArgs> = {
  command: 'agent',
  describe: 'Run as the device daemon: check and apply updates on schedule, react to USB drops, share the cache, optionally supervise the app',
  builder: (y) =>
    y
      .usage('ferry agent --home H [options] [-- <app command>]')
      .option('home', { type: 'string', demandOption: true, describe: 'the device home folder' })
      .option('log-format', { choices: ['human', 'json'] as const, default: 'human' as const, describe: 'one line per event: text, or one JSON object' })
      .option('once', { type: 'boolean', default: false, describe: 'one attempt, then exit with the code `ferry update` would give' })
      .option('share', { type: 'boolean', default: true, describe: 'with a lan source, serve the verified cache to peers (--no-share disables)' })
      .option('share-host', { type: 'string', default: '0.0.0.0', describe: 'address the cache is served on' })
      .option('share-port', { type: 'number', default: 7311 })
      .option('interface-address', { type: 'string', describe: 'with a lan source: the LAN address mDNS uses and announces' })
      .option('listen', { type: 'string', array: true, describe: 'with -- <cmd>: passed to ferry run (PORT, HOST:PORT, fd:N or systemd; repeat); under socket activation the default is every socket systemd passed' })
      .option('health', { type: 'string', describe: 'with -- <cmd>: passed to ferry run' })
      .option('drain-timeout', { type: 'string', default: '30s', describe: 'with -- <cmd>: passed to ferry run' })
      .option('self-tries', { type: 'number', default: DEFAULT_TRIES, describe: 'under the self-update launcher: starts a new ferry gets to confirm itself' })
      .option('self-confirm-within', { type: 'string', default: `${DEFAULT_CONFIRM_WITHIN_MS / 1000}s`, describe: 'under the self-update launcher: how long after its switch a new ferry may take to confirm (its deadline)' }) as never,
  handler: async (args) => {
    const command = appCommand(args);
    if (args.once && command.length > 0) throw new FerryError('ERR_USAGE', '--once makes one attempt and exits; it cannot supervise an app (drop the -- <cmd>)');
    const clock = seams().clock ?? (() => new Date());
    const killPoint = seams().killPoint;
    const log = createAgentLog(args.json ? 'json' : args.logFormat, (line) => process.stdout.write(line + '\n'), clock);
    // Only a keeper-started agent updates itself (one --once attempt never does). The test seam's
    // kill point matches any phase by its name (test/helpers/ferry-with-seams.mjs), SelfUpdate's too.
    const selfKillPoint = killPoint as SelfUpdateOptions['killPoint'];
    const self = args.once ? null : SelfUpdate.fromEnv(process.env, { clock, tries: args.selfTries, confirmWithinMs: parseDurationMs(args.selfConfirmWithin), log: (m) => log('note', { message: m }, m), ...(selfKillPoint ? { killPoint: selfKillPoint } : {}) });
    const agent = new Agent({
      home: args.home,
      log,
      clock,
      share: args.share ? { host: args.shareHost, port: args.sharePort } : null,
      ...(args.interfaceAddress ? { interfaceAddress: args.interfaceAddress } : {}),
      ...(command.length > 0 ? { app: { command, ...(args.listen ? { listen: args.listen } : {}), ...(args.health ? { health: args.health } : {}), drainTimeoutMs: parseDurationMs(args.drainTimeout) } } : {}),
      ...(killPoint ? { killPoint } : {}),
      self,
    });

    if (args.once) {
      process.exitCode = attemptExit(await agent.once());
      return;
    }

    const stop = new AbortController();
    const onSignal = (signal: NodeJS.Signals) => {
      if (stop.signal.aborted) log('stopping', { reason: signal, again: true }, `${signal} again: still finishing the current step`);
      else stop.abort(signal);
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    let how;
    try {
      how = await agent.run(stop.signal);
      process.exitCode = how.reason === 'app-exited' ? EXIT.internal : how.reason === 'self-update' ? RESTART_EXIT_CODE : EXIT.ok;
    } finally {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
    }
    // Everything is drained and `ferry run` let go of (it serves on); nothing left may delay the
    // restart into the new version, so exit now rather than when the event loop empties.
    if (how.reason === 'self-update') self?.restart();
  },
};
