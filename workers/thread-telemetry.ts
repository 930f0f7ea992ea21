/**
 * Per-thread runtime figures: GC pauses by kind (PerformanceObserver 'gc'), event-loop delay
 * (monitorEventLoopDelay), V8 heap. Every thread (main, each shard, the store worker) starts one;
 * the numbers are read when someone asks (a scrape, the stats endpoint), never per operation.
 *
 * PerformanceObserver reports only the stop-the-world part of a collection; incremental marking
 * done in steps on the thread shows up as event-loop delay instead, which is why both are here.
 */
import { constants, PerformanceObserver, monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';

export const GC_KINDS = ['minor', 'major', 'incremental', 'weakcb'] as const;
export type GcKind = (typeof GC_KINDS)[number];

export interface ThreadTelemetry {
  thread: string;
  gc: Record<GcKind, { count: number; seconds: number; maxSeconds: number }>;
  eventLoopDelay: { p99Seconds: number; maxSeconds: number; meanSeconds: number };
  heapUsed: number;
  heapTotal: number;
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

  constructor(readonly thread: string) {
    this.observer = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        const detail = (e as unknown as { detail?: { kind?: number } }).detail;
        const g = this.gc[kindOf(detail?.kind ?? 0)];
        const s = e.duration / 1000;
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
      heapUsed: mem.heapUsed,
      heapTotal: mem.heapTotal,
    };
    if (resetDelay) d.reset();
    return out;
  }

  close(): void {
    this.observer.disconnect();
    this.delay.disable();
  }
}
