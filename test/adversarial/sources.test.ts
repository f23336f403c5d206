// Sources that cannot be read, and sources that answer with something that is no document
// (issue 13 items 7 and 12), on real device homes opened as the CLI opens them (openDevice over
// ferry.json), a real signed repository, and real HTTP servers on 127.0.0.1.
//   item 7   a source spec of no known form, or a folder that is not there, is refused at init
//            (ERR_USAGE; a usb: mount may be absent), and a hand-edited ferry.json with a spec of
//            no known form is refused when the device opens. When no source answers (folder gone, connection
//            refused), update and check fail with ERR_NO_SOURCE (exit 11, retryable) naming each
//            source, and the agent logs that error and waits at least its interval; sources that
//            answered with nothing newer stay "up to date".
//   item 12  a captive portal answering 200 text/html for every path: its bytes are named as no
//            root document (ERR_JSON, with the source), not ERR_ROOT_CHAIN; a second good source
//            still updates the device. The same for a portal that only answers the channel pointer.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { initDevice } from '../../core/device/init.ts';
import { homeLayout } from '../../core/device/layout.ts';
import { readDeviceConfig } from '../../core/device/config.ts';
import type { UpdatePolicy } from '../../core/spec.ts';
import { withDevice } from '../../plugins/open-device.ts';
import { Agent, type SleepFn } from '../../plugins/agent/agent.ts';
import { assertCodeAsync } from '../helpers/assert-code.ts';
import { ferry } from '../helpers/cli.ts';
import { freePort } from '../helpers/net.ts';
import { makeRepo, sampleApp, tempDir, type TempDir, type TestRepo } from '../helpers/repo.ts';

let tmp: TempDir;
let repo: TestRepo;
let homes = 0;

/** A new device home trusting the repository, with these source specs (written by initDevice). */
async function home(sources: string[], policy: Partial<UpdatePolicy> = {}): Promise<string> {
  const h = join(tmp.path, `home-${homes++}`);
  await initDevice({ home: h, trustBytes: await repo.trust(), sources, platform: 'linux', arch: 'x64', policy });
  return h;
}

/** A port nothing listens on (taken, then released). */
const closedPort = () => freePort();

/** An HTTP server on 127.0.0.1 that answers `answer(path)`; close() ends it and its connections. */
async function serve(answer: (path: string) => { status: number; type: string; body: string }): Promise<{ url: string; asked: string[]; close(): Promise<void> }> {
  const asked: string[] = [];
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').replace(/^\/+/, '');
    asked.push(path);
    const a = answer(path);
    res.writeHead(a.status, { 'content-type': a.type, 'content-length': Buffer.byteLength(a.body) });
    res.end(a.body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    asked,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

const PORTAL_PAGE = '<!DOCTYPE html>\n<html><head><title>Welcome to Airport Wi-Fi</title></head><body><form>Accept the terms</form></body></html>\n';
const portalPage = () => ({ status: 200, type: 'text/html; charset=utf-8', body: PORTAL_PAGE });
const notFound = () => ({ status: 404, type: 'text/plain', body: 'not found\n' });

const fixture = suite('sources fixture');
fixture('a signed repository with 1.0.0', async () => {
  tmp = await tempDir('ferry-sources-');
  repo = await makeRepo({ dir: join(tmp.path, 'publisher') });
  await repo.release('1.0.0', sampleApp('1.0.0'));
});
fixture.run();

// ---------------------------------------------------------------------------------------------

const item7 = suite('issue 13 item 7: sources nobody can read');

item7('issue 13 item 7: ferry init refuses an unknown scheme and a missing folder (ERR_USAGE, exit 2), accepts an absent usb: mount', async () => {
  const init = (name: string, source: string) => ferry('init', join(tmp.path, name), '--trust', repo.trustPath, '--source', source, '--platform', 'linux', '--arch', 'x64');
  for (const [name, source, why] of [
    ['cli-ftp', 'ftp://x', /unknown scheme "ftp:"/],
    ['cli-missing', join(tmp.path, 'no', 'such', 'folder'), /no folder or \.ferry bundle there/],
  ] as const) {
    const r = init(name, source);
    assert.is(r.status, 2, `init --source ${source} exits 2 (stdout: ${r.stdout.trim()}; stderr: ${r.stderr.trim()})`);
    assert.match(r.stderr, /ferry: ERR_USAGE: /, `init --source ${source} says ERR_USAGE`);
    assert.match(r.stderr, why, `init --source ${source} says why`);
  }
  const usb = init('cli-usb', `usb:${join(tmp.path, 'no-stick-yet')}`);
  assert.is(usb.status, 0, `a usb: mount may be absent at init (stderr: ${usb.stderr.trim()})`);
  // The library's initDevice judges the form too (whether a folder is there is the CLI's check).
  const err = await assertCodeAsync(() => home(['http:/127.0.0.1:1']), 'ERR_USAGE');
  assert.match(err.message, /not an http:\/\/ or https:\/\/ URL/);
});

item7('issue 13 item 7: a ferry.json edited by hand with an unknown scheme is refused when the device opens (ERR_USAGE naming ferry.json)', async () => {
  const h = await home([repo.repo]);
  const layout = homeLayout(h);
  const config = JSON.parse(JSON.stringify(await readDeviceConfig(layout.config))) as Record<string, unknown>;
  await writeFile(layout.config, JSON.stringify({ ...config, sources: [repo.repo, 'ftp://mirror.example/repo'] }, null, 2));
  const err = await assertCodeAsync(() => withDevice(h, (u) => u.checkUpdate()), 'ERR_USAGE');
  assert.match(err.message, /ferry\.json sources: "ftp:\/\/mirror\.example\/repo" has an unknown scheme "ftp:"/);
});

item7('issue 13 item 7: no source answered (folder gone, connection refused): ERR_NO_SOURCE, retryable, naming each source; check says the same', async () => {
  const stick = join(tmp.path, 'stick-repo');
  await mkdir(stick);
  const port = await closedPort();
  const h = await home([stick, `http://127.0.0.1:${port}`]);
  await rename(stick, `${stick}-pulled`); // the disk went away after init
  const err = await assertCodeAsync(() => withDevice(h, (u) => u.apply({ trigger: 'manual' })), 'ERR_NO_SOURCE');
  assert.ok(err.retryable, 'retryable: the folder or the origin may be back later');
  assert.match(err.message, /^no source answered: /);
  assert.ok(err.message.includes(`dir:${stick}: no folder there`), `names the folder and why: ${err.message}`);
  assert.ok(err.message.includes(`http://127.0.0.1:${port}`), `names the origin: ${err.message}`);
  assert.is(err.message.split(`dir:${stick}`).length, 2, `names the folder once: ${err.message}`);
  await assertCodeAsync(() => withDevice(h, (u) => u.checkUpdate()), 'ERR_NO_SOURCE');
});

item7('issue 13 item 7: a device whose only source is the LAN, with no peer answering: ERR_NO_SOURCE, not up to date', async () => {
  const port = await closedPort();
  const h = await home([`lan:127.0.0.1:${port}`]);
  const err = await assertCodeAsync(() => withDevice(h, (u) => u.apply({ trigger: 'manual' })), 'ERR_NO_SOURCE');
  assert.match(err.message, /^no source answered: /);
});

item7('issue 13 item 7: sources that answered with nothing newer stay up to date, though another source is gone', async () => {
  const empty = join(tmp.path, 'empty-repo');
  await mkdir(empty);
  const gone = join(tmp.path, 'gone-repo');
  const installed = await home([repo.repo, gone]);
  const first = await withDevice(installed, (u) => u.apply({ trigger: 'manual' }));
  assert.is(first.status, 'committed', 'installs 1.0.0 from the repository while the other folder is missing');
  const again = await withDevice(installed, (u) => u.apply({ trigger: 'manual' }));
  assert.equal(again, { status: 'up-to-date', current: '1.0.0' });
  // An empty folder is there and has nothing: an answer ("nothing published"), not silence.
  const nothing = await withDevice(await home([empty]), (u) => u.apply({ trigger: 'manual' }));
  assert.equal(nothing, { status: 'up-to-date', current: null });
});

item7('issue 13 item 7: `ferry update` with its only folder gone exits 11 with one line naming it', async () => {
  const stick = join(tmp.path, 'cli-stick');
  await mkdir(stick);
  const h = await home([stick]);
  await rename(stick, `${stick}-pulled`);
  // `check` takes the same path, in-process in the test before: one child process is enough.
  const r = ferry('update', '--home', h);
  assert.is(r.status, 11, `update exits 11 (stdout: ${r.stdout.trim()}; stderr: ${r.stderr.trim()})`);
  assert.is(r.stdout.includes('up to date'), false, 'update does not say up to date');
  assert.is(r.stderr.trim(), `ferry: ERR_NO_SOURCE: no source answered: dir:${stick}: no folder there (a disk not mounted? a mistyped path?)`);
});

item7('issue 13 item 7: the agent logs ERR_NO_SOURCE, not up-to-date, and sleeps at least its check interval', async () => {
  const stick = join(tmp.path, 'agent-stick');
  await mkdir(stick);
  const h = await home([stick], { checkInterval: 600 });
  await rename(stick, `${stick}-pulled`);
  const events: { event: string; fields: Record<string, unknown> }[] = [];
  const stop = new AbortController();
  const slept: number[] = [];
  // The schedule's sleeps are recorded, not slept: the second one ends the run.
  const sleep: SleepFn = async (ms) => {
    if (ms > 1000) slept.push(ms);
    if (slept.length >= 2) stop.abort('test');
  };
  const agent = new Agent({ home: h, log: (event, fields) => events.push({ event, fields }), sleep, random: () => 0.5 });
  await Promise.race([agent.run(stop.signal), new Promise((_, reject) => setTimeout(() => reject(new Error('the agent did not stop within 30 s')), 30_000).unref())]);
  const names = events.map((e) => e.event);
  assert.not.ok(names.includes('up-to-date'), `never logs up-to-date (events: ${names.join(', ')})`);
  const errors = events.filter((e) => e.event === 'error');
  assert.ok(errors.length >= 2, `logs each failed attempt (events: ${names.join(', ')})`);
  for (const e of errors) assert.is(e.fields.code, 'ERR_NO_SOURCE');
  assert.is(slept.length, 2, `two scheduled sleeps (slept: ${slept.join(', ')})`);
  for (const ms of slept) assert.ok(ms >= 600_000, `waits at least the 600 s interval, not ${ms} ms`);
  assert.ok(slept[1]! > slept[0]!, `backs off: ${slept.join(' then ')} ms`);
});

item7.run();

// ---------------------------------------------------------------------------------------------

const item12 = suite('issue 13 item 12: a captive portal');
const servers: { close(): Promise<void> }[] = [];

item12('issue 13 item 12: a portal answering HTML for root/2.json is named as no root document (ERR_JSON), not ERR_ROOT_CHAIN', async () => {
  const portal = await serve(portalPage);
  servers.push(portal);
  const h = await home([portal.url]);
  const err = await assertCodeAsync(() => withDevice(h, (u) => u.apply({ trigger: 'manual' })), 'ERR_JSON');
  assert.ok(err.message.startsWith(`root/2.json from ${portal.url} is not a root document (an HTML page: a captive portal or a login page?)`), err.message);
  assert.ok(portal.asked.includes('root/2.json'), `the device asked the portal for root/2.json (asked: ${portal.asked.join(', ')})`);
});

item12('issue 13 item 12: with the portal first and a good source second, the device still updates', async () => {
  const portal = await serve(portalPage);
  servers.push(portal);
  const h = await home([portal.url, repo.repo]);
  const result = await withDevice(h, (u) => u.apply({ trigger: 'manual' }));
  assert.is(result.status, 'committed');
  if (result.status === 'committed') assert.is(result.record.to, '1.0.0');
  assert.ok(portal.asked.length > 0, 'the portal was asked');
});

item12('issue 13 item 12: a portal answering HTML only for the channel pointer: named as no channel pointer, a good source still wins', async () => {
  const portal = await serve((path) => (path.startsWith('channels/') ? portalPage() : notFound()));
  servers.push(portal);
  const alone = await home([portal.url]);
  const err = await assertCodeAsync(() => withDevice(alone, (u) => u.checkUpdate()), 'ERR_JSON');
  assert.ok(err.message.startsWith(`channels/stable.json from ${portal.url} is not a channel pointer document (an HTML page`), err.message);
  const both = await home([portal.url, repo.repo]);
  const info = await withDevice(both, (u) => u.checkUpdate());
  assert.is(info.latestVersion, '1.0.0');
  assert.ok(info.updateAvailable);
});

item12.after(async () => {
  for (const s of servers) await s.close();
  await tmp.cleanup();
});
item12.run();
