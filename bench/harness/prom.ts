/**
 * The service's own latency histograms over one window, from two /metrics scrapes (Prometheus
 * text): server-side request duration per route, and the time to load a user from the store on
 * a miss. Set against the client's latency they say where a tail was spent: in the request's own
 * handling (route, shard, store load), or before and after it (waiting for the HTTP thread's event
 * loop, the network, the load generator).
 */

/** One histogram series: cumulative counts per upper bound (seconds), as Prometheus exposes them. */
interface Series {
  buckets: Map<number, number>;
  count: number;
  sum: number;
}

export interface HistogramWindow {
  count: number;
  meanMs: number;
  /** [upper bound ms, requests in the window at or below it] (cumulative, +Inf left out) */
  buckets: [number, number][];
  /** the smallest bucket bound holding 99% / 99.9% of the window's observations (null: beyond the last bound) */
  p99AtMostMs: number | null;
  p999AtMostMs: number | null;
}

const FAMILIES = ['readstates_http_request_duration_seconds', 'readstates_store_load_duration_seconds'];

/** name{labels} -> series, for the families above. */
export function parseHistograms(text: string): Map<string, Series> {
  const out = new Map<string, Series>();
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line.length === 0) continue;
    const family = FAMILIES.find((f) => line.startsWith(f + '_'));
    if (family === undefined) continue;
    const m = /^(\w+?)_(bucket|count|sum)(?:\{([^}]*)\})? (\S+)$/.exec(line);
    if (m === null) continue;
    const labels = (m[3] ?? '').split(',').filter((l) => l.length > 0 && !l.startsWith('le='));
    const key = labels.length > 0 ? `${family}{${labels.join(',')}}` : family;
    let s = out.get(key);
    if (s === undefined) out.set(key, (s = { buckets: new Map(), count: 0, sum: 0 }));
    const v = Number(m[4]);
    if (m[2] === 'count') s.count = v;
    else if (m[2] === 'sum') s.sum = v;
    else {
      const le = /le="([^"]+)"/.exec(m[3] ?? '')?.[1];
      if (le !== undefined && le !== '+Inf') s.buckets.set(Number(le), v);
    }
  }
  return out;
}

/** after - before, per series that saw anything in the window. */
export function histogramWindows(beforeText: string | undefined, afterText: string | undefined): Record<string, HistogramWindow> | null {
  if (beforeText === undefined || afterText === undefined) return null;
  const before = parseHistograms(beforeText);
  const after = parseHistograms(afterText);
  const out: Record<string, HistogramWindow> = {};
  for (const [key, a] of after) {
    const b = before.get(key);
    const count = a.count - (b?.count ?? 0);
    if (count <= 0) continue;
    const buckets: [number, number][] = [...a.buckets.entries()]
      .sort((x, y) => x[0] - y[0])
      .map(([le, n]) => [Math.round(le * 1e6) / 1e3, n - (b?.buckets.get(le) ?? 0)]);
    const atMost = (q: number): number | null => buckets.find(([, n]) => n >= q * count)?.[0] ?? null;
    out[key.replace(/^readstates_/, '')] = {
      count,
      meanMs: Math.round(((a.sum - (b?.sum ?? 0)) / count) * 1e6) / 1e3,
      buckets,
      p99AtMostMs: atMost(0.99),
      p999AtMostMs: atMost(0.999),
    };
  }
  return out;
}
