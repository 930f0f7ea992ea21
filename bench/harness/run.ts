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
 * turns the results into the tables and plots of bench/tail-latency.md.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { isAbsolute, join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { REPO_ROOT, fmt, intFlag, machineNeutral, parseFlags, strFlag, table } from '../common.js';
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
  writeFileSync(file, machineNeutral(JSON.stringify(r)) + '\n');
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

/**
 * Every flag of `npm run bench`, with its default: --help prints this table, parseConfig takes its
 * defaults from it (one place, so the help cannot drift from what runs), and nothing else is accepted.
 * A flag without a default is off or derived (its help says how).
 */
interface BenchFlag {
  flag: string;
  arg: string;
  help: string;
  default?: string;
}
export const BENCH_FLAGS: readonly BenchFlag[] = [
  { flag: 'scenario', arg: 'NAME', help: `workload: ${Object.keys(SCENARIOS).join(', ')}`, default: 'mixed' },
  { flag: 'resident', arg: 'N', help: 'read states loaded into each service before measuring', default: '1000000' },
  { flag: 'churn', arg: 'F', help: 'working set F x capacity, capacity = the resident set, so requests evict and reload users; 0 = none (default 1.1 for mixed, else 0)' },
  { flag: 'duration', arg: 'S', help: 'seconds of each measured window, after its warm-up', default: '60' },
  { flag: 'warmup', arg: 'S', help: 'seconds of load before each window on its own connections, not recorded', default: '5' },
  { flag: 'probe', arg: 'S', help: "closed-loop probe of each service; naive's sets the open-loop rates", default: '10' },
  { flag: 'impl', arg: 'LIST', help: 'services to run, in this order: slab, slab-nojournal (--journal off), slab-fsync (--journal-fsync-ms 0), slab-group (--journal-fsync-ms 5), naive, ceiling', default: 'slab,naive,ceiling' },
  { flag: 'mode', arg: 'LIST', help: 'open (fixed rate) and/or closed (max throughput) windows', default: 'open,closed' },
  { flag: 'rates', arg: 'LIST', help: "open-loop rates as fractions of naive's closed-loop probe", default: '0.5,0.8' },
  { flag: 'base-rps', arg: 'N', help: "use this as naive's max instead of probing (needed when naive is not in --impl)" },
  { flag: 'connections', arg: 'N', help: 'connections of open-loop windows', default: '200' },
  { flag: 'closed-connections', arg: 'N', help: 'connections of closed-loop windows and probes', default: '50' },
  { flag: 'closed-client', arg: 'autocannon|wrk', help: "what drives the closed-loop window (probes and open windows stay autocannon's): wrk takes a fraction of autocannon's CPU, so the bare route's figure is not the client's", default: 'autocannon' },
  { flag: 'pacing', arg: 'smooth|autocannon', help: "open-loop schedule: even per-connection pacing, or autocannon's overallRate", default: 'smooth' },
  { flag: 'heap-mb', arg: 'N', help: '--max-old-space-size of the services', default: '8192' },
  { flag: 'batch-ops', arg: 'N', help: 'operations per /v1/batch request in the batch scenario', default: '100' },
  { flag: 'seed', arg: 'N', help: 'seed of the request generator', default: '12345' },
  { flag: 'store', arg: 'sqlite|memory', help: 'store behind both services (sqlite: the embedded default, on its own thread)', default: 'sqlite' },
  { flag: 'max-others', arg: 'PCT', help: 'a window in which other processes used more of one core is measured again', default: '30' },
  { flag: 'retries', arg: 'N', help: 'how many times such a window is measured again', default: '1' },
  { flag: 'quiet-wait', arg: 'S', help: 'wait at most this long for other processes to go quiet before a window', default: '60' },
  { flag: 'fill-rate', arg: 'N', help: 'read states per second while loading the resident set', default: '35000' },
  { flag: 'out', arg: 'DIR', help: 'where the result JSON goes', default: 'bench/results' },
  { flag: 'cpu-prof', arg: '', help: 'run the services under node --cpu-prof (profiles next to the server logs)' },
  { flag: 'help', arg: '', help: 'print this and exit' },
];

export function benchUsage(): string {
  const w = Math.max(...BENCH_FLAGS.map((f) => f.flag.length + f.arg.length + 1));
  return [
    'npm run bench -- [flags]   (node dist/bench/harness/run.js [flags])',
    '',
    ...BENCH_FLAGS.map((f) => `  --${`${f.flag} ${f.arg}`.trimEnd().padEnd(w)}  ${f.help}${f.default !== undefined ? ` (${f.default})` : ''}`),
    '',
    'e.g. npm run bench -- --scenario mixed --resident 5000000 --duration 240 --mode open,closed --rates 0.5,0.8',
  ].join('\n');
}

const DEFAULTS = new Map(BENCH_FLAGS.filter((f) => f.default !== undefined).map((f) => [f.flag, f.default!]));

function parseConfig(argv: string[]): { cfg: BenchConfig; out: string } {
  const flags = parseFlags(argv);
  for (const k of flags.keys()) if (!BENCH_FLAGS.some((f) => f.flag === k)) throw new Error(`unknown flag --${k} (--help lists them)`);
  const str = (name: string): string => strFlag(flags, name, DEFAULTS.get(name)!);
  const int = (name: string): number => intFlag(flags, name, Number(DEFAULTS.get(name)));
  const scenario = str('scenario');
  const spec = SCENARIOS[scenario];
  if (spec === undefined) throw new Error(`--scenario must be one of ${Object.keys(SCENARIOS).join(', ')}`);
  const churnRaw = flags.get('churn');
  const churn = churnRaw === undefined ? spec.defaultChurn : churnRaw === 'true' ? 2 : Number(churnRaw);
  if (!Number.isFinite(churn) || churn < 0 || (churn > 0 && churn <= 1)) throw new Error('--churn must be 0 (no evictions) or above 1 (working set as a multiple of capacity)');
  const modes = str('mode').split(',') as ('open' | 'closed')[];
  if (modes.some((m) => m !== 'open' && m !== 'closed')) throw new Error('--mode must be open, closed or open,closed');
  const pacing = str('pacing');
  if (pacing !== 'smooth' && pacing !== 'autocannon') throw new Error('--pacing must be smooth or autocannon');
  const closedClient = str('closed-client');
  if (closedClient !== 'autocannon' && closedClient !== 'wrk') throw new Error('--closed-client must be autocannon or wrk');
  const rates = str('rates').split(',').map(Number);
  if (rates.some((x) => !(x > 0))) throw new Error('--rates must be positive fractions, e.g. 0.5,0.8');
  const store = str('store');
  if (store !== 'memory' && store !== 'sqlite') throw new Error('--store must be memory or sqlite');
  const cfg: BenchConfig = {
    scenario,
    resident: int('resident'),
    churn,
    duration: int('duration'),
    warmup: int('warmup'),
    probe: int('probe'),
    impls: str('impl').split(',') as ImplName[],
    modes,
    rates,
    baseRps: flags.has('base-rps') ? intFlag(flags, 'base-rps', 0) : undefined,
    connections: int('connections'),
    closedConnections: int('closed-connections'),
    closedClient,
    pacing,
    heapMb: int('heap-mb'),
    cpuProf: flags.has('cpu-prof'),
    batchOps: int('batch-ops'),
    seed: int('seed'),
    store,
    maxOthers: int('max-others'),
    retries: int('retries'),
    quietWaitSeconds: int('quiet-wait'),
    fillRate: int('fill-rate'),
    logDir: '',
  };
  return { cfg, out: str('out') };
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
  const noJournal = closedWindow(r, 'slab-nojournal');
  if (slab !== undefined && noJournal !== undefined) log(`slab closed-loop throughput with the journal / without: ${(slab.rps / noJournal.rps).toFixed(3)}`);
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
