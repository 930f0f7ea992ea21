/**
 * One benchmark run: for each implementation in turn (never two at once: the machine has 2
 * cores), start it as a child process, fill the resident set, probe its closed-loop maximum, run
 * the open-loop windows at fractions of the naive service's maximum and the closed-loop window,
 * read its per-thread telemetry around every window, stop it. Used by run.ts and gate.ts.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { CLK_TCK, REPO_ROOT, fmt, machine, systemBusyTicks, type Machine } from '../common.js';
import { drive, type DriveOptions, type DriveResult } from './load.js';
import { driveWrk } from './wrk-drive.js';
import { histogramWindows, type HistogramWindow } from './prom.js';
import { IMPLS, Server, isSlab, CEILING_SCRIPT, isMajor, processTicks, runQueueWaitNs, serverSpec, SHUTDOWN_TIMEOUT_MS, STOP_MARGIN_MS, type ImplName } from './servers.js';
import { RequestFactory, SCENARIOS, buildUniverse, capacityFor, fillBodies, type Universe } from './workload.js';

export interface BenchConfig {
  scenario: string;
  resident: number;
  /** working set = churn x capacity read states, capacity = resident (0: the resident set only, capacity 1.2 x resident) */
  churn: number;
  /** seconds of each measured open-loop window and of the closed-loop window */
  duration: number;
  /** seconds of open-loop load at the target rate before each measured open window (not kept) */
  warmup: number;
  /** seconds of the closed-loop probe every implementation gets first (kept, kind 'probe') */
  probe: number;
  impls: ImplName[];
  modes: ('open' | 'closed')[];
  /** open-loop rates as fractions of the naive service's closed-loop probe */
  rates: number[];
  /** instead of naive's probe: the rate the fractions apply to */
  baseRps?: number;
  /** open-loop windows run at most this many req/s (the gate: the baseline's rate) */
  maxOpenRate?: number;
  connections: number;
  closedConnections: number;
  /** what drives the full closed-loop window (probes and open windows are autocannon's): wrk needs far less CPU (wrk-drive.ts) */
  closedClient?: 'autocannon' | 'wrk';
  pacing: 'smooth' | 'autocannon';
  heapMb: number;
  /** run the servers under node --cpu-prof (profiles in logDir/<impl>-prof; windows carry monotonic times to cut them) */
  cpuProf?: boolean;
  batchOps: number;
  seed: number;
  /**
   * After `impl`'s other windows: the bare route (`against`) is started beside it, idle until its
   * turn, and the two get open-loop windows at the same rate in turn for `rounds` rounds, the order
   * reversed every other round. Whatever the machine does to one window (another VM's load shows up
   * here as minutes of stolen CPU) it then also does to the neighbouring one; the gate's ratios to
   * the bare route are medians over these rounds rather than one window of each minutes apart.
   */
  paired?: { impl: ImplName; against: 'ceiling'; rounds: number; seconds: number; warmup: number; fraction: number };
  /** extra closed-loop windows after the others (the gate's single-op throughput probe) */
  throughputProbe?: { scenario: string; seconds: number; impls: ImplName[] };
  /** the services' --store: memory (the brief's; its Maps live on the main thread's heap) or sqlite (store worker) */
  store: 'memory' | 'sqlite';
  /** a window in which other processes used more than this % of one core is measured again */
  maxOthers: number;
  /** how many times (then it is kept, marked contended) */
  retries: number;
  /** before each window, wait up to this long for other processes to go below maxOthers */
  quietWaitSeconds: number;
  /** read states per second the fill may send (0: unpaced); see fill() */
  fillRate: number;
  /** what runs as "slab" (default dist/src/main.js; the gate's self-check runs the naive service there) */
  slabScript?: string;
  /** impls that get the closed-loop probe (default: all; the gate only needs naive's) */
  probeImpls?: ImplName[];
  /** impls that get the open-loop windows of --rates (default: all; the gate's ceiling gets its open windows in the paired rounds only) */
  openImpls?: ImplName[];
  /** where server logs go (trace-gc lines included), and sqlite data dirs (removed after each run) */
  logDir: string;
}

export interface ThreadWindow {
  thread: string;
  gc: Record<string, { count: number; totalMs: number; maxSinceStartMs: number; maxInWindowMs: number | null }>;
  eventLoopDelay: { p99Ms: number; maxMs: number; meanMs: number } | null;
  heapUsedBeforeMiB: number;
  heapUsedAfterMiB: number;
  /** heap used right after the thread's last Mark-Compact, read at the window's end (null: none yet, or not reported) */
  heapLiveAfterMiB: number | null;
  /** this thread's CPU in the window, % of one core (null: the server does not report it) */
  cpuPctOfCore: number | null;
  /** % of the window this thread was runnable but waiting for a CPU (null: not reported) */
  runQueueWaitPct: number | null;
}

export interface TraceGcWindow {
  /** per isolate (main = first started) */
  byIsolate: { isolate: string; label: string; scavenges: number; majors: number; other: number; totalPauseMs: number; maxPauseMs: number; majorMaxPauseMs: number }[];
  /** every collection in the window: [ms from window start, isolate label, kind, pause ms] */
  events: [number, string, string, number][];
  majors: number;
  scavenges: number;
}

export interface WindowRecord extends DriveResult {
  impl: ImplName;
  kind: 'probe' | 'open' | 'closed' | 'throughput' | 'paired';
  scenario: string;
  /** open loop: the fraction of the base rate */
  fraction: number | null;
  opsPerRequest: number;
  opsPerSec: number;
  /** 2xx + expected 404s (a get or delete of a read state an earlier delete removed) / all */
  server: {
    threads: ThreadWindow[] | null;
    rssBeforeMiB: number | null;
    rssAfterMiB: number | null;
    /** what stats said beyond threads (cache / shard figures) after the window */
    after: unknown;
  };
  traceGc: TraceGcWindow;
  /** users evicted and user misses (loads from the store) during the window, from the server's stats (null: not reported) */
  cache?: { evictions: number; misses: number } | null;
  /**
   * the service's own histograms over the window (slab's /metrics; null elsewhere): server-side
   * duration per route, and store loads on a miss, so a client-side tail can be placed
   */
  serverHistograms?: Record<string, HistogramWindow> | null;
  /** other processes used more than --max-others of a core even on the last attempt */
  contended?: boolean;
  /** one sentence on major GC in the window, from both sources */
  majorGc: string;
  /** the window in process.hrtime microseconds (the clock of --cpu-prof samples): cut a profile with cpuprofile-summary --from/--to */
  monotonicUs?: [number, number];
  cpu: {
    serverPctOfCore: number;
    harnessPctOfCore: number;
    othersPctOfCore: number;
    /**
     * % of the window the server's main (HTTP) thread, and the harness's own thread (the load
     * generator), were runnable but waiting for a CPU: read from outside, so the ceiling has it too
     */
    serverMainRunQueueWaitPct?: number;
    harnessRunQueueWaitPct?: number;
    /** the server's CPU by thread (main, shard-N, store) and `rest`: V8's GC helpers, libuv, piscina (null: not reported) */
    serverThreadsPctOfCore?: Record<string, number> | null;
    loadavgStart: number[];
    loadavgEnd: number[];
  };
}

export interface ImplRecord {
  impl: ImplName;
  command: string;
  logFile: string;
  fill: { readStates: number; users: number; seconds: number; opsPerSec: number } | null;
  statsAfterFill: unknown;
  windows: WindowRecord[];
  /** windows measured again because other processes took the CPU (summaries only) */
  discarded: { kind: WindowRecord['kind']; fraction: number | null; othersPctOfCore: number; latency: WindowRecord['latency']; rps: number }[];
  stop: { code: number | null; seconds: number; killed: boolean } | null;
  /** BenchConfig.paired's rounds, when this is its impl */
  paired?: PairedRound[];
  /** the wait for the fill's and the probe's changes to be flushed before the measured windows */
  settle?: { seconds: number; unflushedAtStart: number | null; settled: boolean };
}

/** One round of BenchConfig.paired: the impl's window and the bare route's, back to back. */
export interface PairedRound {
  round: number;
  first: ImplName;
  self: WindowRecord;
  against: WindowRecord;
}

export interface BenchResult {
  bench: 'tail-latency';
  schema: 1;
  kind: 'run' | 'gate';
  startedAt: string;
  finishedAt: string;
  wallSeconds: number;
  command: string;
  config: BenchConfig & { capacity: number; maxUsers: number; scenarioDescription: string };
  universe: { resident: number; residentUsers: number; workingUsers: number; workingReadStates: number };
  machineBefore: Machine;
  machineAfter: Machine;
  baseRps: number | null;
  baseRpsSource: string;
  impls: ImplRecord[];
  notes: string[];
}

export const NOTES = [
  'The load generator (autocannon, in the harness process) shares the machine\'s cores with the server under test; each window records the CPU the server, the harness and every other process used.',
  'Implementations run one after another, never at the same time; each starts fresh and is filled to the same resident set.',
  'Before the measured windows each service is left idle until the fill\'s and the probe\'s changes are written (--flush-delay 30 s): otherwise the whole resident set is flushed at once inside the first window, a wave no steady load produces. Each window\'s own changes are flushed 30 s after they were made, so windows longer than that include the steady write-behind.',
  'autocannon measures a response from the moment the request was written, so a stalled server that keeps requests from being sent hides latency (coordinated omission). Open-loop windows therefore pace autocannon\'s connections to an even schedule (pacing "smooth") with many connections, and record latency from each request\'s intended send time (the figure reported) as well as from its send time (sendLatency). Every second records requests sent against the target, and how far behind schedule sends were (backlog).',
  'autocannon\'s own overallRate sends each connection\'s per-second quota back to back at each 1-second tick (bursts, not a fixed rate); it is available as --pacing autocannon but is not the default.',
  'Each window starts with a warm-up (--warmup s, 5 by default) on the window\'s own connections and schedule; only requests sent (intended, in open loop) after it are recorded. Results written before 17:40 UTC on 2026-11-26 warmed up on a separate set of connections, so their windows opened 200 fresh connections at once, and the first second of every window was slower for every implementation (p99 in the first second of the gate\'s 40 s windows 31-148 ms against 5-20 ms medians).',
  'Closed-loop windows measure maximum throughput; their latency includes the queueing the load itself causes (latency from send time).',
  'The fill is paced (--fill-rate, 35,000 read states/s by default): the slab service flushes at most 50,000 read states per shard per 1-second tick and, when idle, leaves the rest of a due batch for another --flush-delay, so an unpaced bulk fill would still be flushing in bursts during the measured windows.',
  'Before each window the harness waits (up to --quiet-wait s) until other processes use at most --max-others % of one core; a window during which they used more is measured again (--retries times) and the discarded attempt is listed in the result.',
  'GC evidence: per-thread pauses from each server\'s GET /v1/stats before and after the window (PerformanceObserver, stop-the-world part), and the --trace-gc lines of the server\'s log that arrived inside the window.',
];

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const a = srv.address();
      srv.close(() => (a !== null && typeof a === 'object' ? resolve(a.port) : reject(new Error('no port'))));
    });
  });
}

const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;
const mib = (b: unknown) => (typeof b === 'number' ? round(b / 1048576) : null);

interface TelemetryJson {
  thread: string;
  gc: Record<string, { count: number; seconds: number; maxSeconds: number }>;
  eventLoopDelay: { p99Seconds: number; maxSeconds: number; meanSeconds: number };
  heapUsed: number;
  heapLiveAfterMajorGc?: number | null;
  cpuSeconds?: number | null;
  runQueueWaitSeconds?: number | null;
}
interface StatsJson {
  main?: { rss?: number; heapUsed?: number };
  threads?: TelemetryJson[];
  [k: string]: unknown;
}

/** What a window reads when it opens, to subtract from what it reads at its end. */
interface WindowStart {
  loadavg: number[];
  busy: number;
  srv: number;
  me: NodeJS.CpuUsage;
  mono: bigint;
  rqMain: number;
  rqMe: number;
  /** /v1/stats, and (slab) the /metrics text, both asked for as the window opens */
  stats: Promise<[StatsJson | undefined, string | undefined]>;
}

function threadWindows(before: StatsJson | undefined, after: StatsJson | undefined, delayWindowed: boolean, seconds: number): ThreadWindow[] | null {
  if (after?.threads === undefined) return null;
  return after.threads.map((a) => {
    const b = before?.threads?.find((x) => x.thread === a.thread);
    const gc: ThreadWindow['gc'] = {};
    for (const [kind, g] of Object.entries(a.gc)) {
      const bg = b?.gc[kind];
      const raised = bg === undefined || g.maxSeconds > bg.maxSeconds;
      gc[kind] = {
        count: g.count - (bg?.count ?? 0),
        totalMs: round((g.seconds - (bg?.seconds ?? 0)) * 1000, 2),
        maxSinceStartMs: round(g.maxSeconds * 1000, 2),
        // the recorder keeps the longest pause since start: a window only knows its own when it raised it
        maxInWindowMs: raised && g.count > (bg?.count ?? 0) ? round(g.maxSeconds * 1000, 2) : null,
      };
    }
    return {
      thread: a.thread,
      gc,
      eventLoopDelay: delayWindowed
        ? { p99Ms: round(a.eventLoopDelay.p99Seconds * 1000, 2), maxMs: round(a.eventLoopDelay.maxSeconds * 1000, 2), meanMs: round(a.eventLoopDelay.meanSeconds * 1000, 3) }
        : null,
      heapUsedBeforeMiB: mib(b?.heapUsed) ?? 0,
      heapUsedAfterMiB: mib(a.heapUsed) ?? 0,
      heapLiveAfterMiB: mib(a.heapLiveAfterMajorGc),
      cpuPctOfCore:
        typeof a.cpuSeconds === 'number' && typeof b?.cpuSeconds === 'number' ? round((100 * (a.cpuSeconds - b.cpuSeconds)) / seconds) : null,
      runQueueWaitPct:
        typeof a.runQueueWaitSeconds === 'number' && typeof b?.runQueueWaitSeconds === 'number'
          ? round((100 * (a.runQueueWaitSeconds - b.runQueueWaitSeconds)) / seconds, 2)
          : null,
    };
  });
}

/** Evictions and misses so far: slab sums its shards, naive has one cache. */
function cacheCounters(stats: StatsJson | undefined): { evictions: number; misses: number } | null {
  const shards = stats?.shards as { evictions?: number; misses?: number }[] | undefined;
  const parts = Array.isArray(shards) ? shards : stats?.cache !== undefined ? [stats.cache as { evictions?: number; misses?: number }] : [];
  if (parts.length === 0 || parts.some((p) => typeof p.evictions !== 'number' || typeof p.misses !== 'number')) return null;
  let evictions = 0;
  let misses = 0;
  for (const p of parts) {
    evictions += p.evictions!;
    misses += p.misses!;
  }
  return { evictions, misses };
}

function cacheWindow(before: StatsJson | undefined, after: StatsJson | undefined): { evictions: number; misses: number } | null {
  const b = cacheCounters(before);
  const a = cacheCounters(after);
  return a === null || b === null ? null : { evictions: a.evictions - b.evictions, misses: a.misses - b.misses };
}

/** The server's CPU split by the threads that report their own, the remainder as `rest`. */
function threadCpuSplit(threads: ThreadWindow[] | null, serverPct: number): Record<string, number> | null {
  if (threads === null || threads.some((t) => t.cpuPctOfCore === null)) return null;
  const out: Record<string, number> = {};
  let sum = 0;
  for (const t of threads) {
    out[t.thread] = t.cpuPctOfCore!;
    sum += t.cpuPctOfCore!;
  }
  out.rest = round(Math.max(0, serverPct - sum));
  return out;
}

function traceGcWindow(s: Server, startMs: number, endMs: number): TraceGcWindow {
  const labels = s.isolateLabels();
  const events = s.gcEvents.filter((e) => e.atMs >= startMs && e.atMs <= endMs);
  const by = new Map<string, TraceGcWindow['byIsolate'][number]>();
  for (const [iso, label] of labels) by.set(iso, { isolate: iso, label, scavenges: 0, majors: 0, other: 0, totalPauseMs: 0, maxPauseMs: 0, majorMaxPauseMs: 0 });
  let majors = 0;
  let scavenges = 0;
  for (const e of events) {
    const r = by.get(e.isolate)!;
    if (isMajor(e.kind)) {
      r.majors++;
      majors++;
      r.majorMaxPauseMs = Math.max(r.majorMaxPauseMs, e.pauseMs);
    } else if (e.kind === 'Scavenge') {
      r.scavenges++;
      scavenges++;
    } else r.other++;
    r.totalPauseMs = round(r.totalPauseMs + e.pauseMs, 2);
    r.maxPauseMs = Math.max(r.maxPauseMs, e.pauseMs);
  }
  return {
    byIsolate: [...by.values()].filter((r) => r.scavenges + r.majors + r.other > 0),
    events: events.map((e) => [Math.round(e.atMs - startMs), labels.get(e.isolate) ?? e.isolate, e.kind, e.pauseMs]),
    majors,
    scavenges,
  };
}

function majorGcSentence(threads: ThreadWindow[] | null, t: TraceGcWindow): string {
  const fromStats = threads?.map((x) => ({ thread: x.thread, n: x.gc.major?.count ?? 0, ms: x.gc.major?.totalMs ?? 0, max: x.gc.major?.maxInWindowMs ?? null })) ?? [];
  const statsMajors = fromStats.reduce((a, x) => a + x.n, 0);
  const trace = t.majors === 0 ? 'trace-gc: no Mark-Compact' : `trace-gc: ${t.majors} Mark-Compact (${t.byIsolate.filter((r) => r.majors > 0).map((r) => `${r.label} ${r.majors}, longest ${r.majorMaxPauseMs} ms`).join('; ')})`;
  const stats =
    threads === null
      ? '/v1/stats: no per-thread GC figures'
      : statsMajors === 0
        ? '/v1/stats: no major GC pause on any thread'
        : `/v1/stats: ${fromStats.filter((x) => x.n > 0).map((x) => `${x.thread} ${x.n} major (${x.ms} ms${x.max !== null ? `, longest ${x.max} ms` : ''})`).join('; ')}`;
  const none = t.majors === 0 && statsMajors === 0;
  return (none ? 'no major GC in the window. ' : '') + `${trace}; ${stats}`;
}

function describeWindow(w: WindowRecord): string {
  const l = w.latency;
  const what = w.kind === 'open' ? `open ${w.fraction}x ${fmt(w.targetRps ?? 0)}/s` : `${w.kind} ${w.connections}c${w.wrk !== undefined ? ' wrk' : ''}`;
  const backlog =
    w.kind === 'open'
      ? `  falling behind: ${w.backlog.secondsFallingBehind.length}s (most behind ${w.backlog.maxBehindMs} ms) sent<90%: ${w.backlog.secondsSentBelow90.length}s lag>100ms: ${w.backlog.secondsLagOver100ms.length}s in-flight@end ${w.backlog.inFlightAtEnd} unsent@end ${w.backlog.unsentAtEnd}`
      : '';
  return (
    `  ${w.impl.padEnd(7)} ${w.scenario.padEnd(8)} ${what.padEnd(22)} ${fmt(w.rps).padStart(7)} req/s` +
    (w.opsPerRequest > 1 ? ` (${fmt(w.opsPerSec)} ops/s)` : '') +
    `  p50 ${l.p50Ms} p99 ${l.p99Ms} p99.9 ${l.p999Ms} p99.99 ${l.p9999Ms} max ${l.maxMs} ms (${w.latencyBasis})` +
    `  non2xx ${w.non2xx} err ${w.errors}` +
    (w.cache != null ? `  evictions ${fmt(w.cache.evictions)} misses ${fmt(w.cache.misses)}` : '') +
    `  cpu server ${w.cpu.serverPctOfCore}%` +
    (w.cpu.serverThreadsPctOfCore ? ` (${Object.entries(w.cpu.serverThreadsPctOfCore).map(([k, v]) => `${k} ${v}%`).join(', ')})` : '') +
    ` harness ${w.cpu.harnessPctOfCore}%` +
    (w.wrk !== undefined ? ` wrk ${w.wrk.clientCpuPctOfCore}%${w.wrk.repeated ? ` (came round to its first request: ${fmt(w.wrk.requestsDrawn)} drawn)` : ''}` : '') +
    ` others ${w.cpu.othersPctOfCore}%` +
    backlog +
    `\n          GC: ${w.majorGc}; scavenges ${w.traceGc.scavenges}` +
    `\n          waiting for a CPU (run queue, % of the window): ` +
    (w.server.threads?.some((t) => t.runQueueWaitPct !== null)
      ? w.server.threads.map((t) => `${t.thread} ${t.runQueueWaitPct ?? '-'}%`).join(', ')
      : `server main ${w.cpu.serverMainRunQueueWaitPct ?? '-'}%`) +
    `, harness ${w.cpu.harnessRunQueueWaitPct ?? '-'}%`
  );
}

export function log(msg: string): void {
  process.stdout.write(msg + '\n');
}

/**
 * Fills the resident set through /v1/batch, at most `rate` read states per second (0: as fast as
 * the server takes them). The rate cap exists because the slab service hands the store at most
 * 50,000 read states per shard per flush tick (1 s) and, when idle, leaves the rest of a due batch
 * for a full --flush-delay later: an unpaced fill of 1M read states is then still being flushed
 * minutes later, in 50,000-read-state bursts inside the measured windows.
 */
async function fill(s: Server, u: Universe, f: RequestFactory, batchOps: number, rate: number): Promise<{ seconds: number; ops: number }> {
  const t0 = Date.now();
  let done = 0;
  let inFlightOps = 0;
  let lastPrint = t0;
  const gen = fillBodies(u, f, batchOps, 1024 * 1024 - 1024);
  const worker = async (): Promise<void> => {
    for (;;) {
      const next = gen.next();
      if (next.done === true) return;
      if (rate > 0) {
        // paced: this batch may start once the ones before it fit under the rate
        const ahead = (done + inFlightOps) / rate - (Date.now() - t0) / 1000;
        inFlightOps += next.value.ops;
        if (ahead > 0) await new Promise((r) => setTimeout(r, ahead * 1000));
      } else inFlightOps += next.value.ops;
      const res = await fetch(s.url + '/v1/batch', { method: 'POST', headers: { 'content-type': 'application/json' }, body: next.value.body });
      const text = await res.text();
      if (res.status !== 200) throw new Error(`fill: ${s.spec.impl} answered ${res.status}: ${text.slice(0, 300)}`);
      if (text.includes('"status":5')) throw new Error(`fill: ${s.spec.impl} refused ops: ${text.slice(0, 300)}`);
      done += next.value.ops;
      inFlightOps -= next.value.ops;
      const now = Date.now();
      if (now - lastPrint >= 5000) {
        lastPrint = now;
        log(`    fill ${s.spec.impl}: ${fmt(done)} / ${fmt(u.resident)} read states (${fmt((100 * done) / u.resident)}%), ${fmt(done / ((now - t0) / 1000))}/s`);
      }
    }
  };
  // Two requests in flight: one being parsed while the other is applied.
  await Promise.all([worker(), worker()]);
  return { seconds: (Date.now() - t0) / 1000, ops: done };
}

/** Changed read states not yet confirmed by the store (dirty in the cache or slabs, plus pending writes). */
function unflushed(impl: ImplName, stats: StatsJson | undefined): number | null {
  if (stats === undefined) return null;
  const st = stats.store as { pending?: number; queued?: number; inFlight?: number } | undefined;
  const pending = (st?.pending ?? 0) + (st?.queued ?? 0) + (st?.inFlight ?? 0);
  if (isSlab(impl)) return ((stats.shards as { dirty: number }[] | undefined) ?? []).reduce((a, x) => a + x.dirty, 0) + pending;
  if (impl === 'naive') return ((stats.cache as { dirty?: number } | undefined)?.dirty ?? 0) + pending;
  return null;
}

/**
 * Waits until every change so far is flushed to the store. The fill (and the closed-loop probe)
 * dirty hundreds of thousands of read states within seconds; --flush-delay later they are all
 * written at once, a wave no steady load produces, which would land in the first measured window.
 */
async function settle(s: Server, impl: ImplName, maxMs: number): Promise<{ seconds: number; unflushedAtStart: number | null; settled: boolean }> {
  const t0 = Date.now();
  const first = unflushed(impl, (await s.json('/v1/stats')) as StatsJson | undefined);
  if (first === null || first === 0) return { seconds: 0, unflushedAtStart: first, settled: true };
  log(`    settling: ${fmt(first)} changed read states to be written first (--flush-delay 30 s) ...`);
  let n: number | null = first;
  while (Date.now() - t0 < maxMs) {
    await new Promise((r) => setTimeout(r, 1000));
    n = unflushed(impl, (await s.json('/v1/stats')) as StatsJson | undefined);
    if (n === 0) break;
  }
  const seconds = round((Date.now() - t0) / 1000);
  log(`    settled in ${seconds} s${n !== 0 ? ` (gave up: ${n} still unflushed)` : ''}`);
  return { seconds, unflushedAtStart: first, settled: n === 0 };
}

/**
 * Waits (up to maxWaitSeconds) until, over a 2-second sample, processes other than this one and
 * the server used at most maxOthers % of one core.
 */
async function quiet(serverPid: number | undefined, maxOthers: number, maxWaitSeconds: number): Promise<{ quiet: boolean; othersPct: number; waitedSeconds: number }> {
  const t0 = Date.now();
  for (;;) {
    const busy0 = systemBusyTicks();
    const srv0 = processTicks(serverPid);
    const me0 = process.cpuUsage();
    const s0 = Date.now();
    await new Promise((r) => setTimeout(r, 2000));
    const secs = (Date.now() - s0) / 1000;
    const me = process.cpuUsage(me0);
    const others = (100 * (systemBusyTicks() - busy0 - (processTicks(serverPid) - srv0))) / CLK_TCK / secs - ((me.user + me.system) / 1e6 / secs) * 100;
    const waited = round((Date.now() - t0) / 1000);
    if (others <= maxOthers) return { quiet: true, othersPct: round(Math.max(0, others)), waitedSeconds: waited };
    if (waited >= maxWaitSeconds) return { quiet: false, othersPct: round(others), waitedSeconds: waited };
  }
}

async function smoke(s: Server, f: RequestFactory): Promise<string | null> {
  for (const r of f.samples()) {
    const res = await fetch(s.url + r.path, { method: r.method, headers: r.body !== undefined ? { 'content-type': 'application/json' } : {}, body: r.body });
    const text = await res.text();
    if (res.status < 200 || res.status > 299) return `${r.method} ${r.path.replace(/\d{6,}/g, 'N')} -> ${res.status} ${text.slice(0, 200)}`;
    if (r.path === '/v1/batch' && /"status":5/.test(text)) return `batch inner 5xx: ${text.slice(0, 200)}`;
  }
  return null;
}

export async function runBench(cfg: BenchConfig, command: string, kind: 'run' | 'gate'): Promise<BenchResult> {
  const t0 = Date.now();
  const startedAt = new Date().toISOString();
  const spec = SCENARIOS[cfg.scenario];
  if (spec === undefined) throw new Error(`unknown scenario ${cfg.scenario} (${Object.keys(SCENARIOS).join(', ')})`);
  for (const i of cfg.impls) if (!IMPLS.includes(i)) throw new Error(`unknown impl ${i} (${IMPLS.join(', ')})`);
  const capacity = capacityFor(cfg.resident, cfg.churn);
  const maxUsers = Math.max(1000, Math.ceil(capacity / 10));
  const universe = buildUniverse(cfg.resident, cfg.churn > 0 ? cfg.churn * capacity : cfg.resident);
  const needBase = cfg.modes.includes('open');
  if (needBase && cfg.baseRps === undefined && !cfg.impls.includes('naive')) throw new Error('open loop needs naive in --impl (its closed-loop maximum sets the rates) or --base-rps');
  // naive first: its closed-loop maximum sets every open-loop rate
  const order = [...cfg.impls].sort((a, b) => (a === 'naive' ? -1 : b === 'naive' ? 1 : 0));
  const nodeFlags = ['--trace-gc', `--max-old-space-size=${cfg.heapMb}`];
  const profFlags = (impl: ImplName) => (cfg.cpuProf === true ? ['--cpu-prof', '--cpu-prof-dir', join(cfg.logDir, `${impl}-prof`)] : []);
  mkdirSync(cfg.logDir, { recursive: true });

  const m0 = machine();
  log(
    `machine: ${m0.cores} cores (nproc ${m0.nproc}), ${m0.cpuModel}, node ${m0.node}, ${m0.totalMemMiB} MiB; load average ${m0.loadavg.join(' ')}; ` +
      `the load generator runs in this process, on the same cores as the server`,
  );
  if (m0.loadavg[0] > m0.cores) log(`warning: load average ${m0.loadavg[0]} is above the ${m0.cores} cores before the run: other processes compete for the CPU (see topProcesses in the result)`);
  for (const p of m0.topProcesses.slice(1, 5)) log(`  busy: ${p}`);
  log(
    `scenario ${spec.name}: ${spec.description}\n` +
      `resident ${fmt(cfg.resident)} read states (${fmt(universe.residentUsers)} users); capacity ${fmt(capacity)}, max users ${fmt(maxUsers)}` +
      (cfg.churn > 0 ? `; churn: working set ${fmt(universe.readStates)} read states (${fmt(universe.users)} users), ${cfg.churn}x capacity` : '') +
      `\nstore ${cfg.store}${cfg.store === 'memory' ? ' (the in-process MemoryStore: every flushed read state is a JS object on the main thread of both services)' : ' (SQLite on the store worker thread, synchronous=FULL)'}` +
      `\nimpls ${order.join(', ')}; modes ${cfg.modes.join(',')}; rates ${cfg.rates.join(',')} of ${cfg.baseRps !== undefined ? `${cfg.baseRps}/s` : "naive's closed-loop max"}; ` +
      `${cfg.duration} s windows, ${cfg.warmup} s warm-up, ${cfg.probe} s closed probe; open ${cfg.connections} connections (${cfg.pacing}), closed ${cfg.closedConnections}`,
  );

  let baseRps: number | null = cfg.baseRps ?? null;
  let baseRpsSource = cfg.baseRps !== undefined ? '--base-rps' : '';
  const impls: ImplRecord[] = [];
  let seed = cfg.seed;

  /** Measuring windows on one running service; each kept window goes to rec.windows, each discarded one to rec.discarded. */
  const windowsOn = (server: Server, impl: ImplName, rec: Pick<ImplRecord, 'windows' | 'discarded'>) => {
    const measure = async (kind: WindowRecord['kind'], mode: 'open' | 'closed', seconds: number, f: RequestFactory, rps?: number, fraction?: number, warmup = 0): Promise<WindowRecord> => {
      // the counters are read when the window opens, after the warm-up on the same connections
      let start: WindowStart | undefined;
      const onWindowStart = (): void => {
        start = {
          loadavg: loadavg(),
          busy: systemBusyTicks(),
          srv: processTicks(server.proc.pid),
          me: process.cpuUsage(),
          mono: process.hrtime.bigint() / 1000n,
          rqMain: runQueueWaitNs(server.proc.pid),
          rqMe: runQueueWaitNs(),
          stats: (async (): Promise<[StatsJson | undefined, string | undefined]> => {
            const b = (await server.json('/v1/stats')) as StatsJson | undefined;
            // slab: a /metrics scrape starts a new event-loop delay window on every thread (naive: the stats read did)
            return [b, isSlab(impl) ? ((await server.json('/metrics')) as string | undefined) : undefined];
          })(),
        };
      };
      const opts: DriveOptions = {
        url: server.url,
        mode,
        connections: mode === 'open' ? cfg.connections : cfg.closedConnections,
        rps,
        pacing: cfg.pacing,
        seconds,
        warmupSeconds: warmup,
        onWindowStart,
        factory: f,
        record: true,
        serverPid: server.proc.pid,
      };
      const d = kind === 'closed' && cfg.closedClient === 'wrk' ? await driveWrk(opts, expectedRps(rec.windows)) : await drive(opts);
      const s0 = start!; // drive opens every window, an empty one included
      const [before, metricsBefore] = await s0.stats;
      const delayWindowed = impl === 'naive' || metricsBefore !== undefined;
      const me = process.cpuUsage(s0.me);
      const mono1 = process.hrtime.bigint() / 1000n;
      const rqMain = runQueueWaitNs(server.proc.pid) - s0.rqMain;
      const rqMe = runQueueWaitNs() - s0.rqMe;
      const srv = processTicks(server.proc.pid) - s0.srv;
      const busy = systemBusyTicks() - s0.busy;
      const after = (await server.json('/v1/stats')) as StatsJson | undefined;
      const metricsAfter = metricsBefore !== undefined ? ((await server.json('/metrics')) as string | undefined) : undefined;
      const threads = threadWindows(before, after, delayWindowed, d.seconds);
      const tg = traceGcWindow(server, d.startMs, d.endMs);
      const serverPct = (100 * srv) / CLK_TCK / d.seconds;
      const harnessPct = ((me.user + me.system) / 1e6 / d.seconds) * 100;
      // wrk, when it drove the window, is the load generator: not one of the "other" processes
      const clientPct = d.wrk?.clientCpuPctOfCore ?? 0;
      const busyPct = (100 * busy) / CLK_TCK / d.seconds;
      const { threads: _t, main: _m, ...rest } = after ?? {};
      return {
        ...d,
        impl,
        kind,
        scenario: f.scenario.name,
        fraction: fraction ?? null,
        opsPerRequest: f.scenario.opsPerRequest,
        opsPerSec: d.rps * f.scenario.opsPerRequest,
        server: { threads, rssBeforeMiB: mib(before?.main?.rss), rssAfterMiB: mib(after?.main?.rss), after: rest },
        traceGc: tg,
        cache: cacheWindow(before, after),
        serverHistograms: histogramWindows(metricsBefore, metricsAfter),
        majorGc: majorGcSentence(threads, tg),
        monotonicUs: [Number(s0.mono), Number(mono1)],
        cpu: {
          serverPctOfCore: round(serverPct),
          harnessPctOfCore: round(harnessPct),
          othersPctOfCore: round(Math.max(0, busyPct - serverPct - harnessPct - clientPct)),
          serverThreadsPctOfCore: threadCpuSplit(threads, serverPct),
          serverMainRunQueueWaitPct: round(rqMain / 1e7 / d.seconds, 2),
          harnessRunQueueWaitPct: round(rqMe / 1e7 / d.seconds, 2),
          loadavgStart: s0.loadavg.map((x) => round(x, 2)),
          loadavgEnd: loadavg().map((x) => round(x, 2)),
        },
      };
    };

    /**
     * A measured window: wait for the other processes to be quiet, warm up (open loop: at the
     * window's rate; on the window's own connections and schedule), measure; if other processes
     * still took more than --max-others of a core during the window, keep it as discarded and
     * measure again (--retries times).
     */
    const windowOf = async (kind: WindowRecord['kind'], mode: 'open' | 'closed', seconds: number, f: RequestFactory, rps?: number, fraction?: number, warmup = 0): Promise<WindowRecord> => {
      // paired windows neither wait nor retry: the neighbouring window sees the same machine, and the median over rounds drops an outlier
      const paired = kind === 'paired';
      for (let attempt = 0; ; attempt++) {
        if (!paired) {
          const q = await quiet(server.proc.pid, cfg.maxOthers, cfg.quietWaitSeconds);
          if (!q.quiet) log(`    other processes still use ${q.othersPct}% of a core after ${cfg.quietWaitSeconds} s of waiting: measuring anyway`);
          else if (q.waitedSeconds >= 2) log(`    waited ${q.waitedSeconds} s for other processes to go below ${cfg.maxOthers}% of a core`);
        }
        const w = await measure(kind, mode, seconds, f, rps, fraction, warmup);
        const contended = w.cpu.othersPctOfCore > cfg.maxOthers;
        log(describeWindow(w));
        if (contended && !paired && attempt < cfg.retries) {
          log(`    discarded: other processes used ${w.cpu.othersPctOfCore}% of a core (> ${cfg.maxOthers}%); measuring again`);
          rec.discarded.push({ kind, fraction: fraction ?? null, othersPctOfCore: w.cpu.othersPctOfCore, latency: w.latency, rps: w.rps });
          continue;
        }
        w.contended = contended;
        rec.windows.push(w);
        return w;
      }
    };
    return windowOf;
  };

  const pairedRounds = async (p: NonNullable<BenchConfig['paired']>, selfServer: Server, selfFactory: RequestFactory, rps: number, pairSeed: number): Promise<PairedRound[]> => {
    const logFile = join(cfg.logDir, `${p.against}-paired.log`);
    const other = new Server(serverSpec(p.against, await freePort(), { capacity, maxUsers, batchOps: cfg.batchOps, store: cfg.store, dataDir: join(cfg.logDir, `${p.against}-paired-data`) }, nodeFlags, logFile));
    const rounds: PairedRound[] = [];
    try {
      await other.waitReady();
      const otherFactory = new RequestFactory(universe, spec, pairSeed);
      const problem = await smoke(other, otherFactory);
      if (problem !== null) throw new Error(`${p.against} (paired): smoke request failed: ${problem}`);
      log(`\n  paired rounds: ${p.impl} and ${p.against} (pid ${other.proc.pid}) in turn, ${p.rounds} x ${p.seconds} s each at ${fmt(rps)} req/s, order reversed every other round`);
      const sink: Pick<ImplRecord, 'windows' | 'discarded'> = { windows: [], discarded: [] };
      const selfWindow = windowsOn(selfServer, p.impl, sink);
      const otherWindow = windowsOn(other, p.against, sink);
      for (let round = 0; round < p.rounds; round++) {
        const selfFirst = round % 2 === 0;
        const run = (self: boolean) => (self ? selfWindow : otherWindow)('paired', 'open', p.seconds, self ? selfFactory : otherFactory, rps, p.fraction, p.warmup);
        const a = await run(selfFirst);
        const b = await run(!selfFirst);
        rounds.push({ round, first: selfFirst ? p.impl : p.against, self: selfFirst ? a : b, against: selfFirst ? b : a });
      }
    } finally {
      await other.stop(SHUTDOWN_TIMEOUT_MS + STOP_MARGIN_MS);
    }
    return rounds;
  };

  for (const impl of order) {
    const logFile = join(cfg.logDir, `${impl}.log`);
    const server = new Server(
      serverSpec(impl, await freePort(), { capacity, maxUsers, batchOps: cfg.batchOps, store: cfg.store, dataDir: join(cfg.logDir, `${impl}-data`) }, [...nodeFlags, ...profFlags(impl)], logFile, cfg.slabScript),
    );
    const rec: ImplRecord = { impl, command: server.commandLine, logFile, fill: null, statsAfterFill: undefined, windows: [], discarded: [], stop: null };
    impls.push(rec);
    try {
      await server.waitReady();
      log(`\n${impl}: pid ${server.proc.pid}: ${server.commandLine}`);
      const factory = new RequestFactory(universe, spec, seed++);
      if (impl !== 'ceiling') {
        const fr = await fill(server, universe, factory, 10_000, cfg.fillRate);
        rec.fill = { readStates: fr.ops, users: universe.residentUsers, seconds: round(fr.seconds, 2), opsPerSec: Math.round(fr.ops / fr.seconds) };
        rec.statsAfterFill = await server.json('/v1/stats');
        log(`    filled ${fmt(fr.ops)} read states in ${fmt(fr.seconds, 1)} s (${fmt(rec.fill.opsPerSec)}/s)`);
      }
      const problem = await smoke(server, factory);
      if (problem !== null) throw new Error(`${impl}: smoke request failed: ${problem}`);

      const windowOf = windowsOn(server, impl, rec);

      // 1. closed-loop warm-up (JIT, the fill's garbage), then the closed-loop probe (naive's sets the open-loop rates)
      if (cfg.probe > 0 && (cfg.probeImpls === undefined || cfg.probeImpls.includes(impl))) {
        const p = await windowOf('probe', 'closed', cfg.probe, factory, undefined, undefined, cfg.warmup);
        if (impl === 'naive' && baseRps === null) {
          baseRps = p.rps;
          baseRpsSource = `naive closed-loop probe (${cfg.probe} s, ${cfg.closedConnections} connections, ${spec.name})`;
        }
      }
      // 2. no flush wave from the fill or the probe in the measured windows
      rec.settle = await settle(server, impl, 120_000);
      // 3. open loop at each fraction of the base rate
      if (cfg.modes.includes('open') && (cfg.openImpls === undefined || cfg.openImpls.includes(impl))) {
        if (baseRps === null) throw new Error('no base rate: naive must run first (with --probe > 0) or give --base-rps');
        for (const fr of cfg.rates) await windowOf('open', 'open', cfg.duration, factory, Math.min(Math.round(fr * baseRps), cfg.maxOpenRate ?? Infinity), fr, cfg.warmup);
      }
      // 4. closed loop, full length
      if (cfg.modes.includes('closed')) await windowOf('closed', 'closed', cfg.duration, factory, undefined, undefined, cfg.warmup);
      // 5. extra throughput probe
      const tp = cfg.throughputProbe;
      if (tp !== undefined && tp.impls.includes(impl)) {
        const tf = new RequestFactory(universe, SCENARIOS[tp.scenario], seed++);
        const problem2 = await smoke(server, tf);
        if (problem2 !== null) throw new Error(`${impl}: smoke request failed: ${problem2}`);
        await windowOf('throughput', 'closed', tp.seconds, tf, undefined, undefined, Math.min(cfg.warmup, 3));
      }
      // 6. paired rounds against the bare route
      if (cfg.paired !== undefined && cfg.paired.impl === impl) {
        if (baseRps === null) throw new Error('paired rounds need a base rate');
        rec.paired = await pairedRounds(cfg.paired, server, factory, Math.min(Math.round(cfg.paired.fraction * baseRps), cfg.maxOpenRate ?? Infinity), seed++);
      }
    } finally {
      rec.stop = await server.stop(SHUTDOWN_TIMEOUT_MS + STOP_MARGIN_MS);
      if (cfg.store === 'sqlite') rmSync(join(cfg.logDir, `${impl}-data`), { recursive: true, force: true });
      if (rec.stop.code !== 0) log(`    ${impl} stopped with exit code ${rec.stop.code}${rec.stop.killed ? ` (SIGKILL after ${(SHUTDOWN_TIMEOUT_MS + STOP_MARGIN_MS) / 1000} s)` : ''} in ${rec.stop.seconds} s`);
    }
  }
  const m1 = machine();
  return {
    bench: 'tail-latency',
    schema: 1,
    kind,
    startedAt,
    finishedAt: new Date().toISOString(),
    wallSeconds: round((Date.now() - t0) / 1000),
    command,
    config: { ...cfg, logDir: cfg.logDir.replace(REPO_ROOT, ''), capacity, maxUsers, scenarioDescription: spec.description },
    universe: { resident: universe.resident, residentUsers: universe.residentUsers, workingUsers: universe.users, workingReadStates: universe.readStates },
    machineBefore: m0,
    machineAfter: m1,
    baseRps: baseRps === null ? null : Math.round(baseRps),
    baseRpsSource,
    impls,
    notes: [...NOTES, `Ceiling: ${CEILING_SCRIPT}.`],
  };
}

/** The window the headline figures come from: the open window at `fraction` (else the first open one). */
export function openWindow(r: BenchResult, impl: ImplName, fraction?: number): WindowRecord | undefined {
  const ws = r.impls.find((i) => i.impl === impl)?.windows.filter((w) => w.kind === 'open') ?? [];
  return (fraction !== undefined ? ws.find((w) => w.fraction === fraction) : undefined) ?? ws[0];
}

/** What a closed-loop window on this service should reach: its probe's rate, with room (wrk-drive.ts draws its requests for that). */
function expectedRps(windows: readonly WindowRecord[]): number {
  const probe = windows.find((w) => w.kind === 'probe');
  return probe !== undefined ? probe.rps * 1.5 : 40_000;
}

/** Closed-loop throughput of an impl: the full closed window if any, else the probe. */
export function closedWindow(r: BenchResult, impl: ImplName, kind?: WindowRecord['kind']): WindowRecord | undefined {
  const ws = r.impls.find((i) => i.impl === impl)?.windows ?? [];
  if (kind !== undefined) return ws.find((w) => w.kind === kind);
  return ws.find((w) => w.kind === 'closed') ?? ws.find((w) => w.kind === 'probe');
}
