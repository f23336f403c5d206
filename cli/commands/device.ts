// Device commands: init, check, download, apply, update, approve, rollback, history, status,
// restore-points. Each parses flags, calls the Updater, and prints (tables, or JSON with --json).

import { readFile } from 'node:fs/promises';
import type { Argv, CommandModule } from 'yargs';
import { checkSourcesPresent, initDevice } from '../../core/device/init.ts';
import { parseReportsConfig, writeDeviceConfig } from '../../core/device/config.ts';
import { homeLayout } from '../../core/device/layout.ts';
import { loadDeviceIdentity } from '../../core/fleet/device-identity.ts';
import { fromFsError, FerryError } from '../../core/errors.ts';
import { parseDurationMs } from '../../core/io/duration.ts';
import { CHANNELS, type Channel } from '../../core/trust/metadata.ts';
import type { ApplyResult, UpdateRecord } from '../../core/spec.ts';
import { withDevice, type OpenDeviceOptions } from '../../plugins/open-device.ts';
import { printLogLine, printResult, type OutputFlags } from '../output.ts';
import { seams } from '../seams.ts';
import { defaultArch, defaultPlatform, formatBytes } from '../format.ts';
import { table } from '../table.ts';
import { createProgressSink } from '../progress.ts';
import { EXIT_CODE } from '../exit-codes.ts';
import { applyResultJson } from '../json-names.ts';

interface HomeArgs extends OutputFlags {
  home: string;
}

const homeOption = (y: Argv) => y.option('home', { type: 'string', demandOption: true, describe: 'the device home folder' });
const logTo = (args: OutputFlags): OpenDeviceOptions => (args.json ? {} : { log: printLogLine });
/** Download and staging progress on stderr (bars on a terminal, lines elsewhere); none with --json. */
const progressTo = (args: OutputFlags): OpenDeviceOptions => {
  const progress = createProgressSink(process.stderr, args.json);
  return progress ? { progress } : {};
};

/** `arg` as one shell word, so a printed hint can be pasted as it is. */
function shellWord(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

function describeApply(result: ApplyResult, home: string): string[] {
  switch (result.status) {
    case 'up-to-date':
      return [`up to date (${result.current ?? 'nothing installed'})`];
    case 'waiting': {
      const h = shellWord(home);
      const hint = result.reason === 'approval' || result.reason === 'held' ? `  approve it with: ferry approve --home ${h} ${result.version}`
        : result.reason === 'window' ? `  apply now with: ferry apply --home ${h} --ignore-window`
        : null;
      return [`${result.version} is staged and waits: ${result.why}`, ...(hint ? [hint] : [])];
    }
    case 'committed':
      return [`updated ${result.record.from ?? 'nothing'} -> ${result.record.to} (${result.record.kind}${result.record.fellBackToFull ? ', after a failed delta' : ''}, ${formatBytes(result.record.bytesMoved)} from ${result.record.source})`];
    case 'rolled-back':
      return [`rolled back: ${result.record.to} was unhealthy (${result.record.message ?? ''}); still on ${result.record.from ?? 'nothing'}`];
  }
}

/** Apply results that are failures exit non-zero (a rollback is ERR_UNHEALTHY). */
function exitFor(result: ApplyResult): void {
  if (result.status === 'rolled-back') process.exitCode = EXIT_CODE[result.record.errorCode ?? 'ERR_UNHEALTHY'];
}

interface InitArgs extends OutputFlags {
  home: string;
  trust: string;
  channel: Channel;
  source: string[];
  platform: string;
  arch: string;
  healthCmd?: string;
  healthUrl?: string;
  healthTimeout: string;
  requireApproval: boolean;
  allowDowngrade: boolean;
  autoUpdate: boolean;
  keep: number;
  maxRate?: string;
  linkUnchanged: boolean;
  reportUrl?: string;
}

/** "500k", "2m", "1000" → bytes per second. */
function parseRate(text: string): number {
  const m = /^(\d+)([kKmM]?)$/.exec(text.trim());
  if (!m) throw new FerryError('ERR_USAGE', `--max-rate "${text}" is not a rate like 500k or 2m (bytes per second)`);
  return Number(m[1]) * (m[2]?.toLowerCase() === 'k' ? 1024 : m[2]?.toLowerCase() === 'm' ? 1024 * 1024 : 1);
}

const initCommand: CommandModule<object, InitArgs> = {
  command: 'init <home>',
  describe: 'Make a device home that trusts a root.json and takes updates from sources',
  builder: (y) =>
    y
      .positional('home', { type: 'string', demandOption: true })
      .option('trust', { type: 'string', demandOption: true, describe: 'the repository\'s root.json to pin' })
      .option('channel', { choices: CHANNELS, default: 'stable' as Channel })
      .option('source', { type: 'string', array: true, demandOption: true, describe: 'repository folder, .ferry bundle, http(s)://origin, usb:<mount>, lan or lan:<host:port,…>; repeat' })
      .option('platform', { type: 'string', default: defaultPlatform() })
      .option('arch', { type: 'string', default: defaultArch() })
      .option('health-cmd', { type: 'string', describe: 'command run in the new release; exit 0 = healthy (split on spaces)' })
      .option('health-url', { type: 'string', describe: 'URL that must answer 2xx after a switch' })
      .option('health-timeout', { type: 'string', default: '30s' })
      .option('require-approval', { type: 'boolean', default: false })
      .option('allow-downgrade', { type: 'boolean', default: false })
      .option('auto-update', { type: 'boolean', default: true })
      .option('keep', { type: 'number', default: 3, describe: 'restore points kept by cleanup' })
      .option('max-rate', { type: 'string', describe: 'bandwidth cap for network downloads, bytes/s (500k, 2m)' })
      .option('link-unchanged', { type: 'boolean', default: false, describe: 'hard-link files a delta leaves unchanged (faster, half the disk; releases then share those files)' })
      .option('report-url', { type: 'string', describe: 'report endpoint this device PUTs its signed reports to (ferry serve --reports)' }) as never,
  handler: async (args) => {
    const trustBytes = await readFile(args.trust).catch((err) => { throw fromFsError(err, `reading ${args.trust}`); });
    await checkSourcesPresent(args.source);
    const reports = args.reportUrl === undefined ? null : parseReportsConfig({ url: args.reportUrl }, '--report-url');
    const health = args.healthCmd || args.healthUrl
      ? { ...(args.healthCmd ? { command: args.healthCmd.split(' ').filter(Boolean) } : {}), ...(args.healthUrl ? { url: args.healthUrl } : {}), timeoutMs: parseDurationMs(args.healthTimeout) }
      : null;
    let config = await initDevice({
      home: args.home,
      trustBytes,
      sources: args.source,
      platform: args.platform,
      arch: args.arch,
      policy: { channel: args.channel, requireApproval: args.requireApproval, allowDowngrade: args.allowDowngrade, autoUpdate: args.autoUpdate },
      health,
      keepRestorePoints: args.keep,
      maxBytesPerSecond: args.maxRate ? parseRate(args.maxRate) : null,
      linkUnchanged: args.linkUnchanged,
    });
    if (reports) {
      config = { ...config, reports };
      await writeDeviceConfig(homeLayout(args.home).config, config);
    }
    const identity = await loadDeviceIdentity(homeLayout(args.home));
    const deviceId = identity?.id ?? null;
    printResult(args, { ...config, deviceId }, () => [`initialised ${args.home} for app "${config.app}" (${config.platform}-${config.arch}) on ${config.policy.channel}`, `  device id: ${deviceId}`, `  sources: ${config.sources.join(', ')}`]);
  },
};

const checkCommand: CommandModule<object, HomeArgs> = {
  command: 'check',
  describe: 'Ask the sources whether an update is available (prints UpdateInfo with --json)',
  builder: (y) => homeOption(y) as never,
  handler: async (args) => {
    const info = await withDevice(args.home, (u) => u.checkUpdate(), { ...logTo(args), ...seams() });
    printResult(args, info, () => [
      info.updateAvailable ? `update available: ${info.currentVersion ?? 'nothing'} -> ${info.latestVersion} on ${info.channel}${info.mandatory ? ' (mandatory)' : ''}${info.securityFix ? ' (security fix)' : ''}` : `up to date (${info.currentVersion ?? 'nothing installed'})`,
      ...(info.updateAvailable ? [`  download: ${formatBytes(info.downloadSize ?? 0)} from ${info.downloadUrl}`, ...(info.releaseNotes ? info.releaseNotes.split(/\r?\n/).map((line, i) => `${i === 0 ? '  notes: ' : '         '}${line}`) : [])] : []),
    ]);
  },
};

const downloadCommand: CommandModule<object, HomeArgs & { release?: string }> = {
  command: 'download [release]',
  describe: 'Fetch and verify the update (or the offered version named) into the cache (resumable); does not switch',
  builder: (y) => homeOption(y).positional('release', { type: 'string', describe: 'a version a channel offers (default: the one policy chooses)' }) as never,
  handler: async (args) => {
    const pkg = await withDevice(args.home, (u) => u.download(args.release === undefined ? {} : { version: args.release }), { ...logTo(args), ...progressTo(args), ...seams() });
    printResult(args, pkg, () => [pkg ? `downloaded ${pkg.version} (${pkg.kind}, ${formatBytes(pkg.size)}), verified` : 'up to date: nothing to download']);
  },
};

interface ApplyArgs extends HomeArgs {
  ignoreWindow: boolean;
}

function applyCommand(name: 'apply' | 'update', describe: string): CommandModule<object, ApplyArgs> {
  return {
    command: name,
    describe,
    builder: (y) => homeOption(y).option('ignore-window', { type: 'boolean', default: false, describe: 'switch now even outside the maintenance window' }) as never,
    handler: async (args) => {
      const result = await withDevice(args.home, (u) => u.apply({ trigger: 'manual', ignoreWindow: args.ignoreWindow }), { ...logTo(args), ...progressTo(args), ...seams() });
      printResult(args, applyResultJson(result), () => describeApply(result, args.home));
      exitFor(result);
    },
  };
}

interface ApproveArgs extends HomeArgs {
  version: string;
}

const approveCommand: CommandModule<object, ApproveArgs> = {
  command: 'approve <version>',
  describe: 'Approve a release for a device whose policy requires approval',
  builder: (y) => homeOption(y).positional('version', { type: 'string', demandOption: true }) as never,
  handler: async (args) => {
    await withDevice(args.home, (u) => u.approve(args.version), seams());
    printResult(args, { approved: args.version }, () => [`approved ${args.version}; \`ferry apply\` (or the agent) will switch to it`]);
  },
};

interface RollbackArgs extends HomeArgs {
  to?: string;
}

const rollbackCommand: CommandModule<object, RollbackArgs> = {
  command: 'rollback',
  describe: 'Switch back to a restore point (default: the newest of another version)',
  builder: (y) => homeOption(y).option('to', { type: 'string', describe: 'restore point id (ferry restore-points list)' }) as never,
  handler: async (args) => {
    const record = await withDevice(args.home, (u) => u.rollback(args.to), { ...logTo(args), ...seams() });
    printResult(args, record, () => [record.outcome === 'committed' ? `rolled back ${record.from} -> ${record.to}` : `rollback to ${record.to} failed its health check; still on ${record.from}`]);
    if (record.outcome !== 'committed') process.exitCode = EXIT_CODE.ERR_UNHEALTHY;
  },
};

function historyRows(records: UpdateRecord[]): string[] {
  return table(
    ['started', 'from', 'to', 'kind', 'bytes', 'took', 'outcome', 'error'],
    records.map((r) => [
      r.startedAt.replace('T', ' ').slice(0, 19),
      r.from ?? '-',
      r.to ?? '-',
      (r.kind ?? '-') + (r.fellBackToFull ? '*' : ''),
      formatBytes(r.bytesMoved),
      r.finishedAt ? `${((Date.parse(r.finishedAt) - Date.parse(r.startedAt)) / 1000).toFixed(1)}s` : '-',
      r.outcome,
      r.errorCode ?? '',
    ]),
  );
}

const historyCommand: CommandModule<object, HomeArgs> = {
  command: 'history',
  describe: 'Every update attempt: from, to, kind, bytes, duration, outcome, error code',
  builder: (y) => homeOption(y) as never,
  handler: async (args) => {
    const records = await withDevice(args.home, (u) => u.history(), seams());
    printResult(args, records, () => (records.length ? [...historyRows(records), ...(records.some((r) => r.fellBackToFull) ? ['* a delta failed and the full artifact was used'] : [])] : ['no update attempts yet']));
  },
};

const statusCommand: CommandModule<object, HomeArgs> = {
  command: 'status',
  describe: 'Installed version, update phase, pending update, last error',
  builder: (y) => homeOption(y) as never,
  handler: async (args) => {
    const s = await withDevice(args.home, (u) => u.status(), seams());
    printResult(args, s, () => table(['', ''], [
      ['app', `${s.app} (${s.platform}-${s.arch}) on ${s.channel}`],
      ['device id', s.deviceId ?? '- (no device key: see the log)'],
      ['version', s.currentVersion ?? 'nothing installed'],
      ['phase', s.phase],
      ['pending', s.pending ? `${s.pending.version} (${s.pending.phase})` : '-'],
      ['last error', s.lastError ? `${s.lastError.code} (${s.lastError.version ?? '-'}, ${s.lastError.at})` : '-'],
      ['restore points', String(s.restorePoints)],
      ['security floor', s.securityFloor ?? '-'],
      ...(s.databaseRebuiltFrom ? [['note', `the store was damaged and rebuilt; the old one is at ${s.databaseRebuiltFrom}`]] : []),
      ...(s.currentRepair ? [['repaired', `${s.currentRepair.action} (${s.currentRepair.at})`]] : []),
    ]).slice(2));
  },
};

interface RestoreArgs extends HomeArgs {
  action: 'list' | 'create' | 'cleanup';
  keep?: number;
}

const restorePointsCommand: CommandModule<object, RestoreArgs> = {
  command: 'restore-points <action>',
  describe: 'list | create | cleanup --keep N',
  builder: (y) =>
    homeOption(y)
      .positional('action', { choices: ['list', 'create', 'cleanup'] as const, demandOption: true })
      .option('keep', { type: 'number', describe: 'with cleanup: restore points to keep' }) as never,
  handler: async (args) => {
    await withDevice(args.home, async (u) => {
      switch (args.action) {
        case 'list': {
          const points = await u.listRestorePoints();
          printResult(args, points, () => (points.length ? table(['id', 'version', 'created', 'reason'], points.map((p) => [p.id, p.version, p.createdAt, p.reason])) : ['no restore points']));
          break;
        }
        case 'create': {
          const p = await u.createRestorePoint('manual');
          printResult(args, p, () => [`restore point ${p.id} of ${p.version}`]);
          break;
        }
        case 'cleanup': {
          if (args.keep === undefined) throw new FerryError('ERR_USAGE', 'cleanup needs --keep N');
          const r = await u.cleanupReport(args.keep);
          printResult(args, { removed: r.removed, removedReleases: r.removedReleases, keptReleases: r.keptReleases }, () => [
            `removed ${r.removed.length} restore point(s); kept the newest ${args.keep}`,
            ...(r.removedReleases.length ? [`removed release(s) ${r.removedReleases.join(', ')}`] : []),
            ...r.keptReleases.map((k) => `kept release ${k.version}: ${k.reasons.map((why) => (why === 'pinned' ? `pinned by running ferry ${k.pins.map((p) => `pid ${p.pid} (${p.command})`).join(', ')}` : why)).join(', ')}`),
          ]);
          break;
        }
      }
    }, { ...logTo(args), ...seams() });
  },
};

export const deviceCommands = [
  initCommand,
  checkCommand,
  downloadCommand,
  applyCommand('apply', 'Stage the update, switch, health-check, commit or roll back'),
  applyCommand('update', 'Check, download and apply in one step'),
  approveCommand,
  rollbackCommand,
  historyCommand,
  statusCommand,
  restorePointsCommand,
] as unknown as CommandModule[];
