// Where everything lives in a device home (ARCHITECTURE.md "Device home layout"):
//   releases/<version>/   immutable trees, one per installed version
//   current -> releases/<version>   the only thing the app is started from
//   staging/              where the next release is built
//   cache/                downloaded artifacts (.part files resume)
//   manifests/<v>.json    the signed manifest of each installed version (its file list)
//   trust/root.json       the newest verified root; trust/marks.json the anti-rollback marks
//   state/                LevelDB: journal, history, restore points, approvals
//   ferry.json            device config
//   lock                  the pid of the ferry process working on this home

import { join } from 'node:path';

export interface HomeLayout {
  home: string;
  config: string;
  releases: string;
  current: string;
  staging: string;
  cache: string;
  manifests: string;
  trustDir: string;
  trustRoot: string;
  marks: string;
  state: string;
  lock: string;
  release(version: string): string;
  manifest(version: string): string;
}

export function homeLayout(home: string): HomeLayout {
  return {
    home,
    config: join(home, 'ferry.json'),
    releases: join(home, 'releases'),
    current: join(home, 'current'),
    staging: join(home, 'staging'),
    cache: join(home, 'cache'),
    manifests: join(home, 'manifests'),
    trustDir: join(home, 'trust'),
    trustRoot: join(home, 'trust', 'root.json'),
    marks: join(home, 'trust', 'marks.json'),
    state: join(home, 'state'),
    lock: join(home, 'lock'),
    release: (version) => join(home, 'releases', version),
    manifest: (version) => join(home, 'manifests', `${version}.json`),
  };
}
