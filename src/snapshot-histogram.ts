/**
 * A Prometheus histogram whose observations are made on another thread (the store thread keeps a
 * FixedHistogram, workers/fixed-histogram.ts) and arrive here as cumulative snapshots at scrape
 * time: nothing crosses threads per observation.
 */
import { Histogram, type MetricObjectWithValues, type MetricValueWithName } from 'prom-client';
import type { HistogramSnapshot } from '../workers/fixed-histogram.js';

interface PromStringSource {
  getForPromString(this: Histogram): Promise<MetricObjectWithValues<MetricValueWithName<string>>>;
}

export class SnapshotHistogram extends Histogram {
  private latest: HistogramSnapshot | null = null;
  /** what earlier threads (before a store thread was replaced) had counted */
  private carried: HistogramSnapshot | null = null;

  /** The thread's cumulative figures; a total lower than the last means a new thread started. */
  set(s: HistogramSnapshot): void {
    if (this.latest !== null && total(s) < total(this.latest)) this.carried = add(this.carried, this.latest);
    this.latest = s;
  }

  // prom-client's registry renders /metrics from getForPromString (and Histogram.get() calls it
  // too), so that is the method to replace; it is not in prom-client's type declarations.
  async getForPromString(): Promise<MetricObjectWithValues<MetricValueWithName<string>>> {
    const base = await (Histogram.prototype as unknown as PromStringSource).getForPromString.call(this);
    const s = this.latest === null ? null : add(this.carried, this.latest);
    if (s === null) return base;
    const values: MetricValueWithName<string>[] = [];
    let cumulative = 0;
    for (let b = 0; b < s.counts.length; b++) {
      cumulative += s.counts[b];
      const le = b < s.bounds.length ? s.bounds[b] : '+Inf';
      values.push({ metricName: `${base.name}_bucket`, labels: { le }, value: cumulative });
    }
    values.push({ metricName: `${base.name}_sum`, labels: {}, value: s.sum });
    values.push({ metricName: `${base.name}_count`, labels: {}, value: cumulative });
    return { ...base, values };
  }
}

function total(s: HistogramSnapshot): number {
  let n = 0;
  for (const c of s.counts) n += c;
  return n;
}

function add(a: HistogramSnapshot | null, b: HistogramSnapshot): HistogramSnapshot {
  if (a === null) return b;
  return { bounds: b.bounds, counts: b.counts.map((c, i) => c + (a.counts[i] ?? 0)), sum: a.sum + b.sum };
}
