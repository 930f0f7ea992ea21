/**
 * A histogram with fixed buckets, kept on the thread that observes (the store thread) and read
 * now and then by the main thread, which serves it as a Prometheus histogram (src/metrics.ts).
 */
export interface HistogramSnapshot {
  /** upper bounds, ascending (the last bucket, +Inf, is implied) */
  bounds: number[];
  /** observations per bucket, not cumulative; one more than bounds */
  counts: number[];
  sum: number;
}

export class FixedHistogram {
  private readonly counts: Float64Array;
  private sum = 0;

  constructor(private readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(v: number): void {
    let b = 0;
    while (b < this.bounds.length && v > this.bounds[b]) b++;
    this.counts[b]++;
    this.sum += v;
  }

  snapshot(): HistogramSnapshot {
    return { bounds: [...this.bounds], counts: Array.from(this.counts), sum: this.sum };
  }
}

/** Seconds per user load (misses). */
export const LOAD_SECONDS_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
/** Read states per store write call. */
export const BATCH_SIZE_BUCKETS = [1, 10, 50, 100, 250, 500, 1000, 5000];
