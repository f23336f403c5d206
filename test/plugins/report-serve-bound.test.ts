// `ferry serve --reports` keeps at most N devices (SECURITY.md row 31): anyone who reaches the
// endpoint can make device keys, so a flood of new "devices" must not fill the origin's disk.
// Through the real server on loopback, with a bound of 3.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { tempDir, type TempDir } from '../helpers/repo.ts';
import { newIdentity, reportOf } from '../helpers/fleet-report-maker.ts';
import { signReport } from '../../core/fleet/report.ts';
import { startStaticServer } from '../../plugins/http/server.ts';
import { putReport } from '../../plugins/fleet/http-report.ts';
import { isFerryError } from '../../core/errors.ts';

const test = suite('issue 16 item 3: ferry serve --reports is bounded');
let scratch: TempDir;
test.before(async () => { scratch = await tempDir('ferry-serve-bound-'); });
test.after(async () => { await scratch.cleanup(); });

test('a flood of new devices keeps the newest 3; a known device is still taken; an older newcomer is refused', async () => {
  const dir = join(scratch.path, 'inbox');
  const server = await startStaticServer({ root: scratch.path, host: '127.0.0.1', port: 0, reports: { dir, app: 'sample-app', maxDevices: 3 } });
  try {
    const endpoint = new URL('reports', server.url).href;
    const base = Date.parse('2026-12-01T00:00:00Z');
    const devices = Array.from({ length: 6 }, () => newIdentity());
    const at = (i: number) => new Date(base + i * 60_000).toISOString();
    for (const [i, d] of devices.entries()) await putReport(endpoint, d.id, signReport(reportOf(d, { time: at(i) }), d));
    const kept = async () => (await readdir(dir)).filter((f) => f.endsWith('.json')).sort();
    assert.equal(await kept(), devices.slice(3).map((d) => `${d.id}.json`).sort(), 'the three heard from last');
    // A kept device's newer report replaces its own (no room needed).
    await putReport(endpoint, devices[3]!.id, signReport(reportOf(devices[3]!, { time: at(10), sequence: 2 }), devices[3]!));
    assert.is((await kept()).length, 3);
    // A newcomer older than everything kept is refused, the inbox unchanged.
    const late = newIdentity();
    const refused = await putReport(endpoint, late.id, signReport(reportOf(late, { time: at(-5) }), late)).then(() => null, (e: unknown) => e);
    assert.ok(isFerryError(refused) && refused.code === 'ERR_NO_SPACE', String(refused));
    assert.is((await kept()).includes(`${late.id}.json`), false);
  } finally {
    await server.close();
  }
});

test.run();
