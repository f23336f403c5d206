// `ferry run --container`: each supervisor generation is a container of the version's image
// (ARCHITECTURE.md "ferry run"). The supervisor (plugins/run/supervisor.ts) holds the listening
// sockets and asks this runner, before it spawns a generation, what to start: runc in the
// foreground, `runc run --preserve-fds N`, so the held sockets (fds 3, …) and the notify channel
// reach the container's process, which is pid 1 in its own pid namespace (LISTEN_PID=1). runc is
// the generation's process: the supervisor's SIGTERM to its group reaches runc, which forwards it
// to the container (drain); setpriv's pdeathsig lands on runc, so a SIGKILLed supervisor still
// drains its containers, and the app also sees EOF on FERRY_NOTIFY_FD.
//
// A hook in the supervisor rather than a launcher process between it and runc: one process per
// generation, no second layer of signal forwarding, and the supervisor's process-group, pdeathsig
// and exit handling apply to runc unchanged.
//
// Each generation has its own container id (<name>-<version>-<supervisor pid>-<generation>) and
// its own config.json; the image's rootfs is unpacked once per version and shared read-only
// (handover-bundle.ts), so two generations of one version neither clash nor see each other's
// writes, and a handover does not pay for an unpack per generation. State belongs in
// container.mounts; /tmp is a private tmpfs. Containers live under a runc state root of the home's
// own (<home>/run/runc): only this home's supervisor (one per home: the run/ folder's pid file)
// starts or deletes them, and containers ferry runs outside `ferry run` are not touched by it.

import { execFile as execFileCb } from 'node:child_process';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { ContainerMount } from '../../core/device/config.ts';
import { FerryError } from '../../core/errors.ts';
import { runDir } from '../run/control.ts';
import type { GenerationLaunch, GenerationLaunchInput, GenerationRunner } from '../run/supervisor.ts';
import { unpackImage, type ImageBundle, type RuntimeSpec } from './handover-bundle.ts';

const execFile = promisify(execFileCb);

export interface ContainerGenerationsOptions {
  home: string;
  /** ferry.json container.name (ids are <name>-<version>-<pid>-<generation>). */
  name: string;
  /** ferry.json container.env: added to the image's own. */
  env: Record<string, string>;
  /** ferry.json container.mounts: the device's own bind mounts. */
  mounts: ContainerMount[];
  /** The runc binary (default: runc on PATH). */
  runc?: string;
  /**
   * Readies the image of `version` (installed at `releaseDir`); default: umoci unpack into
   * <home>/run/images/<version> (handover-bundle.ts).
   */
  prepareImage?: (version: string, releaseDir: string) => Promise<ImageBundle>;
  log?: (message: string) => void;
}

/** `env` entries, later ones replacing earlier ones by name (execve keeps duplicates; getenv reads the first). */
export function mergeEnv(...sources: (string[] | Record<string, string>)[]): string[] {
  const out = new Map<string, string>();
  for (const s of sources) {
    const entries = Array.isArray(s) ? s.map((kv) => { const i = kv.indexOf('='); return i < 0 ? [kv, ''] as const : [kv.slice(0, i), kv.slice(i + 1)] as const; }) : Object.entries(s);
    for (const [k, v] of entries) {
      out.delete(k);
      out.set(k, v);
    }
  }
  return [...out].map(([k, v]) => `${k}=${v}`);
}

/**
 * The config.json of one generation: the image's spec with the shared rootfs read-only, no
 * terminal (stdio is the supervisor's), the device's env and mounts, and the socket handover's
 * variables (LISTEN_PID=1: the app is pid 1 in its pid namespace). Pure.
 */
export function generationSpec(image: ImageBundle, input: { env: Record<string, string>; mounts: ContainerMount[]; app: Record<string, string>; addMounts: boolean }): RuntimeSpec {
  const spec = structuredClone(image.spec);
  spec.root = { path: image.rootfs, readonly: true };
  spec.process = { ...spec.process, terminal: false, env: mergeEnv(spec.process.env ?? [], input.env, { ...input.app, LISTEN_PID: '1' }) };
  const mounts = [...(spec.mounts ?? [])];
  if (input.addMounts) {
    for (const m of input.mounts) mounts.push({ destination: m.destination, type: 'bind', source: m.source, options: ['rbind', 'nosuid', 'nodev', m.readOnly ? 'ro' : 'rw'] });
  }
  if (!mounts.some((m) => m.destination === '/tmp')) mounts.push({ destination: '/tmp', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'mode=1777', 'size=65536k'] });
  spec.mounts = mounts;
  return spec;
}

export class ContainerGenerations implements GenerationRunner {
  /** runc's state root for this home's generations. */
  readonly root: string;
  private readonly bundles: string;
  private readonly images = new Map<string, Promise<ImageBundle>>();
  private readonly runc: string;

  constructor(private readonly options: ContainerGenerationsOptions) {
    this.root = join(runDir(options.home), 'runc');
    this.bundles = join(runDir(options.home), 'generations');
    this.runc = options.runc ?? 'runc';
  }

  private async runcCall(args: string[]): Promise<string> {
    try {
      return (await execFile(this.runc, ['--root', this.root, ...args], { maxBuffer: 1 << 20 })).stdout;
    } catch (err) {
      const e = err as NodeJS.ErrnoException & { stderr?: string };
      throw new FerryError('ERR_CONTAINER_ENGINE', e.code === 'ENOENT' ? `${this.runc} is not installed (ferry run --container runs images with runc)` : `runc ${args[0]}: ${(e.stderr ?? e.message).trim()}`);
    }
  }

  /** The ids of the containers under this home's runc root (running or left behind). */
  async list(): Promise<string[]> {
    const out = await this.runcCall(['list', '--quiet']);
    return out.split('\n').map((l) => l.trim()).filter(Boolean);
  }

  /** Checks runc answers, and deletes every container (and generation bundle) a killed supervisor left. */
  async startup(): Promise<void> {
    await mkdir(this.root, { recursive: true, mode: 0o700 });
    // Listing also proves runc is there and works before any socket is handed to it.
    for (const id of await this.list()) {
      this.options.log?.(`deleting container ${id}, left behind by an earlier supervisor`);
      await this.runcCall(['delete', '--force', id]).catch((err: Error) => this.options.log?.(err.message));
    }
    await rm(this.bundles, { recursive: true, force: true });
    await rm(join(runDir(this.options.home), 'images'), { recursive: true, force: true });
  }

  private image(version: string, releaseDir: string): Promise<ImageBundle> {
    let p = this.images.get(version);
    if (!p) {
      p = this.options.prepareImage ? this.options.prepareImage(version, releaseDir) : unpackImage(releaseDir, join(runDir(this.options.home), 'images', version));
      // A failed unpack is tried again by the next generation, not remembered.
      p.catch(() => this.images.delete(version));
      this.images.set(version, p);
    }
    return p;
  }

  async launch(input: GenerationLaunchInput): Promise<GenerationLaunch> {
    const image = await this.image(input.version, input.dir);
    const id = `${this.options.name}-${input.version}-${process.pid}-${input.id}`;
    const bundle = join(this.bundles, id);
    await mkdir(bundle, { recursive: true, mode: 0o700 });
    const spec = generationSpec(image, { env: this.options.env, mounts: this.options.mounts, app: input.env, addMounts: !this.options.prepareImage });
    await writeFile(join(bundle, 'config.json'), JSON.stringify(spec, null, 2), { mode: 0o600 });
    return {
      command: [this.runc, '--root', this.root, 'run', '--preserve-fds', String(input.fdCount), '--bundle', bundle, id],
      cwd: bundle,
      label: `container ${id}`,
    };
  }

  /** runc deletes a container it ran in the foreground when it ends; after a SIGKILLed runc this does. */
  async cleanup(_id: number, launch: GenerationLaunch): Promise<void> {
    const id = launch.command[launch.command.length - 1]!;
    if ((await this.list().catch(() => [id])).includes(id)) await this.runcCall(['delete', '--force', id]);
    await rm(join(this.bundles, id), { recursive: true, force: true });
  }

  /** The generation bundles present (for tests and status). */
  async bundlesPresent(): Promise<string[]> {
    return readdir(this.bundles).catch(() => []);
  }
}
