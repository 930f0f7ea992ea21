/**
 * What an on-call engineer relies on: /metrics, /v1/stats, the OpenAPI document.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call } from '../support/http-client.js';
import { startService, type RunningService } from '../support/service.js';

let s: RunningService;
beforeAll(async () => {
  s = await startService({ shards: 2, capacity: 10_000, maxUsers: 1000, maxQueue: 8 });
});
afterAll(async () => {
  await s.close();
});

async function scrape(): Promise<string> {
  const res = await fetch(s.url + '/metrics');
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
  return res.text();
}

function value(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  return line === undefined ? NaN : Number(line.slice(series.length + 1));
}

describe('/metrics', () => {
  it('follows Prometheus conventions and every family is documented in README', async () => {
    const text = await scrape();
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const families = [...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1], m[2]]);
    expect(families.length).toBeGreaterThan(30);
    for (const [name, type] of families) {
      expect(name).toMatch(/^readstates_[a-z0-9_]+$/);
      if (type === 'counter') expect(name).toMatch(/_total$/);
      else expect(name).not.toMatch(/_total$/);
      expect(readme, `README documents ${name}`).toContain(`\`${name}\``);
    }
  });

  it('counts requests, shard hits and misses, and refusals; reports every thread', async () => {
    for (let i = 0; i < 3; i++) await call(s.url, 'POST', '/v1/users/42/read-states/1/mentions', {});
    const ops = Array.from({ length: 9 }, (_, i) => ({ op: 'get', user_id: '43', channel_id: String(i + 1) }));
    const refused = await call(s.url, 'POST', '/v1/batch', { ops });
    expect(refused.status).toBe(503);
    const text = await scrape();
    expect(value(text, 'readstates_http_requests_total{route="/v1/users/:user_id/read-states/:channel_id/mentions",status="200"}')).toBe(3);
    expect(value(text, 'readstates_rejected_total{code="SHARD_OVERLOADED"}')).toBe(1);
    // a series appears once its counter moved: a shard that saw nothing has none
    const orZero = (v: number): number => (Number.isNaN(v) ? 0 : v);
    const misses = [0, 1].map((sh) => orZero(value(text, `readstates_shard_misses_total{shard="${sh}"}`)));
    const hits = [0, 1].map((sh) => orZero(value(text, `readstates_shard_hits_total{shard="${sh}"}`)));
    expect(misses[0] + misses[1]).toBe(1);
    expect(hits[0] + hits[1]).toBe(2);
    // the miss was a load on the store thread; its histogram arrives as that thread's snapshot
    const loads = value(text, 'readstates_store_load_duration_seconds_count');
    expect(loads).toBeGreaterThanOrEqual(1);
    expect(value(text, 'readstates_store_load_duration_seconds_bucket{le="+Inf"}')).toBe(loads);
    expect(value(text, 'readstates_store_load_duration_seconds_sum')).toBeGreaterThan(0);
    expect(value(text, 'readstates_scrape_threads')).toBe(4); // main + 2 shards + the store thread (the memory store runs there too)
    for (const thread of ['main', 'shard-0', 'shard-1', 'store']) {
      expect(text).toContain(`readstates_gc_pauses_total{thread="${thread}",kind="minor"}`);
      expect(value(text, `readstates_heap_used_bytes{thread="${thread}"}`)).toBeGreaterThan(0);
      expect(value(text, `readstates_event_loop_delay_max_seconds{thread="${thread}"}`)).toBeGreaterThanOrEqual(0);
    }
    expect(value(text, 'readstates_process_resident_memory_bytes')).toBeGreaterThan(10e6);
  });

  it('/v1/stats gives the same figures as JSON', async () => {
    const stats = (await call(s.url, 'GET', '/v1/stats')).body as { shards: { readStates: number }[]; threads: { thread: string }[]; store: { name: string } };
    expect(stats.shards.reduce((a, x) => a + x.readStates, 0)).toBe(1);
    expect(stats.threads.map((t) => t.thread)).toEqual(['main', 'shard-0', 'shard-1', 'store']);
    expect(stats.store.name).toBe('memory');
  });
});

describe('/docs/json', () => {
  it('is an OpenAPI document generated from the route schemas', async () => {
    const doc = (await call(s.url, 'GET', '/docs/json')).body as { openapi: string; paths: Record<string, Record<string, unknown>> };
    expect(doc.openapi).toMatch(/^3\./);
    for (const [path, method] of [
      ['/v1/users/{user_id}/read-states', 'get'],
      ['/v1/users/{user_id}/read-states/{channel_id}', 'patch'],
      ['/v1/users/{user_id}/read-states/{channel_id}/ack', 'post'],
      ['/v1/channels/{channel_id}/mentions', 'post'],
      ['/v1/batch', 'post'],
    ]) {
      expect(doc.paths[path]?.[method], `${method} ${path}`).toBeDefined();
    }
    const ack = doc.paths['/v1/users/{user_id}/read-states/{channel_id}/ack'].post as { requestBody: { content: { 'application/json': { schema: { properties: Record<string, unknown> } } } } };
    expect(Object.keys(ack.requestBody.content['application/json'].schema.properties)).toEqual(['message_id', 'mention_count', 'manual']);
  });
});
