/**
 * A shard worker that dies after applying a batch, before that batch's store records reach the
 * main thread, loses nothing acknowledged: what the batch evicted (a dirty user) reaches the store
 * from the journal, and a load of that user sees it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { MemoryStore } from '../../workers/store/memory-store.js';
import { call } from '../support/http-client.js';
import { until } from '../support/until.js';
import { startService } from '../support/service.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});


it("a dirty user evicted by a batch whose worker then dies is not lost", async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'rs-dying-'));
  dirs.push(dataDir);
  const store = new MemoryStore();
  // One shard, room for two users, nothing flushed by the timer: only evictions write.
  const s = await startService({ store: 'sqlite', dataDir, shards: 1, capacity: 16, maxUsers: 2, flushDelayMs: 3_600_000 }, store);
  try {
    for (let m = 0; m < 3; m++) expect((await call(s.url, 'POST', '/v1/users/101/read-states/1/mentions', {})).status).toBe(200);
    expect((await call(s.url, 'POST', '/v1/users/102/read-states/1/mentions', {})).status).toBe(200);
    const lane = s.service.router.lanes[0];
    const restarts = lane.restarts;
    lane.exitAfterNextBatch();
    // User 103 needs a user slot: user 101 (least recently used, dirty) is evicted in this batch.
    const r = await call(s.url, 'POST', '/v1/users/103/read-states/1/mentions', {});
    expect(r.status).toBe(503);
    // Parked behind its load when the worker died: not applied, and the answer says so.
    expect(r.body).toMatchObject({ error: 'SHARD_RESTARTED', applied: false });
    await until('a replacement worker and /ready 200', async () => lane.restarts > restarts && (await call(s.url, 'GET', '/ready')).status === 200);
    const got = await call(s.url, 'GET', '/v1/users/101/read-states/1');
    expect(got.status).toBe(200);
    expect((got.body as { mention_count: number }).mention_count).toBe(3);
    // ...and it reaches the store, not only the pending overlay.
    await until('user 101 in the store', async () => (await store.load(101, 0)).length > 0);
  } finally {
    await s.close();
  }
});
