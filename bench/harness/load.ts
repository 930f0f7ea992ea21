/**
 * Drives one measured window with autocannon (programmatically, from this process) and records
 * every response's latency in HDR histograms (hdr-histogram-js, microseconds), overall and per
 * second, with the requests actually sent per second.
 *
 * Closed loop: `connections` connections, each sends its next request when the previous answer
 * arrives (maximum throughput; latency includes the queueing the load itself causes).
 *
 * Open loop, two pacings:
 * - `smooth` (default): autocannon's clients, with a pacer installed through its `setupClient`
 *   hook: connection i of C sends its n-th request at t0 + (i + n C) / R, i.e. the whole load is
 *   an even R requests per second. A connection whose previous answer is late sends as soon as it
 *   arrives (it is behind schedule: a backlog). Latency is recorded twice: from the moment the
 *   request was actually written (autocannon's responseTime: "service time", which hides the time
 *   a stalled server kept the request from being sent: coordinated omission), and from its
 *   intended send time on the schedule (what a client with a steady arrival rate would see; this
 *   is the figure the report uses for open-loop runs).
 * - `autocannon`: plain `overallRate`. autocannon gives each connection a quota of R/C requests per
 *   1-second tick and sends that quota back to back at the start of each second, so the "fixed
 *   rate" arrives in bursts (in a quick test: 0 to 700 requests per 100 ms at a 200 per 100 ms
 *   target); only send-time latency exists there. Kept to compare with, not as the default.
 *
 * Warm-up: the same autocannon instance, connections and schedule run `warmupSeconds` before the
 * window opens, and only requests sent (intended, in smooth open loop) after that moment are
 * recorded. A separate warm-up run followed by a fresh instance opened all connections at once at
 * the window's start, and that first second decided short windows' tails: p99 31-148 ms in the
 * first second of the gate's 40 s windows against 5-20 ms medians, for every implementation,
 * slab's 192 ms p99.9 in a failed CI gate run all from its first second. wrk2 excludes its
 * calibration period the same way.
 */
import autocannonModule from 'autocannon';
import * as hdr from 'hdr-histogram-js';
import { PerformanceObserver } from 'node:perf_hooks';
import { CLK_TCK } from '../common.js';
import { processTicks } from './servers.js';
import type { RequestFactory } from './workload.js';
import type { WrkWindow } from './wrk-drive.js';

// ---- the parts of autocannon 8 used here (its package has no types) -------------------------

interface AcRequest {
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  setupRequest?: (req: AcRequest, context: Record<string, unknown>) => AcRequest | undefined;
}
interface AcClient {
  on(event: 'request', fn: () => void): void;
  _doRequest(...args: unknown[]): void;
  destroyed: boolean;
}
interface AcOptions {
  url: string;
  connections: number;
  duration: number;
  timeout: number;
  pipelining?: number;
  overallRate?: number;
  requests: AcRequest[];
  setupClient?: (client: AcClient) => void;
}
interface AcResult {
  errors: number;
  timeouts: number;
  non2xx: number;
  duration: number;
  resets: number;
}
interface AcInstance extends PromiseLike<AcResult> {
  on(event: 'response', fn: (client: AcClient, statusCode: number, bytes: number, responseTimeMs: number) => void): void;
  on(event: 'reqError', fn: (err: Error) => void): void;
  stop(): void;
}
const autocannon = autocannonModule as unknown as (opts: AcOptions) => AcInstance;

// ---- histograms -------------------------------------------------------------------------------

export function newHistogram(): hdr.Histogram {
  // 1 µs .. 1 hour, 3 significant digits
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 3 });
}

export interface LatencySummary {
  count: number;
  meanMs: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  p999Ms: number;
  p9999Ms: number;
  maxMs: number;
}

export function summarize(h: hdr.Histogram): LatencySummary {
  const ms = (us: number) => Math.round(us) / 1000;
  return {
    count: h.totalCount,
    meanMs: ms(h.mean),
    p50Ms: ms(h.getValueAtPercentile(50)),
    p90Ms: ms(h.getValueAtPercentile(90)),
    p99Ms: ms(h.getValueAtPercentile(99)),
    p999Ms: ms(h.getValueAtPercentile(99.9)),
    p9999Ms: ms(h.getValueAtPercentile(99.99)),
    maxMs: ms(h.maxValue),
  };
}

export interface SecondRecord {
  /** second index from the window start */
  t: number;
  /** requests written in this second */
  sent: number;
  /** responses received in this second */
  done: number;
  non2xx: number;
  /** p99 / max of the latency the report uses (intended for smooth open loop, else send) */
  p99Ms: number;
  maxMs: number;
  /** the same from send time (smooth open loop only; equal to the above otherwise) */
  sendP99Ms: number;
  sendMaxMs: number;
  /** smooth open loop: how late the latest send of this second was against the schedule */
  lagMaxMs: number;
  /**
   * CPU used in this second (% of one core) by the server process and by this process (the load
   * generator), sampled by one 1 s timer; absent when no server pid was given. A latency drift
   * that follows the server's CPU is the server's work growing; one that does not, is not.
   */
  serverCpuPct?: number;
  harnessCpuPct?: number;
  /**
   * GC pauses of this process (the load generator) that ended in this second: total and longest,
   * ms. A load generator paused by its own collector sends late and reads answers late, which
   * the latency above counts against the server.
   */
  harnessGcMs?: number;
  harnessGcMaxMs?: number;
}

export interface DriveOptions {
  url: string;
  mode: 'closed' | 'open';
  connections: number;
  /** open loop: target requests per second */
  rps?: number;
  pacing: 'smooth' | 'autocannon';
  /** the measured window */
  seconds: number;
  /** load on the same connections and schedule before the window, not recorded (default 0) */
  warmupSeconds?: number;
  /** called once when the window opens (after the warm-up): read the servers' counters here */
  onWindowStart?: () => void;
  factory: RequestFactory;
  /** false: nothing kept */
  record: boolean;
  /** the server's pid: per-second CPU of server and load generator in perSecond */
  serverPid?: number;
}

export interface DriveResult {
  mode: 'closed' | 'open';
  pacing: 'smooth' | 'autocannon' | 'none';
  connections: number;
  targetRps: number | null;
  /** epoch ms of the window */
  startMs: number;
  endMs: number;
  seconds: number;
  requests: number;
  rps: number;
  statuses: Record<string, number>;
  non2xx: number;
  /** transport errors and timeouts over the whole run, warm-up included (autocannon's counts) */
  errors: number;
  timeouts: number;
  /** what latency basis `latency` and per-second p99/max use */
  latencyBasis: 'intended' | 'send';
  latency: LatencySummary;
  /** send-time latency (autocannon's responseTime), always */
  sendLatency: LatencySummary;
  /** the `latency` histogram, compressed (hdr-histogram-js encodeIntoCompressedBase64) */
  hdr: string;
  perSecond: SecondRecord[];
  /** set when wrk drove the window instead of autocannon (wrk-drive.ts) */
  wrk?: WrkWindow;
  backlog: {
    /** whole seconds (not the last, partial one) where sent < 90% of the target */
    secondsSentBelow90: number[];
    /** seconds where a send was > 100 ms behind schedule (smooth) */
    secondsLagOver100ms: number[];
    /**
     * seconds at the end of which p99 had risen for 3+ seconds in a row. Kept as recorded, but it
     * is not a backlog test: with independent seconds it fires on 1 second in 24 by chance, and
     * it did so on the bare ceiling too (10-16 of 240 s); see scheduleDebt for the one the report uses
     */
    secondsP99Climbing: number[];
    /** backlog episodes (scheduleDebt): seconds ending > 100 ms behind the schedule and further behind than each of the 3 before */
    secondsFallingBehind: number[];
    /** the most the client was behind the fixed schedule at the end of any second, ms */
    maxBehindMs: number;
    /** scheduled before the end but never sent (smooth) */
    unsentAtEnd: number;
    /** sent but unanswered when the window closed */
    inFlightAtEnd: number;
    /** age of the oldest of those, from its intended (smooth) or send time */
    oldestInFlightMs: number;
  };
}

interface PacedClient extends AcClient {
  __index: number;
  __next: number;
  __intended: number;
  __sentAt: number;
  __awaiting: boolean;
  __timer: NodeJS.Timeout | undefined;
}

export async function drive(o: DriveOptions): Promise<DriveResult> {
  const smooth = o.mode === 'open' && o.pacing === 'smooth';
  const rps = o.mode === 'open' ? Math.max(1, Math.round(o.rps ?? 0)) : 0;
  const connections = o.mode === 'open' ? Math.max(1, Math.min(o.connections, rps)) : o.connections;
  const intervalMs = smooth ? (1000 * connections) / rps : 0;
  const total = newHistogram();
  const sendTotal = smooth ? newHistogram() : total;
  const perSec: { h: hdr.Histogram; hs: hdr.Histogram; sent: number; done: number; non2xx: number; lag: number; srvCpu?: number; meCpu?: number; gc: number; gcMax: number }[] = [];
  const statuses: Record<string, number> = {};
  let non2xx = 0;
  const clients: PacedClient[] = [];
  const warmupMs = Math.max(0, (o.warmupSeconds ?? 0) * 1000);
  // t0: the schedule's start; tw: the window's (responses to requests sent before it are not kept)
  let t0 = 0;
  let tw = 0;
  const nowMs = () => performance.now();
  // the warm-up's seconds all land in this bucket, which nothing reads
  const before = { h: total, hs: total, sent: 0, done: 0, non2xx: 0, lag: 0, gc: 0, gcMax: 0 } as (typeof perSec)[number];
  const sec = (t: number) => {
    if (t < tw) return before;
    const i = Math.floor((t - tw) / 1000);
    while (perSec.length <= i) {
      const h = o.record ? newHistogram() : total;
      perSec.push({ h, hs: smooth && o.record ? newHistogram() : h, sent: 0, done: 0, non2xx: 0, lag: 0, gc: 0, gcMax: 0 });
    }
    return perSec[i];
  };

  const setupClient = (c: AcClient): void => {
    const pc = c as PacedClient;
    pc.__index = clients.length;
    pc.__awaiting = false;
    pc.__timer = undefined;
    clients.push(pc);
    if (!smooth) {
      c.on('request', () => {
        const t = nowMs();
        pc.__sentAt = t;
        pc.__intended = t;
        pc.__awaiting = true;
        sec(t).sent++;
      });
      return;
    }
    const original = c._doRequest;
    pc.__next = Number.NaN;
    const fire = (): void => {
      pc.__timer = undefined;
      if (pc.destroyed) return;
      const t = nowMs();
      const s = sec(t);
      s.sent++;
      const lag = t - pc.__next;
      if (lag > s.lag) s.lag = lag;
      // a send up to 0.25 ms early (not worth a timer) counts from when it was actually sent
      pc.__intended = Math.min(pc.__next, t);
      pc.__sentAt = t;
      pc.__awaiting = true;
      pc.__next += intervalMs;
      original.call(pc);
    };
    pc._doRequest = function paced(): void {
      if (pc.__timer !== undefined || pc.destroyed) return;
      if (Number.isNaN(pc.__next)) pc.__next = t0 + (pc.__index * 1000) / rps;
      const wait = pc.__next - nowMs();
      if (wait > 0.25) pc.__timer = setTimeout(fire, wait);
      else fire();
    };
  };

  const build = (): AcRequest => {
    const r = o.factory.next();
    return r.body !== undefined
      ? { method: r.method, path: r.path, body: r.body, headers: { 'content-type': 'application/json' } }
      : // body undefined on purpose: autocannon merges this over the previous request, body included
        { method: r.method, path: r.path, headers: {}, body: undefined };
  };
  const first = build();
  t0 = nowMs();
  tw = t0 + warmupMs;
  const startMs = performance.timeOrigin + tw;
  const inst = autocannon({
    url: o.url,
    connections,
    duration: o.seconds + warmupMs / 1000,
    timeout: 60,
    pipelining: 1,
    overallRate: o.mode === 'open' && !smooth ? rps : undefined,
    requests: [{ ...first, setupRequest: (req) => ({ ...req, ...build() }) }],
    setupClient,
  });
  inst.on('response', (client, statusCode, _bytes, responseTimeMs) => {
    const pc = client as PacedClient;
    const t = nowMs();
    pc.__awaiting = false;
    if (pc.__intended < tw) return; // a warm-up request
    const s = sec(t);
    s.done++;
    statuses[statusCode] = (statuses[statusCode] ?? 0) + 1;
    if (statusCode < 200 || statusCode > 299) {
      s.non2xx++;
      non2xx++;
    }
    if (!o.record) return;
    const sendUs = Math.max(1, Math.round(responseTimeMs * 1000));
    sendTotal.recordValue(sendUs);
    s.hs.recordValue(sendUs);
    if (smooth) {
      const intendedUs = Math.max(1, Math.round((t - pc.__intended) * 1000));
      total.recordValue(intendedUs);
      s.h.recordValue(intendedUs);
    }
  });
  inst.on('reqError', () => undefined);
  // one coarse timer for the whole window, not one per request
  let cpuTimer: NodeJS.Timeout | undefined;
  let gcObserver: PerformanceObserver | undefined;
  let opened = false;
  const open = (): void => {
    opened = true;
    o.onWindowStart?.();
    if (o.record && o.serverPid !== undefined) cpuTimer = cpuSampler(o.serverPid, sec);
  };
  const openTimer = warmupMs > 0 ? setTimeout(open, Math.max(0, tw - nowMs())) : undefined;
  if (openTimer === undefined) open();
  if (o.record) {
    gcObserver = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        const s = sec(e.startTime + e.duration);
        s.gc += e.duration;
        if (e.duration > s.gcMax) s.gcMax = e.duration;
      }
    });
    gcObserver.observe({ entryTypes: ['gc'] });
  }
  const r = await inst;
  if (openTimer !== undefined) clearTimeout(openTimer);
  if (!opened) open(); // a run that ended before its warm-up did: an empty window, still opened once
  if (cpuTimer !== undefined) clearInterval(cpuTimer);
  gcObserver?.disconnect();
  const tEnd = nowMs();
  for (const c of clients) if (c.__timer !== undefined) clearTimeout(c.__timer);

  let unsent = 0;
  let inFlight = 0;
  let oldest = 0;
  for (const c of clients) {
    if (c.__awaiting) {
      inFlight++;
      oldest = Math.max(oldest, tEnd - c.__intended);
    }
    if (smooth && !Number.isNaN(c.__next) && c.__next < tEnd) unsent += Math.floor((tEnd - c.__next) / intervalMs) + 1;
  }
  const requests = Object.values(statuses).reduce((a, b) => a + b, 0);
  const seconds = (tEnd - tw) / 1000;
  const perSecond: SecondRecord[] = perSec.map((s, t) => ({
    t,
    sent: s.sent,
    done: s.done,
    non2xx: s.non2xx,
    p99Ms: s.h.totalCount > 0 ? s.h.getValueAtPercentile(99) / 1000 : 0,
    maxMs: s.h.totalCount > 0 ? s.h.maxValue / 1000 : 0,
    sendP99Ms: s.hs.totalCount > 0 ? s.hs.getValueAtPercentile(99) / 1000 : 0,
    sendMaxMs: s.hs.totalCount > 0 ? s.hs.maxValue / 1000 : 0,
    lagMaxMs: Math.round(s.lag * 10) / 10,
    ...(s.srvCpu !== undefined ? { serverCpuPct: Math.round(s.srvCpu), harnessCpuPct: Math.round(s.meCpu ?? 0) } : {}),
    ...(o.record ? { harnessGcMs: Math.round(s.gc * 10) / 10, harnessGcMaxMs: Math.round(s.gcMax * 10) / 10 } : {}),
  }));
  const whole = perSecond.filter((s) => s.t < Math.floor(seconds));
  const debt = scheduleDebt(whole, rps);
  const climbing: number[] = [];
  for (let i = 3; i < whole.length; i++) {
    if (whole[i].p99Ms > whole[i - 1].p99Ms && whole[i - 1].p99Ms > whole[i - 2].p99Ms && whole[i - 2].p99Ms > whole[i - 3].p99Ms) climbing.push(i);
  }
  const result: DriveResult = {
    mode: o.mode,
    pacing: o.mode === 'open' ? o.pacing : 'none',
    connections,
    targetRps: o.mode === 'open' ? rps : null,
    startMs,
    endMs: performance.timeOrigin + tEnd,
    seconds,
    requests,
    rps: requests / seconds,
    statuses,
    non2xx,
    errors: r.errors,
    timeouts: r.timeouts,
    latencyBasis: smooth ? 'intended' : 'send',
    latency: summarize(total),
    sendLatency: summarize(sendTotal),
    hdr: o.record ? hdr.encodeIntoCompressedBase64(total) : '',
    perSecond: o.record ? perSecond : [],
    backlog: {
      secondsSentBelow90: o.mode === 'open' ? whole.filter((s) => s.sent < 0.9 * rps).map((s) => s.t) : [],
      secondsLagOver100ms: smooth ? whole.filter((s) => s.lagMaxMs > 100).map((s) => s.t) : [],
      secondsP99Climbing: climbing,
      secondsFallingBehind: o.mode === 'open' ? debt.fallingBehind : [],
      maxBehindMs: o.mode === 'open' ? debt.maxBehindMs : 0,
      unsentAtEnd: unsent,
      inFlightAtEnd: inFlight,
      oldestInFlightMs: Math.round(oldest * 10) / 10,
    },
  };
  if (o.record) {
    for (const s of perSec) {
      s.h.destroy();
      if (s.hs !== s.h) s.hs.destroy();
    }
  }
  if (sendTotal !== total) sendTotal.destroy();
  total.destroy();
  return result;
}

/** Per-second CPU of the server and of this process, into the second that just ended: one 1 s timer. */
function cpuSampler(serverPid: number, sec: (t: number) => { srvCpu?: number; meCpu?: number }): NodeJS.Timeout {
  let srvTicks = processTicks(serverPid);
  let me = process.cpuUsage();
  let last = performance.now();
  return setInterval(() => {
    const t = performance.now();
    const ticks = processTicks(serverPid);
    const meNow = process.cpuUsage();
    const s = sec(t - 1);
    const wall = (t - last) / 1000;
    s.srvCpu = ((ticks - srvTicks) / CLK_TCK / wall) * 100;
    s.meCpu = ((meNow.user - me.user + meNow.system - me.system) / 1e6 / wall) * 100;
    srvTicks = ticks;
    me = meNow;
    last = t;
  }, 1000);
}

/** How far behind schedule the service must be, and getting further behind, for a backlog second. */
export const BACKLOG_BEHIND_MS = 100;

/**
 * The backlog test of open-loop windows. At a fixed rate R the schedule has asked for R (t + 1)
 * requests by the end of second t; `behind` is how many of those are not answered yet, in seconds
 * of load ((R (t + 1) - answered) / R). A service that keeps up stays behind by about its mean
 * latency (a few ms); one that cannot keep up falls further behind every second, which is what
 * makes every client's latency keep climbing (the naive service at 5M: up to 6.9 s behind). A
 * backlog second ends more than BACKLOG_BEHIND_MS behind and further behind than each of the three
 * seconds before it. Single slow responses (a GC pause) do not count unless the service falls behind.
 */
export function scheduleDebt(whole: readonly { done: number }[], rps: number): { fallingBehind: number[]; maxBehindMs: number } {
  const fallingBehind: number[] = [];
  let maxBehindMs = 0;
  if (!(rps > 0)) return { fallingBehind, maxBehindMs };
  const behind: number[] = [];
  let answered = 0;
  for (let t = 0; t < whole.length; t++) {
    answered += whole[t].done;
    const ms = ((rps * (t + 1) - answered) / rps) * 1000;
    behind.push(ms);
    if (ms > maxBehindMs) maxBehindMs = ms;
    if (t >= 3 && ms > BACKLOG_BEHIND_MS && ms > behind[t - 1] && behind[t - 1] > behind[t - 2] && behind[t - 2] > behind[t - 3]) fallingBehind.push(t);
  }
  return { fallingBehind, maxBehindMs: Math.round(maxBehindMs * 10) / 10 };
}
