// What a source spec (`--source`, an entry of ferry.json "sources") names, judged by its form
// alone: the one list of accepted forms. `ferry init` refuses any other form, and so does opening
// a device whose ferry.json was edited by hand (plugins/open-device.ts turns each form into its
// transport). Without this, `ftp://x` was taken for a folder that is not there, which offers
// nothing, and the device said "up to date" forever.

import { FerryError } from '../errors.ts';
import { printable } from '../io/printable.ts';

export type SourceSpec =
  | { kind: 'http'; url: string }
  | { kind: 'usb'; spec: string }
  | { kind: 'lan'; spec: string }
  /** A repository folder or a .ferry bundle (which one is known only by looking). */
  | { kind: 'path'; path: string };

export const SOURCE_FORMS = 'a repository folder, a .ferry bundle, http(s)://<origin>, usb:<mount>[,<mount>…], lan or lan:<host:port>,…';

/** A scheme as URLs spell it; a folder whose name holds a colon is written dir:<folder> or ./<folder>. */
const SCHEME = /^([A-Za-z][A-Za-z0-9+.-]*):/;

/** Classifies `spec`; ERR_USAGE (naming `where` it came from) for an empty spec or an unknown scheme. */
export function parseSourceSpec(spec: string, where: string): SourceSpec {
  const shown = `"${printable(spec)}"`;
  if (spec.trim() === '') throw new FerryError('ERR_USAGE', `${where}: an empty source; a source is ${SOURCE_FORMS}`);
  if (/^https?:\/\//.test(spec)) {
    if (!URL.canParse(spec)) throw new FerryError('ERR_USAGE', `${where}: ${shown} is not a URL`);
    return { kind: 'http', url: spec };
  }
  if (spec.startsWith('usb:')) {
    if (spec.length === 4) throw new FerryError('ERR_USAGE', `${where}: ${shown} names no mount (usb:<mount>)`);
    return { kind: 'usb', spec };
  }
  if (spec === 'lan' || spec.startsWith('lan:')) return { kind: 'lan', spec };
  if (spec.startsWith('dir:')) {
    if (spec.length === 4) throw new FerryError('ERR_USAGE', `${where}: ${shown} names no folder (dir:<folder>)`);
    return { kind: 'path', path: spec.slice(4) };
  }
  const scheme = SCHEME.exec(spec)?.[1];
  if (scheme !== undefined) {
    const why = /^https?$/i.test(scheme) ? 'is not an http:// or https:// URL' : `has an unknown scheme "${printable(scheme)}:"`;
    throw new FerryError('ERR_USAGE', `${where}: ${shown} ${why}; a source is ${SOURCE_FORMS} (a folder whose name holds a colon: dir:<folder>)`);
  }
  return { kind: 'path', path: spec };
}
