/**
 * Tail-latency benchmark: the slab service, the naive service and a bare fastify ceiling, one at
 * a time, under the same scenario; one JSON result per run in --out (bench/results by default).
 *
 *   npm run bench -- --help     every flag with its default (BENCH_FLAGS below)
 *   npm run bench -- --scenario mixed --resident 5000000 --duration 240 --impl slab,naive,ceiling
 *
 * --churn F: working set F x capacity, capacity = the resident set (full after the fill, so new
 * read states evict); default 1.1 for mixed, 0 (nothing evicted) for the others; --churn 0 turns it off.
 * --cpu-prof: each window records its monotonic span, so
 * `node dist/bench/cpuprofile-summary.js <file> --from A --to B` cuts one window out of a profile.
 *
 * See core.ts for the sequence and load.ts for how latency is measured; `npm run bench:report`
 * turns the results into PERFORMANCE.md tables and plots.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { isAbsolute, join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { REPO_ROOT, fmt, intFlag, parseFlags, strFlag, table } from '../common.js';
import { closedWindow, log, runBench, type BenchConfig, type BenchResult } from './core.js';
import type { ImplName } from './servers.js';
import { SCENARIOS } from './workload.js';

export function commandLine(script: string, argv: string[]): string {
  return process.env.npm_lifecycle_event === script ? `npm run ${script} -- ${argv.join(' ')}`.trim() : `node ${relative(REPO_ROOT, process.argv[1])} ${argv.join(' ')}`.trim();
}

export function stamp(): string {
  return new Date().toISOString().replace(/[:.]/g, '-');
}

export function writeResult(outDir: string, name: string, r: BenchResult): string {
  const dir = isAbsolute(outDir) ? outDir : join(REPO_ROOT, outDir);
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${name}.json`);
  writeFileSync(file, JSON.stringify(r) + '\n');
  return relative(REPO_ROOT, file);
}

export function summaryTable(r: BenchResult): string {
  const rows: (string | number)[][] = [];
  for (const i of r.impls) {
    for (const w of i.windows) {
      rows.push([
        i.impl,
        w.kind === 'open' ? `open ${w.fraction}x` : w.kind,
        w.targetRps !== null ? fmt(w.targetRps) : '-',
        fmt(w.rps),
        w.opsPerRequest > 1 ? fmt(w.opsPerSec) : '-',
        w.latency.p50Ms,
        w.latency.p99Ms,
        w.latency.p999Ms,
        w.latency.p9999Ms,
        w.latency.maxMs,
        w.non2xx + w.errors,
        w.traceGc.majors,
        w.cache != null ? `${fmt(w.cache.evictions)} / ${fmt(w.cache.misses)}` : '-',
        w.kind === 'open' ? `${w.backlog.secondsFallingBehind.length} (${fmt(w.backlog.maxBehindMs, 0)} ms)` : '-',
        `${w.cpu.othersPctOfCore}%`,
      ]);
    }
  }
  return table(['impl', 'window', 'target/s', 'req/s', 'ops/s', 'p50 ms', 'p99 ms', 'p99.9 ms', 'p99.99 ms', 'max ms', 'non-2xx+err', 'major GCs', 'evicted / loaded users', 'backlog s (most behind)', 'other CPU'], rows);
}

/** Every flag of `npm run bench`: [flag, value, what it does (default)]; --help prints it, and nothing else is accepted. */
export const BENCH_FLAGS: readonly (readonly [string, string, string])[] = [
  ['scenario', 'NAME', `workload: ${Object.keys(SCENARIOS).join(', ')} (mixed)`],
  ['resident', 'N', 'read states loaded into each service before measuring (1000000)'],
  ['churn', 'F', 'working set F x capacity, capacity = the resident set, so requests evict and reload users; 0 = none (1.1 for mixed, else 0)'],
  ['duration', 'S', 'seconds of each measured window, after its warm-up (60)'],
  ['warmup', 'S', 'seconds of load before each window on its own connections, not recorded (5)'],
  ['probe', 'S', 'closed-loop probe of each service; naive\'s sets the open-loop rates (10)'],
  ['impl', 'LIST', 'services to run, in this order: slab, naive, ceiling (slab,naive,ceiling)'],
  ['mode', 'LIST', 'open (fixed rate) and/or closed (max throughput) windows (open,closed)'],
  ['rates', 'LIST', 'open-loop rates as fractions of naive\'s closed-loop probe (0.5,0.8)'],
  ['base-rps', 'N', 'use this as naive\'s max instead of probing (needed when naive is not in --impl)'],
  ['connections', 'N', 'connections of open-loop windows (200)'],
  ['closed-connections', 'N', 'connections of closed-loop windows and probes (50)'],
  ['pacing', 'smooth|autocannon', 'open-loop schedule: even per-connection pacing, or autocannon\'s overallRate (smooth)'],
  ['heap-mb', 'N', '--max-old-space-size of the services (8192)'],
  ['batch-ops', 'N', 'operations per /v1/batch request in the batch scenario (100)'],
  ['seed', 'N', 'seed of the request generator (12345)'],
  ['store', 'sqlite|memory', 'store behind both services (sqlite: the embedded default, on its own thread)'],
  ['max-others', 'PCT', 'a window in which other processes used more of one core is measured again (30)'],
  ['retries', 'N', 'how many times such a window is measured again (1)'],
  ['quiet-wait', 'S', 'wait at most this long for other processes to go quiet before a window (60)'],
  ['fill-rate', 'N', 'read states per second while loading the resident set (35000)'],
  ['out', 'DIR', 'where the result JSON goes (bench/results)'],
  ['cpu-prof', '', 'run the services under node --cpu-prof (profiles next to the server logs)'],
  ['help', '', 'print this and exit'],
];

export function benchUsage(): string {
  const w = Math.max(...BENCH_FLAGS.map(([f, v]) => f.length + v.length + 1));
  return [
    'npm run bench -- [flags]   (node dist/bench/harness/run.js [flags])',
    '',
    ...BENCH_FLAGS.map(([f, v, h]) => `  --${`${f} ${v}`.trimEnd().padEnd(w)}  ${h}`),
    '',
    'e.g. npm run bench -- --scenario mixed --resident 5000000 --duration 240 --mode open,closed --rates 0.5,0.8',
  ].join('\n');
}

function parseConfig(argv: string[]): { cfg: BenchConfig; out: string } {
  const flags = parseFlags(argv);
  const known = new Set(BENCH_FLAGS.map(([f]) => f));
  for (const k of flags.keys()) if (!known.has(k)) throw new Error(`unknown flag --${k} (--help lists them)`);
  const scenario = strFlag(flags, 'scenario', 'mixed');
  const churnRaw = flags.get('churn');
  // an unknown scenario is rejected by runBench, with the list of known ones
  const churn = churnRaw === undefined ? (SCENARIOS[scenario]?.defaultChurn ?? 0) : churnRaw === 'true' ? 2 : Number(churnRaw);
  if (!Number.isFinite(churn) || churn < 0 || (churn > 0 && churn <= 1)) throw new Error('--churn must be 0 (no evictions) or above 1 (working set as a multiple of capacity)');
  const modes = strFlag(flags, 'mode', 'open,closed').split(',') as ('open' | 'closed')[];
  if (modes.some((m) => m !== 'open' && m !== 'closed')) throw new Error('--mode must be open, closed or open,closed');
  const pacing = strFlag(flags, 'pacing', 'smooth');
  if (pacing !== 'smooth' && pacing !== 'autocannon') throw new Error('--pacing must be smooth or autocannon');
  const rates = strFlag(flags, 'rates', '0.5,0.8').split(',').map(Number);
  if (rates.some((x) => !(x > 0))) throw new Error('--rates must be positive fractions, e.g. 0.5,0.8');
  const cfg: BenchConfig = {
    scenario,
    resident: intFlag(flags, 'resident', 1_000_000),
    churn,
    duration: intFlag(flags, 'duration', 60),
    warmup: intFlag(flags, 'warmup', 5),
    probe: intFlag(flags, 'probe', 10),
    impls: strFlag(flags, 'impl', 'slab,naive,ceiling').split(',') as ImplName[],
    modes,
    rates,
    baseRps: flags.has('base-rps') ? intFlag(flags, 'base-rps', 0) : undefined,
    connections: intFlag(flags, 'connections', 200),
    closedConnections: intFlag(flags, 'closed-connections', 50),
    pacing,
    heapMb: intFlag(flags, 'heap-mb', 8192),
    cpuProf: flags.has('cpu-prof'),
    batchOps: intFlag(flags, 'batch-ops', 100),
    seed: intFlag(flags, 'seed', 12345),
    store: strFlag(flags, 'store', 'sqlite') as 'memory' | 'sqlite',
    maxOthers: intFlag(flags, 'max-others', 30),
    retries: intFlag(flags, 'retries', 1),
    quietWaitSeconds: intFlag(flags, 'quiet-wait', 60),
    fillRate: intFlag(flags, 'fill-rate', 35_000),
    logDir: '',
  };
  if (cfg.store !== 'memory' && cfg.store !== 'sqlite') throw new Error('--store must be memory or sqlite');
  return { cfg, out: strFlag(flags, 'out', 'bench/results') };
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(benchUsage());
    return;
  }
  let parsed: { cfg: BenchConfig; out: string };
  try {
    parsed = parseConfig(argv);
  } catch (err) {
    // a bad flag is the user's mistake: one line, no stack
    console.error(`npm run bench: ${(err as Error).message}`);
    process.exitCode = 2;
    return;
  }
  const { cfg, out } = parsed;
  const name = `tail-${cfg.scenario}${cfg.churn > 0 ? '-churn' : ''}${cfg.store !== 'memory' ? `-${cfg.store}` : ''}-${cfg.resident}-${stamp()}`;
  cfg.logDir = join(REPO_ROOT, 'bench', 'results', 'tmp', name);
  const r = await runBench(cfg, commandLine('bench', argv), 'run');
  log('\n' + summaryTable(r));
  const slab = closedWindow(r, 'slab');
  const ceiling = closedWindow(r, 'ceiling');
  if (slab !== undefined && ceiling !== undefined) log(`\nslab closed-loop throughput / ceiling: ${(slab.rps / ceiling.rps).toFixed(3)}`);
  log(`\nbase rate: ${r.baseRps ?? '-'} req/s (${r.baseRpsSource}); wall time ${fmt(r.wallSeconds)} s; load average after: ${r.machineAfter.loadavg.join(' ')}`);
  log(`server logs (with --trace-gc lines): ${relative(REPO_ROOT, cfg.logDir)}/`);
  log(`result: ${writeResult(out, name, r)}`);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.stack : err);
    process.exit(1);
  });
}
