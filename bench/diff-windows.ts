// Hand-run measurement of the publisher's windowed diff (issue 14 item 6), not part of the suite
// or `npm run bench`: diffs one real pair in this process, prints the time and the process's peak
// RSS right after the diff (bsdiff-node's native memory included), the raw stream sizes and,
// with --brotli, the streams' sizes under brotli q11 (control as zigzag LEB128 varints, the
// FERRYBD1 coding); then applies the RawPatch with a reference applier and checks the new file.
//   node --import tsx bench/diff-windows.ts <old> <new> [windowMiB|whole] [marginMiB] [--brotli]

import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { brotliCompressSync, constants as zlib } from 'node:zlib';
import { diffFiles, DEFAULT_DIFF_WINDOWS } from '../plugins/bsdiff/patcher.ts';
import type { RawPatch } from '../core/delta/raw-patch.ts';

const args = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const brotli = process.argv.includes('--brotli');
const [oldFile, newFile, windowArg, marginArg] = args;
if (!oldFile || !newFile) throw new Error('usage: diff-windows.ts <old> <new> [windowMiB|whole] [marginMiB] [--brotli]');
const MiB = 1024 * 1024;
const windows = windowArg === 'whole'
  ? { window: Number.MAX_SAFE_INTEGER, margin: 0 }
  : { window: windowArg ? Number(windowArg) * MiB : DEFAULT_DIFF_WINDOWS.window, margin: marginArg ? Number(marginArg) * MiB : DEFAULT_DIFF_WINDOWS.margin };

const t0 = performance.now();
const raw = await diffFiles(oldFile, newFile, windows);
const seconds = (performance.now() - t0) / 1000;
// CPU of the whole process (bsdiff runs on a libuv thread): the honest figure on a shared machine.
const cpu = process.cpuUsage();
const cpuSeconds = (cpu.user + cpu.system) / 1e6;
const peakRssKB = process.resourceUsage().maxRSS;
// What stays after the diff: the RawPatch and node itself, if bsdiff's window memory was released.
const rssAfterDiffKB = Math.round(process.memoryUsage.rss() / 1024);

function varintControl(control: number[]): Uint8Array {
  const out: number[] = [];
  const put = (v: number) => {
    while (v >= 128) { out.push((v % 128) + 128); v = Math.floor(v / 128); }
    out.push(v);
  };
  for (let i = 0; i < control.length; i += 3) {
    put(control[i]!);
    put(control[i + 1]!);
    const z = control[i + 2]!;
    put(z < 0 ? -2 * z - 1 : 2 * z);
  }
  return Uint8Array.from(out);
}
const br = (b: Uint8Array) => brotliCompressSync(b, { params: { [zlib.BROTLI_PARAM_QUALITY]: 11, [zlib.BROTLI_PARAM_LGWIN]: 24, [zlib.BROTLI_PARAM_SIZE_HINT]: b.length } }).length;

/** bspatch semantics over a RawPatch. */
function applyRaw(old: Uint8Array, p: RawPatch): Uint8Array {
  const out = new Uint8Array(p.newSize);
  let o = 0; let at = 0; let d = 0; let e = 0;
  for (let i = 0; i < p.control.length; i += 3) {
    const [x, y, z] = [p.control[i]!, p.control[i + 1]!, p.control[i + 2]!];
    for (let k = 0; k < x; k++) out[o + k] = (p.diff[d + k]! + (at + k >= 0 && at + k < old.length ? old[at + k]! : 0)) & 0xff;
    o += x; at += x; d += x;
    out.set(p.extra.subarray(e, e + y), o);
    o += y; e += y; at += z;
  }
  if (o !== p.newSize || d !== p.diff.length || e !== p.extra.length) throw new Error('streams do not add up');
  return out;
}
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const rebuilt = applyRaw(readFileSync(oldFile), raw);
const ok = sha(rebuilt) === sha(readFileSync(newFile));

const report: Record<string, unknown> = {
  old: oldFile, new: newFile, oldSize: raw.oldSize, newSize: raw.newSize,
  window: windowArg === 'whole' ? 'whole' : windows, seconds: Number(seconds.toFixed(2)), cpuSeconds: Number(cpuSeconds.toFixed(2)), peakRssKB, rssAfterDiffKB,
  rssPerNewByte: Number(((peakRssKB * 1024) / raw.newSize).toFixed(2)),
  entries: raw.control.length / 3, diffBytes: raw.diff.length, extraBytes: raw.extra.length, rebuildsNewFile: ok,
};
if (brotli) {
  const c = br(varintControl(raw.control)); const d = br(raw.diff); const x = br(raw.extra);
  Object.assign(report, { brControl: c, brDiff: d, brExtra: x, brSum: c + d + x });
}
console.log(JSON.stringify(report));
if (!ok) process.exitCode = 1;
