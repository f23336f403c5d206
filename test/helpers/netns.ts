// A private LAN for tests: a bridge inside its own network namespace and N host namespaces, each
// joined to the bridge by a veth pair whose ends are created directly inside the namespaces, with
// addresses from 10.99.0.0/24 that exist only there. Nothing touches the host's own interfaces,
// routes or firewall, so multicast (mDNS) sent in these namespaces never leaves them. Every
// namespace made here is deleted by destroy() (veths and the bridge go with their namespaces).
// Children run with `ip netns exec`, which execs the command, so a child's pid is node's own.

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';

const run = promisify(execFile);
const PREFIX = 'ferrylan';

async function ip(...args: string[]): Promise<string> {
  const { stdout } = await run('ip', args, { timeout: 10_000 });
  return stdout;
}

/** null when namespaces can be used here; otherwise why not (for a `SKIP:` line). */
export async function netnsUnavailable(): Promise<string | null> {
  if (process.env.FERRY_NO_NETNS) return 'FERRY_NO_NETNS is set';
  if (process.platform !== 'linux') return `not Linux (${process.platform})`;
  if (typeof process.getuid === 'function' && process.getuid() !== 0) return 'not root';
  const probe = `${PREFIX}-probe-${process.pid}`;
  try {
    await ip('netns', 'add', probe);
    await ip('-n', probe, 'link', 'add', 'name', 'br0', 'type', 'bridge');
    await ip('-n', probe, 'link', 'add', 'name', 'vprobe0', 'type', 'veth', 'peer', 'name', 'vprobe1');
    return null;
  } catch (err) {
    return `ip netns / veth / bridge not usable: ${(err as Error).message.split('\n')[0]}`;
  } finally {
    await ip('netns', 'delete', probe).catch(() => {});
  }
}

export interface Host {
  ns: string;
  address: string;
}

export interface Child {
  pid: number;
  /** The next JSON event line with this `event` (bounded by `timeoutMs`). */
  next(event: string, timeoutMs?: number): Promise<Record<string, unknown>>;
  send(line: string): void;
  /** Closes stdin, waits up to `graceMs`, then SIGKILLs this child by pid. */
  stop(graceMs?: number): Promise<void>;
  stderr(): string;
}

export interface TestLan {
  bridgeNs: string;
  hosts: Host[];
  /** Runs `node --import tsx <script> ...args` inside a host namespace. */
  spawnNode(host: Host, script: string, args: string[], cwd: string): Child;
  destroy(): Promise<void>;
}

/** Namespaces left by an earlier run that was killed (their owning pid is gone). */
async function removeStale(): Promise<void> {
  const list = await ip('netns', 'list').catch(() => '');
  for (const line of list.split('\n')) {
    const name = line.split(' ')[0] ?? '';
    const m = new RegExp(`^${PREFIX}-(\\d+)-`).exec(name);
    if (!m) continue;
    const owner = Number(m[1]);
    let alive = true;
    try { process.kill(owner, 0); } catch { alive = false; }
    if (!alive) await ip('netns', 'delete', name).catch(() => {});
  }
}

export async function createTestLan(count: number): Promise<TestLan> {
  if (count < 1 || count > 50) throw new Error('1..50 hosts');
  await removeStale();
  const tag = `${PREFIX}-${process.pid}-${Math.floor(Math.random() * 1e6)}`;
  const bridgeNs = `${tag}-br`;
  const made: string[] = [];
  const children = new Set<Child>();
  const lan: TestLan = {
    bridgeNs,
    hosts: [],
    spawnNode(host, script, args, cwd) {
      const proc: ChildProcess = spawn('ip', ['netns', 'exec', host.ns, process.execPath, '--import', 'tsx', script, ...args], {
        cwd,
        stdio: ['pipe', 'pipe', 'pipe'],
        env: { ...process.env, NO_COLOR: '1' },
      });
      const child = wrap(proc);
      children.add(child);
      return child;
    },
    async destroy() {
      for (const c of children) await c.stop(2000).catch(() => {});
      children.clear();
      for (const ns of [...made].reverse()) await ip('netns', 'delete', ns).catch(() => {});
    },
  };
  try {
    await ip('netns', 'add', bridgeNs);
    made.push(bridgeNs);
    await ip('-n', bridgeNs, 'link', 'add', 'name', 'br0', 'type', 'bridge');
    await ip('-n', bridgeNs, 'link', 'set', 'br0', 'up');
    await ip('-n', bridgeNs, 'link', 'set', 'lo', 'up');
    for (let i = 0; i < count; i++) {
      const ns = `${tag}-h${i}`;
      const address = `10.99.0.${10 + i}`;
      await ip('netns', 'add', ns);
      made.push(ns);
      // Created inside the host namespace; its peer end goes straight into the bridge namespace.
      await ip('-n', ns, 'link', 'add', 'name', 'eth0', 'type', 'veth', 'peer', 'name', `v${i}`, 'netns', bridgeNs);
      await ip('-n', ns, 'addr', 'add', `${address}/24`, 'dev', 'eth0');
      await ip('-n', ns, 'link', 'set', 'lo', 'up');
      await ip('-n', ns, 'link', 'set', 'eth0', 'up');
      // Multicast leaves by eth0, the namespace's only link.
      await ip('-n', ns, 'route', 'add', '224.0.0.0/4', 'dev', 'eth0');
      await ip('-n', bridgeNs, 'link', 'set', `v${i}`, 'master', 'br0');
      await ip('-n', bridgeNs, 'link', 'set', `v${i}`, 'up');
      lan.hosts.push({ ns, address });
    }
  } catch (err) {
    await lan.destroy();
    throw err;
  }
  return lan;
}

function wrap(proc: ChildProcess): Child {
  const events: Record<string, unknown>[] = [];
  const waiters: { event: string; resolve: (e: Record<string, unknown>) => void }[] = [];
  let err = '';
  let exited = false;
  const exitedP = new Promise<void>((resolve) => proc.once('exit', () => { exited = true; resolve(); }));
  proc.stderr!.on('data', (d) => { err += d; if (err.length > 20_000) err = err.slice(-20_000); });
  proc.stdin!.on('error', () => {});
  createInterface({ input: proc.stdout! }).on('line', (line) => {
    let e: Record<string, unknown>;
    try { e = JSON.parse(line) as Record<string, unknown>; } catch { return; }
    const i = waiters.findIndex((w) => w.event === e.event || e.event === 'error');
    if (i >= 0) waiters.splice(i, 1)[0]!.resolve(e);
    else events.push(e);
  });
  return {
    pid: proc.pid!,
    next(event, timeoutMs = 30_000) {
      const i = events.findIndex((e) => e.event === event || e.event === 'error');
      if (i >= 0) return Promise.resolve(events.splice(i, 1)[0]!).then(check);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no "${event}" from pid ${proc.pid} within ${timeoutMs} ms; stderr: ${err.slice(-2000)}`)), timeoutMs);
        waiters.push({ event, resolve: (e) => { clearTimeout(timer); try { resolve(check(e)); } catch (x) { reject(x); } } });
        void exitedP.then(() => setTimeout(() => reject(new Error(`pid ${proc.pid} exited before "${event}"; stderr: ${err.slice(-2000)}`)), 200));
      });
      function check(e: Record<string, unknown>) {
        if (e.event === 'error') throw new Error(`child ${proc.pid}: ${String(e.message)}; stderr: ${err.slice(-2000)}`);
        return e;
      }
    },
    send(line) { proc.stdin!.write(`${line}\n`); },
    async stop(graceMs = 3000) {
      if (exited) return;
      proc.stdin!.end();
      const timer = setTimeout(() => { if (!exited) process.kill(proc.pid!, 'SIGKILL'); }, graceMs);
      await exitedP;
      clearTimeout(timer);
    },
    stderr: () => err,
  };
}
