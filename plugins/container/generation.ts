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
// its own config.json; the image's rootfs is unpacked once per version by the engine's
// prepareBundle (bundle.ts: <home>/containers/<version>, image config, ferry.json env and mounts,
// grants checked) and shared read-only, so two generations of one version neither clash nor see each other's
// writes, and a handover does not pay for an unpack per generation. State belongs in
// container.mounts; /tmp is a private tmpfs. Containers live under a runc state root of the home's
// own (<home>/run/runc): only this home's supervisor (one per home: the run/ folder's pid file)
// starts or deletes them, and containers ferry runs outside `ferry run` are not touched by it.

import { execFile as execFileCb, spawnSync } from 'node:child_process';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import type { ContainerConfig } from '../../core/device/config.ts';
import { FerryError } from '../../core/errors.ts';
import type { ContainerGrants } from '../../core/image/requests.ts';
import { runDir } from '../run/control.ts';
import type { GenerationLaunch, GenerationLaunchInput, GenerationRunner } from '../run/supervisor.ts';
import { prepareBundle } from './bundle.ts';
import { mergeEnv, type OciRuntimeConfig } from './runtime-spec.ts';

/** A version's image, unpacked: its rootfs and the runtime spec made for it (env, mounts, grants applied). */
export interface ImageBundle {
  rootfs: string;
  spec: OciRuntimeConfig;
}

const execFile = promisify(execFileCb);

export interface ContainerGenerationsOptions {
  home: string;
  /** ferry.json container: name (ids are <name>-<version>-<pid>-<generation>), env and mounts. */
  container: Pick<ContainerConfig, 'name' | 'env' | 'mounts'>;
  /** What ferry.json grants an image (container.allow): an image asking more is refused (ERR_NOT_GRANTED). */
  grants: ContainerGrants;
  /** The runc binary (default: runc on PATH). */
  runc?: string;
  log?: (message: string) => void;
}

/**
 * The config.json of one generation: the version's spec with the shared rootfs read-only, no
 * terminal (stdio is the supervisor's), and the socket handover's variables (LISTEN_FDS,
 * LISTEN_FDNAMES, FERRY_NOTIFY_FD, FERRY_VERSION, FERRY_GENERATION; LISTEN_PID=1: the app is pid 1
 * in its pid namespace), which replace any the image sets. Pure.
 */
export function generationSpec(image: ImageBundle, app: Record<string, string>): OciRuntimeConfig {
  const spec = structuredClone(image.spec);
  spec.root = { path: image.rootfs, readonly: true };
  const handover = Object.entries({ ...app, LISTEN_PID: '1' }).map(([k, v]) => `${k}=${v}`);
  spec.process = { ...spec.process, terminal: false, env: mergeEnv(spec.process?.env ?? [], handover) };
  const mounts = [...(spec.mounts ?? [])];
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
    // runc is started in the bundle folder and reads paths from config.json: all must be absolute.
    this.options = { ...options, home: resolve(options.home) };
    this.root = join(runDir(this.options.home), 'runc');
    this.bundles = join(runDir(this.options.home), 'generations');
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
  }

  private image(version: string): Promise<ImageBundle> {
    let p = this.images.get(version);
    if (!p) {
      // Nothing handed in at this level: each generation's config.json adds its own fds (generationSpec).
      p = prepareBundle({ home: this.options.home, version, container: this.options.container, grants: this.options.grants })
        .then((b) => ({ rootfs: join(b.dir, 'rootfs'), spec: b.config }));
      // A failed unpack is tried again by the next generation, not remembered.
      p.catch(() => this.images.delete(version));
      this.images.set(version, p);
    }
    return p;
  }

  async launch(input: GenerationLaunchInput): Promise<GenerationLaunch> {
    const image = await this.image(input.version);
    const id = `${this.options.container.name}-${input.version}-${process.pid}-${input.id}`;
    const bundle = join(this.bundles, id);
    await mkdir(bundle, { recursive: true, mode: 0o700 });
    const spec = generationSpec(image, input.env);
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

  /** SIGKILL to runc leaves its container running: kill it too (the next start deletes its state). */
  killNow(launch: GenerationLaunch): void {
    spawnSync(this.runc, ['--root', this.root, 'kill', launch.command[launch.command.length - 1]!, 'KILL'], { stdio: 'ignore', timeout: 5000 });
  }

  /** The generation bundles present (for tests and status). */
  async bundlesPresent(): Promise<string[]> {
    return readdir(this.bundles).catch(() => []);
  }
}
