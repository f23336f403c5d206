// Patcher over bsdiff-node (classic BSDIFF40: bzip2-compressed control, diff and extra blocks).
// bsdiff-node follows a symlink at its output path, reads whole files into memory and crashes on
// very long paths, so the core hands it short private paths that do not exist yet and checks the
// header against the signed target size first (SECURITY.md row 17).
//
// bsdiff-node is a native module that needs a compiler to build, and a device may have none
// (`npm install --ignore-scripts` leaves it unbuilt). So it is loaded only when a patch is made or
// applied; without it diff and patch throw ERR_NO_PATCHER, everything else works, and an update
// falls back to the full artifact.

import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { FerryError } from '../../core/errors.ts';
import type { Patcher } from '../../core/ports/patcher.ts';

type Bsdiff = typeof import('bsdiff-node').default;

/** Why deltas cannot be made or applied on this machine, for the error message. */
function noPatcherReason(cause: unknown): string {
  const text = (cause as Error)?.message ?? String(cause);
  return `bsdiff-node is missing or not built on this machine (${text.split('\n')[0]})`;
}

let loading: Promise<Bsdiff> | undefined;

/** bsdiff-node, loaded on first use; ERR_NO_PATCHER when it cannot be (missing, not built). */
function loadBsdiff(): Promise<Bsdiff> {
  loading ??= import('bsdiff-node').then(
    (m) => m.default,
    (cause: unknown) => {
      throw new FerryError('ERR_NO_PATCHER', `${noPatcherReason(cause)}: deltas cannot be made; publish without them (ferry release --deltas 0) or build it (npm rebuild bsdiff-node)`, { cause });
    },
  );
  return loading;
}

const MAGIC = 'BSDIFF40';
const HEADER_SIZE = 32;

/** bsdiff's signed 64-bit little-endian offset: sign in the top bit, magnitude in the rest. */
function readOff(buf: Uint8Array, at: number): number {
  const view = new DataView(buf.buffer, buf.byteOffset + at, 8);
  const lo = view.getUint32(0, true);
  const hi = view.getUint32(4, true);
  if (hi & 0x80000000) return -1;
  if (hi > 0x1fffff) return Number.MAX_SAFE_INTEGER; // beyond 2^53: certainly a lie
  return hi * 2 ** 32 + lo;
}

/**
 * bspatch runs in a worker process (plugins/bsdiff/bspatch-child.mjs), started on first use and
 * replaced after any failure, so a hostile patch that leaks descriptors or crashes the native
 * code cannot hurt the updater (SECURITY.md row 17). diff (publisher side, trusted input) runs here.
 * The worker loads bsdiff-node itself; when it cannot, it answers every request with
 * ERR_NO_PATCHER, which the updater takes as a reason to use the full artifact.
 */
export function createBsdiffPatcher(): Patcher & { close(): Promise<void> } {
  let worker: ChildProcess | undefined;
  let nextId = 0;
  const pending = new Map<number, { resolve: () => void; reject: (e: Error) => void }>();

  const failAll = (why: string) => {
    for (const p of pending.values()) p.reject(new FerryError('ERR_PATCH', why));
    pending.clear();
  };
  const stop = () => {
    const w = worker;
    worker = undefined;
    if (w && w.exitCode === null && w.signalCode === null) w.kill('SIGKILL');
  };
  const start = (): ChildProcess => {
    // No pipes to the worker but the IPC channel: a pipe would hold this process open.
    // The worker's path comes from import.meta.url, which Node gives as this module's realpath
    // (without --preserve-symlinks): when ferry runs as a ferry home, that is the release folder
    // this process was started from (`releases/<v>/dist/…`), never a path through `current`, which
    // may be switched to another version meanwhile. That release folder is pinned while this
    // process lives, so cleanup cannot remove it (plugins/running-release-pin.ts).
    const w = fork(fileURLToPath(new URL('./bspatch-child.mjs', import.meta.url)), [], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'], execArgv: [] });
    w.on('message', (msg: { id: number; ok: boolean; error?: string; noPatcher?: boolean }) => {
      const p = pending.get(msg.id);
      if (!p) return;
      pending.delete(msg.id);
      if (msg.ok) p.resolve();
      else {
        p.reject(msg.noPatcher
          ? new FerryError('ERR_NO_PATCHER', `${msg.error ?? 'bsdiff-node cannot be loaded'}: deltas cannot be applied`)
          : new FerryError('ERR_PATCH', `bspatch failed: ${msg.error ?? 'unknown error'}`));
        if (worker === w) stop(); // whatever it leaked goes with it
      }
    });
    w.on('exit', (code, signal) => {
      if (worker === w) worker = undefined;
      failAll(`bspatch worker exited (${signal ?? code})`);
    });
    // The worker must not keep the updater alive between patches.
    w.unref();
    w.channel?.unref();
    return w;
  };

  return {
    headerSize: HEADER_SIZE,
    outputSize(header, patchSize) {
      if (header.length < HEADER_SIZE || Buffer.from(header.subarray(0, 8)).toString('latin1') !== MAGIC) {
        throw new FerryError('ERR_PATCH', 'not a BSDIFF40 patch');
      }
      const ctrlLen = readOff(header, 8);
      const dataLen = readOff(header, 16);
      const newSize = readOff(header, 24);
      if (ctrlLen < 0 || dataLen < 0 || newSize < 0 || HEADER_SIZE + ctrlLen + dataLen > patchSize) {
        throw new FerryError('ERR_PATCH', 'bsdiff header block lengths are negative or exceed the patch');
      }
      return newSize;
    },
    async diff(oldFile, newFile, patchFile) {
      const bsdiff = await loadBsdiff();
      try {
        await bsdiff.diff(oldFile, newFile, patchFile);
      } catch (cause) {
        throw new FerryError('ERR_PATCH', `bsdiff failed: ${String(cause)}`, { cause });
      }
    },
    patch(oldFile, newFile, patchFile) {
      worker ??= start();
      const w = worker;
      const id = nextId++;
      return new Promise<void>((resolve, reject) => {
        pending.set(id, { resolve, reject });
        w.channel?.ref();
        w.send({ id, oldFile, newFile, patchFile });
      }).finally(() => {
        if (pending.size === 0) w.channel?.unref();
      });
    },
    async close() {
      failAll('patcher closed');
      stop();
    },
  };
}
