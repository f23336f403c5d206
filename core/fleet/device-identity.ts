// A device's identity: an ed25519 key pair made by `ferry init` in <home>/device/ (the secret in
// device.key, mode 0600, never printed or sent), and a stable device id derived from the public key.
// The id is the first 32 hex digits (128 bits) of the key id (sha256 of the raw public key), so
// anyone holding a report can check that its key really is the device's (SECURITY.md, fleet rows):
// a forger would need a key whose hash starts with the id, and a report's signature must verify
// under that key.

import { readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { FerryError, fromFsError } from '../errors.ts';
import { generateKeyFiles, keyIdOf, loadSigningKey, type SigningKey } from '../trust/keys.ts';
import type { HomeLayout } from '../device/layout.ts';

export const DEVICE_ID = /^[0-9a-f]{32}$/;

export interface DeviceIdentity {
  /** 32 lowercase hex digits: the start of the public key's sha256. */
  id: string;
  key: SigningKey;
}

export function deviceIdOf(publicKey: Uint8Array): string {
  return keyIdOf(publicKey).slice(0, 32);
}

/** Makes the key pair of a new home; ERR_USAGE when one is already there (never overwritten). */
export async function createDeviceIdentity(layout: HomeLayout): Promise<DeviceIdentity> {
  await generateKeyFiles(join(layout.deviceDir, 'device'));
  return loadDeviceIdentity(layout) as Promise<DeviceIdentity>;
}

/** The home's identity, or null for a home made before devices had keys. */
export async function loadDeviceIdentity(layout: HomeLayout): Promise<DeviceIdentity | null> {
  const exists = await readFile(layout.deviceKey).then(() => true, (err) => {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw fromFsError(err, `reading ${layout.deviceKey}`);
  });
  if (!exists) return null;
  const key = await loadSigningKey(layout.deviceKey);
  return { id: deviceIdOf(key.publicKey), key };
}

/**
 * The home's identity, made now when the home predates device keys (homes from ferry 0.1): the
 * same key then serves every later report, so the id stays stable.
 */
export async function ensureDeviceIdentity(layout: HomeLayout): Promise<DeviceIdentity> {
  const found = await loadDeviceIdentity(layout).catch(async (err) => {
    // A damaged key file (a disk fault) must not stop updates: it is kept aside for a person to
    // look at, and a new key is made. The fleet then sees a new device id, and the old one goes
    // silent ("not heard from since" in `ferry fleet`).
    if (!(err instanceof FerryError) || err.code !== 'ERR_KEY') throw err;
    await rename(layout.deviceKey, `${layout.deviceKey}.damaged`).catch((e) => { throw fromFsError(e, `moving the damaged ${layout.deviceKey} aside`); });
    return null;
  });
  if (found) return found;
  try {
    return await createDeviceIdentity(layout);
  } catch (err) {
    // Two processes racing to make it: the loser reads the winner's key.
    if (err instanceof FerryError && err.code === 'ERR_USAGE') {
      const again = await loadDeviceIdentity(layout);
      if (again) return again;
    }
    throw err;
  }
}
