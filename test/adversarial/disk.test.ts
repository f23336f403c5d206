// SECURITY.md rows 22 and 23 through the device, with the real `ferry` CLI in child processes.
//   row 22  `ferry update` / `ferry download` SIGKILLed mid-download (a slow origin on 127.0.0.1
//           keeps the window wide): the next `ferry update` asks the origin only for the rest
//           (a Range request from the .part file's length), the origin sends about one artifact in
//           total, and the device ends on a complete 1.1.0. A lock file left by an earlier boot
//           (another boot id, a pid that is alive now) is taken over; one from this boot is not.
//   row 23  the disk fills at a precise moment: the health check of 1.1.0 (a command ferry runs
//           after the switch) uses up a tmpfs home's inodes or bytes, so the writes that follow —
//           the rollback's switch of `current`, the commit's journal and history, the security
//           floor in marks.json — meet a full disk. ERR_NO_SPACE (exit 8), a complete release
//           under `current`, and once space is freed the next start and update finish the job.
//           Needs root and tmpfs; without them those tests print SKIP and are not registered.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EXIT_CODE } from '../../cli/exit-codes.ts';
import type { ManifestDoc } from '../../core/trust/metadata.ts';
import { readDeviceConfig, writeDeviceConfig, parseDeviceConfig, type DeviceConfig } from '../../core/device/config.ts';
import { assertCompleteVersion } from '../helpers/refusal.ts';
import { describeRun, ferry, history, running, sleep, smallApp, startFerry, status, TARGET, type Run } from '../helpers/crash.ts';
import { makeAdversarialFixture, makeScene, namesIn, NEW, OLD, type AdversarialFixture, type Scene } from '../helpers/adversarial-device.ts';
import { startAdversarialOrigin, type AdversarialOrigin } from '../helpers/adversarial-origin.ts';
import { pseudoRandomBytes } from '../helpers/repo.ts';
import { readPayload, resignManifest } from '../helpers/tamper.ts';

const ARTIFACT = `releases/${NEW}/${TARGET}.full.tar.br`;

let fx: AdversarialFixture;
let artifact: { sha256: string; size: number };
const cleanups: (() => Promise<void>)[] = [];

async function setConfig(home: string, patch: Partial<DeviceConfig>): Promise<void> {
  const path = join(home, 'ferry.json');
  await writeDeviceConfig(path, parseDeviceConfig(JSON.parse(JSON.stringify({ ...(await readDeviceConfig(path)), ...patch }))));
}

const setup = suite('disk fixture');
setup('a repository with 1.0.0 and a 1.1.0 of about 1.6 MB (a full artifact only), a home on 1.0.0', async () => {
  fx = await makeAdversarialFixture(smallApp(OLD), { ...smallApp(NEW), 'lib/big.bin': pseudoRandomBytes(1_500_000, 67) }, { deltas: 0 });
  const m = await readPayload<ManifestDoc>(join(fx.repo.repo, 'releases', NEW, 'manifest.json'));
  artifact = m.targets[TARGET]!.full;
});
setup.run();

// ---------------------------------------------------------------------------------------------

const row22 = suite('row 22 an updater killed mid-download resumes; a stale lock from an earlier boot is taken over');

/** Starts `ferry <command>` against a slow origin and SIGKILLs it (by pid) once `atLeast` bytes are in the .part file. */
async function killMidDownload(s: Scene, origin: AdversarialOrigin, command: 'update' | 'download', atLeast: number): Promise<{ killed: Run; partBytes: number }> {
  const part = join(s.home, 'cache', `${artifact.sha256}.part`);
  origin.behave = (p) => (p === ARTIFACT ? { kind: 'rate', bytesPerSecond: 96 * 1024, chunk: 16 * 1024 } : { kind: 'normal' });
  const child = startFerry([command, '--home', s.home]);
  let seen = 0;
  for (let i = 0; i < 1200 && running(child.child) && seen < atLeast; i++) {
    await sleep(50);
    seen = await stat(part).then((st) => st.size, () => 0);
  }
  assert.ok(running(child.child), `ferry ${command} was still downloading when ${atLeast} bytes had arrived (saw ${seen})`);
  process.kill(child.child.pid!, 'SIGKILL');
  const killed = await child.done;
  assert.is(killed.signal, 'SIGKILL');
  origin.behave = () => ({ kind: 'normal' });
  const partBytes = (await stat(part)).size;
  assert.ok(partBytes >= atLeast && partBytes < artifact.size, `a partial download of ${partBytes} of ${artifact.size} bytes is left`);
  return { killed, partBytes };
}

for (const command of ['update', 'download'] as const) {
  row22(`\`ferry ${command}\` SIGKILLed mid-download: the next \`ferry update\` asks for the rest (Range from the .part length), about one artifact is sent in all, 1.1.0 complete`, async () => {
    const s = await makeScene(fx);
    const origin = await startAdversarialOrigin(s.repoDir);
    cleanups.push(() => origin.close(), () => s.cleanup());
    await s.setSources([origin.url]);
    const { partBytes } = await killMidDownload(s, origin, command, 300 * 1024);
    const sentBeforeKill = origin.sentFor(ARTIFACT);

    const run = await ferry(['update', '--home', s.home]);
    assert.is(run.code, 0, `the next ferry update: ${describeRun(run)}`);
    await assertCompleteVersion(s.home, NEW, fx.files.get(NEW)!);
    const asks = origin.requests.filter((r) => r.path === ARTIFACT);
    assert.is(asks.at(-1)?.range, `bytes=${partBytes}-`, `the resumed request asks for the rest (requests: ${JSON.stringify(asks)})`);
    const total = origin.sentFor(ARTIFACT);
    assert.is(total - sentBeforeKill, artifact.size - partBytes, 'the second run was sent exactly the rest');
    // What the killed run had been sent but not yet written is lost; at this rate that is a few chunks.
    assert.ok(total <= artifact.size + 128 * 1024, `${total} bytes sent in all for a ${artifact.size}-byte artifact, not 1.5-2x`);
    const records = (await history(s.home)).records!.filter((r) => r.to === NEW);
    const done = records.find((r) => r.outcome === 'committed');
    assert.is(done?.bytesMoved, artifact.size - partBytes, 'the committed record counts only the bytes of the resume');
    if (command === 'update') {
      const cut = records.find((r) => r.outcome !== 'committed');
      assert.is(cut?.errorCode, 'ERR_INTERRUPTED', `the killed attempt is closed as interrupted: ${JSON.stringify(records)}`);
      assert.ok(cut?.finishedAt, 'and finished');
    }
    assert.equal((await namesIn(join(s.home, 'cache'))).filter((n) => n.endsWith('.part')), [], 'no .part left');
  });
}

/** This machine's boot id, as core/device/lock.ts reads it. */
async function bootId(): Promise<string> {
  return (await readFile('/proc/sys/kernel/random/boot_id', 'utf8')).trim();
}

row22('a lock file naming a live pid of this boot: ERR_BUSY, exit 7, lock untouched; the same pid written in an earlier boot: taken over, 1.1.0 installed', async () => {
  const s = await makeScene(fx);
  cleanups.push(() => s.cleanup());
  const lock = join(s.home, 'lock');
  // A live pid: this test process. Written in this boot, it names a process that may hold the home.
  const thisBoot = `${process.pid} ${await bootId()}\n`;
  await writeFile(lock, thisBoot);
  // No history record can be written: the store belongs to whoever holds the lock.
  const busy = await ferry(['update', '--home', s.home, '--json']);
  assert.is(busy.code, EXIT_CODE.ERR_BUSY, describeRun(busy));
  assert.match(busy.stderr, /"code":"ERR_BUSY"/);
  await assertCompleteVersion(s.home, OLD, fx.files.get(OLD)!);
  assert.is(await readFile(lock, 'utf8'), thisBoot, 'the lock is untouched');

  const otherBoot = (await bootId()).replace(/^./, (c) => (c === '0' ? '1' : '0'));
  await writeFile(lock, `${process.pid} ${otherBoot}\n`);
  const run = await ferry(['update', '--home', s.home]);
  assert.is(run.code, 0, `a lock from another boot is stale: ${describeRun(run)}`);
  await assertCompleteVersion(s.home, NEW, fx.files.get(NEW)!);
  assert.not.ok(await stat(lock).then(() => true, () => false), 'the lock was released at exit');
});

row22.run();

// ---------------------------------------------------------------------------------------------

/** Mounts a tmpfs; unmounted (lazily if busy) by the returned function, also registered for exit. */
function mountTmpfs(options: string): { dir: string; unmount(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-adv-row23-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', dir], { stdio: 'pipe' });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  let mounted = true;
  const unmount = () => {
    if (!mounted) return;
    mounted = false;
    process.off('exit', unmount);
    if (spawnSync('umount', [dir], { stdio: 'pipe' }).status !== 0) spawnSync('umount', ['-l', dir], { stdio: 'pipe' });
    rmSync(dir, { recursive: true, force: true });
  };
  process.on('exit', unmount);
  return { dir, unmount };
}

function tmpfsUnavailable(): string | null {
  if (process.getuid?.() !== 0) return 'not root';
  try {
    mountTmpfs('size=1m').unmount();
    return null;
  } catch (err) {
    return `mount -t tmpfs failed: ${(err as Error).message.split('\n')[0]}`;
  }
}

interface FullDisk {
  s: Scene;
  fill: string;
  mnt: { dir: string; unmount(): void };
}

/**
 * A home on a 16 MB tmpfs with 1,000 inodes, whose health check — run by ferry after switching
 * to 1.1.0 — fills the disk the first time (`fill`: a shell snippet writing under $F) and exits
 * `exit`; every later check passes. The marker that makes it run once lives off the tmpfs.
 */
async function fullDiskAtHealthCheck(fill: string, exit: number): Promise<FullDisk> {
  const mnt = mountTmpfs('size=16m,nr_inodes=1000,mode=0755');
  cleanups.push(async () => mnt.unmount());
  const s = await makeScene(fx, { homeParent: mnt.dir });
  cleanups.push(() => s.cleanup());
  const F = join(mnt.dir, 'fill');
  const marker = join(s.dir, 'health-ran');
  const script = `test -e ${marker} && exit 0; touch ${marker}; mkdir -p ${F}; F=${F}; ${fill}; exit ${exit}`;
  await setConfig(s.home, { health: { command: ['sh', '-c', script], timeoutMs: 60_000 } });
  return { s, fill: F, mnt };
}

// Bounded by the tmpfs: at most 1,000 inodes, 16 MB.
const EVERY_INODE = 'i=0; while touch $F/i$i 2>/dev/null; do i=$((i+1)); done';
const EVERY_BYTE = 'dd if=/dev/zero of=$F/bytes bs=4k 2>/dev/null';

/** No temporary link of a failed switch is left in the home. */
async function assertNoSwitchLeftovers(home: string): Promise<void> {
  assert.equal((await readdir(home)).filter((n) => n.startsWith('.current')), [], 'no temporary link left beside current');
}

const skip = tmpfsUnavailable();
if (skip) {
  console.log(`SKIP: row 23 disk-full-at-a-moment tests need root and a tmpfs mount (${skip})`);
} else {
  const row23 = suite('row 23 the disk fills during the health check: the switch, journal, store and marks writes that follow meet a full disk');

  row23('no inode left when an unhealthy 1.1.0 is rolled back: ERR_NO_SPACE, exit 8, `current` a complete release; freed, the next start is back on 1.0.0 and the next update installs 1.1.0', async () => {
    const { s, fill, mnt } = await fullDiskAtHealthCheck(EVERY_INODE, 1);
    const run = await ferry(['update', '--home', s.home, '--json']);
    assert.is(run.code, EXIT_CODE.ERR_NO_SPACE, `exit 8: ${describeRun(run)}`);
    assert.match(run.stderr, /"code":"ERR_NO_SPACE"[^\n]*switching/, 'the rollback\'s switch of current met the full disk');
    // The link could not be replaced: current is still the complete (unhealthy) 1.1.0, and the
    // journal still says rolling-back, so the next start finishes the rollback.
    await assertCompleteVersion(s.home, NEW, fx.files.get(NEW)!);
    await assertNoSwitchLeftovers(s.home);

    execFileSync('rm', ['-rf', fill]);
    const st = await status(s.home);
    assert.is(st.status?.currentVersion, OLD, `the next start rolled back: ${describeRun(st.run)}`);
    assert.is(st.status?.phase, 'idle');
    await assertCompleteVersion(s.home, OLD, fx.files.get(OLD)!);
    const record = (await history(s.home)).records!.find((r) => r.to === NEW);
    assert.is(record?.outcome, 'rolled-back', `a record of the attempt: ${JSON.stringify(record)}`);
    assert.is(record?.errorCode, 'ERR_UNHEALTHY');

    const again = await ferry(['update', '--home', s.home]);
    assert.is(again.code, 0, `with space, the next update works: ${describeRun(again)}`);
    await assertCompleteVersion(s.home, NEW, fx.files.get(NEW)!);
    mnt.unmount();
  });

  row23('every byte and inode used while a security fix is health-checked: the commit\'s marks.json write fails with ERR_NO_SPACE, exit 8, 1.1.0 complete; freed, the next start finishes the commit and raises the floor', async () => {
    const { s, fill, mnt } = await fullDiskAtHealthCheck(`${EVERY_BYTE}; ${EVERY_INODE}`, 0);
    await resignManifest(s.repoDir, NEW, [fx.repo.releaseKey], (m) => { m.securityFix = true; });
    const run = await ferry(['update', '--home', s.home, '--json']);
    assert.is(run.code, EXIT_CODE.ERR_NO_SPACE, `exit 8: ${describeRun(run)}`);
    assert.match(run.stderr, /"code":"ERR_NO_SPACE"[^\n]*marks\.json/, 'the security floor could not be written');
    await assertCompleteVersion(s.home, NEW, fx.files.get(NEW)!);
    const marks = JSON.parse(await readFile(join(s.home, 'trust', 'marks.json'), 'utf8')) as { securityFloor: string | null };
    assert.is(marks.securityFloor, null, 'marks.json is the one written at the check, whole, without the floor');
    assert.equal((await readdir(join(s.home, 'trust'))).filter((n) => n.endsWith('.tmp')), [], 'no temporary marks file left');

    execFileSync('rm', ['-rf', fill]);
    const st = await status(s.home);
    assert.is(st.status?.currentVersion, NEW, `the commit stands: ${describeRun(st.run)}`);
    assert.is(st.status?.phase, 'idle');
    assert.is(st.status?.securityFloor, NEW, 'the next start raised the security floor');
    const record = (await history(s.home)).records!.find((r) => r.to === NEW);
    assert.is(record?.outcome, 'committed', `the attempt is recorded as committed: ${JSON.stringify(record)}`);
    const again = await ferry(['update', '--home', s.home, '--json']);
    assert.is(again.code, 0, describeRun(again));
    assert.match(again.stdout, /up-to-date/);
    mnt.unmount();
  });

  row23('every byte and inode used while 1.1.0 is health-checked (healthy): the commit still completes — its journal and history writes fit — or stops with ERR_NO_SPACE; never another code, never a broken tree', async () => {
    const { s, fill, mnt } = await fullDiskAtHealthCheck(`${EVERY_BYTE}; ${EVERY_INODE}`, 0);
    const run = await ferry(['update', '--home', s.home, '--json']);
    assert.ok(run.code === 0 || run.code === EXIT_CODE.ERR_NO_SPACE, `exit 0 or 8: ${describeRun(run)}`);
    if (run.code !== 0) assert.match(run.stderr, /"code":"ERR_NO_SPACE"/);
    await assertCompleteVersion(s.home, NEW, fx.files.get(NEW)!);
    execFileSync('rm', ['-rf', fill]);
    const again = await ferry(['update', '--home', s.home]);
    assert.is(again.code, 0, `with space, the next update works: ${describeRun(again)}`);
    await assertCompleteVersion(s.home, NEW, fx.files.get(NEW)!);
    const st = await status(s.home);
    assert.is(st.status?.phase, 'idle');
    const records = (await history(s.home)).records!.filter((r) => r.to === NEW);
    assert.ok(records.every((r) => r.finishedAt), `every attempt is closed: ${JSON.stringify(records)}`);
    assert.ok(records.some((r) => r.outcome === 'committed'), `1.1.0 was committed: ${JSON.stringify(records)}`);
    mnt.unmount();
  });

  row23.run();
}

const teardown = suite('disk teardown');
teardown('stop every server, remove every scene, unmount every tmpfs', async () => {
  for (const c of cleanups.reverse()) await c();
  await fx?.cleanup();
});
teardown.run();
