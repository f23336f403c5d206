// Where everything lives in a device home (ARCHITECTURE.md "Device home layout"):
//   releases/<version>/   immutable trees, one per installed version
//   current -> releases/<version>   the only thing the app is started from
//   staging/              where the next release is built
//   cache/                downloaded artifacts (.part files resume)
//   manifests/<v>.json    the signed manifest of each installed version (its file list, or
//   manifests/<v>.files-<target>.json  the separate list it pins, kept beside it)
//   trust/root.json       the newest verified root; trust/marks.json the anti-rollback marks
//   trust/roots/<N>.json  every root of the chain this device verified, as signed (for LAN peers)
//   trust/channels/<c>.json  the newest channel pointer it accepted, as signed (for LAN peers)
//   state/                LevelDB: journal, history, restore points, approvals
//   device/device.key     this device's ed25519 key pair (mode 0600; the secret never leaves the home)
//   device/report.json    the newest signed report this device wrote (core/fleet/device-report.ts)
//   reports/              reports of other devices this one relays (LAN peers), newest per device
//   containers/<version>/ the runtime bundle of an image release (plugins/container/bundle.ts);
//                         containers/<id>.log a container's output, containers/podman/ podman's storage
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
  /** trust/roots/: the verified root chain a LAN peer serves (core/update/kept-metadata.ts). */
  trustRoots: string;
  /** trust/channels/: the accepted channel pointers a LAN peer serves. */
  trustChannels: string;
  state: string;
  lock: string;
  /** device/: the device key pair and its newest signed report. */
  deviceDir: string;
  /** device/device.key: {keytype, keyid, public, secret}, mode 0600. */
  deviceKey: string;
  /** device/report.json: the newest signed report (a DSSE envelope). */
  deviceReport: string;
  /** reports/: other devices' newest reports, kept to pass on (core/fleet/report-inbox.ts). */
  reportsInbox: string;
  /** containers/: runtime bundles of image releases, engine state and logs (plugins/container/). */
  containers: string;
  release(version: string): string;
  manifest(version: string): string;
  /** manifests/<v>.files-<target>.json: the separate file list the kept manifest pins (core/trust/file-list.ts). */
  keptFileList(version: string, target: string): string;
  /** trust/roots/<N>.json */
  keptRoot(version: number): string;
  /** trust/channels/<channel>.json */
  keptPointer(channel: string): string;
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
    trustRoots: join(home, 'trust', 'roots'),
    trustChannels: join(home, 'trust', 'channels'),
    state: join(home, 'state'),
    lock: join(home, 'lock'),
    deviceDir: join(home, 'device'),
    deviceKey: join(home, 'device', 'device.key'),
    deviceReport: join(home, 'device', 'report.json'),
    reportsInbox: join(home, 'reports'),
    containers: join(home, 'containers'),
    release: (version) => join(home, 'releases', version),
    manifest: (version) => join(home, 'manifests', `${version}.json`),
    keptFileList: (version, target) => join(home, 'manifests', `${version}.files-${target}.json`),
    keptRoot: (version) => join(home, 'trust', 'roots', `${version}.json`),
    keptPointer: (channel) => join(home, 'trust', 'channels', `${channel}.json`),
  };
}
