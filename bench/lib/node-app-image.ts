// A realistic container image for bench/container, built at bench time with umoci (no registry is
// reachable): a base layer with this machine's Node binary and the shared libraries `ldd` lists for
// it (~100 MB uncompressed, what a node "slim" base carries), and an app layer under /app holding a
// real npm package tree (pinned packages fetched with `npm pack`, cached in bench/.cache/) and the
// app's own few source files. Every version shares the base layer's exact blob; a patch bump
// (1.0.0 → 1.0.1) edits three of the app's own files (package.json's version, server.js, one lib
// module), the way a bug fix does. Layers come out as umoci writes them (gzip), i.e. as an image
// built by a normal tool and pushed to a registry. Same approach as test/helpers/oci-image.ts, with
// bigger contents.

import { chmod, copyFile, mkdir, readFile, rename, rm, utimes, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { runChecked } from './measure.ts';
import { fetchPackage, unpackPackage } from './npm-pack.ts';

/** The app's dependencies: a real npm package tree (a native binary dependency included, as many apps have). */
export const APP_DEPENDENCIES = [
  { name: 'express', version: '4.21.2' },
  { name: 'lodash', version: '4.17.21' },
  { name: 'semver', version: '7.6.3' },
  // A 10 MB native binary (as sharp, prisma or esbuild bring into real node_modules).
  { name: '@esbuild/linux-x64', version: '0.24.2' },
];

export const VERSIONS = ['1.0.0', '1.0.1'] as const;
export type Version = (typeof VERSIONS)[number];

/** Fixed mtimes, so a file left unchanged by the bump is the same bytes in both app layers' tars. */
const FIXED_TIME = new Date('2026-01-01T00:00:00Z');

/** The app's own source files for `version`; 1.0.1 changes three of them (a patch bump fixing a bug). */
function appSources(version: Version): Record<string, string> {
  const fixed = version !== '1.0.0';
  const routes: string[] = ['// routes of the bench app', "import _ from 'lodash';", ''];
  for (let i = 0; i < 60; i++) {
    // The fix changes one handler's clamp, as a patch release does.
    const clamp = fixed && i === 17 ? 'Math.max(0, Math.min(n, 100))' : 'Math.min(n, 100)';
    routes.push(`export function route${i}(query) { const n = Number(query.n ?? ${i}); return { route: ${i}, n: ${clamp}, items: _.range(${clamp}).map((x) => x * ${i + 1}) }; }`);
  }
  const util: string[] = ['// helpers of the bench app'];
  for (let i = 0; i < 40; i++) util.push(`export const helper${i} = (s) => String(s).padStart(${i + 2}, '0');`);
  return {
    'package.json': JSON.stringify({ name: 'bench-app', version, type: 'module', main: 'server.js', dependencies: Object.fromEntries(APP_DEPENDENCIES.map((d) => [d.name, d.version])) }, null, 2) + '\n',
    'server.js': [
      "// the bench app's entry: an HTTP server answering with its version",
      "import { createServer } from 'node:http';",
      "import { readFileSync } from 'node:fs';",
      "import * as routes from './lib/routes.js';",
      "const { version } = JSON.parse(readFileSync(new URL('./package.json', import.meta.url), 'utf8'));",
      'createServer((req, res) => {',
      "  const url = new URL(req.url ?? '/', 'http://app');",
      `  if (url.pathname === '/health') { res.end('ok'); return; }`,
      "  const route = routes[`route${Number(url.pathname.slice(1)) || 0}`];",
      fixed ? "  if (!route) { res.statusCode = 404; res.end(); return; }" : '',
      "  res.setHeader('content-type', 'application/json');",
      '  res.end(JSON.stringify({ version, ...route(Object.fromEntries(url.searchParams)) }));',
      '}).listen(Number(process.env.PORT ?? 8080));',
      '',
    ].join('\n'),
    'lib/routes.js': routes.join('\n') + '\n',
    'lib/util.js': util.join('\n') + '\n',
  };
}

/** The shared libraries `ldd` lists for `binary` (absolute paths as the loader looks them up). */
async function sharedLibraries(binary: string): Promise<string[]> {
  const out = await runChecked('ldd', [binary], 60_000);
  const libs = new Set<string>();
  for (const line of out.split('\n')) {
    // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)" or "/lib64/ld-linux-x86-64.so.2 (0x…)"
    const m = /(?:=>\s*)?(\/\S+)\s+\(0x[0-9a-f]+\)/.exec(line);
    if (m) libs.add(m[1]!);
  }
  if (libs.size === 0) throw new Error(`ldd listed no libraries for ${binary}: ${out}`);
  return [...libs];
}

/** Copies `from` (links followed) to `rootfs/path` with a fixed mtime. */
async function put(rootfs: string, path: string, from: string | Buffer, mode: number): Promise<void> {
  const to = join(rootfs, path);
  await mkdir(dirname(to), { recursive: true });
  if (typeof from === 'string') await copyFile(from, to);
  else await writeFile(to, from);
  await chmod(to, mode);
  await utimes(to, FIXED_TIME, FIXED_TIME);
}

export interface BuiltImages {
  /** One OCI layout folder per version, each holding one image tagged with the version. */
  layouts: Record<Version, string>;
  /** What the base layer holds, for the output. */
  baseFiles: string[];
}

/**
 * Builds both versions of the image under `work` (a scratch folder the bench owns): each version
 * into `work/image-<version>`, a layout of its own as a registry would serve it.
 */
export async function buildNodeAppImages(work: string, log: (line: string) => void): Promise<BuiltImages> {
  const layout = join(work, 'umoci-layout');
  await mkdir(work, { recursive: true });
  await runChecked('umoci', ['init', '--layout', layout], 60_000);
  await runChecked('umoci', ['new', '--image', `${layout}:base`], 60_000);

  // The base layer: node at /usr/local/bin/node (as the official images put it) and its libraries.
  const bundle = join(work, 'bundle-base');
  await runChecked('umoci', ['unpack', '--image', `${layout}:base`, bundle], 5 * 60_000);
  const rootfs = join(bundle, 'rootfs');
  const node = process.execPath;
  const baseFiles = [`/usr/local/bin/node (${node})`];
  await put(rootfs, 'usr/local/bin/node', node, 0o755);
  for (const lib of await sharedLibraries(node)) {
    await put(rootfs, lib.slice(1), lib, 0o755);
    baseFiles.push(lib);
  }
  await put(rootfs, 'etc/passwd', Buffer.from('root:x:0:0:root:/root:/bin/sh\nnode:x:1000:1000::/home/node:/bin/sh\n'), 0o644);
  await put(rootfs, 'etc/group', Buffer.from('root:x:0:\nnode:x:1000:\n'), 0o644);
  log(`image base layer: ${baseFiles.join(', ')}`);
  await runChecked('umoci', ['repack', '--image', `${layout}:base`, bundle], 10 * 60_000);
  await rm(bundle, { recursive: true, force: true });

  // The dependency tree, unpacked once and copied into each version's app layer.
  const deps = join(work, 'deps');
  for (const d of APP_DEPENDENCIES) {
    const root = await unpackPackage(await fetchPackage(`${d.name}@${d.version}`, log), join(work, 'unpack', d.name));
    await mkdir(dirname(join(deps, d.name)), { recursive: true });
    await rename(root, join(deps, d.name));
  }
  await rm(join(work, 'unpack'), { recursive: true, force: true });

  const layouts = {} as Record<Version, string>;
  for (const version of VERSIONS) {
    const vb = join(work, `bundle-${version}`);
    await runChecked('umoci', ['unpack', '--image', `${layout}:base`, vb], 10 * 60_000);
    const app = join(vb, 'rootfs', 'app');
    await mkdir(app, { recursive: true });
    await runChecked('cp', ['-a', deps, join(app, 'node_modules')], 5 * 60_000);
    // Fixed mtimes on the dependency tree too (cp -a keeps the tarball's, but be explicit for directories).
    await runChecked('find', [join(app, 'node_modules'), '-exec', 'touch', '-h', '-d', FIXED_TIME.toISOString(), '{}', '+'], 5 * 60_000);
    for (const [path, text] of Object.entries(appSources(version))) await put(join(vb, 'rootfs'), `app/${path}`, Buffer.from(text), 0o644);
    await runChecked('umoci', ['repack', '--image', `${layout}:${version}`, vb], 10 * 60_000);
    await rm(vb, { recursive: true, force: true });
    await runChecked('umoci', ['config', '--image', `${layout}:${version}`, '--no-history', '--config.workingdir', '/app',
      '--config.env', 'PATH=/usr/local/bin:/usr/bin:/bin', '--config.env', `APP_VERSION=${version}`,
      '--config.cmd', '/usr/local/bin/node', '--config.cmd', '/app/server.js', '--config.user', '1000:1000'], 60_000);
    layouts[version] = join(work, `image-${version}`);
    await exportImage(layout, version, layouts[version]);
  }
  return { layouts, baseFiles };
}

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

const blobPath = (digest: string) => join('blobs', 'sha256', digest.replace(/^sha256:/, ''));

/** Copies one tagged image (index entry, manifest, config, layers) into a fresh layout of its own. */
async function exportImage(from: string, tag: string, out: string): Promise<void> {
  const index = JSON.parse(await readFile(join(from, 'index.json'), 'utf8')) as { manifests: Descriptor[] };
  const entry = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === tag);
  if (!entry) throw new Error(`no image tagged ${tag} in ${from}`);
  const manifest = JSON.parse(await readFile(join(from, blobPath(entry.digest)), 'utf8')) as { config: Descriptor; layers: Descriptor[] };
  await rm(out, { recursive: true, force: true });
  await mkdir(join(out, 'blobs', 'sha256'), { recursive: true });
  for (const d of [entry, manifest.config, ...manifest.layers]) await copyFile(join(from, blobPath(d.digest)), join(out, blobPath(d.digest)));
  await writeFile(join(out, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  await writeFile(join(out, 'index.json'), JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [entry] }));
}
