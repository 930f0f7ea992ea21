/**
 * Deletes count against --max-pending-writes: while the store is down, each delete adds a store
 * record that waits in the pending pool, so once the pool holds the limit, deletes get 503
 * STORE_BACKLOG (not applied) instead of growing it without bound; they work again once the
 * store has caught up.
 */
import { expect, it } from 'vitest';
import { MemoryStore } from '../../workers/store/memory-store.js';
import { FaultyStore } from '../support/faulty-store.js';
import { call } from '../support/http-client.js';
import { startService } from '../support/service.js';

it('a store outage with many deletes keeps the pending pool at --max-pending-writes', async () => {
  const store = new FaultyStore(new MemoryStore());
  const s = await startService({ maxPendingWrites: 20, flushDelayMs: 3_600_000 }, store);
  try {
    for (let c = 1; c <= 60; c++) expect((await call(s.url, 'POST', `/v1/users/3/read-states/${c}/mentions`, {})).status).toBe(200);
    store.failing = true;
    const statuses: number[] = [];
    for (let c = 1; c <= 60; c++) {
      const r = await call(s.url, 'DELETE', `/v1/users/3/read-states/${c}`);
      statuses.push(r.status);
      if (r.status === 503) expect(r.body).toMatchObject({ error: 'STORE_BACKLOG', applied: false });
      expect(s.service.writeBehind.pendingRecords).toBeLessThanOrEqual(21);
    }
    expect(statuses.filter((x) => x === 204).length).toBeGreaterThanOrEqual(20);
    expect(statuses.filter((x) => x === 503).length).toBeGreaterThan(0);
    // Refused deletes were not applied.
    const refused = statuses.map((x, i) => [x, i + 1]).filter(([x]) => x === 503).map(([, c]) => c);
    expect((await call(s.url, 'GET', `/v1/users/3/read-states/${refused[0]}`)).status).toBe(200);
    store.failing = false;
    expect(await s.service.writeBehind.drain(20_000)).toBe(true);
    expect((await call(s.url, 'DELETE', `/v1/users/3/read-states/${refused[0]}`)).status).toBe(204);
  } finally {
    await s.close();
  }
});
