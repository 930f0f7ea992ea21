/**
 * The benchmark's `mixed` scenario must churn (the brief: a working set larger than capacity, so
 * the service evicts and loads users back). Driven against the real service: after the fill the
 * service is full, and the scenario's own requests must make it evict users and load them again;
 * with --churn 0 the same requests must evict nothing.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { RequestFactory, SCENARIOS, buildUniverse, capacityFor, fillBodies } from '../../bench/harness/workload.js';
import { startService, type RunningService } from '../support/service.js';

interface ShardStats {
  evictions: number;
  misses: number;
  readStates: number;
  capacity: number;
}

const RESIDENT = 4_000;

let svc: RunningService | undefined;
afterEach(async () => {
  await svc?.close();
  svc = undefined;
});

async function shards(url: string): Promise<ShardStats[]> {
  const res = await fetch(url + '/v1/stats');
  return ((await res.json()) as { shards: ShardStats[] }).shards;
}

/** Fills the resident set, then sends `requests` of the mixed scenario; returns the shards' stats before and after. */
async function drive(churn: number, requests: number): Promise<{ before: ShardStats[]; after: ShardStats[]; non5xx: boolean }> {
  const capacity = capacityFor(RESIDENT, churn);
  svc = await startService({ shards: 1, capacity, maxUsers: 1000 });
  const universe = buildUniverse(RESIDENT, churn > 0 ? churn * capacity : RESIDENT);
  const f = new RequestFactory(universe, SCENARIOS.mixed, 7);
  for (const b of fillBodies(universe, f, 500, 256 * 1024)) {
    const res = await fetch(svc.url + '/v1/batch', { method: 'POST', headers: { 'content-type': 'application/json' }, body: b.body });
    expect(res.status).toBe(200);
    await res.arrayBuffer();
  }
  const before = await shards(svc.url);
  let non5xx = true;
  for (let i = 0; i < requests; i++) {
    const r = f.next();
    const res = await fetch(svc.url + r.path, { method: r.method, headers: r.body !== undefined ? { 'content-type': 'application/json' } : {}, body: r.body });
    await res.arrayBuffer();
    if (res.status >= 500) non5xx = false;
  }
  return { before, after: await shards(svc.url), non5xx };
}

describe('mixed scenario churn', () => {
  it('defaults to a working set larger than capacity, and capacity is then the resident set', () => {
    expect(SCENARIOS.mixed.defaultChurn).toBeGreaterThan(1);
    expect(capacityFor(RESIDENT, SCENARIOS.mixed.defaultChurn)).toBe(RESIDENT);
    expect(capacityFor(RESIDENT, 0)).toBeGreaterThan(RESIDENT);
    const u = buildUniverse(RESIDENT, SCENARIOS.mixed.defaultChurn * RESIDENT);
    expect(u.readStates).toBeGreaterThanOrEqual(SCENARIOS.mixed.defaultChurn * RESIDENT);
    expect(u.users).toBeGreaterThan(u.residentUsers);
  });

  it('makes a full service evict users and load evicted ones back, without 5xx', async () => {
    const { before, after, non5xx } = await drive(SCENARIOS.mixed.defaultChurn, 3_000);
    expect(before[0].readStates).toBe(RESIDENT);
    expect(before[0].evictions).toBe(0);
    expect(after[0].evictions).toBeGreaterThan(0);
    // misses after the fill: users beyond the resident set, and evicted ones touched again
    expect(after[0].misses - before[0].misses).toBeGreaterThan(after[0].evictions / 2);
    expect(after[0].readStates).toBeLessThanOrEqual(RESIDENT);
    expect(non5xx).toBe(true);
  });

  it('with --churn 0 the same scenario evicts nothing', async () => {
    const { before, after } = await drive(0, 1_000);
    expect(after[0].evictions).toBe(0);
    expect(after[0].misses).toBe(before[0].misses);
  });
});
