// What a container image asks of the device, and whether the device grants it (SECURITY.md
// "Containers"). An image states its needs in its config's labels, as balena's io.balena.features.*
// labels do, so the request travels inside the image and is covered by its digest and the signed
// file list:
//
//   io.ferry.privileged    "true"                        all capabilities and devices
//   io.ferry.network       "host" | "none"               host networking (default: a private namespace)
//   io.ferry.capabilities  "CAP_NET_ADMIN,CAP_SYS_TIME"  capabilities beyond the engine's default set
//   io.ferry.mounts        "/run/dbus:/run/dbus:ro,…"    host folders bound into the container
//
// ferry.json `container.allow` is what the device grants. Anything asked and not granted refuses the
// release with ERR_NOT_GRANTED before it is switched to, so the running container is untouched.
// Both functions are pure.

import { FerryError } from '../errors.ts';

export interface ImageMountRequest {
  source: string;
  destination: string;
  readOnly: boolean;
}

export interface ImageRequests {
  privileged: boolean;
  hostNetwork: boolean;
  /** Upper-case CAP_* names, sorted, without duplicates. */
  capabilities: string[];
  mounts: ImageMountRequest[];
}

export interface ContainerGrants {
  privileged: boolean;
  hostNetwork: boolean;
  /** CAP_* names the device lets an image add. */
  capabilities: string[];
  /** Host folders an image may bind (a request must be one of them or lie under one). */
  mountSources: string[];
}

export const NO_GRANTS: ContainerGrants = { privileged: false, hostNetwork: false, capabilities: [], mountSources: [] };

const CAPABILITY = /^CAP_[A-Z_]{2,32}$/;
const ABSOLUTE = /^\/[^\0]*$/;

/** Reads the io.ferry.* labels of an image config; ERR_SCHEMA naming the label when one is malformed. */
export function imageRequests(labels: Record<string, string> | undefined | null): ImageRequests {
  const l = labels ?? {};
  const privileged = l['io.ferry.privileged'];
  if (privileged !== undefined && privileged !== 'true' && privileged !== 'false') {
    throw new FerryError('ERR_SCHEMA', `image label io.ferry.privileged is "${privileged}" (true or false)`);
  }
  const network = l['io.ferry.network'];
  if (network !== undefined && network !== 'host' && network !== 'none') {
    throw new FerryError('ERR_SCHEMA', `image label io.ferry.network is "${network}" (host or none)`);
  }
  const capabilities = [...new Set(list(l['io.ferry.capabilities']).map((c) => c.toUpperCase()))].sort();
  for (const c of capabilities) {
    if (!CAPABILITY.test(c)) throw new FerryError('ERR_SCHEMA', `image label io.ferry.capabilities has "${c}" (CAP_* names)`);
  }
  const mounts = list(l['io.ferry.mounts']).map(parseMount);
  return { privileged: privileged === 'true', hostNetwork: network === 'host', capabilities, mounts };
}

function list(value: string | undefined): string[] {
  return (value ?? '').split(',').map((s) => s.trim()).filter((s) => s.length > 0);
}

function parseMount(spec: string): ImageMountRequest {
  const [source, destination, mode, ...rest] = spec.split(':');
  if (!source || !destination || rest.length > 0 || (mode !== undefined && mode !== 'ro' && mode !== 'rw')) {
    throw new FerryError('ERR_SCHEMA', `image label io.ferry.mounts has "${spec}" (source:destination[:ro|rw])`);
  }
  for (const p of [source, destination]) {
    if (!ABSOLUTE.test(p) || p.split('/').includes('..')) throw new FerryError('ERR_SCHEMA', `image label io.ferry.mounts has "${spec}": paths must be absolute, without ..`);
  }
  return { source, destination, readOnly: mode !== 'rw' };
}

/** Is `path` one of `allowed` or under one (whole path components only: /data does not cover /database)? */
function underOne(path: string, allowed: string[]): boolean {
  const norm = (p: string) => (p.length > 1 ? p.replace(/\/+$/, '') : p);
  const p = norm(path);
  return allowed.map(norm).some((a) => p === a || p.startsWith(a === '/' ? '/' : `${a}/`));
}

/** Every request the grants do not cover, as text for people; empty when all are granted. */
export function ungranted(requests: ImageRequests, grants: ContainerGrants): string[] {
  const out: string[] = [];
  if (requests.privileged && !grants.privileged) out.push('privileged');
  if (requests.hostNetwork && !grants.hostNetwork) out.push('host network');
  const caps = new Set(grants.capabilities.map((c) => c.toUpperCase()));
  for (const c of requests.capabilities) if (!caps.has(c)) out.push(`capability ${c}`);
  for (const m of requests.mounts) if (!underOne(m.source, grants.mountSources)) out.push(`mount of ${m.source}`);
  return out;
}

/** ERR_NOT_GRANTED listing everything asked and not granted; returns quietly when all is granted. */
export function checkGrants(requests: ImageRequests, grants: ContainerGrants, image: string): void {
  const missing = ungranted(requests, grants);
  if (missing.length > 0) {
    throw new FerryError('ERR_NOT_GRANTED', `${image} asks for ${missing.join(', ')}, which ferry.json container.allow does not grant`);
  }
}
