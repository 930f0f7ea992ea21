/**
 * A Prometheus histogram whose observations are kept elsewhere in fixed buckets
 * (workers/fixed-histogram.ts): on the store thread, or on this thread in typed arrays
 * (request-counts.ts), and handed over as cumulative snapshots at scrape time. Nothing crosses
 * threads per observation, and nothing hashes labels per observation as prom-client's children do.
 */
import { Histogram, type MetricObjectWithValues, type MetricValueWithName } from 'prom-client';
import type { HistogramSnapshot } from '../workers/fixed-histogram.js';

interface PromStringSource {
  getForPromString(this: Histogram): Promise<MetricObjectWithValues<MetricValueWithName<string>>>;
}

interface Series {
  labels: Record<string, string>;
  latest: HistogramSnapshot;
  /** what earlier threads (before a store thread was replaced) had counted */
  carried: HistogramSnapshot | null;
}

export class SnapshotHistogram<T extends string = string> extends Histogram<T> {
  private readonly series = new Map<string, Series>();

  /** One series' cumulative figures; a total lower than the last means a new thread started. */
  set(s: HistogramSnapshot, labels: Partial<Record<T, string>> = {}): void {
    const key = JSON.stringify(labels);
    const old = this.series.get(key);
    if (old === undefined) {
      this.series.set(key, { labels: labels as Record<string, string>, latest: s, carried: null });
      return;
    }
    if (total(s) < total(old.latest)) old.carried = add(old.carried, old.latest);
    old.latest = s;
  }

  // prom-client's registry renders /metrics from getForPromString (and Histogram.get() calls it
  // too), so that is the method to replace; it is not in prom-client's type declarations.
  async getForPromString(): Promise<MetricObjectWithValues<MetricValueWithName<string>>> {
    const base = await (Histogram.prototype as unknown as PromStringSource).getForPromString.call(this as unknown as Histogram);
    if (this.series.size === 0) return base;
    const values: MetricValueWithName<string>[] = [];
    for (const { labels, latest, carried } of this.series.values()) {
      const s = add(carried, latest);
      let cumulative = 0;
      for (let b = 0; b < s.counts.length; b++) {
        cumulative += s.counts[b];
        const le = b < s.bounds.length ? s.bounds[b] : '+Inf';
        values.push({ metricName: `${base.name}_bucket`, labels: { ...labels, le }, value: cumulative });
      }
      values.push({ metricName: `${base.name}_sum`, labels, value: s.sum });
      values.push({ metricName: `${base.name}_count`, labels, value: cumulative });
    }
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
