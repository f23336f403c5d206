// Measures FERRYBD1 on a real pair, by hand (10 MB inputs: not part of `npm test`). Reads bsdiff's
// three raw streams as split out of a BSDIFF40 patch (control: 24-byte sign-magnitude int64 LE
// triples; diff; extra), writes them as FERRYBD1 with the built writeFerryPatch, and applies a
// patch with the built applyPatchEntry. Run `npm run build` first; it imports dist/.
//
//   node bench/ferry-patch-pair.mjs encode <streams-prefix> <old> <new> <out.patch>
//   node bench/ferry-patch-pair.mjs apply <old> <patch> <out> <new-size> [old-in-memory-max]
//
// `apply` is the one to time in a child: /usr/bin/time -f '%e s %M KB' node bench/ferry-patch-pair.mjs apply …

import { readFileSync, statSync } from 'node:fs';
import { writeFerryPatch } from '../dist/core/delta/patch-encode.js';
import { applyPatchEntry } from '../dist/core/delta/patch-apply.js';

function readOff(buf, at) {
  const lo = buf.readUInt32LE(at);
  const hi = buf.readUInt32LE(at + 4);
  const mag = (hi & 0x7fffffff) * 2 ** 32 + lo;
  return hi & 0x80000000 ? -mag : mag;
}

const [cmd, ...args] = process.argv.slice(2);
if (cmd === 'encode') {
  const [prefix, oldFile, newFile, out] = args;
  const ctrl = readFileSync(`${prefix}.ctrl`);
  const control = [];
  for (let at = 0; at < ctrl.length; at += 8) control.push(readOff(ctrl, at));
  const raw = { oldSize: statSync(oldFile).size, newSize: statSync(newFile).size, control, diff: readFileSync(`${prefix}.diff`), extra: readFileSync(`${prefix}.extra`) };
  const t0 = performance.now();
  const size = await writeFerryPatch(raw, out);
  console.log(JSON.stringify({ entries: control.length / 3, patchBytes: size, encodeSeconds: +((performance.now() - t0) / 1000).toFixed(2) }));
} else if (cmd === 'apply') {
  const [oldFile, patch, out, newSize, inMemory] = args;
  const t0 = performance.now();
  const got = await applyPatchEntry({
    baseFile: oldFile, baseSize: statSync(oldFile).size, patch: { file: patch, offset: 0, size: statSync(patch).size }, outFile: out, newSize: Number(newSize),
    ...(inMemory === undefined ? {} : { oldInMemoryMax: Number(inMemory) }),
  });
  console.log(JSON.stringify({ ...got, applySeconds: +((performance.now() - t0) / 1000).toFixed(3) }));
} else {
  console.error('usage: encode <streams-prefix> <old> <new> <out.patch> | apply <old> <patch> <out> <new-size> [old-in-memory-max]');
  process.exit(2);
}
