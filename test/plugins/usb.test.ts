// The USB / filesystem-drop transport (plugins/usb): the watcher notices bundles and repository
// folders landing on a mount; the source offers them to a real device, copies every bundle into
// private storage while hashing it and uses only that copy (SECURITY.md row 12), refuses bundles
// for another target (row 10) and half-written ones, and survives a stick pulled out mid-copy —
// on a real loop-mounted filesystem when the machine allows it.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { copyFile, cp, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeRepo, pseudoRandomBytes, sampleApp, tempDir, type TempDir, type TestRepo, type TreeSpec } from '../helpers/repo.ts';
import { assertInstalled, cleanupAll as done, makeDevice, type TestDevice } from '../helpers/device.ts';
import { assertCodeAsync } from '../helpers/assert-code.ts';
import { writeBundle } from '../../core/publish/bundle.ts';
import { Updater } from '../../core/update/updater.ts';
import { createBsdiffPatcher } from '../../plugins/bsdiff/patcher.ts';
import { createUsbSource, type UsbHooks, type UsbSource } from '../../plugins/usb/source.ts';
import { watchMounts, type MountEvent } from '../../plugins/usb/watcher.ts';
import type { Source } from '../../core/ports/source.ts';
import { FerryError } from '../../core/errors.ts';
import { sha256 } from '../../core/io/hash.ts';

const SHA_DIR = /^[0-9a-f]{64}$/;


async function withUpdater<T>(device: TestDevice, sources: Source[], fn: (u: Updater) => Promise<T>): Promise<T> {
  const u = await Updater.open({ home: device.home, sources, patcher: createBsdiffPatcher(), health: null });
  try {
    return await fn(u);
  } finally {
    await u.close();
  }
}

/** A repository, a device trusting it, an empty "stick" folder and a private folder for the source. */
async function fixture(): Promise<{ repo: TestRepo; device: TestDevice; stick: TempDir; priv: TempDir; cleanup(): Promise<void> }> {
  const repo = await makeRepo();
  const stick = await tempDir('ferry-stick-');
  const priv = await tempDir('ferry-usb-private-');
  const device = await makeDevice({ trust: await repo.trust(), sources: [stick.path] });
  return { repo, device, stick, priv, cleanup: () => done(device, repo, stick, priv) };
}

function usbOn(mount: string, priv: string, hooks?: UsbHooks): UsbSource {
  return createUsbSource({ mounts: [mount], privateDir: join(priv, 'usb'), ...(hooks ? { hooks } : {}) });
}

async function bundleOf(repo: TestRepo, version: string, arch = 'x64'): Promise<string> {
  const out = join(repo.dir, 'bundles', `${version}-${arch}.ferry`);
  await writeBundle({ repo: repo.repo, version, platform: 'linux', arch, out });
  return out;
}

/** A tree with a large incompressible file, so copying its bundle takes many chunks. */
function bigApp(version: string, bytes: number): TreeSpec {
  return { ...sampleApp(version), 'lib/big.bin': pseudoRandomBytes(bytes, 99 + Number(version.split('.')[1] ?? 0)) };
}

async function privateEntries(priv: string): Promise<string[]> {
  return (await readdir(join(priv, 'usb')).catch(() => [] as string[])).sort();
}

/** The private folder holds only finished copies (named by sha256): nothing half-copied or half-unpacked. */
async function assertNoPartialCopies(priv: string): Promise<string[]> {
  const names = await privateEntries(priv);
  const stray = names.filter((n) => !SHA_DIR.test(n));
  assert.equal(stray, [], 'no incoming-/unpack- leftovers in the private folder');
  return names;
}

function waitFor<T>(events: T[], ms: number): Promise<T | undefined> {
  return new Promise((resolve) => {
    const started = Date.now();
    const tick = setInterval(() => {
      if (events.length > 0 || Date.now() - started > ms) {
        clearInterval(tick);
        resolve(events[0]);
      }
    }, 20);
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------

const watcher = suite('watcher: bundles and repository folders landing on a mount fire one debounced event');

watcher('a .ferry dropped in a watched folder fires within 2 s; a plain file does not', async () => {
  const stick = await tempDir('ferry-stick-');
  const events: MountEvent[] = [];
  const w = watchMounts([stick.path], (e) => events.push(e), { debounceMs: 300 });
  try {
    await sleep(100);
    await writeFile(join(stick.path, 'notes.txt'), 'not a bundle\n');
    await writeFile(join(stick.path, '._update.ferry'), 'a macOS resource fork, not a bundle\n');
    await sleep(900);
    assert.equal(events, [], 'no event for files that are not bundles');
    const started = Date.now();
    await writeFile(join(stick.path, 'update.ferry'), pseudoRandomBytes(100_000, 1));
    const e = await waitFor(events, 10_000);
    assert.ok(e, 'an event within 10 s');
    assert.ok(Date.now() - started < 10_000, `fired after ${Date.now() - started} ms`);
    assert.equal(e, { mount: stick.path, path: join(stick.path, 'update.ferry') });
    await sleep(500);
    assert.is(events.length, 1, 'one burst of writes, one event');
  } finally {
    w.close();
    await stick.cleanup();
  }
});

watcher('a mount folder that does not exist yet is polled for; when it appears holding a bundle, one event', async () => {
  const base = await tempDir('ferry-stick-');
  const mount = join(base.path, 'media', 'stick');
  const events: MountEvent[] = [];
  const w = watchMounts([mount], (e) => events.push(e), { debounceMs: 200, pollMs: 200 });
  try {
    await sleep(300);
    assert.equal(events, []);
    await mkdir(join(mount, 'updates'), { recursive: true });
    await writeFile(join(mount, 'updates', 'x.ferry'), 'bytes');
    const e = await waitFor(events, 2000);
    assert.equal(e, { mount, path: join(mount, 'updates', 'x.ferry') });
  } finally {
    w.close();
    await base.cleanup();
  }
});

watcher('a repository folder copied onto the stick fires with the folder as path', async () => {
  const stick = await tempDir('ferry-stick-');
  const repo = await makeRepo();
  const events: MountEvent[] = [];
  const w = watchMounts([stick.path], (e) => events.push(e), { debounceMs: 300 });
  try {
    await sleep(100);
    await cp(repo.repo, join(stick.path, 'ferry-repo'), { recursive: true });
    const e = await waitFor(events, 2000);
    assert.equal(e, { mount: stick.path, path: join(stick.path, 'ferry-repo') });
  } finally {
    w.close();
    await done(stick, repo);
  }
});

watcher.run();

// ---------------------------------------------------------------------------------------------

const source = suite('usb source: offers what is on the stick, through private copies');

source('no stick inserted: read → undefined, fetch → false, list → [], nothing thrown, nothing copied', async () => {
  const base = await tempDir('ferry-stick-');
  try {
    const usb = createUsbSource({ mounts: [join(base.path, 'absent')], privateDir: join(base.path, 'priv') });
    assert.is(usb.name, `usb:${join(base.path, 'absent')}`);
    assert.is(usb.offline, true);
    assert.is(await usb.read('channels/stable.json', 1024), undefined);
    assert.is(await usb.fetch('releases/1.0.0/linux-x64.tar.gz', join(base.path, 'dest'), 1024), false);
    assert.is(existsSync(join(base.path, 'dest')), false);
    assert.equal(await usb.list!('channels'), []);
    assert.equal(usb.problems(), []);
    await usb.close();
    assert.is(existsSync(join(base.path, 'priv')), false, 'close removes the private folder');
  } finally {
    await base.cleanup();
  }
});

source('a device installs from a bundle on the stick; the same bundle dropped again is opened once and is up to date', async () => {
  const f = await fixture();
  try {
    const r1 = await f.repo.release('1.0.0', sampleApp('1.0.0'), { deltas: 0 });
    await copyFile(await bundleOf(f.repo, '1.0.0'), join(f.stick.path, 'update.ferry'));
    const usb = usbOn(f.stick.path, f.priv.path);
    await withUpdater(f.device, [usb], async (u) => {
      const result = await u.apply();
      assert.is(result.status, 'committed');
      if (result.status === 'committed') assert.is(result.record.source, usb.name);
    });
    await assertInstalled(f.device, r1.manifest);
    const [sha] = await assertNoPartialCopies(f.priv.path);
    assert.ok(sha, 'one private copy');
    const ino = (await stat(join(f.priv.path, 'usb', sha!))).ino;

    // Dropped twice: under a second name one folder down, and removed and dropped again.
    await mkdir(join(f.stick.path, 'again'));
    await copyFile(join(f.stick.path, 'update.ferry'), join(f.stick.path, 'again', 'copy.ferry'));
    await rm(join(f.stick.path, 'update.ferry'));
    await withUpdater(f.device, [usb], async (u) => {
      assert.is((await u.apply()).status, 'up-to-date');
      await copyFile(join(f.stick.path, 'again', 'copy.ferry'), join(f.stick.path, 'update.ferry'));
      assert.is((await u.apply()).status, 'up-to-date');
      const history = await u.history();
      assert.equal(history.map((h) => [h.to, h.outcome]), [['1.0.0', 'committed']], 'one committed record');
    });
    assert.equal(await assertNoPartialCopies(f.priv.path), [sha!], 'the same bytes make one private copy');
    assert.is((await stat(join(f.priv.path, 'usb', sha!))).ino, ino, 'that copy was not unpacked again');
    await assertInstalled(f.device, r1.manifest);
    await usb.close();
  } finally {
    await f.cleanup();
  }
});

source('row 10: a bundle for linux-arm64 on the stick: ERR_WRONG_TARGET, refused record, device unchanged', async () => {
  const f = await fixture();
  try {
    await f.repo.release('1.0.0', sampleApp('1.0.0'), { arch: 'arm64', deltas: 0 });
    await copyFile(await bundleOf(f.repo, '1.0.0', 'arm64'), join(f.stick.path, 'arm64.ferry'));
    const usb = usbOn(f.stick.path, f.priv.path);
    await withUpdater(f.device, [usb], async (u) => {
      await assertCodeAsync(() => u.apply(), 'ERR_WRONG_TARGET');
      const records = (await u.history()).filter((h) => h.outcome === 'refused' && h.errorCode === 'ERR_WRONG_TARGET');
      assert.is(records.length, 1, 'a refused record');
      assert.is(records[0]!.source, usb.name);
    });
    assert.is(await f.device.current(), null);
    assert.equal(await f.device.releases(), []);
    assert.equal(await readdir(f.device.layout.staging), []);
    await usb.close();
  } finally {
    await f.cleanup();
  }
});

source('a half-written bundle (first half of a real one): refused for its bytes, device unchanged; once complete it installs', async () => {
  const f = await fixture();
  try {
    // A bundle carries the latest release of its channel: each is written right after its release.
    const r1 = await f.repo.release('1.0.0', sampleApp('1.0.0'), { deltas: 0 });
    await copyFile(await bundleOf(f.repo, '1.0.0'), join(f.stick.path, 'a.ferry'));
    const r2 = await f.repo.release('1.1.0', sampleApp('1.1.0'), { deltas: 0 });
    const b11 = await bundleOf(f.repo, '1.1.0');
    const usb = usbOn(f.stick.path, f.priv.path);
    await withUpdater(f.device, [usb], (u) => u.apply());
    await assertInstalled(f.device, r1.manifest);

    const whole = await readFile(b11);
    await rm(join(f.stick.path, 'a.ferry'));
    await writeFile(join(f.stick.path, 'b.ferry'), whole.subarray(0, Math.floor(whole.length / 2)));
    // extractArchive calls a cut inside an entry ERR_TOO_LARGE (the entry claims more bytes than
    // the file holds) and a cut inside a header ERR_UNSAFE_ARCHIVE: either is a refusal for the bytes.
    let code: string | undefined;
    await withUpdater(f.device, [usb], async (u) => {
      const err = await u.apply().then(() => undefined, (e: unknown) => e as FerryError);
      assert.ok(err instanceof FerryError, `refused, got ${String(err)}`);
      code = err.code;
      assert.ok(code === 'ERR_UNSAFE_ARCHIVE' || code === 'ERR_TOO_LARGE', `refused for a truncated archive, got ${code}: ${err.message}`);
      assert.match(err.message, /b\.ferry/);
      assert.is((await u.status()).phase, 'idle');
    });
    assert.equal(usb.problems().map((p) => [p.path, p.code]), [[join(f.stick.path, 'b.ferry'), code]]);
    await assertInstalled(f.device, r1.manifest);
    assert.equal(await f.device.releases(), ['1.0.0']);
    assert.is((await assertNoPartialCopies(f.priv.path)).length, 1, 'only the 1.0.0 copy is kept');

    // The copy onto the stick finishes: the same path, now whole, is copied again and installs.
    await writeFile(join(f.stick.path, 'b.ferry'), whole);
    await withUpdater(f.device, [usb], async (u) => assert.is((await u.apply()).status, 'committed'));
    await assertInstalled(f.device, r2.manifest);
    assert.equal(usb.problems(), []);
    await usb.close();
  } finally {
    await f.cleanup();
  }
});

source.run();

// ---------------------------------------------------------------------------------------------

const row12 = suite('row 12 USB swapped under us: installed bytes equal verified bytes, or refused — never a mix');

row12('the bundle rewritten in place mid-copy (garbage): ERR_IO, retryable, copy discarded, device unchanged', async () => {
  const f = await fixture();
  try {
    const r1 = await f.repo.release('1.0.0', sampleApp('1.0.0'), { deltas: 0 });
    const onStick = join(f.stick.path, 'update.ferry');
    await copyFile(await bundleOf(f.repo, '1.0.0'), onStick);
    await f.repo.release('1.1.0', bigApp('1.1.0', 2_000_000), { deltas: 0 });
    const b11 = await bundleOf(f.repo, '1.1.0');
    let armed = false;
    let chunksSeen = 0;
    const usb = usbOn(f.stick.path, f.priv.path, {
      async onCopyChunk({ bundle, copied, size }) {
        if (!armed || bundle !== onStick) return;
        chunksSeen++;
        if (copied < size) {
          armed = false;
          await writeFile(onStick, pseudoRandomBytes(size, 5)); // same inode, same size, other bytes
        }
      },
    });
    await withUpdater(f.device, [usb], (u) => u.apply());
    await copyFile(b11, onStick);
    armed = true;
    await withUpdater(f.device, [usb], async (u) => {
      const err = await assertCodeAsync(() => u.apply(), 'ERR_IO');
      assert.is(err.retryable, true);
    });
    assert.ok(chunksSeen >= 1, 'the swap happened during the copy');
    await assertInstalled(f.device, r1.manifest);
    assert.is((await assertNoPartialCopies(f.priv.path)).length, 1, 'only the 1.0.0 copy');
    // Read again, the garbage now on the stick is what it is: refused for its bytes.
    await withUpdater(f.device, [usb], (u) => assertCodeAsync(() => u.apply(), 'ERR_UNSAFE_ARCHIVE'));
    await assertInstalled(f.device, r1.manifest);
    await usb.close();
  } finally {
    await f.cleanup();
  }
});

row12('another validly signed bundle renamed over it mid-copy: ERR_IO; the next read installs that one, whole', async () => {
  const f = await fixture();
  try {
    const r1 = await f.repo.release('1.0.0', sampleApp('1.0.0'), { deltas: 0 });
    const onStick = join(f.stick.path, 'update.ferry');
    await copyFile(await bundleOf(f.repo, '1.0.0'), onStick);
    await f.repo.release('1.1.0', bigApp('1.1.0', 2_000_000), { deltas: 0 });
    const b11 = await bundleOf(f.repo, '1.1.0');
    const r3 = await f.repo.release('1.2.0', bigApp('1.2.0', 2_000_000), { deltas: 0 });
    const b12 = await bundleOf(f.repo, '1.2.0');
    let armed = false;
    const usb = usbOn(f.stick.path, f.priv.path, {
      async onCopyChunk({ bundle, copied, size }) {
        if (!armed || bundle !== onStick || copied >= size) return;
        armed = false;
        await copyFile(b12, `${onStick}.tmp`);
        await rename(`${onStick}.tmp`, onStick);
      },
    });
    await withUpdater(f.device, [usb], (u) => u.apply());
    await copyFile(b11, onStick);
    armed = true;
    await withUpdater(f.device, [usb], (u) => assertCodeAsync(() => u.apply(), 'ERR_IO'));
    assert.is(armed, false, 'the swap happened during the copy');
    await assertInstalled(f.device, r1.manifest);
    await assertNoPartialCopies(f.priv.path);
    await withUpdater(f.device, [usb], async (u) => assert.is((await u.apply()).status, 'committed'));
    await assertInstalled(f.device, r3.manifest);
    await usb.close();
  } finally {
    await f.cleanup();
  }
});

row12('the stick swapped after its copy is made, before it is unpacked: what is read is the copy; then the garbage is refused', async () => {
  const f = await fixture();
  try {
    const r1 = await f.repo.release('1.0.0', sampleApp('1.0.0'), { deltas: 0 });
    const onStick = join(f.stick.path, 'update.ferry');
    await copyFile(await bundleOf(f.repo, '1.0.0'), onStick);
    await f.repo.release('1.1.0', sampleApp('1.1.0'), { deltas: 0 });
    const b11 = await bundleOf(f.repo, '1.1.0');
    const pointer11 = await readFile(join(f.repo.repo, 'channels', 'stable.json'));
    let armed = false;
    const usb = usbOn(f.stick.path, f.priv.path, {
      async onCopied({ bundle }) {
        if (!armed || bundle !== onStick) return;
        armed = false;
        await writeFile(onStick, pseudoRandomBytes((await stat(onStick)).size, 9));
      },
    });
    await withUpdater(f.device, [usb], (u) => u.apply());
    await assertInstalled(f.device, r1.manifest);
    await copyFile(b11, onStick);
    armed = true;
    const got = await usb.read('channels/stable.json', 1 << 20);
    assert.is(armed, false, 'the swap happened between copy and unpack');
    assert.ok(got && Buffer.from(got).equals(pointer11), 'the pointer read is the one from the copied bundle');
    assert.ok((await privateEntries(f.priv.path)).includes(sha256(await readFile(b11))), 'the copy unpacked is named by the copied bytes');
    // The stick now holds garbage: from here on that is what it offers, and it is refused.
    await withUpdater(f.device, [usb], (u) => assertCodeAsync(() => u.apply(), 'ERR_UNSAFE_ARCHIVE'));
    await assertInstalled(f.device, r1.manifest);
    await assertNoPartialCopies(f.priv.path);
    await usb.close();
  } finally {
    await f.cleanup();
  }
});

row12('the stick swapped after the copy, while the artifact is fetched: the verified copy is installed, exactly', async () => {
  const f = await fixture();
  try {
    const r1 = await f.repo.release('1.0.0', sampleApp('1.0.0'), { deltas: 0 });
    const onStick = join(f.stick.path, 'update.ferry');
    await copyFile(await bundleOf(f.repo, '1.0.0'), onStick);
    const r2 = await f.repo.release('1.1.0', bigApp('1.1.0', 1_000_000), { deltas: 0 });
    const b11 = await bundleOf(f.repo, '1.1.0');
    const usb = usbOn(f.stick.path, f.priv.path);
    await withUpdater(f.device, [usb], (u) => u.apply());
    await assertInstalled(f.device, r1.manifest);
    await copyFile(b11, onStick);
    // The device verified the 1.1.0 pointer and manifest; as it starts fetching, the stick changes.
    let swaps = 0;
    const spy: Source = {
      name: usb.name,
      offline: usb.offline,
      read: (p, m) => usb.read(p, m),
      list: (d) => usb.list!(d),
      async fetch(p, dest, max, offset) {
        if (swaps++ === 0) {
          await writeFile(`${onStick}.tmp`, pseudoRandomBytes(3_000_000, 77));
          await rename(`${onStick}.tmp`, onStick);
        }
        return usb.fetch(p, dest, max, offset);
      },
    };
    await withUpdater(f.device, [spy], async (u) => {
      const result = await u.apply();
      assert.is(result.status, 'committed');
    });
    assert.ok(swaps >= 1, 'the swap happened during the update');
    await assertInstalled(f.device, r2.manifest);
    assert.ok(usb.problems().some((p) => p.path === onStick && p.code === 'ERR_UNSAFE_ARCHIVE'), 'the garbage now on the stick was seen and refused');
    // And the garbage is never offered: the next check refuses it, the device stays on 1.1.0.
    await withUpdater(f.device, [usb], (u) => assertCodeAsync(() => u.apply(), 'ERR_UNSAFE_ARCHIVE'));
    await assertInstalled(f.device, r2.manifest);
    await usb.close();
  } finally {
    await f.cleanup();
  }
});

row12.run();

// ---------------------------------------------------------------------------------------------
// A real removable-like filesystem: a loop-mounted image, unmounted (lazily, as a pulled stick
// is) in the middle of a copy.

function kernelHas(fs: string): boolean {
  try {
    return readFileSync('/proc/filesystems', 'utf8').split('\n').some((l) => l.trim().split(/\s+/).pop() === fs);
  } catch {
    return false;
  }
}

function have(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function stickFs(): { type: 'vfat' | 'ext4'; mkfs: string[] } | null {
  const root = process.getuid?.() === 0;
  if (!root) { console.log('SKIP: loop-mounted stick tests need root'); return null; }
  if (have('mkfs.vfat') && kernelHas('vfat')) return { type: 'vfat', mkfs: ['mkfs.vfat'] };
  console.log(`SKIP: vfat stick tests: ${!have('mkfs.vfat') ? 'mkfs.vfat missing (apt-get install dosfstools)' : 'this kernel has no vfat filesystem (/proc/filesystems)'}; using an ext4 loop image as the stand-in stick`);
  if (have('mkfs.ext4') && kernelHas('ext4')) return { type: 'ext4', mkfs: ['mkfs.ext4', '-q', '-F'] };
  console.log('SKIP: no ext4 either: only the plain-folder tests ran');
  return null;
}

interface LoopStick {
  mount: string;
  cleanup(): Promise<void>;
}

async function loopStick(fs: { type: string; mkfs: string[] }): Promise<LoopStick> {
  const dir = await tempDir('ferry-loopstick-');
  const image = join(dir.path, 'stick.img');
  const mount = join(dir.path, 'mnt');
  await mkdir(mount);
  await writeFile(image, Buffer.alloc(0));
  execFileSync('truncate', ['-s', '32M', image]);
  execFileSync(fs.mkfs[0]!, [...fs.mkfs.slice(1), image], { stdio: 'ignore' });
  execFileSync('mount', ['-o', 'loop', '-t', fs.type, image, mount]);
  return {
    mount,
    async cleanup() {
      try { execFileSync('umount', ['-l', mount], { stdio: 'ignore' }); } catch { /* already gone */ }
      // Detach only loop devices backed by this image.
      try {
        const lines = execFileSync('losetup', ['-j', image], { encoding: 'utf8' }).split('\n');
        for (const l of lines) {
          const dev = /^(\/dev\/loop\d+):/.exec(l)?.[1];
          if (dev) try { execFileSync('losetup', ['-d', dev], { stdio: 'ignore' }); } catch { /* autocleared */ }
        }
      } catch { /* losetup unavailable */ }
      // A lazily unmounted loop device lets go once its last file closes: wait for it (bounded).
      for (let i = 0; i < 40 && execFileSync('losetup', ['-j', image], { encoding: 'utf8' }).trim() !== ''; i++) await sleep(50);
      await dir.cleanup();
    },
  };
}

const fsKind = stickFs();
if (fsKind) {
  const real = suite(`a real ${fsKind.type} stick (loop-mounted image)`);

  real('a bundle copied onto the stick installs from usb:<mountpoint>', async () => {
    const f = await fixture();
    const stick = await loopStick(fsKind);
    try {
      const r1 = await f.repo.release('1.0.0', sampleApp('1.0.0'), { deltas: 0 });
      await mkdir(join(stick.mount, 'updates'));
      await copyFile(await bundleOf(f.repo, '1.0.0'), join(stick.mount, 'updates', 'sample-app.ferry'));
      const usb = usbOn(stick.mount, f.priv.path);
      await withUpdater(f.device, [usb], async (u) => {
        const result = await u.apply();
        assert.is(result.status, 'committed');
      });
      await assertInstalled(f.device, r1.manifest);
      await usb.close();
    } finally {
      await stick.cleanup();
      await f.cleanup();
    }
  });

  real('stick pulled out mid-copy (umount -l): ERR_IO, retryable; device unchanged; no partial private copy', async () => {
    const f = await fixture();
    const stick = await loopStick(fsKind);
    try {
      const r1 = await f.repo.release('1.0.0', sampleApp('1.0.0'), { deltas: 0 });
      const onStick = join(stick.mount, 'sample-app.ferry');
      await copyFile(await bundleOf(f.repo, '1.0.0'), onStick);
      await f.repo.release('1.1.0', bigApp('1.1.0', 4_000_000), { deltas: 0 });
      const b11 = await bundleOf(f.repo, '1.1.0');
      let pulled = false;
      let copiedWhenPulled = 0;
      let sizeWhenPulled = 0;
      const usb = usbOn(stick.mount, f.priv.path, {
        onCopyChunk({ bundle, copied, size }) {
          if (pulled || bundle !== onStick || size < 1_000_000) return;
          pulled = true;
          copiedWhenPulled = copied;
          sizeWhenPulled = size;
          execFileSync('umount', ['-l', stick.mount]);
        },
      });
      await withUpdater(f.device, [usb], (u) => u.apply());
      await assertInstalled(f.device, r1.manifest);
      await copyFile(b11, onStick);

      await withUpdater(f.device, [usb], async (u) => {
        const err = await assertCodeAsync(() => u.apply(), 'ERR_IO');
        assert.is(err.retryable, true);
        assert.is((await u.status()).phase, 'idle');
      });
      assert.ok(pulled, 'the stick was pulled during the copy');
      assert.ok(copiedWhenPulled < sizeWhenPulled, `pulled at ${copiedWhenPulled} of ${sizeWhenPulled} bytes`);
      await assertInstalled(f.device, r1.manifest);
      assert.equal(await f.device.releases(), ['1.0.0']);
      assert.is((await assertNoPartialCopies(f.priv.path)).length, 1, 'only the 1.0.0 copy remains');
      // The stick is gone: nothing is offered, nothing thrown.
      await withUpdater(f.device, [usb], async (u) => assert.is((await u.apply()).status, 'up-to-date'));
      await assertInstalled(f.device, r1.manifest);
      await usb.close();
    } finally {
      await stick.cleanup();
      await f.cleanup();
    }
  });

  real.run();
}
