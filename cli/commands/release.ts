// ferry release <app-dir>: publish a signed release (full artifact, deltas, manifest, channel pointer).
// ferry release --self: publish this ferry itself (plugins/self/release-tree.ts builds the tree).
// ferry release --rollout N: the version starts under a phased rollout (core/publish/rollout.ts).
// ferry release --image <layout|oci-archive|docker-save tar>: publish a container image; it is
// normalised first (core/image/import-image.ts: one image, layers uncompressed and scanned).

import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { importImage, type ImportedImage } from '../../core/image/import-image.ts';
import type { CommandModule } from 'yargs';
import { loadSigningKey } from '../../core/trust/keys.ts';
import { publishRelease } from '../../core/publish/publish.ts';
import { checkQuality, DEFAULT_QUALITY } from '../../core/io/brotli.ts';
import { parseDurationMs } from '../../core/io/duration.ts';
import { CHANNELS, type Channel } from '../../core/trust/metadata.ts';
import { createBsdiffPatcher } from '../../plugins/bsdiff/patcher.ts';
import { printResult, type OutputFlags } from '../output.ts';
import { defaultArch, defaultPlatform, formatBytes } from '../format.ts';
import { FerryError } from '../../core/errors.ts';
import { readRepoRoot } from '../../core/publish/repository.ts';
import { buildSelfTree, loadSelfPackage, selfCheckout, type SelfTree } from '../../plugins/self/release-tree.ts';

interface Args extends OutputFlags {
  appDir?: string;
  self: boolean;
  image?: string;
  imageRef?: string;
  repo: string;
  version?: string;
  channel: Channel;
  key: string[];
  platform: string;
  arch: string;
  notes?: string;
  notesFile?: string;
  mandatory: boolean;
  security: boolean;
  deltas: number;
  expires: string;
  patchFrom: boolean;
  compressionLevel: number;
  fullCompression: 'brotli' | 'gzip';
  inlineFileList: boolean;
  rollout?: number;
}

export const releaseCommand: CommandModule<object, Args> = {
  command: 'release [app-dir]',
  describe: 'Publish <app-dir> (or, with --self, this ferry) as a signed release into a repository',
  builder: (y) =>
    y
      .positional('app-dir', { type: 'string', describe: 'the application folder to publish' })
      .option('self', { type: 'boolean', default: false, describe: 'publish this ferry: its dist/, package.json and production node_modules (npm ci); the repository must be for app "ferry"' })
      .option('image', { type: 'string', describe: 'publish a container image: an OCI layout folder, an oci-archive tar or a docker save tar (layers are stored uncompressed)' })
      .option('image-ref', { type: 'string', describe: 'with --image: the tag of the image to publish (default: the only one); it names the image on the device' })
      .option('repo', { type: 'string', demandOption: true })
      .option('version', { type: 'string', describe: 'semver, greater than the channel\'s latest (--self: default package.json\'s)' })
      .option('channel', { choices: CHANNELS, default: 'stable' as Channel })
      .option('key', { type: 'string', array: true, demandOption: true, describe: 'release private key (.key); repeat to meet a threshold' })
      .option('platform', { type: 'string', default: defaultPlatform() })
      .option('arch', { type: 'string', default: defaultArch() })
      .option('notes', { type: 'string', describe: 'release notes' })
      .option('notes-file', { type: 'string', describe: 'read release notes from a file' })
      .option('mandatory', { type: 'boolean', default: false })
      .option('security', { type: 'boolean', default: false, describe: 'mark as a security fix' })
      .option('deltas', { type: 'number', default: 3, describe: 'make deltas from this many previous releases' })
      .option('expires', { type: 'string', default: '30d', describe: 'channel pointer lifetime' })
      .option('patch-from', { type: 'boolean', default: false, describe: 'deltas may also hold zstd-from entries where smaller; only devices on Node >= 22.15 apply them (others take the full artifact)' })
      .option('compression-level', {
        type: 'number',
        // The environment lets a pipeline (or a test suite) trade size for publish speed once.
        default: process.env.FERRY_COMPRESSION_LEVEL !== undefined ? Number(process.env.FERRY_COMPRESSION_LEVEL) : DEFAULT_QUALITY,
        defaultDescription: `${DEFAULT_QUALITY}, or $FERRY_COMPRESSION_LEVEL`,
        describe: 'brotli quality 0-11 of the full artifact and the delta entries: 11 is the smallest and slowest (~3 s per MB of binary)',
      })
      .option('rollout', { type: 'number', describe: 'start under a phased rollout: only this percentage of devices (0-100) take it; widen it with `ferry rollout`' })
      .option('full-compression', { choices: ['brotli', 'gzip'] as const, default: 'brotli' as const, describe: 'gzip writes the full artifact as .tar.gz, which devices running ferry from before .tar.br (0.1.0) can read (they refuse .tar.br), at 1.3-2.2x the bytes' })
      .option('inline-file-list', { type: 'boolean', default: false, describe: 'keep the file list inside the signed manifest, which devices running ferry from before separate file lists need (they refuse a manifest without one); default: a separate list pinned by the manifest, which keeps it small' })
      .check((a) => {
        checkQuality(a.compressionLevel as number);
        if ([a.self, a.appDir !== undefined, a.image !== undefined].filter(Boolean).length !== 1) throw new FerryError('ERR_USAGE', 'give one of an <app-dir>, --self or --image');
        if (a.imageRef !== undefined && a.image === undefined) throw new FerryError('ERR_USAGE', '--image-ref goes with --image');
        if (!a.self && a.version === undefined) throw new FerryError('ERR_USAGE', 'Missing required argument: version');
        // The tree's native modules are built for this machine: it cannot be another target's release.
        if (a.self && (a.platform !== defaultPlatform() || a.arch !== defaultArch())) {
          throw new FerryError('ERR_USAGE', `--self builds native modules for this machine (${defaultPlatform()}-${defaultArch()}); run it on a ${a.platform}-${a.arch} machine instead`);
        }
        return true;
      }) as never,
  handler: async (args) => {
    const notes = args.notesFile ? await readFile(args.notesFile, 'utf8') : args.notes;
    const keys = await Promise.all(args.key.map(loadSigningKey));
    const self = args.self ? await buildSelf(args) : undefined;
    const version = self?.version ?? args.version!;
    const image = args.image !== undefined ? await normaliseImage(args.image, args.imageRef, version) : undefined;
    const result = await publishRelease({
      repo: args.repo,
      appDir: image?.dir ?? self?.dir ?? args.appDir!,
      ...(image ? { container: { ref: image.image.ref, manifestDigest: image.image.manifestDigest, configDigest: image.image.configDigest } } : {}),
      version,
      channel: args.channel,
      keys,
      platform: args.platform,
      arch: args.arch,
      ...(notes !== undefined ? { notes } : {}),
      mandatory: args.mandatory,
      securityFix: args.security,
      deltas: args.deltas,
      expiresIn: parseDurationMs(args.expires) / 1000,
      now: new Date(),
      patcher: createBsdiffPatcher(),
      patchFrom: args.patchFrom,
      compressionLevel: args.compressionLevel,
      fullCompression: args.fullCompression,
      inlineFileList: args.inlineFileList,
      ...(args.rollout !== undefined ? { rollout: { percent: args.rollout } } : {}),
    }).finally(async () => { await self?.cleanup(); await image?.cleanup(); });
    const release = result.manifest.targets[result.target]!;
    const selfInfo = self ? { self: { app: self.app, buildMs: self.buildMs } } : {};
    const imageInfo = image ? { image: { ref: image.image.ref, digest: image.image.manifestDigest, config: image.image.configDigest, layers: image.image.layers.length, form: image.image.form } } : {};
    const rollout = result.channel.targets[result.target]?.rollout;
    const rolloutInfo = args.rollout !== undefined ? { rollout: rollout ?? null } : {};
    printResult(args, { version, channel: args.channel, target: result.target, sequence: result.channel.sequence, files: release.files.length, full: result.full, deltas: result.deltas, ...selfInfo, ...imageInfo, ...rolloutInfo }, () => [
      `released ${version} (${result.target}) on ${args.channel}, sequence ${result.channel.sequence}`,
      ...(rollout ? [`  rolling out to ${rollout.percent}% of devices; the others go no further than ${rollout.previous?.version ?? 'what they run'}`] : []),
      ...(self ? [`  ${self.app} itself, tree built in ${(self.buildMs / 1000).toFixed(1)} s`] : []),
      ...(image ? [`  image ${image.image.ref} ${image.image.manifestDigest} (${image.image.layers.length} layers, from ${image.image.form})`] : []),
      `  ${release.files.length} files, full artifact ${formatBytes(result.full.size)}`,
      ...result.deltas.map((d) => `  delta from ${d.from}: ${formatBytes(d.size)}`),
    ]);
  },
};

/** The normalised layout of `--image` in a scratch folder of its own (removed by cleanup). */
async function normaliseImage(from: string, ref: string | undefined, version: string): Promise<{ dir: string; image: ImportedImage; cleanup(): Promise<void> }> {
  const work = await mkdtemp(join(tmpdir(), 'ferry-image-'));
  const cleanup = () => rm(work, { recursive: true, force: true });
  try {
    const dir = join(work, 'layout');
    const image = await importImage({ from, outDir: dir, workDir: join(work, 'scratch'), ...(ref !== undefined ? { ref } : {}), defaultRef: version });
    await rm(join(work, 'scratch'), { recursive: true, force: true });
    return { dir, image, cleanup };
  } catch (err) {
    await cleanup();
    throw err;
  }
}

/**
 * Builds this ferry's release tree, after checking the repository is for this app: a ferry
 * release published into another app's repository would install ferry in that app's place.
 */
async function buildSelf(args: Args): Promise<SelfTree> {
  const checkout = await selfCheckout();
  const { pkg } = await loadSelfPackage(checkout);
  const { root } = await readRepoRoot(args.repo);
  if (root.app !== pkg.name) throw new FerryError('ERR_WRONG_TARGET', `${args.repo} is a repository for app "${root.app}", not "${pkg.name}"`);
  const log = args.json ? {} : { log: (m: string) => process.stderr.write(`ferry: ${m}\n`) };
  return buildSelfTree({ checkout, ...(args.version !== undefined ? { version: args.version } : {}), ...log });
}
