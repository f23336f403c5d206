// Review of the image code (session 22): OCI JSON that ferry and Go readers (umoci, podman) would
// read differently. Go's encoding/json matches keys case-insensitively, last match winning; with
// {"manifests":[A],"Manifests":[B]} the device verified and scanned A while `umoci unpack` (tried by
// hand: it unpacked B's rootfs) ran B. Each test failed before its fix.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseImageConfig, parseImageManifest, parseIndex } from '../../core/image/oci-layout.ts';
import { assertCode } from '../helpers/assert-code.ts';

const desc = (mediaType: string, c: string) => ({ mediaType, digest: `sha256:${c.repeat(64)}`, size: 10 });
const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const CONFIG = 'application/vnd.oci.image.config.v1+json';
const LAYER = 'application/vnd.oci.image.layer.v1.tar';
const bytes = (text: string) => Buffer.from(text);

test('review: index, manifest and config objects with keys equal but for case are ERR_SCHEMA (Go readers would take the other one)', () => {
  const index = JSON.stringify({ schemaVersion: 2, manifests: [desc(MANIFEST, 'a')] }).replace(/}$/, `,"Manifests":${JSON.stringify([desc(MANIFEST, 'b')])}}`);
  assert.match(assertCode(() => parseIndex(bytes(index)), 'ERR_SCHEMA').message, /"manifests" and "Manifests"/);

  const manifest = JSON.stringify({ schemaVersion: 2, config: desc(CONFIG, 'c'), layers: [desc(LAYER, 'd')] }).replace(/}$/, `,"LAYERS":${JSON.stringify([desc(LAYER, 'e')])}}`);
  assertCode(() => parseImageManifest(bytes(manifest)), 'ERR_SCHEMA');
  // U+017F (long s) folds to "s" in Go: "layerſ" is "layers" to umoci.
  const longS = JSON.stringify({ schemaVersion: 2, config: desc(CONFIG, 'c'), layers: [desc(LAYER, 'd')], 'layer\u017f': [desc(LAYER, 'e')] });
  assertCode(() => parseImageManifest(bytes(longS)), 'ERR_SCHEMA');

  const config = JSON.stringify({ rootfs: { type: 'layers', diff_ids: [] }, config: { Labels: {}, labels: { 'io.ferry.privileged': 'true' } } });
  assertCode(() => parseImageConfig(bytes(config)), 'ERR_SCHEMA');

  // What real images hold still parses (distinct keys, labels as given).
  const fine = JSON.stringify({ rootfs: { type: 'layers', diff_ids: [] }, config: { Labels: { 'a.b': '1', 'A.c': '2' }, Env: [] } });
  assert.equal(parseImageConfig(bytes(fine)).labels, { 'a.b': '1', 'A.c': '2' });
  assert.is(parseIndex(bytes(JSON.stringify({ schemaVersion: 2, manifests: [desc(MANIFEST, 'a')] }))).length, 1);
});

test.run();
