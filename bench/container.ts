// bench/container: what an app-layer patch bump of a realistic container image costs a device
// through ferry (issue 15, "Benchmark"), next to the whole image and to `skopeo copy` of the new
// image into a layout that already holds the old one (skopeo reuses the blobs the destination has,
// as a registry pull does), all measured in the same run.
//
// The image (bench/lib/node-app-image.ts) is built at bench time with umoci: a ~100 MB base layer
// (this machine's node and the libraries ldd lists) and an app layer with a real npm package tree;
// 1.0.0 → 1.0.1 edits three of the app's own files. ferry is measured through its built CLI only:
// `ferry release --image <layout>` (when the CLI has it) and, for comparison, `ferry release
// <layout>` publishing the same layout as a plain tree of files. A device home at 1.0.0 takes its
// updates from a loopback HTTP server of the bench's own (bench/lib/counting-server.ts), so the
// bytes moved are read off the wire; the repository's new files give the same figure split into
// delta artifact and signed metadata. Update time is `ferry download` + `ferry apply` (stage,
// switch, commit) on a home without a `container` section in ferry.json: the container start is
// not part of it; the apply is also timed on homes made with `ferry init --link-unchanged`, where
// the files the delta leaves alone (the base layer) are hard-linked into the stage instead of
// copied. A home with nothing installed taking 1.0.0 gives ferry's whole-image figure. Every install is checked by the bench's own reader (bench/lib/oci-layout.ts):
// the device's image has the publisher's config and layers hashing to its diff_ids.

import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { ferry, FERRY_JS, initRepo, makeKeys, currentTree, type Keys, type ReleaseJson, type UpdateJson } from './lib/ferry-cli.ts';
import { measureCommand, median, runChecked, settle, type Measured, type MeasuredOutput } from './lib/measure.ts';
import { ensureTools, GNU_TIME, type Tool } from './lib/tools.ts';
import { fmt, formatTable, type Cell } from './lib/table.ts';
import { releaseFiles, snapshot, type ReleaseFiles } from './lib/repo-files.ts';
import { APP_DEPENDENCIES, buildNodeAppImages } from './lib/node-app-image.ts';
import { layoutBlobs, readImage, verifyInstalledImage, type ImageInLayout } from './lib/oci-layout.ts';
import { startCountingServer, type CountingServer } from './lib/counting-server.ts';
import { hashTree, treeDifference } from './lib/tree-files.ts';

const UMOCI: Tool = { command: 'umoci', debianPackage: 'umoci' };
const SKOPEO: Tool = { command: 'skopeo', debianPackage: 'skopeo' };

/** Device updates and skopeo copies are run this often (interleaved) and the median kept; a publish once. */
const RUNS = 3;
const STEP_TIMEOUT_MS = 5 * 60_000;
/** Per publish: brotli q11 of a ~100 MB full artifact takes minutes on a loaded 2-core machine. */
const PUBLISH_TIMEOUT_MS = 30 * 60_000;
/** The issue's target: an app-layer patch bump moves at most this share of the image. */
const TARGET_SHARE = 0.05;

type Mode = 'image' | 'tree';
const MODE_LABEL: Record<Mode, string> = {
  image: 'ferry release --image',
  tree: 'ferry release <layout> (plain tree)',
};

interface ModeResult {
  mode: Mode;
  full: number | undefined;
  files: ReleaseFiles;
  publishOld: Measured;
  publishNew: Measured;
  /** Bytes the device's sockets received bodies of, during download + apply (median run: they are equal). */
  wireBody: number;
  wireTotal: number;
  requests: number;
  applyBody: number;
  download: Measured[];
  apply: Measured[];
  /** The same on homes made with `ferry init --link-unchanged` (files the delta leaves alone are hard-linked, not copied). */
  linkedApply: Measured[];
  /** A home with nothing installed taking 1.0.0 by the full artifact: time and bytes on the wire. */
  fullInstall: Measured[];
  fullInstallBody: number;
}

interface SkopeoResult {
  wholeBytes: number;
  whole: Measured[];
  updateBytes: number;
  newBlobs: { digest: string; bytes: number }[];
  update: Measured[];
}

function parseJson<T>(what: string, stdout: string): T {
  try {
    return JSON.parse(stdout) as T;
  } catch (cause) {
    throw new Error(`${what} printed no JSON: ${JSON.stringify(stdout.slice(-500))}`, { cause });
  }
}

/** Whether the built CLI publishes images (`ferry release --image`, issue 15 item 1). */
async function cliHasImage(): Promise<boolean> {
  const help = await runChecked(process.execPath, [FERRY_JS, 'release', '--help'], 60_000);
  return /--image\b/.test(help);
}

const imageBytes = (image: ImageInLayout) => image.manifestBytes + image.config.size + image.layers.reduce((n, l) => n + l.size, 0);

/** Bytes of the blobs a layout gained between two listings (what a copy into it wrote). */
function gained(before: Map<string, number>, after: Map<string, number>): { digest: string; bytes: number }[] {
  return [...after].filter(([d]) => !before.has(d)).map(([digest, bytes]) => ({ digest, bytes }));
}

/**
 * skopeo: (a) the new image into an empty layout (the whole image), (b) into a layout already
 * holding the old one (only the blobs it lacks are copied). Each run gets fresh destinations.
 */
async function measureSkopeo(oldLayout: string, newLayout: string, dir: string, timeOut: string, log: (line: string) => void): Promise<SkopeoResult> {
  const result: SkopeoResult = { wholeBytes: 0, whole: [], updateBytes: 0, newBlobs: [], update: [] };
  for (let i = 0; i < RUNS; i++) {
    const fresh = join(dir, `skopeo-fresh-${i}`);
    const held = join(dir, `skopeo-held-${i}`);
    await runChecked('skopeo', ['copy', '-q', `oci:${oldLayout}:1.0.0`, `oci:${held}:1.0.0`], STEP_TIMEOUT_MS);
    await settle();
    result.whole.push(await measureCommand('skopeo', ['copy', '-q', `oci:${newLayout}:1.0.1`, `oci:${fresh}:1.0.1`], timeOut, STEP_TIMEOUT_MS));
    await settle();
    const before = await layoutBlobs(held);
    result.update.push(await measureCommand('skopeo', ['copy', '-q', `oci:${newLayout}:1.0.1`, `oci:${held}:1.0.1`], timeOut, STEP_TIMEOUT_MS));
    const fromEmpty = [...(await layoutBlobs(fresh)).values()].reduce((n, b) => n + b, 0);
    const added = gained(before, await layoutBlobs(held));
    const addedBytes = added.reduce((n, b) => n + b.bytes, 0);
    if (i > 0 && (fromEmpty !== result.wholeBytes || addedBytes !== result.updateBytes)) throw new Error(`skopeo wrote ${fromEmpty}/${addedBytes} bytes in run ${i + 1}, ${result.wholeBytes}/${result.updateBytes} before`);
    result.wholeBytes = fromEmpty;
    result.updateBytes = addedBytes;
    result.newBlobs = added;
    await rm(fresh, { recursive: true, force: true });
    await rm(held, { recursive: true, force: true });
  }
  log(`skopeo copy into a layout holding 1.0.0 wrote ${describeBlobs(result)}`);
  return result;
}

const describeBlobs = (s: SkopeoResult) => s.newBlobs.map((b) => `${b.digest.slice(7, 19)} ${fmt.bytes(b.bytes)} B`).join(', ');

/** Publishes `layout` as `version` (--image or plain tree); throws unless ferry printed JSON. */
async function publish(mode: Mode, repo: string, layout: string, version: string, keys: Keys, timeOut: string): Promise<MeasuredOutput & { json: ReleaseJson }> {
  const what = mode === 'image' ? ['--image', layout] : [layout];
  const m = await ferry(['release', ...what, '--repo', repo, '--version', version, '--key', keys.releaseKey, '--deltas', '1', '--json'], timeOut, PUBLISH_TIMEOUT_MS);
  return { ...m, json: parseJson<ReleaseJson>(`ferry release ${version}`, m.stdout) };
}

/** Throws unless the device home runs exactly the published 1.0.1 image. */
async function expectInstalled(mode: Mode, home: string, newLayout: string, newImage: ImageInLayout): Promise<void> {
  const current = currentTree(home);
  // The bench's own check: the publisher's config, every layer hashing (uncompressed) to its diff_id.
  await verifyInstalledImage(current, newImage.config.digest);
  // A plain tree must also be the layout's files exactly.
  if (mode === 'tree') {
    const diff = treeDifference(await hashTree(current), await hashTree(newLayout));
    if (diff) throw new Error(`the device's current tree is not the 1.0.1 layout: ${diff}`);
  }
}

async function measureFerry(mode: Mode, dir: string, keys: Keys, layouts: Record<'1.0.0' | '1.0.1', string>, newImage: ImageInLayout, timeOut: string, log: (line: string) => void): Promise<ModeResult> {
  const repo = join(dir, 'repo');
  await initRepo(repo, keys, timeOut);
  log(`${MODE_LABEL[mode]}: publishing 1.0.0`);
  const pubOld = await publish(mode, repo, layouts['1.0.0'], '1.0.0', keys, timeOut);
  const server: CountingServer = await startCountingServer(repo);
  try {
    // RUNS device homes, each installed at 1.0.0 before 1.0.1 exists (as a fleet in the field).
    // Their first install is the whole-image figure of ferry: nothing -> 1.0.0 by the full artifact.
    // The second half are --link-unchanged homes, for the stage's copy cost.
    const homes: { home: string; linked: boolean }[] = [];
    const fullInstall: Measured[] = [];
    let fullInstallBody = 0;
    for (let i = 0; i < 2 * RUNS; i++) {
      const linked = i % 2 === 1;
      const home = join(dir, `home-${i}`);
      await ferry(['init', home, '--trust', join(repo, 'root.json'), '--source', server.url, ...(linked ? ['--link-unchanged'] : [])], timeOut, 60_000);
      await settle();
      server.reset();
      const u = await ferry(['update', '--home', home, '--json'], timeOut, STEP_TIMEOUT_MS);
      const r = parseJson<UpdateJson>('ferry update', u.stdout).record;
      if (r?.to !== '1.0.0' || r.kind !== 'full') throw new Error(`home ${i} did not install 1.0.0 by the full artifact: ${u.stdout}`);
      if (!linked) fullInstall.push(u);
      fullInstallBody = [...server.bodyBytes().values()].reduce((n, b) => n + b, 0);
      homes.push({ home, linked });
    }
    const before = await snapshot(repo);
    log(`${MODE_LABEL[mode]}: publishing 1.0.1 (delta from 1.0.0)`);
    const pubNew = await publish(mode, repo, layouts['1.0.1'], '1.0.1', keys, timeOut);
    const files = releaseFiles(before, await snapshot(repo), pubNew.json);
    const result: ModeResult = {
      mode, full: pubNew.json.full?.size, files, publishOld: pubOld, publishNew: pubNew,
      wireBody: 0, wireTotal: 0, requests: 0, applyBody: 0, download: [], apply: [], linkedApply: [], fullInstall, fullInstallBody,
    };
    const seen: number[] = [];
    // Interleaved (plain, linked, plain, …) so load hits both alike.
    for (const { home, linked } of homes) {
      await settle();
      server.reset();
      const d = await ferry(['download', '--home', home, '--json'], timeOut, STEP_TIMEOUT_MS);
      const pkg = parseJson<{ version?: string; kind?: string } | null>('ferry download', d.stdout);
      if (pkg?.version !== '1.0.1' || pkg.kind !== 'delta') throw new Error(`ferry download fetched ${d.stdout.trim()}, want 1.0.1 by its delta`);
      const downloadBody = [...server.bodyBytes().values()].reduce((n, b) => n + b, 0);
      await settle();
      const a = await ferry(['apply', '--home', home, '--json'], timeOut, STEP_TIMEOUT_MS);
      const ar = parseJson<UpdateJson>('ferry apply', a.stdout);
      if (ar.status !== 'committed' || ar.record?.to !== '1.0.1' || ar.record.kind !== 'delta' || ar.record.fellBackToFull === true) throw new Error(`ferry apply: ${a.stdout.trim()}`);
      const body = [...server.bodyBytes().values()].reduce((n, b) => n + b, 0);
      result.applyBody = body - downloadBody;
      result.wireBody = body;
      result.wireTotal = server.wireBytes();
      result.requests = server.requests();
      seen.push(body);
      await expectInstalled(mode, home, layouts['1.0.1'], newImage);
      if (linked) {
        result.linkedApply.push(a);
        continue;
      }
      result.download.push(d);
      result.apply.push(a);
    }
    if (new Set(seen).size !== 1) log(`note: the devices downloaded different byte counts: ${seen.join(', ')}`);
    log(`${MODE_LABEL[mode]}: a device on 1.0.0 fetched ${[...server.bodyBytes()].map(([p, b]) => `${p} ${fmt.bytes(b)}`).join(', ')}`);
    return result;
  } finally {
    await server.close();
  }
}

const medianS = (runs: Measured[]) => median(runs.map((r) => r.seconds));
const peakKiB = (runs: Measured[]) => Math.max(...runs.map((r) => r.maxRssKiB));
const share = (n: number, of: number) => `${((100 * n) / of).toFixed(2)} %`;
/** A ratio that stays readable far below 1 (ferry's bytes over skopeo's): 0.0036x (1/279). */
const smallRatio = (r: number) => (r >= 0.1 ? fmt.ratio(r) : `${r.toPrecision(2)}x (1/${Math.round(1 / r)})`);

export async function run(options: { log: (line: string) => void }): Promise<void> {
  const { log } = options;
  ensureTools([GNU_TIME, UMOCI, SKOPEO], log);
  log(`load average at start: ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
  if (process.env.FERRY_COMPRESSION_LEVEL) log(`FERRY_COMPRESSION_LEVEL=${process.env.FERRY_COMPRESSION_LEVEL} (ferry release uses it for brotli; 11 when unset)`);
  const root = await mkdtemp(join(tmpdir(), 'ferry-bench-container-'));
  try {
    const timeOut = join(root, 'time.out');
    const build = Date.now();
    const images = await buildNodeAppImages(join(root, 'build'), log);
    log(`images built with umoci in ${fmt.seconds((Date.now() - build) / 1000)} s; app layer: /app (${APP_DEPENDENCIES.map((d) => `${d.name}@${d.version}`).join(', ')} via npm pack, plus the app's 4 source files; 1.0.1 edits 3 of them)`);
    const oldImage = await readImage(images.layouts['1.0.0']);
    const newImage = await readImage(images.layouts['1.0.1']);
    const whole = imageBytes(newImage);
    const changedLayers = newImage.layers.filter((l) => !oldImage.layers.some((o) => o.digest === l.digest));
    if (changedLayers.length !== 1 || newImage.layers.indexOf(changedLayers[0]!) !== newImage.layers.length - 1) throw new Error(`the bump should change the app layer only, changed ${JSON.stringify(changedLayers)}`);
    const uncompressed = Number((await runChecked('sh', ['-c', 'for f in "$@"; do gzip -dc "$f"; done | wc -c', 'sh', ...newImage.layers.map((l) => join(images.layouts['1.0.1'], 'blobs', 'sha256', l.digest.slice(7)))], STEP_TIMEOUT_MS)).trim());
    log(`image 1.0.1: ${fmt.bytes(whole)} B as built (gzip layers: base ${fmt.bytes(newImage.layers[0]!.size)} B, app ${fmt.bytes(changedLayers[0]!.size)} B), ${fmt.bytes(uncompressed)} B of layers uncompressed`);

    const skopeo = await measureSkopeo(images.layouts['1.0.0'], images.layouts['1.0.1'], root, timeOut, log);
    if (skopeo.wholeBytes !== whole) log(`note: skopeo's copy into an empty layout is ${fmt.bytes(skopeo.wholeBytes)} B, the image's blobs ${fmt.bytes(whole)} B`);

    await mkdir(join(root, 'keys'));
    const keys = await makeKeys(join(root, 'keys'), timeOut);
    const modes: Mode[] = (await cliHasImage()) ? ['image', 'tree'] : ['tree'];
    if (!modes.includes('image')) log('ferry release has no --image in this build: only the plain-tree figure (the layout published as files) is measured');
    const wanted = process.env.FERRY_BENCH_CONTAINER_MODES?.split(',');
    const results: ModeResult[] = [];
    for (const mode of modes.filter((m) => !wanted || wanted.includes(m))) {
      const dir = join(root, mode);
      await mkdir(dir);
      results.push(await measureFerry(mode, dir, keys, images.layouts, newImage, timeOut, log));
      await rm(dir, { recursive: true, force: true });
    }

    log('');
    log(`bytes a device on 1.0.0 moves to get 1.0.1 (whole image ${fmt.bytes(whole)} B as built, gzip layers)`);
    const byteRows: Cell[][] = [
      ['whole image (fresh pull / skopeo copy into an empty layout)', fmt.bytes(skopeo.wholeBytes), share(skopeo.wholeBytes, whole), '', ''],
      ['skopeo copy into a layout holding 1.0.0 (blobs it lacked)', fmt.bytes(skopeo.updateBytes), share(skopeo.updateBytes, whole), fmt.ratio(1), ''],
    ];
    for (const r of results) {
      byteRows.push([`${MODE_LABEL[r.mode]}: nothing -> 1.0.0, full artifact (on the wire)`, fmt.bytes(r.fullInstallBody), share(r.fullInstallBody, whole), '', '']);
      byteRows.push([
        `${MODE_LABEL[r.mode]}: delta + manifest + pointer (on the wire)`,
        fmt.bytes(r.wireBody),
        share(r.wireBody, whole),
        smallRatio(r.wireBody / skopeo.updateBytes),
        `delta ${r.files.delta ? fmt.bytes(r.files.delta.bytes) : '-'} + metadata ${fmt.bytes(r.files.metadataBytes)} in the repo; full artifact ${r.full === undefined ? '?' : fmt.bytes(r.full)}`,
      ]);
    }
    log(formatTable([{ title: 'what' }, { title: 'bytes', align: 'right' }, { title: '/ image', align: 'right' }, { title: '/ skopeo', align: 'right' }, { title: 'notes' }], byteRows));
    log('');
    log('times (s, median of runs; peak MiB by GNU time)');
    const timeRows: Cell[][] = [
      ['skopeo copy, whole image into an empty layout', fmt.seconds(medianS(skopeo.whole)), '', skopeo.whole.map((m) => fmt.seconds(m.seconds)).join(' '), fmt.mib(peakKiB(skopeo.whole))],
      ['skopeo copy 1.0.1 into a layout holding 1.0.0 (baseline)', fmt.seconds(medianS(skopeo.update)), fmt.ratio(1), skopeo.update.map((m) => fmt.seconds(m.seconds)).join(' '), fmt.mib(peakKiB(skopeo.update))],
    ];
    for (const r of results) {
      const both = r.download.map((d, i) => ({ seconds: d.seconds + r.apply[i]!.seconds, maxRssKiB: Math.max(d.maxRssKiB, r.apply[i]!.maxRssKiB) }));
      for (const [what, runs] of [['ferry download (fetch + verify the delta)', r.download], ['ferry apply (stage + switch + commit)', r.apply], ['download + apply', both], ['ferry apply on a --link-unchanged home', r.linkedApply]] as const) {
        timeRows.push([`${MODE_LABEL[r.mode]}: ${what}`, fmt.seconds(medianS(runs)), fmt.ratio(medianS(runs) / medianS(skopeo.update)), runs.map((m) => fmt.seconds(m.seconds)).join(' '), fmt.mib(peakKiB(runs))]);
      }
      timeRows.push([`${MODE_LABEL[r.mode]}: ferry update, nothing -> 1.0.0 (full artifact)`, fmt.seconds(medianS(r.fullInstall)), fmt.ratio(medianS(r.fullInstall) / medianS(skopeo.whole)) + ' (whole)', r.fullInstall.map((m) => fmt.seconds(m.seconds)).join(' '), fmt.mib(peakKiB(r.fullInstall))]);
      timeRows.push([`${MODE_LABEL[r.mode]}: publish 1.0.0 (full artifact)`, fmt.seconds(r.publishOld.seconds), '', '1 run', fmt.mib(r.publishOld.maxRssKiB)]);
      timeRows.push([`${MODE_LABEL[r.mode]}: publish 1.0.1 (full artifact + delta)`, fmt.seconds(r.publishNew.seconds), '', '1 run', fmt.mib(r.publishNew.maxRssKiB)]);
    }
    log(formatTable([{ title: 'step' }, { title: 's', align: 'right' }, { title: '/ skopeo', align: 'right' }, { title: 'runs s', align: 'right' }, { title: 'peak MiB', align: 'right' }], timeRows));
    log('');
    for (const r of results) log(`${MODE_LABEL[r.mode]}: ${r.requests} requests, ${fmt.bytes(r.wireTotal)} B on the wire with headers; ${fmt.bytes(r.applyBody)} B of it during apply; metadata files: ${r.files.metadata.map((f) => `${f.path} ${fmt.bytes(f.bytes)}`).join(', ')}`);
    log('ferry apply runs on a home without a container section in ferry.json: it stages and switches the image files, it does not start a container.');
    log('skopeo copies blobs between two local layouts: no network, no unpacking, no signature check (its whole cost is the new blob write).');
    log(`load average at end: ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
    log('');
    for (const r of results) {
      const ok = r.wireBody <= TARGET_SHARE * whole;
      log(`${ok ? 'PASS' : 'MISS'}  ${MODE_LABEL[r.mode]}: an app-layer patch bump moves <= 5% of the image  (${fmt.bytes(r.wireBody)} B = ${share(r.wireBody, whole)} of ${fmt.bytes(whole)} B; skopeo ${share(skopeo.updateBytes, whole)})`);
    }
    if (!results.some((r) => r.mode === 'image')) log('MISS  ferry release --image: not measured (the CLI has no --image yet)');
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}
