// Tells the agent when something worth checking lands on a mount point: a `.ferry` bundle, or a
// repository folder (root.json + channels/), in the mount or one folder down — the same places
// plugins/usb/source.ts looks. It only says "look again"; the agent then runs check/apply, and
// the source does the copying and the core the verifying.
//
// Watching is not recursive (node-watch, one watch per folder, at most MAX_SUBDIRS + 1 per mount).
// A stick being copied onto produces a burst of events, so events are debounced (quiet for
// `debounceMs`, but fired at most `maxWaitMs` after the first). inotify cannot see a filesystem
// being mounted over a watched folder, nor a folder that does not exist yet, so each mount is
// also polled every `pollMs` with one stat(): when its device/inode changes (stick inserted,
// mount point created) the watches are rebuilt and, if the new contents hold a bundle or a
// repository, one event fires. The poll costs one stat per mount per period, whatever happens.

import { lstat, stat } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import nodeWatch, { type Watcher } from 'node-watch';
import { isRepoFolder, listFolder, MAX_SUBDIRS } from './mount-listing.ts';

// node-watch is CommonJS and also sets module.exports.default = watch; under nodenext TypeScript
// types the default import as the module object, so the function is taken from `.default`, which
// is the same function at runtime.
const watch = nodeWatch.default;

export interface MountEvent {
  /** The mount folder as given. */
  mount: string;
  /** The bundle or repository folder (or the mount itself when a stick appeared). */
  path: string;
}

export interface WatchOptions {
  debounceMs?: number;
  maxWaitMs?: number;
  pollMs?: number;
}

const DEFAULTS = { debounceMs: 500, maxWaitMs: 3000, pollMs: 2000 };

interface MountState {
  mount: string;
  /** dev:ino of the mount folder while watched; null while it is missing. */
  key: string | null;
  watchers: Map<string, Watcher>;
  timer: NodeJS.Timeout | null;
  firstAt: number;
  pending: string | null;
}

const isBundleName = (path: string) => path.endsWith('.ferry') && !basename(path).startsWith('.');

/** The first bundle or repository folder in `mount` or one folder down, if any. */
async function firstOffer(mount: string): Promise<string | null> {
  if (await isRepoFolder(mount)) return mount;
  const top = await listFolder(mount);
  const bundle = top.files.find(isBundleName);
  if (bundle) return bundle;
  for (const dir of top.dirs) {
    if (await isRepoFolder(dir)) return dir;
    const below = await listFolder(dir);
    const b = below.files.find(isBundleName);
    if (b) return b;
    for (const d of below.dirs) if (await isRepoFolder(d)) return d;
  }
  return null;
}

export function watchMounts(mounts: string[], onChange: (event: MountEvent) => void, options: WatchOptions = {}): { close(): void } {
  const o = { ...DEFAULTS, ...options };
  let closed = false;
  const states = mounts.map((mount): MountState => ({ mount, key: null, watchers: new Map(), timer: null, firstAt: 0, pending: null }));

  function schedule(state: MountState, path: string): void {
    if (closed) return;
    const now = Date.now();
    if (state.pending === null) state.firstAt = now;
    state.pending = path;
    if (state.timer) clearTimeout(state.timer);
    const wait = Math.max(0, Math.min(o.debounceMs, o.maxWaitMs - (now - state.firstAt)));
    state.timer = setTimeout(() => {
      state.timer = null;
      const p = state.pending;
      state.pending = null;
      if (!closed && p !== null) onChange({ mount: state.mount, path: p });
    }, wait);
  }

  /** Is this event about a bundle or a repository folder? */
  async function relevant(state: MountState, event: 'update' | 'remove', path: string): Promise<string | null> {
    if (event !== 'update') return null; // something leaving the stick is never an update
    if (basename(path).startsWith('.')) return null;
    if (isBundleName(path)) return (await lstat(path).catch(() => null))?.isFile() ? path : null;
    const st = await lstat(path).catch(() => null);
    if (st?.isDirectory()) {
      if (dirname(path) === state.mount) watchDir(state, path); // one level down is watched too
      if (await isRepoFolder(path)) return path;
      return (await firstOffer(path).catch(() => null)) && dirname(path) === state.mount ? path : null;
    }
    // A repository being copied in: its root.json or channels/ appearing.
    const name = basename(path);
    if ((name === 'root.json' || name === 'channels') && (await isRepoFolder(dirname(path)))) return dirname(path);
    return null;
  }

  function watchDir(state: MountState, dir: string): void {
    if (closed || state.watchers.has(dir) || state.watchers.size > MAX_SUBDIRS) return;
    let w: Watcher;
    try {
      w = watch(dir, { recursive: false, delay: 50 }, (event, file) => {
        if (typeof file !== 'string') return;
        void relevant(state, event, file).then((p) => { if (p) schedule(state, p); }, () => {});
      });
    } catch {
      return; // vanished between stat and watch: the poll notices
    }
    w.on('error', () => {
      // The folder went away (stick pulled, mount point removed): rebuilt by the next poll.
      w.close();
      state.watchers.delete(dir);
      if (dir === state.mount) state.key = null;
    });
    state.watchers.set(dir, w);
  }

  function detach(state: MountState): void {
    for (const w of state.watchers.values()) w.close();
    state.watchers.clear();
    state.key = null;
  }

  async function refresh(state: MountState, initial: boolean): Promise<void> {
    const st = await stat(state.mount).catch(() => null);
    const key = st?.isDirectory() ? `${st.dev}:${st.ino}` : null;
    if (closed || key === state.key) return;
    detach(state);
    if (key === null) return;
    state.key = key;
    watchDir(state, state.mount);
    for (const dir of (await listFolder(state.mount)).dirs) watchDir(state, dir);
    if (!initial) {
      // A stick inserted (or the folder created) with something on it already.
      const offer = await firstOffer(state.mount);
      if (offer) schedule(state, offer);
    }
  }

  let polling = false;
  const poll = async (initial: boolean) => {
    if (polling || closed) return;
    polling = true;
    try {
      for (const state of states) await refresh(state, initial).catch(() => {});
    } finally {
      polling = false;
    }
  };
  void poll(true);
  const interval = setInterval(() => void poll(false), o.pollMs);

  return {
    close() {
      closed = true;
      clearInterval(interval);
      for (const state of states) {
        if (state.timer) clearTimeout(state.timer);
        detach(state);
      }
    },
  };
}
