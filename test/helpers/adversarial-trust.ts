// Fixtures for the trust-and-metadata attacks (SECURITY.md rows 1-13) run through the real CLI: a
// real signed repository, a real device home already on 1.0.0 (so "still on a complete working
// version" means something), and what an attacker does to the metadata between the device's runs
// — documents signed by keys the root never delegated, pointers re-pinned to hand-made manifests,
// signatures malleated — plus `ferry serve` and `ferry run` as child processes stopped by pid.

import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import { encodeEnvelope, PAYLOAD_TYPES, signEnvelope } from '../../core/trust/dsse.ts';
import { generateKeyPair } from '../../core/trust/ed25519.ts';
import { sha256 } from '../../core/io/hash.ts';
import { keyIdOf, type SigningKey } from '../../core/trust/keys.ts';
import { channelPath, manifestPath, type Channel, type ChannelDoc, type TreeEntry, type ManifestDoc } from '../../core/trust/metadata.ts';
import type { UpdatePolicy } from '../../core/spec.ts';
import { requestSupervisor, type SupervisorStatus } from '../../plugins/run/control.ts';
import { describeRun, ferry, ROOT, signedFiles, smallApp, sleep, type Run } from './crash.ts';
import { makeDevice, type TestDevice } from './device.ts';
import { exampleAppTree } from './example-app.ts';
import { makeRepo, type TestRepo, type TreeSpec } from './repo.ts';
import { readPayload, resignChannel } from './tamper.ts';

export const TARGET = 'linux-x64';
const DAY_MS = 86_400_000;

/** A fresh ed25519 key that no root delegates: what an attacker signs with. */
export function strangerKey(): SigningKey {
  const { publicKey, secretKey } = generateKeyPair();
  return { keyid: keyIdOf(publicKey), publicKey, secretKey };
}

export function daysAgo(days: number): Date {
  return new Date(Date.now() - days * DAY_MS);
}

export interface OnFirstVersion {
  repo: TestRepo;
  device: TestDevice;
  /** The signed file list of `version` for linux-x64, read from the repository's manifest. */
  files(version: string): Promise<TreeEntry[]>;
  cleanup(): Promise<void>;
}

/**
 * A repository with 1.0.0 and a device home (made by initDevice, as `ferry init` does) that has
 * installed it. `clock` is the device's clock for that first install only (to install metadata
 * that has expired since); every later run is the real CLI on the real clock.
 */
export async function deviceOnFirstVersion(o: {
  policy?: Partial<UpdatePolicy>;
  tree?: (version: string) => TreeSpec;
  /** Publication time and lifetime (seconds) of 1.0.0's pointer. */
  publishedAt?: Date;
  expiresIn?: number;
  installClock?: () => Date;
  /** Runs on the repository before 1.0.0 is published (e.g. a root rotation). */
  prepare?: (repo: TestRepo) => Promise<SigningKey[] | void>;
} = {}): Promise<OnFirstVersion> {
  const repo = await makeRepo();
  let device: TestDevice | undefined;
  try {
    const keys = (await o.prepare?.(repo)) ?? undefined;
    await repo.release('1.0.0', (o.tree ?? smallApp)('1.0.0'), {
      ...(o.publishedAt ? { now: o.publishedAt } : {}),
      ...(o.expiresIn ? { expiresIn: o.expiresIn } : {}),
      ...(keys ? { keys } : {}),
    });
    device = await makeDevice({ trust: await repo.trust(), sources: [repo.repo], ...(o.policy ? { policy: o.policy } : {}) });
    const result = await device.with((u) => u.apply(), o.installClock ? { clock: o.installClock } : {});
    assert.is(result.status, 'committed', 'the device installs 1.0.0 first');
  } catch (err) {
    await device?.cleanup();
    await repo.cleanup();
    throw err;
  }
  const d = device;
  return {
    repo,
    device: d,
    files: (version) => signedFiles(repo.repo, version),
    async cleanup() {
      await d.cleanup();
      await repo.cleanup();
    },
  };
}

/** Runs `fn` on a fresh deviceOnFirstVersion and removes everything afterwards, also on failure. */
export async function onFirstVersion(o: Parameters<typeof deviceOnFirstVersion>[0], fn: (t: OnFirstVersion) => Promise<void>): Promise<void> {
  const t = await deviceOnFirstVersion(o);
  try {
    await fn(t);
  } finally {
    await t.cleanup();
  }
}

/** `ferry <args> --json` must succeed; returns the run. */
export async function ferryOk(args: string[]): Promise<Run> {
  const run = await ferry([...args, '--json']);
  assert.is(run.code, 0, `ferry ${args.join(' ')} succeeds: ${describeRun(run)}`);
  return run;
}

/** `ferry update --home H` must commit `version`. */
export async function cliUpdateTo(home: string, version: string): Promise<void> {
  const run = await ferryOk(['update', '--home', home]);
  const result = JSON.parse(run.stdout) as { status: string; record?: { to: string } };
  assert.is(result.status, 'committed', `ferry update commits: ${run.stdout}`);
  assert.is(result.record?.to, version);
}

/** Nothing of a refused version is left: only `versions` under releases/, an empty staging/. */
export async function assertNothingStaged(device: TestDevice, versions: string[]): Promise<void> {
  assert.equal(await device.releases(), versions, 'releases/ holds only what was installed before');
  assert.equal(await readdir(device.layout.staging), [], 'staging/ is empty');
}

/**
 * Points `channel` at `version`'s manifest as it is on disk now (size and sha256), sequence + 1,
 * signed by `keys`: how an attacker holding the release key (or a buggy publisher) ships a
 * hand-made manifest that the pin check alone cannot catch.
 */
export async function repinChannel(repo: string, channel: Channel, version: string, keys: SigningKey[], mutate: (doc: ChannelDoc) => void = () => {}): Promise<ChannelDoc> {
  const bytes = await readFile(join(repo, manifestPath(version)));
  return resignChannel(repo, channel, keys, (doc) => {
    doc.sequence += 1;
    doc.targets[TARGET] = { version, manifest: { path: manifestPath(version), size: bytes.length, sha256: sha256(bytes) } };
    mutate(doc);
  });
}

/** Writes `version`'s manifest as an envelope over exactly `payload` (any text), signed by `keys`. */
export async function writeManifestPayload(repo: string, version: string, payload: string | Buffer, keys: SigningKey[]): Promise<void> {
  await writeFile(join(repo, manifestPath(version)), encodeEnvelope(signEnvelope(PAYLOAD_TYPES.manifest, Buffer.from(payload), keys)));
}

export async function manifestDoc(repo: string, version: string): Promise<ManifestDoc> {
  return readPayload<ManifestDoc>(join(repo, manifestPath(version)));
}

/** XORs one byte of a DSSE envelope's decoded payload with 0x01, keeping the signatures. */
export async function flipPayloadByte(file: string, at?: number): Promise<void> {
  const env = JSON.parse(await readFile(file, 'utf8')) as { payload: string };
  const payload = Buffer.from(env.payload, 'base64');
  const i = at ?? Math.floor(payload.length / 2);
  payload[i] = payload[i]! ^ 0x01;
  env.payload = payload.toString('base64');
  await writeFile(file, JSON.stringify(env, null, 2) + '\n');
}

/** ed25519's group order L, little-endian arithmetic on the signature's S half. */
const L = (1n << 252n) + 27742317777372353535851937790883648493n;

/** Replaces every signature's S by S + L: the same point equation holds, the encoding is not canonical. */
export async function malleateSignatures(file: string): Promise<void> {
  const env = JSON.parse(await readFile(file, 'utf8')) as { signatures: { sig: string }[] };
  for (const s of env.signatures) {
    const sig = Buffer.from(s.sig, 'base64');
    let S = 0n;
    for (let i = 63; i >= 32; i--) S = (S << 8n) | BigInt(sig[i]!);
    S += L;
    for (let i = 32; i < 64; i++) { sig[i] = Number(S & 0xffn); S >>= 8n; }
    assert.is(S, 0n, 'S + L still fits in 32 bytes');
    s.sig = sig.toString('base64');
  }
  await writeFile(file, JSON.stringify(env, null, 2) + '\n');
}

export async function channelBytes(repo: string, channel: Channel = 'stable'): Promise<Buffer> {
  return readFile(join(repo, channelPath(channel)));
}

// ---------------------------------------------------------------------------------------------
// `ferry serve` as a child process

export interface Served {
  url: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

/** Starts `ferry serve <repo> --port 0` on 127.0.0.1 and waits for the URL it prints. */
export async function serveRepo(repo: string): Promise<Served> {
  const child = spawn(process.execPath, ['dist/cli/ferry.js', 'serve', repo, '--port', '0', '--host', '127.0.0.1', '--json'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const killer = setTimeout(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL'); }, 10_000);
      await exited;
      clearTimeout(killer);
    }
  };
  for (let i = 0; i < 600 && !out.includes('}'); i++) {
    if (child.exitCode !== null) break;
    await sleep(50);
  }
  if (!out.includes('}')) {
    await stop();
    throw new Error(`ferry serve did not print its URL: ${out} ${err}`);
  }
  const printed = JSON.parse(out) as { url: string };
  return { url: printed.url.replace(/\/$/, ''), child, stop };
}

// ---------------------------------------------------------------------------------------------
// `ferry run` serving the example app

/** The example app as a release tree (ferry/app vendored): it answers GET / with its version. */
export function exampleApp(version: string): TreeSpec {
  return exampleAppTree(version);
}

export interface Supervised {
  child: ChildProcess;
  port: number;
  status(): Promise<SupervisorStatus | null>;
  output(): string;
  stop(): Promise<void>;
}

/** `ferry run --home H --listen 127.0.0.1:0 --health /healthz -- node server.js`, once it answers. */
export async function runApp(home: string): Promise<Supervised> {
  const child = spawn(process.execPath, [
    'dist/cli/ferry.js', 'run', '--home', home, '--listen', '127.0.0.1:0', '--health', 'http://127.0.0.1/healthz',
    '--ready-timeout', '20s', '--drain-timeout', '10s', '--', process.execPath, 'server.js',
  ], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const killer = setTimeout(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL'); }, 20_000);
      await exited;
      clearTimeout(killer);
    }
  };
  const status = () => requestSupervisor(home, { op: 'status' }, 2000).catch(() => null);
  let port = 0;
  for (let i = 0; i < 300 && !port; i++) {
    const s = await status();
    if (s?.active && s.listen[0]) port = Number(/:(\d+)$/.exec(s.listen[0])![1]);
    else if (child.exitCode !== null) break;
    else await sleep(100);
  }
  for (let i = 0; port && i < 300; i++) {
    if (await httpGet(port, '/').then((r) => r.status === 200, () => false)) return { child, port, status, output: () => out, stop };
    await sleep(100);
  }
  await stop();
  throw new Error(`ferry run did not start the app: ${out}`);
}

/** One GET on a fresh connection (no keep-alive pool left behind). */
export function httpGet(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent: false, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: body.trim() }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}
