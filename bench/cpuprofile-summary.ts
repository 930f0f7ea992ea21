/**
 * Summarises V8 .cpuprofile files (node --cpu-prof): self time per function, optionally only for
 * samples inside a time window (monotonic microseconds, the clock of process.hrtime()).
 *
 *   node dist/bench/cpuprofile-summary.js <file.cpuprofile> [--from US --to US] [--top 25]
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fmt, intFlag, parseFlags, table } from './common.js';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface FunctionTime {
  fn: string;
  where: string;
  selfMs: number;
  selfPct: number;
}

export interface ProfileSummary {
  file: string;
  windowMs: number;
  sampledMs: number;
  /** share of samples in the window that were not idle */
  busyPct: number;
  top: FunctionTime[];
  /** time in a function and everything it called, as % of the busy (not idle) time: what a call path costs */
  inclusive: { fn: string; where: string; pctOfBusy: number }[];
  /** self time grouped by where the code lives: the service, fastify, node internals, V8 / GC */
  byArea: { area: string; selfMs: number; selfPct: number }[];
}

function where(url: string, line: number): string {
  if (url === '') return '';
  const i = url.indexOf('/node_modules/');
  const short = i >= 0 ? url.slice(i + 14) : url.replace(/^file:\/\/.*?\/dist\//, 'dist/');
  return `${short}:${line + 1}`;
}

function area(url: string, fn: string): string {
  if (url === '') {
    if (fn === '(idle)') return 'idle';
    if (fn === '(garbage collector)') return 'GC';
    if (fn === '(program)') return 'V8/native (program)';
    return 'native/builtin';
  }
  if (url.startsWith('node:')) return 'node core (' + url.slice(5).split('/')[0] + ')';
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm) return nm[1];
  if (url.includes('/dist/src/')) return 'service src/';
  if (url.includes('/dist/workers/')) return 'service workers/';
  return url;
}

export function summarize(file: string, from = 0, to = Number.POSITIVE_INFINITY, topN = 25): ProfileSummary {
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map<number, ProfileNode>();
  for (const n of p.nodes) byId.set(n.id, n);
  const self = new Map<number, number>();
  let t = p.startTime;
  let total = 0;
  let idle = 0;
  let first = Number.POSITIVE_INFINITY;
  let last = 0;
  for (let i = 0; i < p.samples.length; i++) {
    t += p.timeDeltas[i];
    if (t < from || t > to) continue;
    // A sample's duration is the gap to the next sample (the last one gets the previous gap).
    const dt = i + 1 < p.timeDeltas.length ? p.timeDeltas[i + 1] : p.timeDeltas[i];
    if (dt < 0) continue;
    first = Math.min(first, t);
    last = Math.max(last, t);
    const id = p.samples[i];
    self.set(id, (self.get(id) ?? 0) + dt);
    total += dt;
    if (byId.get(id)?.callFrame.functionName === '(idle)') idle += dt;
  }
  const fnTime = new Map<string, FunctionTime>();
  const areaTime = new Map<string, number>();
  for (const [id, us] of self) {
    const cf = byId.get(id)!.callFrame;
    const fn = cf.functionName || '(anonymous)';
    const w = where(cf.url, cf.lineNumber);
    const key = fn + ' ' + w;
    const e = fnTime.get(key) ?? { fn, where: w, selfMs: 0, selfPct: 0 };
    e.selfMs += us / 1000;
    fnTime.set(key, e);
    const a = area(cf.url, fn);
    areaTime.set(a, (areaTime.get(a) ?? 0) + us / 1000);
  }
  // Inclusive time: each sampled stack adds its time once to every distinct function on it.
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const incl = new Map<string, { fn: string; where: string; us: number }>();
  for (const [id, us] of self) {
    if (byId.get(id)!.callFrame.functionName === '(idle)') continue;
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const cf = byId.get(cur)!.callFrame;
      if (cf.functionName === '(root)') continue;
      const fn = cf.functionName || '(anonymous)';
      const w = where(cf.url, cf.lineNumber);
      const key = fn + ' ' + w;
      if (seen.has(key)) continue;
      seen.add(key);
      const e = incl.get(key) ?? { fn, where: w, us: 0 };
      e.us += us;
      incl.set(key, e);
    }
  }
  const busy = total - idle;
  const inclusive = [...incl.values()]
    .sort((a, b) => b.us - a.us)
    .slice(0, topN * 2)
    .map((e) => ({ fn: e.fn, where: e.where, pctOfBusy: busy > 0 ? (100 * e.us) / busy : 0 }));
  const totalMs = total / 1000;
  const top = [...fnTime.values()].sort((a, b) => b.selfMs - a.selfMs).slice(0, topN);
  for (const e of top) e.selfPct = (100 * e.selfMs) / totalMs;
  const byArea = [...areaTime.entries()]
    .map(([a, ms]) => ({ area: a, selfMs: ms, selfPct: (100 * ms) / totalMs }))
    .sort((a, b) => b.selfMs - a.selfMs);
  return {
    file,
    windowMs: Number.isFinite(to) && from > 0 ? (to - from) / 1000 : (p.endTime - p.startTime) / 1000,
    sampledMs: last > first ? (last - first) / 1000 : 0,
    busyPct: totalMs > 0 ? (100 * (total - idle)) / total : 0,
    top,
    inclusive,
    byArea,
  };
}

export function formatSummary(s: ProfileSummary, topN = 25): string {
  return [
    `${basename(s.file)}: ${fmt(s.sampledMs)} ms sampled, ${fmt(s.busyPct, 1)}% not idle`,
    table(
      ['function', 'location', 'self ms', 'self %'],
      s.top.slice(0, topN).map((e) => [e.fn, e.where, fmt(e.selfMs, 0), fmt(e.selfPct, 1)]),
    ),
    '',
    table(
      ['function (inclusive: with what it called)', 'location', '% of busy time'],
      s.inclusive.slice(0, topN * 2).map((e) => [e.fn, e.where, fmt(e.pctOfBusy, 1)]),
    ),
    '',
    table(
      ['area', 'self ms', 'self %'],
      s.byArea.slice(0, 14).map((a) => [a.area, fmt(a.selfMs, 0), fmt(a.selfPct, 1)]),
    ),
  ].join('\n');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const files = args.filter((a) => a.endsWith('.cpuprofile'));
  const flags = parseFlags(args.filter((a) => !a.endsWith('.cpuprofile')));
  const top = intFlag(flags, 'top', 25);
  for (const f of files) {
    console.log(formatSummary(summarize(f, intFlag(flags, 'from', 0), flags.has('to') ? intFlag(flags, 'to', 0) : Number.POSITIVE_INFINITY, top), top));
    console.log();
  }
}
