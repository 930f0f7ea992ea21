/**
 * The harness's reading of the service's own histograms (bench/harness/prom.ts): two /metrics
 * scrapes become the window's counts per bucket, per route, and the bounds that hold p99 / p99.9.
 */
import { describe, expect, it } from 'vitest';
import { histogramWindows, parseHistograms } from '../../bench/harness/prom.js';

function scrape(route: Record<string, number[]>, loads: number[], sums: { route: number; loads: number }): string {
  const les = ['0.001', '0.01', '0.1', '1'];
  const lines = ['# HELP readstates_http_request_duration_seconds HTTP request duration by route', '# TYPE readstates_http_request_duration_seconds histogram'];
  for (const [r, counts] of Object.entries(route)) {
    counts.forEach((n, i) => lines.push(`readstates_http_request_duration_seconds_bucket{le="${les[i]}",route="${r}"} ${n}`));
    lines.push(`readstates_http_request_duration_seconds_bucket{le="+Inf",route="${r}"} ${counts[counts.length - 1]}`);
    lines.push(`readstates_http_request_duration_seconds_sum{route="${r}"} ${sums.route}`);
    lines.push(`readstates_http_request_duration_seconds_count{route="${r}"} ${counts[counts.length - 1]}`);
  }
  loads.forEach((n, i) => lines.push(`readstates_store_load_duration_seconds_bucket{le="${les[i]}"} ${n}`));
  lines.push(`readstates_store_load_duration_seconds_sum ${sums.loads}`, `readstates_store_load_duration_seconds_count ${loads[loads.length - 1]}`);
  lines.push('readstates_heap_used_bytes{thread="main"} 123');
  return lines.join('\n') + '\n';
}

describe('service histograms over a window', () => {
  it('parses only the two families, keyed by their labels without le', () => {
    const h = parseHistograms(scrape({ mention: [1, 2, 3, 3] }, [0, 1, 1, 1], { route: 0.5, loads: 0.002 }));
    expect([...h.keys()].sort()).toEqual(['readstates_http_request_duration_seconds{route="mention"}', 'readstates_store_load_duration_seconds']);
    expect(h.get('readstates_store_load_duration_seconds')).toEqual({ buckets: new Map([[0.001, 0], [0.01, 1], [0.1, 1], [1, 1]]), count: 1, sum: 0.002 });
  });

  it('diffs the scrapes and finds the bucket bounds of p99 and p99.9', () => {
    const before = scrape({ mention: [100, 100, 100, 100], ack: [5, 5, 5, 5] }, [0, 0, 0, 0], { route: 1, loads: 0 });
    // window: 1,000 mentions, 990 under 1 ms, 9 under 10 ms, 1 under 100 ms; acks unchanged; 10 loads
    const after = scrape({ mention: [1090, 1099, 1100, 1100], ack: [5, 5, 5, 5] }, [0, 8, 10, 10], { route: 2.5, loads: 0.12 });
    const w = histogramWindows(before, after)!;
    expect(Object.keys(w).sort()).toEqual(['http_request_duration_seconds{route="mention"}', 'store_load_duration_seconds']);
    const m = w['http_request_duration_seconds{route="mention"}'];
    expect(m.count).toBe(1000);
    expect(m.meanMs).toBe(1.5);
    expect(m.buckets).toEqual([[1, 990], [10, 999], [100, 1000], [1000, 1000]]);
    expect(m.p99AtMostMs).toBe(1);
    expect(m.p999AtMostMs).toBe(10);
    const l = w['store_load_duration_seconds'];
    expect(l.count).toBe(10);
    expect(l.meanMs).toBe(12);
    expect(l.p99AtMostMs).toBe(100);
  });

  it('is null without both scrapes (a service with no /metrics)', () => {
    expect(histogramWindows(undefined, 'x')).toBeNull();
  });
});
