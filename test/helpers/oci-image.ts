// Real OCI image layouts for the container tests, made at test time with umoci: a base layer
// (Debian's static busybox, and test/fixtures/container-server.c built static with gcc) and an app
// layer per version (/app/version and whatever else a test puts there). Every version of one
// family shares the base layer's exact blob, so 1.0 → 1.1 changes one layer, as a real app image
// does. Layers come out as umoci makes them (gzip); `ferry release --image` is what normalises them.

import { createHash } from 'node:crypto';
import { execFile as execFileCb } from 'node:child_process';
import { access, chmod, copyFile, mkdir, readFile, rename, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execFile = promisify(execFileCb);
const SERVER_SOURCE = fileURLToPath(new URL('../fixtures/container-server.c', import.meta.url));
const BUSYBOX_PATHS = ['/usr/bin/busybox', '/bin/busybox'];

async function onPath(cmd: string): Promise<boolean> {
  try {
    await execFile('sh', ['-c', `command -v ${cmd}`]);
    return true;
  } catch {
    return false;
  }
}

/** What the container tests need and this machine lacks (empty: all there), for a SKIP line. */
export async function containerToolsMissing(): Promise<string[]> {
  const missing: string[] = [];
  for (const cmd of ['umoci', 'runc', 'gcc']) if (!(await onPath(cmd))) missing.push(cmd);
  if (!(await staticBusybox())) missing.push('busybox-static');
  if (process.getuid?.() !== 0) missing.push('root (runc runs rootful here)');
  return missing;
}

async function staticBusybox(): Promise<string | null> {
  for (const p of BUSYBOX_PATHS) {
    if (!existsSync(p)) continue;
    try {
      const { stdout } = await execFile('ldd', [p]).catch((e) => ({ stdout: String(e.stdout ?? '') + String(e.stderr ?? '') }));
      if (/not a dynamic executable|statically linked/.test(stdout)) return p;
    } catch {
      /* next */
    }
  }
  return null;
}

/**
 * The test server, compiled static once per source version and shared by every test process
 * (written to a temp name and renamed, so two processes building at once never see half a file).
 */
export async function testServerBinary(): Promise<string> {
  const source = await readFile(SERVER_SOURCE);
  const out = join(tmpdir(), `ferry-test-container-server-${createHash('sha256').update(source).digest('hex').slice(0, 16)}`);
  if (existsSync(out)) return out;
  const tmp = `${out}.${process.pid}.tmp`;
  await execFile('gcc', ['-static', '-O2', '-o', tmp, SERVER_SOURCE]);
  await rename(tmp, out);
  return out;
}

export interface ImageVersion {
  /** The version, also the image's tag in its layout. */
  version: string;
  /** Files of the app layer, by absolute path in the container (e.g. "/app/version"); /app/version defaults to the version. */
  app?: Record<string, string | Buffer>;
  /** Image config labels (e.g. io.ferry.privileged). */
  labels?: Record<string, string>;
  /** The image's command; default ["/bin/server"]. */
  cmd?: string[];
  /** Makes the server exit 3 at start (a broken release). */
  exitAtStart?: boolean;
}

export interface ImageFamily {
  /** Builds `v` into its own OCI layout folder `out` (one image, tagged v.version); returns `out`. */
  build(v: ImageVersion, out: string): Promise<string>;
}

const FIXED_TIME = new Date('2026-01-01T00:00:00Z');

/**
 * A family of images sharing one base layer, built in `work` (a scratch folder the test owns).
 * The base layer holds /bin/busybox (with sh, cat, wget, sleep links) and /bin/server.
 */
export async function imageFamily(work: string): Promise<ImageFamily> {
  const layout = join(work, 'layout');
  const busybox = await staticBusybox();
  if (!busybox) throw new Error('no static busybox (apt-get install busybox-static)');
  const server = await testServerBinary();
  await mkdir(work, { recursive: true });
  await execFile('umoci', ['init', '--layout', layout]);
  await execFile('umoci', ['new', '--image', `${layout}:base`]);
  const baseBundle = join(work, 'base-bundle');
  await execFile('umoci', ['unpack', '--image', `${layout}:base`, baseBundle]);
  const rootfs = join(baseBundle, 'rootfs');
  await mkdir(join(rootfs, 'bin'), { recursive: true });
  await copyFile(busybox, join(rootfs, 'bin/busybox'));
  await copyFile(server, join(rootfs, 'bin/server'));
  await chmod(join(rootfs, 'bin/server'), 0o755);
  for (const tool of ['sh', 'cat', 'wget', 'sleep', 'ls', 'test', 'true', 'false']) await symlink('busybox', join(rootfs, 'bin', tool));
  for (const p of ['bin/busybox', 'bin/server']) await utimes(join(rootfs, p), FIXED_TIME, FIXED_TIME);
  await execFile('umoci', ['repack', '--image', `${layout}:base`, baseBundle]);
  await rm(baseBundle, { recursive: true, force: true });

  return {
    async build(v, out) {
      const bundle = join(work, `bundle-${v.version}`);
      await rm(bundle, { recursive: true, force: true });
      await execFile('umoci', ['unpack', '--image', `${layout}:base`, bundle]);
      const files: Record<string, string | Buffer> = { '/app/version': `${v.version}\n`, ...v.app };
      if (v.exitAtStart) files['/app/exit-at-start'] = '';
      for (const [path, content] of Object.entries(files)) {
        const p = join(bundle, 'rootfs', path);
        await mkdir(dirname(p), { recursive: true });
        await writeFile(p, content);
        await utimes(p, FIXED_TIME, FIXED_TIME);
      }
      await execFile('umoci', ['repack', '--image', `${layout}:${v.version}`, bundle]);
      await rm(bundle, { recursive: true, force: true });
      const config = ['config', '--image', `${layout}:${v.version}`, '--no-history', '--config.workingdir', '/app'];
      for (const c of v.cmd ?? ['/bin/server']) config.push('--config.cmd', c);
      for (const [k, val] of Object.entries(v.labels ?? {})) config.push('--config.label', `${k}=${val}`);
      await execFile('umoci', config);
      await exportImage(layout, v.version, out);
      return out;
    },
  };
}

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

/** Copies one tagged image (index entry, manifest, config, layers) into a fresh layout of its own. */
async function exportImage(from: string, tag: string, out: string): Promise<void> {
  const index = JSON.parse(await readFile(join(from, 'index.json'), 'utf8')) as { manifests: Descriptor[] };
  const entry = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === tag);
  if (!entry) throw new Error(`no image tagged ${tag} in ${from}`);
  const blob = (d: string) => join('blobs', 'sha256', d.replace(/^sha256:/, ''));
  const manifest = JSON.parse(await readFile(join(from, blob(entry.digest)), 'utf8')) as { config: Descriptor; layers: Descriptor[] };
  await rm(out, { recursive: true, force: true });
  await mkdir(join(out, 'blobs', 'sha256'), { recursive: true });
  for (const d of [entry, manifest.config, ...manifest.layers]) await copyFile(join(from, blob(d.digest)), join(out, blob(d.digest)));
  await writeFile(join(out, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  await writeFile(join(out, 'index.json'), JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [entry] }));
  await access(join(out, 'index.json'));
}
