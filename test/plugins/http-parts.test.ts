// The HTTP transport's decisions as tables (plugins/http/*.ts): which redirects are followed, the
// token bucket's arithmetic, when the throughput watchdog gives up, which ETags are kept and which
// cache entries (and absence notes) are trusted, which headers each request carries, how a Range
// answer continues a .part file, what a status means for a read or a HEAD probe, which declared
// sizes are over the cap, and which failures are retried. The behaviour over real sockets is in
// http-transport.test.ts.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { IncomingHttpHeaders } from 'node:http';
import { FerryError } from '../../core/errors.ts';
import { declaredSizeOverCap } from '../../plugins/http/body-reader.ts';
import { probeStep, readStep, type ReadStep } from '../../plugins/http/conditional-read.ts';
import { decodeAbsent, decodeEntry, encodeAbsent, encodeEntry, keepableEtag, MANIFEST_ENTRIES_KEPT, manifestEntriesToEvict, openEtagCache } from '../../plugins/http/etag-cache.ts';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { tempDir } from '../helpers/repo.ts';
import { requestHeaders } from '../../plugins/http/exchange.ts';
import { parseContentRange, resumeStep, type ContentRange, type ResumeStep } from '../../plugins/http/partial-download.ts';
import { MAX_REDIRECTS, redirectStep } from '../../plugins/http/redirects.ts';
import { AttemptFailure, backoffMs, finalFailure, finalFsFailure, statusFailure, statusIsRetryable, transientIo, withRetries } from '../../plugins/http/retries.ts';
import { judgeTransfer, slideWindow, tickMs, type Sample, type ThroughputLimits, type Verdict } from '../../plugins/http/throughput-watchdog.ts';
import { bucketCapacity, takeTokens, type BucketState } from '../../plugins/http/token-bucket.ts';
import { assertCodeAsync } from '../helpers/assert-code.ts';

// ---------------------------------------------------------------------------------------------

const redirects = suite('redirectStep: at most 3 hops, same scheme only');

const HTTP_FROM = new URL('http://origin.test/repo/channels/stable.json');
const HTTPS_FROM = new URL('https://origin.test/repo/root.json');

const redirectRows: { name: string; status: number; location?: string; from?: URL; hops?: number; expected: 'arrived' | string | RegExp }[] = [
  { name: '200 is the answer', status: 200, expected: 'arrived' },
  { name: '304 is not a redirect', status: 304, location: '/x', expected: 'arrived' },
  { name: '404 with a Location is not a redirect', status: 404, location: '/x', expected: 'arrived' },
  { name: '302 to an absolute path', status: 302, location: '/mirror/stable.json', expected: 'http://origin.test/mirror/stable.json' },
  { name: '301 to a relative path resolves against the request', status: 301, location: 'beta.json', expected: 'http://origin.test/repo/channels/beta.json' },
  { name: '303 to another host on the same scheme', status: 303, location: 'http://mirror.test/a', expected: 'http://mirror.test/a' },
  { name: '307 and https to https', status: 307, location: 'https://mirror.test/root.json', from: HTTPS_FROM, expected: 'https://mirror.test/root.json' },
  { name: '308 on the last allowed hop', status: 308, location: '/y', hops: MAX_REDIRECTS - 1, expected: 'http://origin.test/y' },
  { name: 'one hop too many', status: 308, location: '/y', hops: MAX_REDIRECTS, expected: /more than 3 redirects/ },
  { name: 'no Location', status: 302, expected: /redirect 302 without a Location from http:\/\/origin\.test/ },
  { name: 'an empty Location', status: 307, location: '', expected: /without a Location/ },
  { name: 'http to https (a scheme change either way)', status: 302, location: 'https://origin.test/x', expected: /from http: to https:/ },
  { name: 'https downgraded to http', status: 301, location: 'http://origin.test/root.json', from: HTTPS_FROM, expected: /from https: to http:/ },
  { name: 'to a file: URL', status: 302, location: 'file:///etc/passwd', expected: /from http: to file:/ },
  { name: 'a Location that is not a URL', status: 302, location: 'http://[::1', expected: /malformed Location/ },
];

for (const row of redirectRows) {
  redirects(row.name, () => {
    const step = redirectStep(row.status, row.location, row.from ?? HTTP_FROM, row.hops ?? 0);
    if (row.expected === 'arrived') return assert.equal(step, { kind: 'arrived' });
    if (typeof row.expected === 'string') {
      assert.is(step.kind, 'follow');
      return assert.is(step.kind === 'follow' && step.url.href, row.expected);
    }
    assert.is(step.kind, 'refuse');
    assert.match(step.kind === 'refuse' ? step.reason : '', row.expected);
  });
}

redirects.run();

// ---------------------------------------------------------------------------------------------

const bucket = suite('token bucket: refills at the rate, bursts up to a quarter second, waits off its debt');

const bucketRows: { name: string; rate: number; state: BucketState; take: number; now: number; tokens: number; waitMs: number }[] = [
  { name: 'a full bucket pays at once', rate: 1000, state: { tokens: 16_384, at: 0 }, take: 1000, now: 0, tokens: 15_384, waitMs: 0 },
  { name: 'an empty bucket goes into debt and waits it off', rate: 1000, state: { tokens: 0, at: 0 }, take: 500, now: 0, tokens: -500, waitMs: 500 },
  { name: 'time refills at the rate', rate: 1000, state: { tokens: 0, at: 0 }, take: 100, now: 250, tokens: 150, waitMs: 0 },
  { name: 'refill never passes the capacity', rate: 1000, state: { tokens: 16_000, at: 0 }, take: 0, now: 60_000, tokens: 16_384, waitMs: 0 },
  { name: 'an old debt is paid by elapsed time', rate: 2000, state: { tokens: -1000, at: 0 }, take: 1, now: 500, tokens: -1, waitMs: 1 },
  { name: 'the wait rounds up to a whole millisecond', rate: 3000, state: { tokens: 0, at: 0 }, take: 1, now: 0, tokens: -1, waitMs: 1 },
];

for (const row of bucketRows) {
  bucket(row.name, () => {
    const { state, waitMs } = takeTokens(row.state, row.take, row.now, row.rate, bucketCapacity(row.rate));
    assert.equal(state, { tokens: row.tokens, at: row.now });
    assert.is(waitMs, row.waitMs);
  });
}

bucket('capacity: a quarter second of the rate, at least 16 KiB', () => {
  assert.equal([1000, 64 * 1024, 200_000, 4_000_000].map(bucketCapacity), [16 * 1024, 16 * 1024, 50_000, 1_000_000]);
});

bucket('a reader that always waits as told moves no faster than the rate after its first burst', () => {
  for (const rate of [1024, 200_000, 3_000_000]) {
    const capacity = bucketCapacity(rate);
    let state: BucketState = { tokens: capacity, at: 0 };
    let now = 0;
    const total = Math.max(5 * rate, 40 * 16 * 1024);
    for (let sent = 0; sent < total; sent += 16 * 1024) {
      const r = takeTokens(state, 16 * 1024, now, rate, capacity);
      state = r.state;
      now += r.waitMs;
    }
    const sent = Math.ceil(total / (16 * 1024)) * 16 * 1024;
    const floorMs = ((sent - capacity) * 1000) / rate;
    assert.ok(now >= floorMs - 1, `${rate} B/s: ${sent} bytes in ${now} ms, at least ${floorMs}`);
    assert.ok(now <= floorMs + 1000, `${rate} B/s: no more than a second of extra waiting (${now} vs ${floorMs})`);
  }
});

bucket.run();

// ---------------------------------------------------------------------------------------------

const watchdog = suite('throughput watchdog: stalls, slow windows, and the grace period');

const LIMITS: ThroughputLimits = { timeoutMs: 1000, minBytesPerSecond: 100, windowMs: 2000, graceMs: 1000 };

const watchRows: { name: string; waitingSince?: number; samples: Sample[]; expected: Verdict }[] = [
  { name: 'nothing yet, inside the timeout and the grace period', waitingSince: 0, samples: [{ t: 0, bytes: 0 }, { t: 900, bytes: 0 }], expected: { kind: 'ok' } },
  { name: 'no byte for longer than timeoutMs is a stall', waitingSince: 0, samples: [{ t: 0, bytes: 0 }, { t: 1001, bytes: 0 }], expected: { kind: 'stalled' } },
  { name: 'a wait of exactly timeoutMs is not yet a stall', waitingSince: 500, samples: [{ t: 0, bytes: 0 }, { t: 1500, bytes: 1000 }], expected: { kind: 'ok' } },
  {
    name: 'time spent in the sink (not waiting) is no stall, but the rate still counts',
    samples: [{ t: 0, bytes: 0 }, { t: 5000, bytes: 100 }],
    expected: { kind: 'slow', bytesPerSecond: 20, overMs: 5000 },
  },
  { name: 'after the grace period, under the minimum over the window', waitingSince: 1900, samples: [{ t: 0, bytes: 0 }, { t: 2000, bytes: 100 }], expected: { kind: 'slow', bytesPerSecond: 50, overMs: 2000 } },
  { name: 'exactly the minimum is enough', waitingSince: 1900, samples: [{ t: 0, bytes: 0 }, { t: 2000, bytes: 200 }], expected: { kind: 'ok' } },
  { name: 'a slow start is forgiven inside the grace period', waitingSince: 900, samples: [{ t: 0, bytes: 0 }, { t: 999, bytes: 1 }], expected: { kind: 'ok' } },
  {
    name: 'the rate is over the window, not since the start: a fast start does not cover a trickle',
    waitingSince: 9900,
    samples: [{ t: 7000, bytes: 1_000_000 }, { t: 9000, bytes: 1_000_050 }, { t: 10_000, bytes: 1_000_060 }],
    expected: { kind: 'slow', bytesPerSecond: 20, overMs: 3000 },
  },
];

for (const row of watchRows) {
  watchdog(row.name, () => {
    assert.equal(judgeTransfer(LIMITS, { started: 0, waitingSince: row.waitingSince, samples: row.samples }), row.expected);
  });
}

const slideRows: { name: string; samples: number[]; latest: number; windowMs: number; kept: number[] }[] = [
  { name: 'drops samples before the window, keeping one at its start', samples: [0, 1000, 2000, 3000], latest: 4000, windowMs: 2000, kept: [2000, 3000, 4000] },
  { name: 'keeps the one sample before the window when none is at its start', samples: [0, 1500], latest: 2500, windowMs: 2000, kept: [0, 1500, 2500] },
  { name: 'always keeps two samples to measure between', samples: [0], latest: 50_000, windowMs: 2000, kept: [0, 50_000] },
  { name: 'a long gap leaves the last old sample and the new one', samples: [0, 100, 200], latest: 9000, windowMs: 1000, kept: [200, 9000] },
];

for (const row of slideRows) {
  watchdog(`slideWindow: ${row.name}`, () => {
    const out = slideWindow(row.samples.map((t) => ({ t, bytes: t })), { t: row.latest, bytes: row.latest }, row.windowMs);
    assert.equal(out.map((s) => s.t), row.kept);
  });
}

watchdog('tickMs: a quarter of the window or timeout, between 20 and 250 ms', () => {
  const tick = (windowMs: number, timeoutMs: number) => tickMs({ ...LIMITS, windowMs, timeoutMs });
  assert.equal([tick(10_000, 15_000), tick(400, 600), tick(1000, 300), tick(40, 1000)], [250, 100, 75, 20]);
});

watchdog.run();

// ---------------------------------------------------------------------------------------------

const etags = suite('ETag cache: which validators are kept, which entries are trusted');

const LM = Date.parse('Sat, 05 Dec 2026 08:00:00 GMT');
const httpDate = (ms: number) => new Date(ms).toUTCString();

const etagRows: { name: string; headers: IncomingHttpHeaders; now?: number; kept: boolean }[] = [
  { name: 'no ETag, nothing to keep', headers: { 'last-modified': httpDate(LM) }, kept: false },
  { name: 'an ETag without Last-Modified', headers: { etag: '"a"' }, kept: true },
  { name: 'minted in the second the file changed', headers: { etag: '"a"', 'last-modified': httpDate(LM), date: httpDate(LM + 1000) }, kept: false },
  { name: 'minted 2 s after the change', headers: { etag: '"a"', 'last-modified': httpDate(LM), date: httpDate(LM + 2000) }, kept: true },
  { name: 'no Date header: the local clock decides (fresh)', headers: { etag: '"a"', 'last-modified': httpDate(LM) }, now: LM + 500, kept: false },
  { name: 'no Date header: the local clock decides (old)', headers: { etag: '"a"', 'last-modified': httpDate(LM) }, now: LM + 60_000, kept: true },
  { name: 'a Last-Modified that is not a date', headers: { etag: '"a"', 'last-modified': 'yesterday-ish' }, kept: true },
];

for (const row of etagRows) {
  etags(`keepableEtag: ${row.name}`, () => {
    assert.is(keepableEtag(row.headers, row.now ?? LM + 3_600_000), row.kept ? row.headers.etag : undefined);
  });
}

const PATH = 'channels/stable.json';
const ENTRY = { etag: '"abc"', body: Buffer.from('{"sequence":7}\n') };
const good = () => encodeEntry(PATH, ENTRY);
const withHead = (head: unknown) => Buffer.concat([Buffer.from(`${JSON.stringify(head)}\n`), ENTRY.body]);
const goodHead = () => JSON.parse(good().subarray(0, good().indexOf(0x0a)).toString('utf8')) as Record<string, unknown>;

const damaged: { name: string; raw: () => Buffer; path?: string }[] = [
  { name: 'a flipped body byte', raw: () => { const b = good(); b[b.length - 1]! ^= 0xff; return b; } },
  { name: 'a truncated body', raw: () => good().subarray(0, good().length - 1) },
  { name: 'an entry for another path', raw: good, path: 'channels/beta.json' },
  { name: 'no newline at all', raw: () => Buffer.from(JSON.stringify(goodHead())) },
  { name: 'a header that is not JSON', raw: () => Buffer.concat([Buffer.from('{"v":1,\n'), ENTRY.body]) },
  { name: 'a header that is null', raw: () => withHead(null) },
  { name: 'another format version', raw: () => withHead({ ...goodHead(), v: 2 }) },
  { name: 'an ETag that is not a string', raw: () => withHead({ ...goodHead(), etag: 7 }) },
  { name: 'no hash', raw: () => withHead({ ...goodHead(), sha256: undefined }) },
];

etags('an entry round-trips, an empty body too', () => {
  assert.equal(decodeEntry(good(), PATH), ENTRY);
  const empty = { etag: 'W/"0"', body: Buffer.alloc(0) };
  assert.equal(decodeEntry(encodeEntry(PATH, empty), PATH), empty);
});

for (const row of damaged) {
  etags(`decodeEntry refuses ${row.name}`, () => {
    assert.is(decodeEntry(row.raw(), row.path ?? PATH), undefined);
  });
}

etags('an absence note round-trips, is never taken for an entry, and refuses another path or a body', () => {
  const note = encodeAbsent(PATH);
  assert.ok(decodeAbsent(note, PATH));
  assert.is(decodeEntry(note, PATH), undefined);
  assert.not.ok(decodeAbsent(note, 'channels/beta.json'));
  assert.not.ok(decodeAbsent(Buffer.concat([note, Buffer.from('x')]), PATH));
  assert.not.ok(decodeAbsent(good(), PATH));
});

etags('a HEAD probe of a path absent last time: only 404 and 410 keep it absent, anything else asks with a GET', () => {
  for (const status of [404, 410]) assert.is(probeStep(status), 'missing', String(status));
  for (const status of [200, 204, 301, 304, 403, 405, 500, 501, 503, 0]) assert.is(probeStep(status), 'get', String(status));
});

etags('request headers: a HEAD probe carries none, a conditional GET no User-Agent, a download all', () => {
  assert.equal(requestHeaders('HEAD', 'ferry/0.1', {}), {});
  assert.equal(requestHeaders('GET', 'ferry/0.1', { 'If-None-Match': '"a"' }), { 'Accept-Encoding': 'identity', 'If-None-Match': '"a"' });
  assert.equal(requestHeaders('GET', 'ferry/0.1', { Range: 'bytes=5-' }), { 'User-Agent': 'ferry/0.1', 'Accept-Encoding': 'identity', Range: 'bytes=5-' });
  assert.equal(requestHeaders('GET', 'ferry/0.1', {}), { 'User-Agent': 'ferry/0.1', 'Accept-Encoding': 'identity' });
});

etags('manifest entries: only the newest are kept; roots and channel pointers are never evicted', () => {
  const m = (i: number) => `manifest-${String(i).repeat(64).slice(0, 64)}`;
  const entries = [
    { name: m(1), mtimeMs: 100 }, { name: m(2), mtimeMs: 300 }, { name: m(3), mtimeMs: 200 },
    { name: 'a'.repeat(64), mtimeMs: 1 }, { name: `${m(4)}.x1.tmp`, mtimeMs: 0 },
  ];
  assert.equal(manifestEntriesToEvict(entries, 2), [m(1)]);
  assert.equal(manifestEntriesToEvict(entries, 3), []);
  assert.equal(manifestEntriesToEvict(entries, 0), [m(2), m(3), m(1)]);
});

etags('a cache that saw many releases keeps only the newest manifests, and every channel pointer', async () => {
  const tmp = await tempDir('ferry-etag-cache-');
  try {
    const dir = join(tmp.path, 'http');
    const cache = openEtagCache(dir);
    for (const channel of ['stable', 'beta']) await cache.save(`channels/${channel}.json`, { etag: '"c"', body: Buffer.from(channel) });
    const versions = Array.from({ length: MANIFEST_ENTRIES_KEPT + 4 }, (_, i) => `1.${i}.0`);
    for (const v of versions) {
      await cache.save(`releases/${v}/manifest.json`, { etag: `"${v}"`, body: Buffer.from(v) });
      await new Promise((r) => setTimeout(r, 5)); // distinct modification times
    }
    const names = await readdir(dir);
    assert.is(names.filter((n) => n.startsWith('manifest-')).length, MANIFEST_ENTRIES_KEPT);
    for (const v of versions.slice(-MANIFEST_ENTRIES_KEPT)) assert.ok(await cache.load(`releases/${v}/manifest.json`), `${v} kept`);
    for (const v of versions.slice(0, 4)) assert.is(await cache.load(`releases/${v}/manifest.json`), undefined, `${v} evicted`);
    for (const channel of ['stable', 'beta']) assert.ok(await cache.load(`channels/${channel}.json`), `${channel} kept`);
  } finally {
    await tmp.cleanup();
  }
});

etags.run();

// ---------------------------------------------------------------------------------------------

const ranges = suite('Range resume: parsing Content-Range and continuing a .part file');

const rangeRows: { raw: string | undefined; expected: ContentRange | undefined }[] = [
  { raw: 'bytes 0-99/100', expected: { start: 0, end: 99, total: 100 } },
  { raw: 'bytes 100-299999/300000', expected: { start: 100, end: 299_999, total: 300_000 } },
  { raw: 'bytes */100', expected: { start: null, end: null, total: 100 } },
  { raw: 'bytes 5-9/*', expected: { start: 5, end: 9, total: null } },
  { raw: '  bytes 1-2/3 ', expected: { start: 1, end: 2, total: 3 } },
  { raw: undefined, expected: undefined },
  { raw: '', expected: undefined },
  { raw: 'bytes 5-/100', expected: undefined },
  { raw: 'bytes=0-1/2', expected: undefined },
  { raw: 'items 0-1/2', expected: undefined },
  { raw: 'bytes -1-2/3', expected: undefined },
];

for (const row of rangeRows) {
  ranges(`parseContentRange(${JSON.stringify(row.raw)})`, () => {
    assert.equal(parseContentRange(row.raw), row.expected);
  });
}

const resumeRows: { name: string; have: number; status: number; range?: string; expected: ResumeStep }[] = [
  { name: 'nothing on disk: any answer is taken whole', have: 0, status: 206, range: 'bytes 0-9/10', expected: { kind: 'as-whole' } },
  { name: '206 from exactly the end of the .part file', have: 100, status: 206, range: 'bytes 100-199/200', expected: { kind: 'append', start: 100 } },
  { name: '206 from byte 0 (a broken cache): start over', have: 100, status: 206, range: 'bytes 0-199/200', expected: { kind: 'restart' } },
  { name: '206 past the end of the .part file: start over', have: 100, status: 206, range: 'bytes 150-199/200', expected: { kind: 'restart' } },
  { name: '206 with a malformed Content-Range', have: 100, status: 206, range: 'bytes 100-/200', expected: { kind: 'restart' } },
  { name: '206 without a Content-Range', have: 100, status: 206, expected: { kind: 'restart' } },
  { name: '416 and the file is exactly what we have: complete', have: 200, status: 416, range: 'bytes */200', expected: { kind: 'complete' } },
  { name: '416 and the file is longer (it changed): start over', have: 100, status: 416, range: 'bytes */200', expected: { kind: 'restart' } },
  { name: '416 without a Content-Range', have: 100, status: 416, expected: { kind: 'restart' } },
  { name: '200: the origin ignored Range, rewrite from byte 0', have: 100, status: 200, expected: { kind: 'as-whole' } },
  { name: '404 is an answer, not a resume', have: 100, status: 404, expected: { kind: 'as-whole' } },
  { name: '503 is an answer, not a resume', have: 100, status: 503, expected: { kind: 'as-whole' } },
];

for (const row of resumeRows) {
  ranges(`resumeStep: ${row.name}`, () => {
    assert.equal(resumeStep(row.have, row.status, row.range), row.expected);
  });
}

const capRows: { name: string; start: number; length?: number; total?: number | null; maxBytes: number; expected: number | undefined }[] = [
  { name: 'no size declared (chunked): checked while reading', start: 0, maxBytes: 10, expected: undefined },
  { name: 'a Content-Length at the cap', start: 0, length: 10, maxBytes: 10, expected: undefined },
  { name: 'a Content-Length one over the cap', start: 0, length: 11, maxBytes: 10, expected: 11 },
  { name: 'a resume whose rest fits', start: 5, length: 5, total: 10, maxBytes: 10, expected: undefined },
  { name: 'a resume whose rest does not fit', start: 5, length: 6, total: 11, maxBytes: 10, expected: 11 },
  { name: 'a Content-Range total over the cap, the length not', start: 5, length: 5, total: 20, maxBytes: 10, expected: 20 },
  { name: 'a total of "*"', start: 5, length: 5, total: null, maxBytes: 10, expected: undefined },
  { name: 'only a total, over the cap', start: 5, total: 11, maxBytes: 10, expected: 11 },
];

for (const row of capRows) {
  ranges(`declaredSizeOverCap: ${row.name}`, () => {
    assert.is(declaredSizeOverCap(row.start, row.length, row.total, row.maxBytes), row.expected);
  });
}

ranges.run();

// ---------------------------------------------------------------------------------------------

const reads = suite('readStep: what a status means for a read');

const readRows: [status: number, conditional: boolean, expected: ReadStep][] = [
  [200, false, 'body'],
  [200, true, 'body'],
  [304, true, 'cached'],
  [304, false, 'unasked-304'],
  [404, true, 'missing'],
  [410, false, 'missing'],
  [206, false, 'failed'],
  [403, false, 'failed'],
  [503, true, 'failed'],
];

for (const [status, conditional, expected] of readRows) {
  reads(`${status} to a${conditional ? ' conditional' : 'n unconditional'} request: ${expected}`, () => {
    assert.is(readStep(status, conditional), expected);
  });
}

reads.run();

// ---------------------------------------------------------------------------------------------

const retries = suite('retries: only what asking again can fix, with doubling jittered backoff');

retries('statusIsRetryable: 5xx, 408 and 429 only', () => {
  const statuses = [200, 206, 304, 400, 403, 404, 408, 410, 416, 429, 500, 502, 503, 599];
  assert.equal(statuses.filter(statusIsRetryable), [408, 429, 500, 502, 503, 599]);
  for (const s of statuses) {
    const f = statusFailure('reading x', s);
    assert.is(f.retry, statusIsRetryable(s), `${s}`);
    assert.is(f.error.code, 'ERR_IO');
    assert.is(f.error.message, `reading x: HTTP ${s}`);
  }
});

retries('backoffMs: base·2ⁿ, jittered into its upper half', () => {
  const rows: [n: number, base: number, random: number, expected: number][] = [
    [0, 250, 0, 125],
    [0, 250, 0.5, 188],
    [0, 250, 0.999, 250],
    [1, 250, 0, 250],
    [2, 250, 0.5, 750],
    [3, 100, 1 - 2 ** -20, 800],
  ];
  for (const [n, base, random, expected] of rows) assert.is(backoffMs(n, base, random), expected, `n=${n} random=${random}`);
});

/** Runs withRetries over scripted attempt outcomes; returns how many ran, the sleeps, and the result. */
function runRetries(outcomes: (() => unknown)[], retries = 3) {
  const sleeps: number[] = [];
  let calls = 0;
  const result = withRetries({ retries, retryBaseMs: 100, sleep: async (ms) => { sleeps.push(ms); }, random: () => 0 }, 'http://origin.test', async () => {
    const outcome = outcomes[Math.min(calls++, outcomes.length - 1)]!;
    return outcome();
  });
  return { result, sleeps, calls: () => calls };
}

const fail = (f: unknown) => () => { throw f; };

retries('transient failures are retried with doubling delays, then the call succeeds', async () => {
  const run = runRetries([fail(transientIo('reset')), fail(transientIo('reset')), () => 'ok']);
  assert.is(await run.result, 'ok');
  assert.is(run.calls(), 3);
  assert.equal(run.sleeps, [50, 100]);
});

retries('a transient failure that lasts: retries+1 attempts, then its FerryError (not the AttemptFailure)', async () => {
  const run = runRetries([fail(transientIo('HTTP 503'))], 2);
  const err = await assertCodeAsync(() => run.result, 'ERR_IO');
  assert.not.instance(err, AttemptFailure);
  assert.is(err.message, 'HTTP 503');
  assert.is(run.calls(), 3);
});

retries('a final failure is not retried, yet stays retryable for the core (another source, later)', async () => {
  const run = runRetries([fail(finalFailure('ERR_IO', 'stalled')), () => 'not reached']);
  const err = await assertCodeAsync(() => run.result, 'ERR_IO');
  assert.ok(err.retryable, 'FerryError.retryable: the core may move on to the next source');
  assert.is(run.calls(), 1);
  assert.equal(run.sleeps, []);
});

retries('ERR_TOO_LARGE and disk failures are final', async () => {
  const tooLarge = runRetries([fail(finalFailure('ERR_TOO_LARGE', 'over the cap')), () => 'x']);
  await assertCodeAsync(() => tooLarge.result, 'ERR_TOO_LARGE');
  assert.is(tooLarge.calls(), 1);
  const full = Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });
  const disk = runRetries([fail(finalFsFailure(full, 'writing x.part')), () => 'x']);
  await assertCodeAsync(() => disk.result, 'ERR_NO_SPACE');
  assert.is(disk.calls(), 1);
});

retries('an error no attempt classified is not retried: a FerryError as is, anything else as ERR_IO', async () => {
  const usage = new FerryError('ERR_USAGE', 'bad path');
  const ferry = runRetries([fail(usage), () => 'x']);
  assert.is(await ferry.result.catch((e: unknown) => e), usage);
  assert.is(ferry.calls(), 1);
  const raw = runRetries([fail(new TypeError('boom')), () => 'x']);
  const err = await assertCodeAsync(() => raw.result, 'ERR_IO');
  assert.match(err.message, /using http:\/\/origin\.test/);
  assert.is(raw.calls(), 1);
});

retries.run();
