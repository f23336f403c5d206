// Key files. A key id is the sha256 of the raw 32-byte public key, so anyone holding the public
// key can compute it and root.json never has to be trusted about which id belongs to which key.
//   <name>.key  {"keytype":"ed25519","keyid","secret"}  mode 0600, never printed
//   <name>.pub  {"keytype":"ed25519","keyid","public"}
//   <name>.pem  the public key as SPKI PEM, for openssl

import { mkdir, open, readFile, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { FerryError, fromFsError } from '../errors.ts';
import { generateKeyPair, PUBLIC_KEY_LENGTH, SECRET_KEY_LENGTH } from './ed25519.ts';
import { sha256 } from '../io/hash.ts';
import { parseStrictJson } from '../io/strict-json.ts';

export interface PublicKey {
  keyid: string;
  publicKey: Uint8Array;
}

export interface SigningKey extends PublicKey {
  secretKey: Uint8Array;
}

/** DER prefix of an ed25519 SubjectPublicKeyInfo (RFC 8410): the raw key follows it. */
const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

export function keyIdOf(publicKey: Uint8Array): string {
  return sha256(publicKey);
}


export function publicKeyToPem(publicKey: Uint8Array): string {
  const der = Buffer.concat([SPKI_ED25519_PREFIX, publicKey]);
  const b64 = der.toString('base64');
  return `-----BEGIN PUBLIC KEY-----\n${b64}\n-----END PUBLIC KEY-----\n`;
}

function publicKeyFromPem(text: string, path: string): Uint8Array {
  const b64 = text.replace(/-----(BEGIN|END) PUBLIC KEY-----/g, '').replace(/\s+/g, '');
  const der = Buffer.from(b64, 'base64');
  if (der.length !== SPKI_ED25519_PREFIX.length + PUBLIC_KEY_LENGTH || !der.subarray(0, SPKI_ED25519_PREFIX.length).equals(SPKI_ED25519_PREFIX)) {
    throw new FerryError('ERR_KEY', `${path} is not an ed25519 public key`);
  }
  return new Uint8Array(der.subarray(SPKI_ED25519_PREFIX.length));
}

function hexField(doc: unknown, field: string, length: number, path: string): Uint8Array {
  const value = (doc as Record<string, unknown> | null)?.[field];
  if (typeof value !== 'string' || !/^[0-9a-f]*$/.test(value) || value.length !== length * 2) {
    throw new FerryError('ERR_KEY', `${path}: "${field}" is not a ${length}-byte hex string`);
  }
  return new Uint8Array(Buffer.from(value, 'hex'));
}

async function readKeyFile(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new FerryError('ERR_KEY', `cannot read key file ${path}`, { cause: err });
  }
}

/** Writes <out>.key (0600, refusing to overwrite), <out>.pub and <out>.pem. */
export async function generateKeyFiles(out: string): Promise<PublicKey & { files: string[] }> {
  const { publicKey, secretKey } = generateKeyPair();
  const keyid = keyIdOf(publicKey);
  const files = [`${out}.key`, `${out}.pub`, `${out}.pem`];
  try {
    await mkdir(dirname(out), { recursive: true });
    // 'wx' + mode: the secret never exists on disk with wider permissions, and an existing key
    // is never overwritten by accident.
    const handle = await open(files[0]!, 'wx', 0o600);
    try {
      await handle.writeFile(JSON.stringify({ keytype: 'ed25519', keyid, secret: Buffer.from(secretKey).toString('hex') }) + '\n');
      await handle.sync();
    } finally {
      await handle.close();
    }
    await writeFile(files[1]!, JSON.stringify({ keytype: 'ed25519', keyid, public: Buffer.from(publicKey).toString('hex') }, null, 2) + '\n');
    await writeFile(files[2]!, publicKeyToPem(publicKey));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new FerryError('ERR_USAGE', `${files[0]} already exists; refusing to overwrite a key`);
    throw fromFsError(err, `writing key files for ${out}`);
  }
  return { keyid, publicKey, files };
}

export async function loadSigningKey(path: string): Promise<SigningKey> {
  const doc = parseKeyJson(await readKeyFile(path), path);
  const secretKey = hexField(doc, 'secret', SECRET_KEY_LENGTH, path);
  const publicKey = secretKey.slice(32);
  return { keyid: keyIdOf(publicKey), publicKey, secretKey };
}

/** Reads a public key from a .pub, a .pem, or a .key file (whose public half is used). */
export async function loadPublicKey(path: string): Promise<PublicKey> {
  const text = await readKeyFile(path);
  if (text.includes('-----BEGIN PUBLIC KEY-----')) {
    const publicKey = publicKeyFromPem(text, path);
    return { keyid: keyIdOf(publicKey), publicKey };
  }
  const doc = parseKeyJson(text, path) as Record<string, unknown>;
  if (typeof doc.secret === 'string') {
    const { keyid, publicKey } = await loadSigningKey(path);
    return { keyid, publicKey };
  }
  const publicKey = hexField(doc, 'public', PUBLIC_KEY_LENGTH, path);
  return { keyid: keyIdOf(publicKey), publicKey };
}

function parseKeyJson(text: string, path: string): unknown {
  try {
    const doc = parseStrictJson(text, 64 * 1024, path);
    if (typeof doc !== 'object' || doc === null || (doc as Record<string, unknown>).keytype !== 'ed25519') throw new Error('keytype is not ed25519');
    return doc;
  } catch (cause) {
    throw new FerryError('ERR_KEY', `${path} is not a ferry ed25519 key file`, { cause });
  }
}
