// The host side of an image's mount requests (SECURITY.md row 37). core/image/requests.ts checks a
// requested source against ferry.json container.allow.mountSources by its text; the engine then
// bind-mounts whatever that path RESOLVES to on the host. A granted folder is often writable by a
// container (/srv/data bound rw), so a container can plant /srv/data/x -> /etc there, and a later
// image asking io.ferry.mounts=/srv/data/x:/host-etc:rw would get the host's /etc. So before a
// container starts, each requested source is resolved (realpath) and must still lie under the
// resolved form of a granted folder, by whole path components; ERR_NOT_GRANTED otherwise. A source
// that does not exist is refused too (ERR_NOT_GRANTED): the engine would fail on it anyway, and
// refusing here names the reason.

import { realpath } from 'node:fs/promises';
import { FerryError } from '../../core/errors.ts';
import type { ContainerGrants, ImageMountRequest } from '../../core/image/requests.ts';

function under(path: string, root: string): boolean {
  return path === root || path.startsWith(root === '/' ? '/' : `${root}/`);
}

/** Throws ERR_NOT_GRANTED naming the first requested source that resolves outside every granted folder. */
export async function checkMountSourcesOnHost(mounts: ImageMountRequest[], grants: ContainerGrants, image: string): Promise<void> {
  if (mounts.length === 0) return;
  const roots: string[] = [];
  for (const g of grants.mountSources) {
    const r = await realpath(g).catch(() => null);
    if (r !== null) roots.push(r);
  }
  for (const m of mounts) {
    const real = await realpath(m.source).catch(() => null);
    if (real === null) throw new FerryError('ERR_NOT_GRANTED', `${image} asks to mount ${m.source}, which does not exist on this device`);
    if (!roots.some((r) => under(real, r))) {
      throw new FerryError('ERR_NOT_GRANTED', `${image} asks to mount ${m.source}, which resolves to ${real}, outside what ferry.json container.allow.mountSources grants`);
    }
  }
}
