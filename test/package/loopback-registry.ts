// A read-only npm registry on 127.0.0.1 holding a packed ferry tarball and exactly ferry's
// production dependencies at the versions package-lock.json pins, so the install test runs
// `npm install ferry` as a user does (resolving ferry's semver ranges through a registry) without
// leaving loopback.
// Packuments are built from the lockfile (version, integrity) and each installed copy's
// package.json; tarball bytes come from npm's own cache (filled by `npm ci`), found by their
// integrity hash, so what is served is byte for byte what the public registry served.

import { createServer, type Server } from 'node:http';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import semver from 'semver';
import { listenHttp } from '../../plugins/http/listen.ts';

interface LockEntry {
  version?: string;
  integrity?: string;
  dev?: boolean;
  link?: boolean;
}

interface Version {
  manifest: Record<string, unknown>;
  integrity: string;
}

export interface LoopbackRegistry {
  url: string;
  /** name@version of every package served, for messages. */
  packages: string[];
  close(): Promise<void>;
}

/** The path of a cached tarball in npm's content-addressed cache (cacache content-v2 layout). */
export function cachedContentPath(cacheDir: string, integrity: string): string {
  // A lockfile integrity may list several hashes; npm stores the content under the first.
  const [algo, b64] = integrity.split(/\s+/)[0]!.split('-', 2) as [string, string];
  const hex = Buffer.from(b64, 'base64').toString('hex');
  return join(cacheDir, '_cacache', 'content-v2', algo, hex.slice(0, 2), hex.slice(2, 4), hex.slice(4));
}

/** Reads the production packages a lockfile pins: name → version → (manifest, integrity). */
function productionPackages(root: string): Map<string, Map<string, Version>> {
  const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')) as { packages: Record<string, LockEntry> };
  const out = new Map<string, Map<string, Version>>();
  for (const [path, entry] of Object.entries(lock.packages)) {
    if (path === '' || entry.dev || entry.link || !entry.version || !entry.integrity) continue;
    const name = path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length);
    const manifest = JSON.parse(readFileSync(join(root, path, 'package.json'), 'utf8')) as Record<string, unknown>;
    if (manifest.version !== entry.version) throw new Error(`${path}: installed ${String(manifest.version)}, lockfile pins ${entry.version}; run npm ci`);
    const versions = out.get(name) ?? new Map<string, Version>();
    versions.set(entry.version, { manifest, integrity: entry.integrity });
    out.set(name, versions);
  }
  return out;
}

function tarballName(name: string, version: string): string {
  return `${name.replace(/^@[^/]+\//, '')}-${version}.tgz`;
}

/**
 * Starts the registry serving `packed` (a tarball `npm pack` made of the checkout at `root`) as
 * ferry, and ferry's dependencies; every dependency's tarball must already be in npm's cache (it
 * is after `npm ci`).
 */
export async function startLoopbackRegistry(root: string, packed: string): Promise<LoopbackRegistry> {
  const cacheDir = execFileSync('npm', ['config', 'get', 'cache'], { cwd: root, encoding: 'utf8' }).trim();
  const packages = productionPackages(root);
  const files = new Map<string, string>(); // URL path of a tarball → the file holding its bytes
  for (const [name, versions] of packages) {
    for (const [version, v] of versions) files.set(`/${name}/-/${tarballName(name, version)}`, cachedContentPath(cacheDir, v.integrity));
  }
  const ferry = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as Record<string, unknown> & { name: string; version: string };
  const integrity = `sha512-${createHash('sha512').update(readFileSync(packed)).digest('base64')}`;
  packages.set(ferry.name, new Map([[ferry.version, { manifest: ferry, integrity }]]));
  files.set(`/${ferry.name}/-/${tarballName(ferry.name, ferry.version)}`, packed);
  let base = '';
  const server: Server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    const cached = files.get(path);
    if (cached) {
      let bytes: Buffer;
      try {
        bytes = readFileSync(cached);
      } catch {
        res.writeHead(500).end(`${path} is not in npm's cache (${cached})`);
        return;
      }
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': bytes.length }).end(bytes);
      return;
    }
    const versions = packages.get(path.slice(1));
    if (!versions) {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}');
      return;
    }
    const name = path.slice(1);
    const entries = [...versions].map(([version, v]) => [version, { ...v.manifest, dist: { integrity: v.integrity, tarball: `${base}/${name}/-/${tarballName(name, version)}` } }]);
    const latest = semver.rsort([...versions.keys()])[0]!;
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ name, 'dist-tags': { latest }, versions: Object.fromEntries(entries) }));
  });
  const listening = await listenHttp(server, '127.0.0.1', 0);
  base = listening.url.replace(/\/$/, '');
  return {
    url: `${base}/`,
    packages: [...packages].flatMap(([name, versions]) => [...versions.keys()].map((v) => `${name}@${v}`)),
    close: () => listening.close(),
  };
}
