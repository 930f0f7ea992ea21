/**
 * Performance gate: a short run of slab, naive and ceiling in the same run (same machine, same
 * minutes), then ratios between them checked against bench/gate.config.json. Only ratios are
 * checked, never absolute times: the machine is shared and noisy. The tail ratios to the bare
 * route come from paired rounds (a slab window and a ceiling window back to back, order reversed
 * every other round, median of the rounds), because one window of each minutes apart can see two
 * different machines here: stolen CPU comes and goes within a minute.
 *
 *   npm run bench:gate                     # run, check, exit 0 or 1
 *   npm run bench:gate -- --write-baseline # run, and write bench/baseline/gate-baseline.json
 *   npm run bench:gate -- --config other.json --no-baseline
 *   npm run bench:gate -- --no-baseline --slab-script dist/bench/naive/main.js   # must fail (self-check)
 *
 * On failure: exit 1 and ONE line starting "bench:gate FAILED:" naming the broken ratio(s) with
 * value and threshold. If a check failed but other processes took the CPU during a window even
 * after the retries: exit 2 and one line "bench:gate INCONCLUSIVE: ...". On success: the ratios,
 * exit 0. The full result goes to bench/results/.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, isAbsolute, join, relative } from 'node:path';
import { REPO_ROOT, fmt, machineNeutral, median, parseFlags, strFlag } from '../common.js';
import { closedWindow, log, openWindow, runBench, type BenchConfig, type BenchResult, type ImplRecord, type PairedRound, type WindowRecord } from './core.js';
import { commandLine, stamp, summaryTable, writeResult } from './run.js';

interface Threshold {
  comment: string;
  min?: number;
  max?: number;
}

interface GateConfig {
  comment: string;
  run: {
    comment: string;
    scenario: string;
    resident: number;
    openFraction: number;
    openSeconds: number;
    warmupSeconds: number;
    probeSeconds: number;
    connections: number;
    closedConnections: number;
    throughputScenario: string;
    throughputSeconds: number;
    store: 'memory' | 'sqlite';
    maxOthersPctOfCore: number;
    fillRate: number;
    retries: number;
    quietWaitSeconds: number;
    paired: { comment: string; rounds: number; seconds: number; warmupSeconds: number };
  };
  baseline: { comment: string; file: string };
  thresholds: Record<string, Threshold>;
}

export interface GateRatios {
  /** open loop, same rate: slab p99.9 / naive p99.9 (latency from intended send time) */
  slab_p999_over_naive_p999: number;
  /** the same, only when naive had a major GC (trace-gc Mark-Compact) in its window; else null */
  slab_p999_over_naive_p999_when_naive_major_gc: number | null;
  /** open loop: slab max / naive max */
  slab_max_over_naive_max: number;
  /** the same, only when naive had a major GC in its window; else null */
  slab_max_over_naive_max_when_naive_major_gc: number | null;
  /** live V8 heap (after each thread's last Mark-Compact) at the end of the open window: slab main + shard threads / naive main thread */
  slab_heap_over_naive_heap: number;
  /** closed loop on a single-op route: slab req/s / ceiling req/s */
  slab_closed_rps_over_ceiling_closed_rps: number;
  /** this run's slab_closed_rps_over_ceiling_closed_rps / the baseline's */
  slab_ceiling_rps_ratio_vs_baseline: number | null;
  /** this run's slab_heap_over_naive_heap / the baseline's */
  slab_heap_ratio_vs_baseline: number | null;
  /**
   * this run's slab open-loop p99.9 / the baseline's: absolute times from another day, which drift
   * with the machine; reported, not checked (slab_p999_over_ceiling_p999 is the same-run check)
   */
  slab_p999_vs_baseline: number | null;
  /**
   * open loop, same rate: slab p99 / ceiling p99 and p99.9 / p99.9 (the bare route's cost of HTTP
   * itself), what the service adds to a request's tail: the median over the paired rounds, each
   * round a slab window and a ceiling window back to back
   */
  slab_p99_over_ceiling_p99: number;
  slab_p999_over_ceiling_p999: number;
  /** each paired round's ratios, in round order */
  slab_p99_over_ceiling_p99_by_round: number[];
  slab_p999_over_ceiling_p999_by_round: number[];
  /** informational: slab's open-loop p99.9 and max (ms), kept so a baseline carries them */
  slab_p999_ms: number;
  slab_max_ms: number;
  /** informational: naive's Mark-Compacts in its window, others' CPU in the windows */
  naive_major_gcs_in_window: number;
}

type Measured = Omit<GateRatios, 'slab_ceiling_rps_ratio_vs_baseline' | 'slab_heap_ratio_vs_baseline' | 'slab_p999_vs_baseline'>;

function pathOf(p: string): string {
  return isAbsolute(p) ? p : join(REPO_ROOT, p);
}

const r4 = (x: number) => Math.round(x * 10000) / 10000;

/**
 * Live heap of a service's threads: each thread's heap right after its last Mark-Compact (a thread
 * without one yet counts its heap used at the window's end). Not heapUsed samples: those compare
 * where each thread happens to be in its GC cycle (naive sampled at its post-collection low
 * against slab's HTTP thread just before a collection gave 0.356 with no change to either).
 */
function liveHeapMiB(w: WindowRecord, exclude: string[]): number {
  return (w.server.threads ?? []).filter((t) => !exclude.includes(t.thread)).reduce((a, t) => a + (t.heapLiveAfterMiB ?? t.heapUsedAfterMiB), 0);
}

function ratiosOf(r: BenchResult, fraction: number): Measured {
  const s = openWindow(r, 'slab', fraction);
  const n = openWindow(r, 'naive', fraction);
  const st = closedWindow(r, 'slab', 'throughput');
  const ct = closedWindow(r, 'ceiling', 'throughput');
  const rounds = slabRounds(r);
  if (s === undefined || n === undefined || st === undefined || ct === undefined || rounds.length === 0) throw new Error('gate run is missing a window');
  const p99ByRound = rounds.map((x) => r4(x.self.latency.p99Ms / x.against.latency.p99Ms));
  const p999ByRound = rounds.map((x) => r4(x.self.latency.p999Ms / x.against.latency.p999Ms));
  const naiveMajors = n.traceGc.majors;
  const p999 = r4(s.latency.p999Ms / n.latency.p999Ms);
  const max = r4(s.latency.maxMs / n.latency.maxMs);
  return {
    slab_p999_over_naive_p999: p999,
    slab_p999_over_naive_p999_when_naive_major_gc: naiveMajors > 0 ? p999 : null,
    slab_max_over_naive_max: max,
    slab_max_over_naive_max_when_naive_major_gc: naiveMajors > 0 ? max : null,
    // the store thread is left out: naive's store worker does not report, and it is the same code in both
    slab_heap_over_naive_heap: r4(liveHeapMiB(s, ['store']) / liveHeapMiB(n, ['store'])),
    slab_closed_rps_over_ceiling_closed_rps: r4(st.rps / ct.rps),
    slab_p99_over_ceiling_p99: r4(median(p99ByRound)),
    slab_p999_over_ceiling_p999: r4(median(p999ByRound)),
    slab_p99_over_ceiling_p99_by_round: p99ByRound,
    slab_p999_over_ceiling_p999_by_round: p999ByRound,
    slab_p999_ms: s.latency.p999Ms,
    slab_max_ms: s.latency.maxMs,
    naive_major_gcs_in_window: naiveMajors,
  };
}

/** The slab record's paired rounds (BenchConfig.paired). */
function slabRounds(r: BenchResult): PairedRound[] {
  return r.impls.find((i) => i.impl === 'slab')?.paired ?? [];
}

/** Every window an impl record holds: its own and those of its paired rounds. */
function allWindows(i: ImplRecord): WindowRecord[] {
  return [...i.windows, ...(i.paired ?? []).flatMap((x) => [x.self, x.against])];
}

/** A baseline keeps the ratios and the summaries, not the histograms and per-second series. */
function slim(r: BenchResult, ratios: GateRatios): unknown {
  const slimWindow = (w: WindowRecord) => ({ ...w, hdr: undefined, perSecond: undefined, traceGc: { ...w.traceGc, events: undefined } });
  return {
    ...r,
    ratios,
    impls: r.impls.map((i) => ({
      ...i,
      windows: i.windows.map(slimWindow),
      paired: i.paired?.map((x) => ({ ...x, self: slimWindow(x.self), against: slimWindow(x.against) })),
    })),
  };
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const flags = parseFlags(argv);
  const configFile = pathOf(strFlag(flags, 'config', 'bench/gate.config.json'));
  const gc = JSON.parse(readFileSync(configFile, 'utf8')) as GateConfig;
  const writeBaseline = flags.has('write-baseline');
  const useBaseline = !flags.has('no-baseline') && !writeBaseline;
  const baselineFile = pathOf(gc.baseline.file);
  let baseline: GateRatios | undefined;
  let baselineRate: number | undefined;
  if (useBaseline) {
    try {
      const b = JSON.parse(readFileSync(baselineFile, 'utf8')) as { ratios: GateRatios; baseRps: number | null };
      baseline = b.ratios;
      if (b.baseRps !== null) baselineRate = Math.round(gc.run.openFraction * b.baseRps);
    } catch (err) {
      log(`bench:gate FAILED: no baseline at ${relative(REPO_ROOT, baselineFile)} (${(err as Error).message}); run npm run bench:gate -- --write-baseline, or pass --no-baseline`);
      process.exit(1);
    }
  }

  const run = gc.run;
  const name = `gate-${stamp()}`;
  const cfg: BenchConfig = {
    scenario: run.scenario,
    resident: run.resident,
    churn: 0,
    duration: run.openSeconds,
    warmup: run.warmupSeconds,
    probe: run.probeSeconds,
    impls: ['naive', 'slab', 'ceiling'],
    modes: ['open'],
    rates: [run.openFraction],
    connections: run.connections,
    closedConnections: run.closedConnections,
    pacing: 'smooth',
    heapMb: 8192,
    batchOps: 100,
    seed: 4242,
    store: run.store,
    maxOthers: run.maxOthersPctOfCore,
    fillRate: run.fillRate,
    retries: run.retries,
    quietWaitSeconds: run.quietWaitSeconds,
    // slab_p999_vs_baseline compares absolute p99.9 across runs: only meaningful at the same load.
    // On a machine where naive is faster than in the baseline run, openFraction x its max would be
    // a higher rate than the baseline's (and slab's write-behind waves larger): cap it there.
    maxOpenRate: baselineRate,
    probeImpls: ['naive'],
    openImpls: ['naive', 'slab'],
    // Self-check of the gate's sensitivity: --slab-script dist/bench/naive/main.js runs the naive
    // service in slab's place (a "regression" to naive's design), which the gate must reject.
    slabScript: flags.get('slab-script'),
    throughputProbe: { scenario: run.throughputScenario, seconds: run.throughputSeconds, impls: ['slab', 'ceiling'] },
    paired: { impl: 'slab', against: 'ceiling', rounds: run.paired.rounds, seconds: run.paired.seconds, warmup: run.paired.warmupSeconds, fraction: run.openFraction },
    logDir: join(REPO_ROOT, 'bench', 'results', 'tmp', name),
  };
  const r = await runBench(cfg, commandLine('bench:gate', argv), 'gate');
  log('\n' + summaryTable(r));
  const file = writeResult('bench/results', name, r);

  const base = ratiosOf(r, run.openFraction);
  const vs = (key: 'slab_closed_rps_over_ceiling_closed_rps' | 'slab_heap_over_naive_heap' | 'slab_p999_ms') =>
    baseline !== undefined && typeof baseline[key] === 'number' ? Math.round((base[key] / baseline[key]) * 1000) / 1000 : null;
  const ratios: GateRatios = {
    ...base,
    slab_ceiling_rps_ratio_vs_baseline: vs('slab_closed_rps_over_ceiling_closed_rps'),
    slab_heap_ratio_vs_baseline: vs('slab_heap_over_naive_heap'),
    slab_p999_vs_baseline: vs('slab_p999_ms'),
  };

  // A run is only valid if the services answered: a 5xx or a transport error is a failure by itself.
  const broken: string[] = [];
  for (const i of r.impls) {
    for (const w of allWindows(i)) {
      const fivexx = Object.entries(w.statuses).filter(([code]) => Number(code) >= 500).reduce((a, [, n]) => a + n, 0);
      if (fivexx + w.errors > 0) broken.push(`${w.impl} ${w.kind} window had ${fivexx} 5xx and ${w.errors} transport errors`);
    }
  }
  const lines: string[] = [];
  for (const [key, t] of Object.entries(gc.thresholds)) {
    const v = (ratios as unknown as Record<string, number | null>)[key];
    if (v === undefined) throw new Error(`gate.config.json: unknown ratio ${key} (known: ${Object.keys(ratios).join(', ')})`);
    if (v === null) {
      lines.push(`  ${key} = - (${key.endsWith('_when_naive_major_gc') ? 'naive had no major GC in its window' : 'no baseline'}: not checked)`);
      continue;
    }
    const bad = (t.max !== undefined && v > t.max) || (t.min !== undefined && v < t.min);
    const bound = t.max !== undefined ? `max ${t.max}` : `min ${t.min}`;
    lines.push(`  ${key} = ${v} (${bound})${bad ? '  <-- FAILED' : ''}`);
    if (bad) broken.push(`${key} = ${v} ${t.max !== undefined ? '>' : '<'} ${bound}`);
  }
  const info = Object.entries(ratios).filter(([k]) => !(k in gc.thresholds)).map(([k, v]) => `  ${k} = ${v ?? '-'} (not checked)`);
  const uncapped = Math.round(run.openFraction * (r.baseRps ?? 0));
  const rate = baselineRate !== undefined && baselineRate < uncapped ? `${fmt(baselineRate)} req/s (the baseline's rate; ${run.openFraction}x naive's max would be ${fmt(uncapped)})` : `${run.openFraction}x naive's max = ${fmt(uncapped)} req/s`;
  const rounds = slabRounds(r).map(
    (x, k) =>
      `  round ${x.round} (${x.first} first): slab p99 ${x.self.latency.p99Ms} p99.9 ${x.self.latency.p999Ms}, ceiling p99 ${x.against.latency.p99Ms} p99.9 ${x.against.latency.p999Ms} ms: ` +
      `${ratios.slab_p99_over_ceiling_p99_by_round[k]}x / ${ratios.slab_p999_over_ceiling_p999_by_round[k]}x; others ${x.self.cpu.othersPctOfCore}% / ${x.against.cpu.othersPctOfCore}% of a core`,
  );
  log(`\npaired rounds (${run.paired.seconds} s windows at the open-loop rate):\n${rounds.join('\n')}`);
  log(`\nratios (same run; open loop at ${rate}):\n${[...lines, ...info].join('\n')}`);
  for (const i of r.impls) {
    for (const w of i.windows) if (w.contended === true) log(`  note: ${i.impl} ${w.kind} window kept although other processes used ${w.cpu.othersPctOfCore}% of a core (after ${run.retries} retries)`);
    if (i.discarded.length > 0) log(`  note: ${i.discarded.length} ${i.impl} window(s) measured again because other processes took the CPU`);
  }
  log(`result: ${file}; wall time ${fmt(r.wallSeconds)} s`);

  // Windows other processes disturbed even after the retries: their ratios say nothing about the code.
  const contended = r.impls.flatMap((i) => allWindows(i).filter((w) => w.contended === true).map((w) => `${w.impl} ${w.kind} (${w.cpu.othersPctOfCore}% of a core)`));
  if (contended.length > 0 && broken.length > 0) {
    log(`bench:gate INCONCLUSIVE: other processes used more than ${run.maxOthersPctOfCore}% of a core during ${contended.join(', ')}; ratios not trusted (would have failed: ${broken.join('; ')})`);
    process.exit(2);
  }
  if (writeBaseline && contended.length > 0) log('baseline NOT written: some windows were contended');
  if (writeBaseline && broken.length > 0) log('baseline NOT written: the run failed');
  if (writeBaseline && broken.length === 0 && contended.length === 0) {
    mkdirSync(dirname(baselineFile), { recursive: true });
    writeFileSync(baselineFile, machineNeutral(JSON.stringify(slim(r, ratios), null, 1)) + '\n');
    log(`baseline written: ${relative(REPO_ROOT, baselineFile)}`);
  }
  if (broken.length > 0) {
    log(`bench:gate FAILED: ${broken.join('; ')}`);
    process.exit(1);
  }
  log('bench:gate passed');
}

main().catch((err: unknown) => {
  log(`bench:gate FAILED: error: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`);
  console.error(err);
  process.exit(1);
});
