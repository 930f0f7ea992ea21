/**
 * Requests by route and status, and their durations, counted on the HTTP thread in typed arrays
 * and read by metrics.ts at scrape time. prom-client's labelled children hash their label values
 * on every inc() and observe(): a few microseconds per request on the thread every request waits
 * for, which here is a tenth of what a request costs that thread.
 */
import { FixedHistogram, type HistogramSnapshot } from '../workers/fixed-histogram.js';

const FIRST_STATUS = 100;
const STATUSES = 500;

interface RouteCounts {
  readonly route: string;
  /** requests answered with status FIRST_STATUS + i */
  readonly byStatus: Float64Array;
  readonly duration: FixedHistogram;
}

export class RequestCounts {
  private readonly routes = new Map<string, RouteCounts>();

  constructor(private readonly bounds: readonly number[]) {}

  observe(route: string, status: number, seconds: number): void {
    let r = this.routes.get(route);
    if (r === undefined) r = this.addRoute(route);
    const i = status - FIRST_STATUS;
    if (i >= 0 && i < STATUSES) r.byStatus[i]++;
    r.duration.observe(seconds);
  }

  /** Every route's cumulative counts per status seen, and its duration histogram. */
  forEach(fn: (route: string, statuses: [status: number, count: number][], duration: HistogramSnapshot) => void): void {
    for (const r of this.routes.values()) {
      const statuses: [number, number][] = [];
      for (let i = 0; i < STATUSES; i++) if (r.byStatus[i] > 0) statuses.push([FIRST_STATUS + i, r.byStatus[i]]);
      fn(r.route, statuses, r.duration.snapshot());
    }
  }

  private addRoute(route: string): RouteCounts {
    const r: RouteCounts = { route, byStatus: new Float64Array(STATUSES), duration: new FixedHistogram(this.bounds) };
    this.routes.set(route, r);
    return r;
  }
}
