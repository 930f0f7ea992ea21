/**
 * Request counts and durations kept in typed arrays (src/request-counts.ts) and rendered as
 * labelled Prometheus histograms at scrape time (src/snapshot-histogram.ts): random observations
 * against a reference count per route and bucket.
 */
import { Registry } from 'prom-client';
import { expect, it } from 'vitest';
import { parseHistograms } from '../../bench/harness/prom.js';
import { RequestCounts } from '../../src/request-counts.js';
import { SnapshotHistogram } from '../../src/snapshot-histogram.js';

const BOUNDS = [0.001, 0.01, 0.1, 1];

it('renders each route as its own histogram with the counts observed, cumulative per bucket', async () => {
  const counts = new RequestCounts(BOUNDS);
  const registry = new Registry();
  const h = new SnapshotHistogram<'route'>({ name: 'rq_seconds', help: 'h', labelNames: ['route'], buckets: BOUNDS, registers: [registry] });
  const routes = ['/a', '/b/:id', '/c'];
  const ref = new Map<string, { buckets: number[]; sum: number; statuses: Map<number, number> }>();
  let seed = 7;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  for (let i = 0; i < 5000; i++) {
    const route = routes[Math.floor(rnd() * 2)]; // '/c' is never observed
    const status = rnd() < 0.9 ? 200 : 503;
    const seconds = rnd() ** 4 * 2;
    counts.observe(route, status, seconds);
    const r = ref.get(route) ?? { buckets: [0, 0, 0, 0, 0], sum: 0, statuses: new Map() };
    let b = 0;
    while (b < BOUNDS.length && seconds > BOUNDS[b]) b++;
    r.buckets[b]++;
    r.sum += seconds;
    r.statuses.set(status, (r.statuses.get(status) ?? 0) + 1);
    ref.set(route, r);
  }
  const seen: string[] = [];
  counts.forEach((route, statuses, duration) => {
    seen.push(route);
    expect(new Map(statuses)).toEqual(ref.get(route)!.statuses);
    h.set(duration, { route });
  });
  expect(seen.sort()).toEqual(['/a', '/b/:id']);
  const parsed = parseHistograms((await registry.metrics()).replace(/rq_seconds/g, 'readstates_http_request_duration_seconds'));
  for (const [route, r] of ref) {
    const got = parsed.get(`readstates_http_request_duration_seconds{route="${route}"}`)!;
    let cumulative = 0;
    const want = new Map(BOUNDS.map((le, i) => [le, (cumulative += r.buckets[i])]));
    expect(got.buckets).toEqual(want);
    expect(got.count).toBe(r.buckets.reduce((a, n) => a + n, 0));
    expect(got.sum).toBeCloseTo(r.sum, 9);
  }
});
