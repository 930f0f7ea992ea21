/**
 * A closed-loop window driven by wrk instead of autocannon (run.ts --closed-client wrk). At the
 * bare route's rates autocannon takes 84-95% of a core itself, so the bare route's closed-loop
 * figure is the client's and every ratio to it flatters the service; wrk (C, one thread) needs a
 * fraction of that. The requests come from the same generator as autocannon's, drawn up front into
 * a file (wrk.ts wrkFileScript) because wrk's Lua cannot run it: enough for the whole window at
 * `expectRps` with room to spare, and the window records whether wrk came round to its first
 * request again (`repeated`). The warm-up is a wrk run of its own on the requests that follow.
 *
 * wrk gives no per-second series and no full histogram: `perSecond` is empty, and `hdr` is a
 * histogram rebuilt from its latency at WRK_QUANTILES (good for the percentile spectrum, not
 * finer than those points). Latency is from send time, as autocannon's closed loop.
 */
import { closeSync, openSync, rmSync, writeSync } from 'node:fs';
import * as hdr from 'hdr-histogram-js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLK_TCK } from '../common.js';
import { WRK_QUANTILES, runWrk, wrkFileScript, type WrkResult } from '../wrk.js';
import { newHistogram, summarize, type DriveOptions, type DriveResult } from './load.js';

/** at most this many requests in one file (about 200 bytes each in wrk's memory) */
const MAX_REQUESTS = 4_000_000;

/** What a wrk-driven window adds to a DriveResult. */
export interface WrkWindow {
  /** wrk's own CPU in the window, % of one core */
  clientCpuPctOfCore: number;
  /** requests drawn for the window, and whether wrk sent more (came round to the first again) */
  requestsDrawn: number;
  repeated: boolean;
}

function drawRequests(o: DriveOptions, count: number): string {
  const file = join(tmpdir(), `read-states-requests-${process.pid}-${Math.random().toString(16).slice(2)}.tsv`);
  const fd = openSync(file, 'w');
  try {
    let chunk: string[] = [];
    for (let i = 0; i < count; i++) {
      const r = o.factory.next();
      chunk.push(`${r.method}\t${r.path}\t${r.body ?? ''}\n`);
      if (chunk.length === 10_000 || i === count - 1) {
        writeSync(fd, chunk.join(''));
        chunk = [];
      }
    }
  } finally {
    closeSync(fd);
  }
  return file;
}

/** A histogram whose percentiles are wrk's at WRK_QUANTILES (and its max at 100). */
function rebuiltHistogram(w: WrkResult): hdr.Histogram {
  const h = newHistogram();
  const q = w.quantiles ?? [];
  let prev = 0;
  for (let i = 0; i < q.length; i++) {
    const n = Math.round(((WRK_QUANTILES[i] - prev) / 100) * w.requests);
    if (n > 0) h.recordValueWithCount(Math.max(1, q[i]), n);
    prev = WRK_QUANTILES[i];
  }
  const rest = w.requests - h.totalCount;
  if (rest > 0) h.recordValueWithCount(Math.max(1, w.max), rest);
  return h;
}

export async function driveWrk(o: DriveOptions, expectRps: number): Promise<DriveResult> {
  if (o.mode !== 'closed') throw new Error('wrk drives closed-loop windows only');
  const warmup = Math.max(0, o.warmupSeconds ?? 0);
  const need = (s: number) => Math.min(MAX_REQUESTS, Math.max(10_000, Math.ceil(expectRps * 1.5 * s)));
  const files: string[] = [];
  try {
    if (warmup > 0) {
      files.push(drawRequests(o, need(warmup)));
      await runWrk({ url: o.url, connections: o.connections, seconds: warmup, script: wrkFileScript(o.url), args: [files[0]] });
    }
    const drawn = need(o.seconds);
    const file = drawRequests(o, drawn);
    files.push(file);
    let startMs = 0;
    const w = await runWrk({
      url: o.url,
      connections: o.connections,
      seconds: o.seconds,
      script: wrkFileScript(o.url),
      args: [file],
      onStart: () => {
        o.onWindowStart?.();
        startMs = performance.timeOrigin + performance.now();
      },
    });
    const seconds = w.durationUs / 1e6;
    const h = rebuiltHistogram(w);
    const latency = { ...summarize(h), count: w.requests, meanMs: Math.round(w.mean) / 1000, maxMs: w.max / 1000 };
    return {
      mode: 'closed',
      pacing: 'none',
      connections: o.connections,
      targetRps: null,
      startMs,
      endMs: startMs + seconds * 1000,
      seconds,
      requests: w.requests,
      rps: w.requests / seconds,
      statuses: {},
      non2xx: w.non2xx,
      errors: w.errors,
      timeouts: w.timeouts,
      latencyBasis: 'send',
      latency,
      sendLatency: latency,
      hdr: o.record ? hdr.encodeIntoCompressedBase64(h) : '',
      perSecond: [],
      backlog: {
        secondsSentBelow90: [],
        secondsLagOver100ms: [],
        secondsP99Climbing: [],
        secondsFallingBehind: [],
        maxBehindMs: 0,
        unsentAtEnd: 0,
        inFlightAtEnd: 0,
        oldestInFlightMs: 0,
      },
      wrk: {
        clientCpuPctOfCore: Math.round((1000 * w.cpuTicks) / CLK_TCK / seconds) / 10,
        requestsDrawn: drawn,
        repeated: w.requests > drawn,
      },
    };
  } finally {
    for (const f of files) rmSync(f, { force: true });
  }
}
