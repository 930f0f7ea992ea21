/**
 * Per-thread runtime figures: GC pauses by kind (PerformanceObserver 'gc'), event-loop delay
 * (monitorEventLoopDelay), V8 heap. Every thread (main, each shard, the store worker) starts one;
 * the numbers are read when someone asks (a scrape, the stats endpoint), never per operation.
 *
 * PerformanceObserver reports only the stop-the-world part of a collection; incremental marking
 * done in steps on the thread shows up as event-loop delay instead, which is why both are here.
 */
import { readFileSync } from 'node:fs';
import { getHeapStatistics } from 'node:v8';
import { constants, PerformanceObserver, monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { collections } from './collect-garbage.js';

export const GC_KINDS = ['minor', 'major', 'incremental', 'weakcb'] as const;
export type GcKind = (typeof GC_KINDS)[number];

export interface ThreadTelemetry {
  thread: string;
  gc: Record<GcKind, { count: number; seconds: number; maxSeconds: number }>;
  eventLoopDelay: { p99Seconds: number; maxSeconds: number; meanSeconds: number };
  /** the idle collections and malloc trims (collect-garbage.ts), each a pause of the thread */
  idleCollections: typeof collections;
  heapUsed: number;
  heapTotal: number;
  /** memory of this thread's ArrayBuffers outside the V8 heap (SharedArrayBuffers counted where created) */
  arrayBuffers: number;
  /**
   * V8 heap used right after this thread's last full collection (Mark-Compact), or null before
   * the first one: the live heap. heapUsed alone depends on where the thread is in its GC cycle
   * (a thread that allocates fast may carry several times its live heap in garbage), so
   * comparing two services' heapUsed samples compares their GC timing as much as their data.
   */
  heapLiveAfterMajorGc: number | null;
  /** CPU time this thread has used (user + system), or null where /proc/thread-self is missing */
  cpuSeconds: number | null;
  /**
   * Time this thread was ready to run but waited for a CPU (the kernel's run-queue delay, from
   * /proc/thread-self/schedstat), or null where that file is missing. On two cores shared by
   * more busy threads than cores this, not GC, is often what a request's tail waited for.
   */
  runQueueWaitSeconds: number | null;
}

/** Seconds this thread spent runnable but not running (schedstat's second field, in ns). */
export function threadRunQueueWaitSeconds(): number | null {
  try {
    const f = readFileSync('/proc/thread-self/schedstat', 'latin1').split(' ');
    return Number(f[1]) / 1e9;
  } catch {
    return null;
  }
}

/** Clock ticks per second of /proc's utime and stime (USER_HZ, 100 on Linux). */
const CLK_TCK = 100;

/**
 * This thread's own CPU time. process.cpuUsage() is the whole process's; on a machine where the
 * HTTP thread, the shard workers, the store worker and V8's GC helpers share two cores, which
 * thread used the CPU is what explains a tail, so each thread reads its own line of /proc.
 */
export function threadCpuSeconds(): number | null {
  try {
    const s = readFileSync('/proc/thread-self/stat', 'latin1');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / CLK_TCK;
  } catch {
    return null;
  }
}

function kindOf(flags: number): GcKind {
  switch (flags) {
    case constants.NODE_PERFORMANCE_GC_MINOR:
      return 'minor';
    case constants.NODE_PERFORMANCE_GC_MAJOR:
      return 'major';
    case constants.NODE_PERFORMANCE_GC_INCREMENTAL:
      return 'incremental';
    default:
      return 'weakcb';
  }
}

export class TelemetryRecorder {
  private readonly gc: ThreadTelemetry['gc'] = {
    minor: { count: 0, seconds: 0, maxSeconds: 0 },
    major: { count: 0, seconds: 0, maxSeconds: 0 },
    incremental: { count: 0, seconds: 0, maxSeconds: 0 },
    weakcb: { count: 0, seconds: 0, maxSeconds: 0 },
  };
  private readonly delay: IntervalHistogram;
  private readonly observer: PerformanceObserver;
  private heapLive: number | null = null;

  constructor(readonly thread: string) {
    this.observer = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        const detail = (e as unknown as { detail?: { kind?: number } }).detail;
        const kind = kindOf(detail?.kind ?? 0);
        const g = this.gc[kind];
        const s = e.duration / 1000;
        // read once per Mark-Compact (rare), in the observer's callback shortly after it
        if (kind === 'major') this.heapLive = getHeapStatistics().used_heap_size;
        g.count++;
        g.seconds += s;
        if (s > g.maxSeconds) g.maxSeconds = s;
      }
    });
    this.observer.observe({ entryTypes: ['gc'] });
    this.delay = monitorEventLoopDelay({ resolution: 10 });
    this.delay.enable();
  }

  /** Current figures; `resetDelay` starts a new event-loop delay window (per scrape). */
  read(resetDelay = false): ThreadTelemetry {
    const mem = process.memoryUsage();
    const d = this.delay;
    const out: ThreadTelemetry = {
      thread: this.thread,
      gc: {
        minor: { ...this.gc.minor },
        major: { ...this.gc.major },
        incremental: { ...this.gc.incremental },
        weakcb: { ...this.gc.weakcb },
      },
      eventLoopDelay: {
        p99Seconds: d.count > 0 ? d.percentile(99) / 1e9 : 0,
        maxSeconds: d.count > 0 ? d.max / 1e9 : 0,
        meanSeconds: d.count > 0 ? d.mean / 1e9 : 0,
      },
      idleCollections: { ...collections },
      heapUsed: mem.heapUsed,
      heapTotal: mem.heapTotal,
      arrayBuffers: mem.arrayBuffers,
      heapLiveAfterMajorGc: this.heapLive,
      cpuSeconds: threadCpuSeconds(),
      runQueueWaitSeconds: threadRunQueueWaitSeconds(),
    };
    if (resetDelay) d.reset();
    return out;
  }

  close(): void {
    this.observer.disconnect();
    this.delay.disable();
  }
}
