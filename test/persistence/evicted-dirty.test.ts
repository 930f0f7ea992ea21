/**
 * Evictions while the store is slow or down: changes are kept until the store confirms them,
 * and a user who comes back meanwhile sees them.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryStore } from '../../workers/store/memory-store.js';
import { call } from '../support/http-client.js';
import { FaultyStore } from '../support/faulty-store.js';
import { startService, type RunningService } from '../support/service.js';

let s: RunningService | undefined;
afterEach(async () => {
  await s?.close();
  s = undefined;
});

describe('evictions and a slow or failing store', () => {
  it('a user evicted dirty and requested again before the write completes sees its changes', async () => {
    const inner = new MemoryStore();
    const store = new FaultyStore(inner);
    s = await startService({ shards: 1, capacity: 4, maxUsers: 2, flushDelayMs: 3_600_000 }, store);
    store.holding = true; // every store write waits
    const first = await call(s.url, 'POST', '/v1/users/1/read-states/1/mentions', { count: 5 });
    expect(first.status).toBe(200);
    // two other users push user 1 out of the 2-user cache
    await call(s.url, 'POST', '/v1/users/2/read-states/1/mentions', {});
    await call(s.url, 'POST', '/v1/users/3/read-states/1/mentions', {});
    const stats = (await call(s.url, 'GET', '/v1/stats')).body as { shards: { evictions: number }[]; store: { pending: number } };
    expect(stats.shards[0].evictions).toBeGreaterThanOrEqual(1);
    expect(stats.store.pending).toBeGreaterThanOrEqual(1);
    expect(inner.size).toBe(0); // nothing reached the store yet
    const r = await call(s.url, 'GET', '/v1/users/1/read-states/1');
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ mention_count: 5, version: (first.body as { version: number }).version });
    store.release();
    expect(await s.service.writeBehind.drain(5000)).toBe(true);
  });

  it('while the store is down: answers from memory, /ready says so, refuses rather than drops, then writes everything', async () => {
    const inner = new MemoryStore();
    const store = new FaultyStore(inner);
    s = await startService({ shards: 1, capacity: 8, maxUsers: 8, flushDelayMs: 0 }, store);
    for (let u = 1; u <= 4; u++) expect((await call(s.url, 'POST', `/v1/users/${u}/read-states/1/mentions`, {})).status).toBe(200);
    expect(await s.service.writeBehind.drain(5000)).toBe(true);
    store.failing = true;
    const acked = new Map<number, number>();
    const refused: number[] = [];
    for (let u = 1; u <= 20; u++) {
      const r = await call(s.url, 'POST', `/v1/users/${u}/read-states/2/mentions`, { count: u });
      if (r.status === 200) acked.set(u, u);
      else {
        expect(r.status).toBe(503);
        expect(r.headers.get('retry-after')).not.toBeNull();
        refused.push(u);
      }
      if (u === 2) {
        // let the failing flush be noticed
        await new Promise((res) => setTimeout(res, 50));
        const ready = await call(s.url, 'GET', '/ready');
        expect(ready.status).toBe(503);
        expect(ready.body).toMatchObject({ error: 'STORE_UNAVAILABLE' });
      }
    }
    expect(acked.size).toBeGreaterThanOrEqual(4); // cached users keep working
    expect(refused.length).toBeGreaterThan(0); // no room without dropping unflushed changes
    store.failing = false;
    expect(await s.service.writeBehind.drain(10_000)).toBe(true);
    await s.service.router.flushAll();
    expect(await s.service.writeBehind.drain(10_000)).toBe(true);
    expect((await call(s.url, 'GET', '/ready')).status).toBe(200);
    for (const [u, count] of acked) {
      const loaded = await inner.load(u, 0);
      expect(loaded.length, `user ${u}`).toBeGreaterThan(0);
      const body = (await call(s.url, 'GET', `/v1/users/${u}/read-states/2`)).body as { mention_count: number };
      expect(body.mention_count).toBe(count);
    }
  });
});
