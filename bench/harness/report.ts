/**
 * Regenerates the tail-latency tables of bench/tail-latency.md (between `<!-- bench:begin -->` and
 * `<!-- bench:end -->`; appended at the end when the markers are absent, the rest of the file
 * untouched) and the plots in bench/plots/*.svg from result files of `npm run bench`.
 *
 *   npm run bench:report                       # latest result per scenario / churn / resident
 *   npm run bench:report -- --files bench/results/a.json,bench/results/b.json
 *   npm run bench:report -- --results bench/results --md bench/tail-latency.md --plots bench/plots
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { basename, isAbsolute, join, relative } from 'node:path';
import * as hdr from 'hdr-histogram-js';
import { REPO_ROOT, fmt, parseFlags, strFlag } from '../common.js';
import type { BenchResult, ImplRecord, WindowRecord } from './core.js';
import { BACKLOG_BEHIND_MS, scheduleDebt } from './load.js';
import type { ImplName } from './servers.js';
import { COLORS, SPECTRUM_TICKS, renderChart, type Marker, type Series } from './svg.js';

/** The backlog test (load.ts scheduleDebt), computed again for result files written before it existed. */
function debtOf(w: WindowRecord): { fallingBehind: number[]; maxBehindMs: number } {
  if (w.backlog.secondsFallingBehind !== undefined) return { fallingBehind: w.backlog.secondsFallingBehind, maxBehindMs: w.backlog.maxBehindMs };
  return scheduleDebt(w.perSecond.filter((x) => x.t < Math.floor(w.seconds)), w.targetRps ?? 0);
}

const BEGIN = '<!-- bench:begin -->';
const END = '<!-- bench:end -->';
const SCENARIO_ORDER = ['mixed', 'mentions', 'connect', 'batch', 'single'];
const IMPL_ORDER: ImplName[] = ['slab', 'slab-nojournal', 'slab-fsync', 'slab-group', 'naive', 'ceiling'];

const abs = (p: string) => (isAbsolute(p) ? p : join(REPO_ROOT, p));
const rel = (p: string) => relative(REPO_ROOT, p);

function load(file: string): BenchResult | undefined {
  try {
    const r = JSON.parse(readFileSync(file, 'utf8')) as BenchResult;
    return r.bench === 'tail-latency' && r.kind === 'run' ? r : undefined;
  } catch {
    return undefined;
  }
}

function storeOf(r: BenchResult): string {
  return r.config.store ?? 'memory';
}

function slugOf(r: BenchResult): string {
  return `${r.config.scenario}${r.config.churn > 0 ? '-churn' : ''}${storeOf(r) !== 'memory' ? `-${storeOf(r)}` : ''}-${r.config.resident}`;
}

function titleOf(r: BenchResult): string {
  return (
    `${r.config.scenario}, ${fmt(r.config.resident)} resident read states, --store ${storeOf(r)}` + (r.config.churn > 0 ? `, churn (working set ${r.config.churn}x capacity)` : '')
  );
}

function windows(r: BenchResult, impl: ImplName): WindowRecord[] {
  return r.impls.find((i) => i.impl === impl)?.windows ?? [];
}

function openAt(r: BenchResult, impl: ImplName, fraction: number): WindowRecord | undefined {
  return windows(r, impl).find((w) => w.kind === 'open' && w.fraction === fraction);
}

function closedOf(r: BenchResult, impl: ImplName): WindowRecord | undefined {
  const ws = windows(r, impl);
  return ws.find((w) => w.kind === 'closed') ?? ws.find((w) => w.kind === 'probe');
}

function fractions(r: BenchResult): number[] {
  return [...new Set(r.impls.flatMap((i) => i.windows.filter((w) => w.kind === 'open').map((w) => w.fraction ?? 0)))].sort((a, b) => a - b);
}

const ms = (x: number) => (x >= 100 ? fmt(x, 0) : x >= 10 ? fmt(x, 1) : x >= 1 ? fmt(x, 2) : fmt(x, 3));
const ratio = (a: number | undefined, b: number | undefined) => (a !== undefined && b !== undefined && b > 0 ? a / b : undefined);
const rfmt = (x: number | undefined) => (x === undefined ? '-' : x >= 10 ? fmt(x, 1) : x >= 1 ? fmt(x, 2) : fmt(x, 3));

// ---- plots -----------------------------------------------------------------------------------

function spectrumSeries(w: WindowRecord, impl: ImplName): Series {
  const h = hdr.decodeFromCompressedBase64(w.hdr);
  const pts: [number, number][] = [];
  const xEnd = Math.min(5, Math.log10(Math.max(10, h.totalCount)));
  for (let x = 0; x <= xEnd + 1e-9; x += 0.025) {
    const p = 100 * (1 - 10 ** -x);
    pts.push([x, h.getValueAtPercentile(p) / 1000]);
  }
  pts.push([xEnd, h.maxValue / 1000]);
  h.destroy();
  return { name: `${impl} (max ${ms(w.latency.maxMs)} ms)`, color: COLORS[impl], points: pts };
}

function spectrumSvg(r: BenchResult, ws: [ImplName, WindowRecord][], what: string): string {
  const w0 = ws[0][1];
  return renderChart({
    title: `Latency by percentile: ${titleOf(r)}`,
    subtitle: `${what}; latency from ${w0.latencyBasis === 'intended' ? 'intended send time' : 'send time'}; ${r.startedAt.slice(0, 16).replace('T', ' ')} UTC`,
    xLabel: 'percentile',
    yLabel: 'latency',
    xTicks: SPECTRUM_TICKS,
    xMin: 0,
    xMax: 5,
    yLog: true,
    // from a decade below the lowest median: the first percentiles of a fast server are noise
    yMin: 10 ** (Math.floor(Math.log10(Math.max(0.001, Math.min(...ws.map(([, w]) => w.latency.p50Ms))))) - 1),
    series: ws.map(([impl, w]) => spectrumSeries(w, impl)),
  });
}

function timeSvg(r: BenchResult, ws: [ImplName, WindowRecord][], what: string): string {
  const series: Series[] = [];
  const markers: Marker[] = [];
  let xMax = 1;
  for (const [impl, w] of ws) {
    const whole = w.perSecond.filter((s) => s.t < Math.floor(w.seconds));
    xMax = Math.max(xMax, whole.length);
    series.push({ name: `${impl} p99`, color: COLORS[impl], points: whole.map((s) => [s.t + 0.5, s.p99Ms]) });
    series.push({ name: `${impl} max`, color: COLORS[impl], dashed: true, points: whole.map((s) => [s.t + 0.5, s.maxMs]) });
    if (impl !== 'ceiling') {
      for (const [t, thread, kind, pause] of w.traceGc.events) {
        if (kind.startsWith('Mark-Compact') || kind.startsWith('Mark-Sweep')) markers.push({ x: t / 1000, color: COLORS[impl], label: `${impl} ${thread}: ${kind}, ${pause} ms pause, at ${fmt(t / 1000, 1)} s` });
      }
    }
  }
  const step = xMax > 60 ? 20 : xMax > 20 ? 10 : 5;
  const xTicks: [number, string][] = [];
  for (let x = 0; x <= xMax; x += step) xTicks.push([x, `${x} s`]);
  return renderChart({
    title: `Latency over time: ${titleOf(r)}`,
    subtitle: `${what}; per-second p99 (solid) and max (dashed); triangles: major GC (trace-gc Mark-Compact) in that server`,
    xLabel: 'seconds into the measured window',
    yLabel: 'latency',
    xTicks,
    xMin: 0,
    xMax,
    yLog: true,
    series,
    markers,
    markerLegend: [
      { color: COLORS.naive, label: 'naive major GC' },
      { color: COLORS.slab, label: 'slab major GC' },
    ],
  });
}

// ---- markdown --------------------------------------------------------------------------------

/**
 * What the service measured itself in a window (its /metrics histograms): requests from parse to
 * reply per route and store loads on a miss, as bucket bounds (the histograms' resolution), next
 * to the client's p99.9: a client tail far above them was spent outside the request's handling.
 */
function serverSideSentence(w: WindowRecord): string {
  const h = w.serverHistograms!;
  const ms = (x: number | null) => (x === null ? '> 5 s' : `<= ${fmt(x, x < 1 ? 1 : 0)} ms`);
  const routes = Object.entries(h)
    .filter(([k]) => k.startsWith('http_request_duration_seconds'))
    .sort((a, b) => b[1].count - a[1].count)
    .map(([k, v]) => `${/route="([^"]+)"/.exec(k)?.[1] ?? k} ${fmt(v.count)} (p99 ${ms(v.p99AtMostMs)}, p99.9 ${ms(v.p999AtMostMs)})`);
  const loads = h['store_load_duration_seconds'];
  return (
    `${w.impl} ${windowLabel(w)}, measured inside the service: client p99.9 ${w.latency.p999Ms} ms; server-side per route ${routes.join(', ')}` +
    (loads !== undefined ? `; store loads on a miss ${fmt(loads.count)}, mean ${loads.meanMs} ms, p99 ${ms(loads.p99AtMostMs)}, p99.9 ${ms(loads.p999AtMostMs)}.` : '; no store loads.')
  );
}

function windowLabel(w: WindowRecord): string {
  return w.kind === 'open' ? `open ${w.fraction}x` : w.kind === 'probe' ? `closed probe` : w.kind;
}

/** non-2xx count, said to be 404s when all are: gets and deletes of read states that do not exist are answered so */
function non2xxText(w: WindowRecord): string {
  if (w.non2xx === 0) return '0';
  const bad = Object.entries(w.statuses).filter(([code]) => !code.startsWith('2'));
  return `${fmt(w.non2xx)} (${bad.every(([code]) => code === '404') ? 'all 404' : bad.map(([code, n]) => `${code}: ${fmt(n)}`).join(', ')})`;
}

function latencyTable(r: BenchResult): string {
  const head = '| impl | window | target req/s | req/s | p50 ms | p90 ms | p99 ms | p99.9 ms | p99.99 ms | max ms | non-2xx / errors | backlog s (most behind) | server CPU | other CPU |';
  const rows = [head, '|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|'];
  for (const impl of IMPL_ORDER) {
    for (const w of windows(r, impl)) {
      if (w.kind === 'throughput') continue;
      const l = w.latency;
      const debt = w.kind === 'open' ? debtOf(w) : undefined;
      const backlog = debt !== undefined ? `${debt.fallingBehind.length} (${fmt(debt.maxBehindMs, 0)} ms)` : '-';
      rows.push(
        `| ${impl} | ${windowLabel(w)} | ${w.targetRps !== null ? fmt(w.targetRps) : '-'} | ${fmt(w.rps)}${w.opsPerRequest > 1 ? ` (${fmt(w.opsPerSec)} ops/s)` : ''} | ${ms(l.p50Ms)} | ${ms(l.p90Ms)} | ${ms(l.p99Ms)} | ${ms(l.p999Ms)} | ${ms(l.p9999Ms)} | ${ms(l.maxMs)} | ${non2xxText(w)} / ${w.errors} | ${backlog} | ${w.cpu.serverPctOfCore}% | ${w.cpu.othersPctOfCore}% |`,
      );
    }
  }
  return rows.join('\n');
}

function gcTable(r: BenchResult): string {
  const rows = [
    '| impl | window | thread | minor GC: n, total ms | major GC: n, total ms, longest | event-loop delay p99 / max ms | heap used MiB (live after last Mark-Compact) | trace-gc: Scavenge, Mark-Compact (longest ms) |',
    '|---|---|---|--:|--:|--:|--:|--:|',
  ];
  for (const impl of IMPL_ORDER) {
    for (const w of windows(r, impl)) {
      if (w.kind === 'probe' || w.kind === 'throughput') continue;
      const threads = w.server.threads ?? [];
      if (threads.length === 0) {
        const t = w.traceGc.byIsolate.find((x) => x.label === 'main');
        rows.push(`| ${impl} | ${windowLabel(w)} | main | - | - | - | - | ${t?.scavenges ?? 0}, ${t?.majors ?? 0}${t !== undefined && t.majors > 0 ? ` (${t.majorMaxPauseMs})` : ''} |`);
        continue;
      }
      threads.forEach((t, k) => {
        const mi = t.gc.minor;
        const ma = t.gc.major;
        // trace-gc isolates in start order: main first, then workers; match main by label, workers by order
        // trace-gc knows isolates, not thread names: the main thread's is the first started; the workers' are summed
        const main = w.traceGc.byIsolate.find((x) => x.label === 'main');
        const workers = w.traceGc.byIsolate.filter((x) => x.label !== 'main');
        const iso =
          k === 0
            ? main
            : k === 1 && workers.length > 0
              ? { scavenges: workers.reduce((a, x) => a + x.scavenges, 0), majors: workers.reduce((a, x) => a + x.majors, 0), majorMaxPauseMs: Math.max(...workers.map((x) => x.majorMaxPauseMs)) }
              : undefined;
        rows.push(
          `| ${impl} | ${windowLabel(w)} | ${t.thread} | ${mi?.count ?? 0}, ${mi?.totalMs ?? 0} | ${ma?.count ?? 0}, ${ma?.totalMs ?? 0}, ${ma?.maxInWindowMs ?? (ma !== undefined && ma.count > 0 ? `<= ${ma.maxSinceStartMs}` : '-')} | ${t.eventLoopDelay !== null ? `${t.eventLoopDelay.p99Ms} / ${t.eventLoopDelay.maxMs}` : '-'} | ${t.heapUsedBeforeMiB} -> ${t.heapUsedAfterMiB}${t.heapLiveAfterMiB != null ? ` (${t.heapLiveAfterMiB})` : ''} | ${iso !== undefined ? `${k === 1 ? 'all workers: ' : ''}${iso.scavenges}, ${iso.majors}${iso.majors > 0 ? ` (${iso.majorMaxPauseMs})` : ''}` : k === 0 ? '0, 0' : '-'} |`,
        );
      });
    }
  }
  return rows.join('\n');
}

interface Headline {
  fraction: number;
  rps: number | null;
  p999: number | undefined;
  max: number | undefined;
  p999Ceiling: number | undefined;
  p99: number | undefined;
}

function headlines(r: BenchResult): Headline[] {
  return fractions(r).map((f) => {
    const s = openAt(r, 'slab', f);
    const n = openAt(r, 'naive', f);
    const c = openAt(r, 'ceiling', f);
    return {
      fraction: f,
      rps: s?.targetRps ?? n?.targetRps ?? null,
      p999: ratio(s?.latency.p999Ms, n?.latency.p999Ms),
      max: ratio(s?.latency.maxMs, n?.latency.maxMs),
      p999Ceiling: ratio(s?.latency.p999Ms, c?.latency.p999Ms),
      p99: ratio(s?.latency.p99Ms, n?.latency.p99Ms),
    };
  });
}

function section(r: BenchResult, file: string, plotsDir: string, mdDir: string, slug: string): string {
  const out: string[] = [];
  out.push(`### ${titleOf(r)}`);
  out.push('');
  const m = r.machineBefore;
  const others = r.impls.flatMap((i) => i.windows.map((w) => w.cpu.othersPctOfCore));
  out.push(
    `Run of ${r.startedAt.slice(0, 16).replace('T', ' ')} UTC (${fmt(r.wallSeconds / 60, 1)} min), \`${rel(file)}\`. Machine: ${m.cores} cores (${m.cpuModel}), node ${m.node}, load average before ${m.loadavg.join(' / ')}; ` +
      `other processes used ${fmt(Math.min(...others))}-${fmt(Math.max(...others))}% of a core during the windows; the load generator ran on the same cores. Code: ${m.git.head}${m.git.dirty.length > 0 ? ` with uncommitted src/workers changes (diff ${m.git.diffSha})` : ''}.`,
  );
  out.push('');
  out.push(`Scenario: ${r.config.scenarioDescription}. ${fmt(r.universe.residentUsers)} users; capacity ${fmt(r.config.capacity)}, max users ${fmt(r.config.maxUsers)}${r.config.churn > 0 ? `; working set ${fmt(r.universe.workingReadStates)} read states of ${fmt(r.universe.workingUsers)} users` : ''}. Open loop: ${r.config.connections} connections, pacing ${r.config.pacing}, rates as fractions of ${r.baseRps !== null ? `${fmt(r.baseRps)} req/s (${r.baseRpsSource})` : '-'}; closed loop: ${r.config.closedConnections} connections; ${r.config.duration} s windows.`);
  out.push('');
  out.push(`Reproduce (every figure and table of this section): \`${r.command}\`, then \`npm run bench:report\`.`);
  out.push('');
  const hs = headlines(r);
  const sc = closedOf(r, 'slab');
  const cc = closedOf(r, 'ceiling');
  const nc = closedOf(r, 'naive');
  out.push('Headline ratios (same run; below 1 means slab is lower):');
  out.push('');
  for (const h of hs) {
    const s = openAt(r, 'slab', h.fraction);
    const n = openAt(r, 'naive', h.fraction);
    const c = openAt(r, 'ceiling', h.fraction);
    out.push(
      `- open loop ${h.fraction}x (${h.rps !== null ? fmt(h.rps) : '-'} req/s): slab p99.9 / naive p99.9 = **${rfmt(h.p999)}** (${s !== undefined ? ms(s.latency.p999Ms) : '-'} / ${n !== undefined ? ms(n.latency.p999Ms) : '-'} ms); ` +
        `slab max / naive max = **${rfmt(h.max)}** (${s !== undefined ? ms(s.latency.maxMs) : '-'} / ${n !== undefined ? ms(n.latency.maxMs) : '-'} ms); ` +
        `slab p99.9 / ceiling p99.9 = **${rfmt(h.p999Ceiling)}** (ceiling ${c !== undefined ? ms(c.latency.p999Ms) : '-'} ms)`,
    );
  }
  if (sc !== undefined) {
    out.push(
      `- closed loop (${sc.kind === 'probe' ? `${fmt(sc.seconds, 0)} s probe` : `${fmt(sc.seconds, 0)} s`}, ${sc.connections} connections${sc.wrk !== undefined ? `, wrk at ${sc.wrk.clientCpuPctOfCore}% of a core` : ''}): slab ${fmt(sc.rps)} req/s${sc.opsPerRequest > 1 ? ` (${fmt(sc.opsPerSec)} read-state ops/s)` : ''}; ` +
        `slab / ceiling = **${cc !== undefined && loadGenPct(cc) >= LOADGEN_BOUND_PCT ? '<= ' : ''}${rfmt(ratio(sc.rps, cc?.rps))}** (ceiling ${cc !== undefined ? fmt(cc.rps) : '-'}${cc?.wrk !== undefined ? `, wrk at ${cc.wrk.clientCpuPctOfCore}%` : ''}${cc !== undefined && loadGenPct(cc) >= LOADGEN_BOUND_PCT ? `, bound by the load generator at ${loadGenPct(cc)}% of a core: an upper bound` : ''}); slab / naive = **${rfmt(ratio(sc.rps, nc?.rps))}** (naive ${nc !== undefined ? fmt(nc.rps) : '-'})`,
    );
  }
  out.push('');
  for (const i of r.impls) {
    const opens = i.windows.filter((w) => w.kind === 'open' || w.kind === 'closed');
    const noMajor = opens.filter((w) => w.majorGc.startsWith('no major GC'));
    if (i.impl !== 'ceiling' && noMajor.length > 0) out.push(`- ${i.impl}: no major GC in ${noMajor.map(windowLabel).join(', ')} (neither trace-gc nor /v1/stats).`);
    for (const w of i.windows.filter((x) => x.kind === 'open')) {
      const debt = debtOf(w);
      if (debt.fallingBehind.length > 0 || w.backlog.secondsSentBelow90.length > 0) {
        out.push(
          `- ${i.impl} ${windowLabel(w)}: **fell behind the fixed load** in ${debt.fallingBehind.length} s of ${Math.floor(w.seconds)} (more than ${BACKLOG_BEHIND_MS} ms behind the schedule and further behind than in each of the 3 s before; at most ${fmt(debt.maxBehindMs, 0)} ms behind; sent < 90% of the target in ${w.backlog.secondsSentBelow90.length} s): the intended-time latency above includes that wait.`,
        );
      } else if (w.backlog.secondsLagOver100ms.length > 0) {
        out.push(
          `- ${i.impl} ${windowLabel(w)}: kept up with the fixed load (at most ${fmt(debt.maxBehindMs, 0)} ms behind the schedule); in ${w.backlog.secondsLagOver100ms.length} s a connection sent over 100 ms late because it waited for one slow answer (the tail above).`,
        );
      }
    }
  }
  const churned = r.impls.flatMap((i) => i.windows.filter((w) => (w.kind === 'open' || w.kind === 'closed') && w.cache != null));
  if (r.config.churn > 0 && churned.length > 0) {
    out.push(
      `- churn, users evicted / users loaded on a miss in each window: ${churned.map((w) => `${w.impl} ${windowLabel(w)} ${fmt(w.cache!.evictions)} / ${fmt(w.cache!.misses)} (${fmt(w.cache!.misses / w.seconds, 0)} loads/s)`).join('; ')}.`,
    );
  }
  const measuredInside = r.impls.flatMap((i) => i.windows.filter((w) => w.kind === 'open' && w.serverHistograms != null && Object.keys(w.serverHistograms).length > 0));
  for (const w of measuredInside) out.push(`- ${serverSideSentence(w)}`);
  out.push('');
  out.push(latencyTable(r));
  if (r.impls.some((i) => i.windows.some((w) => (w.statuses['404'] ?? 0) > 0))) {
    out.push('');
    out.push('404s are the API\'s answer to a get or delete of a read state that does not exist (deleted earlier in the run or, with churn, never created in the working set); every service gets the same requests.');
  }
  out.push('');
  out.push(
    'GC and event loop inside each measured window (server `GET /v1/stats` before and after, per thread; "longest" only when the window raised the since-start maximum; event-loop delay as the service reports it, which includes its 10 ms sampling interval: an idle loop reads about 10.1 ms; trace-gc lines that arrived in the window):',
  );
  out.push('');
  out.push(gcTable(r));
  out.push('');
  mkdirSync(plotsDir, { recursive: true });
  const link = (f: string) => relative(mdDir, join(plotsDir, f)).replace(/\\/g, '/');
  for (const f of fractions(r)) {
    const ws = IMPL_ORDER.map((impl) => [impl, openAt(r, impl, f)] as [ImplName, WindowRecord | undefined]).filter((x): x is [ImplName, WindowRecord] => x[1] !== undefined && x[1].hdr !== '');
    if (ws.length === 0) continue;
    const what = `open loop ${f}x = ${fmt(ws[0][1].targetRps ?? 0)} req/s`;
    const sp = `${slug}-spectrum-open-${f}.svg`;
    const tm = `${slug}-time-open-${f}.svg`;
    writeFileSync(join(plotsDir, sp), spectrumSvg(r, ws, what));
    writeFileSync(join(plotsDir, tm), timeSvg(r, ws, what));
    out.push(`![Percentile spectrum, ${what}](${link(sp)})`);
    out.push('');
    out.push(`![Latency over time, ${what}](${link(tm)})`);
    out.push('');
  }
  const closed = IMPL_ORDER.map((impl) => [impl, closedOf(r, impl)] as [ImplName, WindowRecord | undefined]).filter((x): x is [ImplName, WindowRecord] => x[1] !== undefined && x[1].hdr !== '');
  if (closed.length > 0) {
    const sp = `${slug}-spectrum-closed.svg`;
    writeFileSync(join(plotsDir, sp), spectrumSvg(r, closed, `closed loop, ${closed[0][1].connections} connections (maximum throughput)`));
    out.push(`![Percentile spectrum, closed loop](${link(sp)})`);
    out.push('');
  }
  return out.join('\n');
}

/** A closed window in which the load generator used this much of a core was bound by it. */
const LOADGEN_BOUND_PCT = 90;

/** The load generator's CPU in a window: wrk's when it drove it, else this process's (autocannon). */
function loadGenPct(w: WindowRecord): number {
  return w.wrk?.clientCpuPctOfCore ?? w.cpu.harnessPctOfCore;
}

interface TargetRow {
  /** shown instead of yes / no / not measured */
  metText?: string;
  target: string;
  measured: string;
  met: boolean | undefined;
  source: string;
}

/** The issue's tail-latency targets, checked against the chosen results; "not measured" when no run covers one. */
function targetsSection(chosen: [string, BenchResult][]): string {
  const rows: TargetRow[] = [];
  // mixed is meant to churn (evictions and store loads); a run without churn counts only when there is no other, and says so
  const find = (scenario: string, resident: number) => {
    const same = chosen.filter(([, r]) => r.config.scenario === scenario && r.config.resident === resident);
    return same.find(([, r]) => r.config.churn > 0) ?? same.find(([, r]) => r.config.churn === 0);
  };
  const srcOf = (f: [string, BenchResult]) => `\`${rel(f[0])}\`${f[1].config.churn === 0 ? ' (no churn: nothing evicted)' : ''}`;
  const at5m = find('mixed', 5_000_000);
  const s80 = at5m !== undefined ? openAt(at5m[1], 'slab', 0.8) : undefined;
  const n80 = at5m !== undefined ? openAt(at5m[1], 'naive', 0.8) : undefined;
  const c80 = at5m !== undefined ? openAt(at5m[1], 'ceiling', 0.8) : undefined;
  const src5 = at5m !== undefined ? srcOf(at5m) : 'no 5M mixed run';
  const check = (target: string, a: number | undefined, b: number | undefined, limit: number, what: string, src: string) => {
    const x = ratio(a, b);
    rows.push({ target, measured: x === undefined ? 'not measured' : `${rfmt(x)} (${what}: ${a !== undefined ? ms(a) : '-'} / ${b !== undefined ? ms(b) : '-'} ms)`, met: x === undefined ? undefined : x <= limit, source: src });
  };
  check('5M mixed, open 0.8x: slab p99.9 <= 1/5 of naive\'s', s80?.latency.p999Ms, n80?.latency.p999Ms, 0.2, 'slab / naive', src5);
  check('5M mixed, open 0.8x: slab max <= 1/10 of naive\'s', s80?.latency.maxMs, n80?.latency.maxMs, 0.1, 'slab / naive', src5);
  check('5M mixed, open 0.8x: slab p99.9 within 1.5x of the ceiling\'s', s80?.latency.p999Ms, c80?.latency.p999Ms, 1.5, 'slab / ceiling', src5);
  check('5M mixed, open 0.8x: slab max within 2x of the ceiling\'s', s80?.latency.maxMs, c80?.latency.maxMs, 2, 'slab / ceiling', src5);
  const at10m = find('mixed', 10_000_000);
  const long = at10m !== undefined ? windows(at10m[1], 'slab').filter((w) => w.kind === 'open' && w.seconds >= 590) : [];
  if (long.length === 0) rows.push({ target: '10M mixed, slab open loop for 10 minutes: no backlog episode', measured: 'not measured', met: undefined, source: at10m !== undefined ? `${srcOf(at10m)} (no 10-minute slab window)` : 'no 10M mixed run' });
  for (const w of long) {
    const climbing = w.backlog.secondsP99Climbing.length;
    const debt = debtOf(w);
    const whole = Math.max(0, Math.floor(w.seconds) - 3);
    rows.push({
      target: `10M mixed, slab open ${w.fraction}x for ${fmt(w.seconds / 60, 0)} min: no backlog episode`,
      measured:
        `${debt.fallingBehind.length} s falling behind the fixed load (> ${BACKLOG_BEHIND_MS} ms behind and growing; at most ${fmt(debt.maxBehindMs, 0)} ms behind), ${w.backlog.secondsSentBelow90.length} s sent < 90%; ` +
        `p99.9 ${ms(w.latency.p999Ms)} ms, max ${ms(w.latency.maxMs)} ms (p99 rising 3 s in a row: ${climbing} s, chance alone gives ~${fmt(whole / 24, 0)})`,
      met: debt.fallingBehind.length === 0 && w.backlog.secondsSentBelow90.length === 0,
      source: srcOf(at10m!),
    });
  }
  // Every single-op run with closed-loop windows of both slab and the ceiling. The ceiling's window
  // is often bound by the load generator (the harness process near a full core): its real maximum
  // is then higher, and slab / ceiling only an upper bound, which can show a miss but not a pass.
  const singles = chosen.filter(
    ([, r]) => (r.config.scenario === 'single' || r.config.scenario === 'mentions') && closedOf(r, 'slab') !== undefined && closedOf(r, 'ceiling') !== undefined,
  );
  if (singles.length === 0) rows.push({ target: 'slab closed-loop req/s on single-op routes >= 80% of the ceiling\'s', measured: 'not measured', met: undefined, source: 'no single/mentions run' });
  for (const [file, r] of singles) {
    const sc = closedOf(r, 'slab')!;
    const cc = closedOf(r, 'ceiling')!;
    const x = ratio(sc.rps, cc.rps)!;
    const bound = loadGenPct(cc) >= LOADGEN_BOUND_PCT;
    rows.push({
      target: 'slab closed-loop req/s on single-op routes >= 80% of the ceiling\'s',
      measured:
        `${bound ? '<= ' : ''}${rfmt(x)} (${fmt(sc.rps)} / ${fmt(cc.rps)} req/s)` +
        (bound ? `; the ceiling's window was bound by the load generator (${loadGenPct(cc)}% of a core), so its real maximum is higher and this ratio an upper bound` : ''),
      met: bound && x >= 0.8 ? undefined : x >= 0.8,
      metText: bound && x >= 0.8 ? 'inconclusive' : undefined,
      source: `\`${rel(file)}\``,
    });
  }
  const out = ['### Targets', '', 'The tail-latency targets, checked by this report against the runs below (the memory and `/v1/batch` targets are in their own sections of this file):', ''];
  out.push('| target | measured | met | run |');
  out.push('|---|---|---|---|');
  for (const t of rows) out.push(`| ${t.target} | ${t.measured} | ${t.metText ?? (t.met === undefined ? 'not measured' : t.met ? 'yes' : '**no**')} | ${t.source} |`);
  out.push('');
  return out.join('\n');
}

function gateSection(): string {
  const cfgFile = join(REPO_ROOT, 'bench', 'gate.config.json');
  if (!existsSync(cfgFile)) return '';
  const cfg = JSON.parse(readFileSync(cfgFile, 'utf8')) as { run: Record<string, unknown>; baseline: { file: string }; thresholds: Record<string, { comment: string; min?: number; max?: number }> };
  const out = ['### Gate (`npm run bench:gate`)', ''];
  out.push(
    `A short run (${cfg.run.scenario}, ${fmt(Number(cfg.run.resident))} resident read states, open loop at ${cfg.run.openFraction}x naive's closed-loop maximum, at most the baseline run's rate, for ${cfg.run.openSeconds} s per implementation, and a ${cfg.run.throughputSeconds} s closed-loop probe of slab and ceiling on the ${cfg.run.throughputScenario} route) that checks ratios measured in the same run against \`bench/gate.config.json\`:`,
  );
  out.push('');
  let base: Record<string, number | null> | undefined;
  try {
    base = (JSON.parse(readFileSync(abs(cfg.baseline.file), 'utf8')) as { ratios: Record<string, number | null> }).ratios;
  } catch {
    base = undefined;
  }
  out.push('| ratio | threshold | baseline run | why |');
  out.push('|---|--:|--:|---|');
  for (const [k, t] of Object.entries(cfg.thresholds)) {
    out.push(`| \`${k}\` | ${t.max !== undefined ? `<= ${t.max}` : `>= ${t.min}`} | ${base?.[k] ?? '-'} | ${t.comment.replace(/\|/g, '/')} |`);
  }
  out.push('');
  return out.join('\n');
}

function main(): void {
  const flags = parseFlags(process.argv.slice(2));
  const resultsDir = abs(strFlag(flags, 'results', 'bench/results'));
  const mdFile = abs(strFlag(flags, 'md', 'bench/tail-latency.md'));
  const plotsDir = abs(strFlag(flags, 'plots', 'bench/plots'));
  let files: string[];
  if (flags.has('files')) files = strFlag(flags, 'files', '').split(',').filter(Boolean).map(abs);
  else files = existsSync(resultsDir) ? readdirSync(resultsDir).filter((f) => /^tail-.*\.json$/.test(f)).map((f) => join(resultsDir, f)) : [];
  const loaded = files.map((f) => [f, load(f)] as const).filter((x): x is readonly [string, BenchResult] => x[1] !== undefined);
  // latest per scenario / churn / resident
  const latest = new Map<string, readonly [string, BenchResult]>();
  for (const x of loaded) {
    const key = slugOf(x[1]);
    const cur = latest.get(key);
    if (flags.has('files') || cur === undefined || cur[1].startedAt < x[1].startedAt) latest.set(key + (flags.has('files') ? `#${basename(x[0])}` : ''), x);
  }
  const chosen = [...latest.values()].sort(
    (a, b) =>
      SCENARIO_ORDER.indexOf(a[1].config.scenario) - SCENARIO_ORDER.indexOf(b[1].config.scenario) ||
      // churn runs first: they are the brief's mixed shape, runs without churn are for comparison
      b[1].config.churn - a[1].config.churn ||
      b[1].config.resident - a[1].config.resident,
  );
  const mdDir = join(mdFile, '..');
  const parts: string[] = [BEGIN, ''];
  parts.push('## Tail latency: slab vs naive vs ceiling');
  parts.push('');
  parts.push(
    flags.has('files')
      ? `_Generated by \`npm run bench:report -- --files <list>\` from the ${chosen.length} result file(s) of \`npm run bench\` named in each section below (several runs of one scenario and size are kept side by side); edits between the bench markers are overwritten._`
      : `_Generated by \`npm run bench:report\` from ${chosen.length} result file(s) of \`npm run bench\` (the latest per scenario and size); edits between the bench markers are overwritten._`,
  );
  parts.push('');
  parts.push(
    'Three servers, one at a time, each a fresh child process with `--trace-gc`: **slab** (`node dist/src/main.js --shards 1 --store <memory|sqlite> --capacity <C> --max-users <C / 10> --flush-delay 30000 --log-level warn`, C = 1.2 x the resident set, or the resident set itself when the run churns), ' +
      '**naive** (`node dist/bench/naive/main.js`, same flags: read states as JS objects in an lru-cache), and **ceiling** (bare fastify that parses the same JSON body and answers a constant: no validation, no state). ' +
      'slab and naive are filled with the same resident set through `/v1/batch` first (paced, 35,000 read states/s). The load generator is autocannon, in the harness process, on the same 2 cores. ' +
      '**Churn** (`--churn F`; `mixed` defaults to 1.1, the other scenarios to 0): the capacity is the resident set, so both services are full after the fill, and requests go to a working set F x larger, so users are loaded from the store on a miss and the least recently used users are written back and evicted to make room; each run\'s section says how many per window.',
  );
  parts.push('');
  parts.push(
    '**Which store.** `npm run bench` defaults to `--store sqlite`, the embedded default store the service ships with (on its own worker thread in both services). `--store memory` (`src/store/memory-store.ts`) keeps every flushed read state as JS objects on the main thread of both services: once the fill is flushed, slab\'s HTTP thread then carries a heap of the same order as naive\'s cache, so sections marked `--store memory` measure that store as much as the services.',
  );
  parts.push('');
  parts.push('How to read the figures:');
  parts.push('');
  parts.push(
    '- **Open loop** windows run at a fixed rate, a fraction of the naive service\'s closed-loop maximum measured first in the same run. autocannon times a response from the moment the request was written, so a stalled server that keeps requests from being sent would hide latency (coordinated omission). The harness therefore paces autocannon\'s connections (200 by default) to an even schedule and records latency from each request\'s **intended** send time; every second also records requests sent and answered against the target. The "backlog" column counts seconds in which the service **fell behind the fixed load**: at the end of the second the requests the schedule had asked for but not yet got answered were worth more than 100 ms of load, and more than at the end of each of the three seconds before (in brackets: the most it was ever behind). A service that keeps up stays behind by about its mean latency. An earlier test (p99 higher for 3 seconds in a row) is still recorded but not used: it fires on 1 second in 24 by chance and did so on the bare ceiling too.',
  );
  parts.push(
    "- **Warm-up**: each window starts with `--warmup` seconds (5 by default) of the same load on the window's own connections and schedule, not recorded. Runs started before 17:40 UTC on 2026-11-26 warmed up on separate connections and opened 200 fresh ones at the start of each window, whose first second was slower for every implementation; in their 40-240 s windows that second can carry the p99.9.",
  );
  parts.push('- **Closed loop** windows (50 connections, each sending its next request when the previous answer arrives) measure maximum throughput; their latency is mostly queueing at saturation.');
  parts.push('- Before the measured windows each service waits until the fill\'s and the probe\'s changes are flushed (otherwise the whole resident set is written at once, 30 s after the fill, inside the first window). Windows longer than 30 s include the steady write-behind of their own changes.');
  parts.push('- The machine is shared: "other CPU" is what every other process used during the window (% of one core). Compare ratios within a run rather than absolute times across runs.');
  parts.push('');
  if (chosen.length > 0) {
    parts.push('| scenario | open loop | slab p99.9 / naive p99.9 | slab max / naive max | slab p99.9 / ceiling p99.9 | slab / ceiling closed-loop req/s | slab / naive closed-loop req/s |');
    parts.push('|---|---|--:|--:|--:|--:|--:|');
    for (const [, r] of chosen) {
      for (const h of headlines(r)) {
        parts.push(
          `| ${titleOf(r)} | ${h.fraction}x (${h.rps !== null ? fmt(h.rps) : '-'} req/s) | ${rfmt(h.p999)} | ${rfmt(h.max)} | ${rfmt(h.p999Ceiling)} | ${rfmt(ratio(closedOf(r, 'slab')?.rps, closedOf(r, 'ceiling')?.rps))} | ${rfmt(ratio(closedOf(r, 'slab')?.rps, closedOf(r, 'naive')?.rps))} |`,
        );
      }
    }
    parts.push('');
  } else {
    parts.push('No result files yet: run `npm run bench`.');
    parts.push('');
  }
  parts.push(targetsSection(chosen.map(([f, r]) => [f, r] as [string, BenchResult])));
  // Plot names come from scenario and size; two runs of the same one (--files) get their start time too.
  const seen = new Map<string, number>();
  for (const [, r] of chosen) seen.set(slugOf(r), (seen.get(slugOf(r)) ?? 0) + 1);
  for (const [file, r] of chosen) {
    const slug = slugOf(r);
    parts.push(section(r, file, plotsDir, mdDir, seen.get(slug)! > 1 ? `${slug}-${r.startedAt.slice(11, 16).replace(':', '')}` : slug));
  }
  parts.push(gateSection());
  parts.push(END);
  const block = parts.join('\n');

  const existing = existsSync(mdFile) ? readFileSync(mdFile, 'utf8') : '';
  const b = existing.indexOf(BEGIN);
  const e = existing.indexOf(END);
  let next: string;
  if (b >= 0 && e > b) next = existing.slice(0, b) + block + existing.slice(e + END.length);
  else next = existing + (existing.length > 0 && !existing.endsWith('\n') ? '\n' : '') + (existing.length > 0 ? '\n' : '') + block + '\n';
  writeFileSync(mdFile, next);
  process.stdout.write(`${rel(mdFile)}: bench section from ${chosen.map(([f]) => rel(f)).join(', ') || 'no results'}; plots in ${rel(plotsDir)}/\n`);
}

main();
