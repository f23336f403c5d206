// Runs ferry's benchmarks: every bench, or only those named (`npm run bench -- delta`). Each bench
// module exports `run({ log })`; results go to stdout, progress lines too, so the log reads in
// order. Targets are printed as PASS/MISS and never fail the run: only an error does.

interface Bench {
  name: string;
  description: string;
  load(): Promise<{ run(options: { log: (line: string) => void }): Promise<void> }>;
}

const BENCHES: Bench[] = [
  { name: 'delta', description: 'ferry delta vs xdelta3 / zstd --patch-from on real npm releases', load: () => import('./delta.ts') },
  { name: 'apply', description: 'device update time and memory, full and delta, vs cp -a + sha256sum', load: () => import('./apply.ts') },
  { name: 'fleet', description: 'N devices updating with and without LAN peers: origin bytes, time; then fleet-reports', load: () => import('./fleet.ts') },
  { name: 'fleet-reports', description: 'report bytes per device per day, and ferry fleet over 10,000 reports vs reading them', load: () => import('./fleet-reports.ts') },
  { name: 'handover', description: 'ferry run handover under wrk load vs steady state and pm2 reload', load: () => import('./handover.ts') },
  { name: 'serve', description: 'ferry serve artifact throughput vs nginx on the same files', load: () => import('./serve.ts') },
  { name: 'container', description: 'app-layer patch bump of a ~45 MB image: ferry bytes moved and update time vs the whole image and skopeo copy', load: () => import('./container.ts') },
  { name: 'footprint', description: 'ferry start-up time and memory, and the idle agent, vs plain node', load: () => import('./footprint.ts') },
];

async function main(args: string[]): Promise<number> {
  const unknown = args.filter((a) => !BENCHES.some((b) => b.name === a));
  if (unknown.length > 0) {
    process.stderr.write(`unknown bench ${unknown.join(', ')}; benches: ${BENCHES.map((b) => `${b.name} (${b.description})`).join(', ')}\n`);
    return 2;
  }
  const chosen = args.length === 0 ? BENCHES : BENCHES.filter((b) => args.includes(b.name));
  const log = (line: string) => { process.stdout.write(line + '\n'); };
  for (const bench of chosen) {
    const start = Date.now();
    log(`== bench ${bench.name}`);
    await (await bench.load()).run({ log });
    log(`== bench ${bench.name} done in ${((Date.now() - start) / 1000).toFixed(0)} s`);
  }
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
