// Patcher over bsdiff-node. Publisher side, diff() runs bsdiff's matcher and returns its raw
// streams (a RawPatch, which the publisher writes as FERRYBD1): bsdiff-node only writes BSDIFF40
// files (bzip2-compressed control, diff and extra blocks), so each diff goes to a private temp
// file that plugins/bsdiff/split-bsdiff40.ts splits and decodes. Large files are diffed window by
// window (core/delta/diff-windows.ts) so memory stays bounded (issue 14 item 6).
// Device side, patch()/outputSize() apply only OLD BSDIFF40 entries (repositories published before
// FERRYBD1) through bspatch in a worker process; FERRYBD1 is applied by ferry's own patcher.
// bsdiff-node follows a symlink at its output path, reads whole files into memory and crashes on
// very long paths, so it only ever gets short private paths that do not exist yet, and the core
// checks a BSDIFF40 header against the signed target size first (SECURITY.md row 17).
//
// bsdiff-node is a native module that needs a compiler to build, and a device may have none
// (`npm install --ignore-scripts` leaves it unbuilt). So it is loaded only when a patch is made or
// an old one applied; without it diff and patch throw ERR_NO_PATCHER, everything else works, and
// an update falls back to the full artifact.

import { fork, type ChildProcess } from 'node:child_process';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, open, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { appendWindowControl, planDiffWindows, type DiffWindow, type WindowOptions } from '../../core/delta/diff-windows.ts';
import type { RawPatch } from '../../core/delta/raw-patch.ts';
import { FerryError } from '../../core/errors.ts';
import type { Patcher } from '../../core/ports/patcher.ts';
import { BSDIFF40_HEADER_SIZE, BSDIFF40_MAGIC, splitBsdiff40 } from './split-bsdiff40.ts';

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

const MAGIC = BSDIFF40_MAGIC;
const HEADER_SIZE = BSDIFF40_HEADER_SIZE;

/** bsdiff's signed 64-bit little-endian offset: sign in the top bit, magnitude in the rest. */
function readOff(buf: Uint8Array, at: number): number {
  const view = new DataView(buf.buffer, buf.byteOffset + at, 8);
  const lo = view.getUint32(0, true);
  const hi = view.getUint32(4, true);
  if (hi & 0x80000000) return -1;
  if (hi > 0x1fffff) return Number.MAX_SAFE_INTEGER; // beyond 2^53: certainly a lie
  return hi * 2 ** 32 + lo;
}

const MiB = 1024 * 1024;

/**
 * Windows for diffing large files: new windows of at most 4 MiB, each against the old slice at
 * the same relative position ± 1 MiB, so bsdiff's suffix sort (≈ 17 bytes per old byte) stays
 * near 100 MB whatever the file's size, and the whole diff within 8x a 50 MB file (issue 14 item
 * 6; 8 MiB ± 2 MiB measured 4.8x on a 127 MB file, over 8x below ~60 MB: ARCHITECTURE.md
 * "Artifacts and deltas"). Files up to 4 MiB are diffed whole.
 */
export const DEFAULT_DIFF_WINDOWS: WindowOptions = { window: 4 * MiB, margin: MiB };

/**
 * Writes bsdiff-node's BSDIFF40 patch turning oldFile into patchFile (which must not exist): the
 * input of diff(), and the format of patch entries in repositories published before FERRYBD1.
 */
export async function writeBsdiff40(oldFile: string, newFile: string, patchFile: string): Promise<void> {
  const bsdiff = await loadBsdiff();
  try {
    await bsdiff.diff(oldFile, newFile, patchFile);
  } catch (cause) {
    throw new FerryError('ERR_PATCH', `bsdiff failed: ${String(cause)}`, { cause });
  }
}

/** Copies bytes [start, end) of `src` into a new file `dst`. */
async function copyRange(src: string, start: number, end: number, dst: string): Promise<void> {
  const out = createWriteStream(dst, { flags: 'wx' });
  if (end > start) await pipeline(createReadStream(src, { start, end: end - 1 }), out);
  else await new Promise<void>((resolve, reject) => out.on('error', reject).end(resolve));
}

/**
 * bsdiff's raw streams turning oldFile into newFile, made window by window (one window — plain
 * bsdiff on the two files — when both fit in it) and joined into one RawPatch for the whole file.
 * Each window's slices go to a private temp folder; bsdiff-node's memory for a window is freed
 * before the next starts.
 */
export async function diffFiles(oldFile: string, newFile: string, windowOptions: WindowOptions = DEFAULT_DIFF_WINDOWS): Promise<RawPatch> {
  await loadBsdiff(); // ERR_NO_PATCHER before any work
  const oldSize = (await stat(oldFile)).size;
  const newSize = (await stat(newFile)).size;
  const windows = planDiffWindows(oldSize, newSize, windowOptions);
  const whole = (w: DiffWindow) => w.oldStart === 0 && w.oldEnd === oldSize && w.newStart === 0 && w.newEnd === newSize;
  const dir = await mkdtemp(join(tmpdir(), 'ferry-diff-'));
  try {
    const control: number[] = [];
    // The diff and extra streams add up to the new file's size: one buffer holds both, the diff
    // filled from the front window by window, the extra parked in a temp file until the diff's
    // length is known, then read in behind it (so no stream is ever held twice).
    const streams = new Uint8Array(newSize);
    let diffLength = 0;
    const extraFile = join(dir, 'extra');
    const extraOut = await open(extraFile, 'wx');
    let oldPos = 0;
    try {
      for (const [i, w] of windows.entries()) {
        let [oldPart, newPart] = [oldFile, newFile];
        if (!whole(w)) {
          [oldPart, newPart] = [join(dir, `${i}.old`), join(dir, `${i}.new`)];
          await copyRange(oldFile, w.oldStart, w.oldEnd, oldPart);
          await copyRange(newFile, w.newStart, w.newEnd, newPart);
        }
        const patchFile = join(dir, `${i}.bsdiff`);
        await writeBsdiff40(oldPart, newPart, patchFile);
        const raw = splitBsdiff40(await readFile(patchFile), w.oldEnd - w.oldStart);
        if (raw.newSize !== w.newEnd - w.newStart) {
          throw new FerryError('ERR_PATCH', `bsdiff built ${raw.newSize} bytes for a window of ${w.newEnd - w.newStart} (did ${newFile} change while diffing?)`);
        }
        oldPos = appendWindowControl(control, oldPos, w, raw.control);
        streams.set(raw.diff, diffLength);
        diffLength += raw.diff.length;
        await extraOut.writeFile(raw.extra); // appends: writeFile writes from the current position
        await rm(patchFile);
        if (!whole(w)) await Promise.all([rm(oldPart), rm(newPart)]);
      }
    } finally {
      await extraOut.close();
    }
    const extra = streams.subarray(diffLength);
    const extraIn = await open(extraFile, 'r');
    try {
      for (let at = 0; at < extra.length;) {
        const { bytesRead } = await extraIn.read(extra, at, extra.length - at, at);
        if (bytesRead === 0) throw new FerryError('ERR_INTERNAL', `the extra stream is ${at} bytes, ${extra.length} expected`);
        at += bytesRead;
      }
    } finally {
      await extraIn.close();
    }
    return { oldSize, newSize, control, diff: streams.subarray(0, diffLength), extra };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * The Patcher. diff (publisher side, trusted input) runs in this process (diffFiles; `diffWindows`
 * overrides DEFAULT_DIFF_WINDOWS, for tests). patch applies an OLD BSDIFF40 entry: bspatch runs in
 * a worker process (plugins/bsdiff/bspatch-child.mjs), started on first use and replaced after any
 * failure, so a hostile patch that leaks descriptors or crashes the native code cannot hurt the
 * updater (SECURITY.md row 17). The worker loads bsdiff-node itself; when it cannot, it answers
 * every request with ERR_NO_PATCHER, which the updater takes as a reason to use the full artifact.
 */
export function createBsdiffPatcher(options: { diffWindows?: WindowOptions } = {}): Patcher & { close(): Promise<void> } {
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
    diff(oldFile, newFile, windows) {
      return diffFiles(oldFile, newFile, windows ?? options.diffWindows);
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
