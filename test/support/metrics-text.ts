/** Reads counters from the service's /metrics text (tests count requests and refusals this way). */

/** Sum of every sample of `metric` whose labels include all of `labels`. */
export async function metricSum(base: string, metric: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(base + '/metrics')).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(metric + '{') && !line.startsWith(metric + ' ')) continue;
    const brace = line.indexOf('}');
    const labelText = brace < 0 ? '' : line.slice(metric.length + 1, brace);
    if (!Object.entries(labels).every(([k, v]) => labelText.includes(`${k}="${v}"`))) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

/** HTTP requests the service answered on `route` (the route pattern), optionally with one status. */
export function requestsOn(base: string, route: string, status?: number): Promise<number> {
  return metricSum(base, 'readstates_http_requests_total', status === undefined ? { route } : { route, status: String(status) });
}
