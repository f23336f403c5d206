// HDiffPatch (github.com/sisong/HDiffPatch, tag v4.12.0), the strongest binary diff the delta bench
// compares with. It is not in Debian or npm, so the bench builds hdiffz/hpatchz from a local git
// copy of its source (no network): HDIFFPATCH_GIT is the git dir of sisong/HDiffPatch and LZMA_GIT
// that of sisong/lzma (its LZMA SDK; defaults: the mirrors under /work/.mirror). zlib and bzip2 are
// linked from the system (zlib1g-dev, libbz2-dev); zstd, libdeflate, md5, xxhash and VCDIFF are
// left out (not needed for lzma2 patches). The binaries are kept in bench/.cache/ and reused.
// FERRY_BENCH_HDIFFPATCH_BIN, a folder holding hdiffz and hpatchz, skips the build.
// When it cannot be built the bench reports the column as "not built: <reason>".

import { access, copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { constants } from 'node:fs';
import { join } from 'node:path';
import { CACHE_DIR } from './npm-pack.ts';
import { runChecked } from './measure.ts';

export const HDIFFPATCH_TAG = 'v4.12.0';
const BUILD_TIMEOUT_MS = 15 * 60_000;
const MAKE_FLAGS = ['LZMA=1', 'ZSTD=0', 'LDEF=0', 'ZLIB=2', 'MD5=0', 'XXH=0', 'VCD=0', '-j2'];

export interface HDiffPatch {
  hdiffz: string;
  hpatchz: string;
}

/** hdiffz's default matcher, one lzma2 stream (-SD), lzma2 level 9 with a 16 MiB dictionary. */
export const HDIFFZ_ENCODE = (old: string, next: string, out: string) => ['-m-6', '-SD', '-c-lzma2-9-16m', '-f', old, next, out];
export const HPATCHZ_DECODE = (old: string, patch: string, out: string) => ['-f', old, patch, out];

const exists = (p: string, mode = constants.F_OK) => access(p, mode).then(() => true, () => false);

async function binariesIn(dir: string): Promise<HDiffPatch | null> {
  const got = { hdiffz: join(dir, 'hdiffz'), hpatchz: join(dir, 'hpatchz') };
  return (await exists(got.hdiffz, constants.X_OK)) && (await exists(got.hpatchz, constants.X_OK)) ? got : null;
}

/** The built tools, or the reason they are not there. */
export async function findOrBuildHDiffPatch(log: (line: string) => void): Promise<HDiffPatch | { reason: string }> {
  const given = process.env.FERRY_BENCH_HDIFFPATCH_BIN;
  if (given) return (await binariesIn(given)) ?? { reason: `FERRY_BENCH_HDIFFPATCH_BIN=${given} holds no hdiffz and hpatchz` };
  const cached = join(CACHE_DIR, `hdiffpatch-${HDIFFPATCH_TAG}`);
  const have = await binariesIn(cached);
  if (have) return have;

  const hdpGit = process.env.HDIFFPATCH_GIT ?? '/work/.mirror/sisong+HDiffPatch/repo';
  const lzmaGit = process.env.LZMA_GIT ?? '/work/.mirror/sisong+lzma/repo';
  for (const [name, dir] of [['HDIFFPATCH_GIT', hdpGit], ['LZMA_GIT', lzmaGit]] as const) {
    if (!(await exists(join(dir, 'HEAD')))) return { reason: `no source: ${name}=${dir} is not a git dir (clone github.com/sisong/${name === 'LZMA_GIT' ? 'lzma' : 'HDiffPatch'})` };
  }
  for (const header of ['/usr/include/zlib.h', '/usr/include/bzlib.h']) {
    if (!(await exists(header))) return { reason: `${header} missing (apt-get install zlib1g-dev libbz2-dev)` };
  }
  log(`building HDiffPatch ${HDIFFPATCH_TAG} (make ${MAKE_FLAGS.join(' ')}); a minute or two, once`);
  await mkdir(CACHE_DIR, { recursive: true });
  const work = await mkdtemp(join(CACHE_DIR, 'hdp-build-'));
  try {
    // The Makefile finds its dependencies next to it: ../lzma.
    await mkdir(join(work, 'HDiffPatch'));
    await mkdir(join(work, 'lzma'));
    const unpack = 'git --git-dir="$1" archive "$2" | tar -x -C "$3"';
    await runChecked('sh', ['-c', unpack, 'sh', hdpGit, HDIFFPATCH_TAG, join(work, 'HDiffPatch')], BUILD_TIMEOUT_MS);
    await runChecked('sh', ['-c', unpack, 'sh', lzmaGit, 'HEAD', join(work, 'lzma')], BUILD_TIMEOUT_MS);
    await runChecked('make', MAKE_FLAGS, BUILD_TIMEOUT_MS, join(work, 'HDiffPatch'));
    await mkdir(cached, { recursive: true });
    for (const bin of ['hdiffz', 'hpatchz']) await copyFile(join(work, 'HDiffPatch', bin), join(cached, bin));
    return (await binariesIn(cached)) ?? { reason: 'make left no hdiffz/hpatchz' };
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    return { reason: `build failed: ${msg.split('\n').filter((l) => l.trim() !== '').slice(-2).join(' | ').slice(0, 200)}` };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
