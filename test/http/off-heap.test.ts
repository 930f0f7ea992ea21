/**
 * The point of the slabs: caching a million read states must not grow the shard worker's V8 heap
 * (it would if each read state were a JS object: ~500 bytes each, ~500 MB here).
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { call } from '../support/http-client.js';
import { startService, type RunningService } from '../support/service.js';

let s: RunningService;
beforeAll(async () => {
  s = await startService({ shards: 1, capacity: 1_100_000, maxUsers: 20_000 });
});
afterAll(async () => {
  await s.close();
});

it('caches 1M read states with < 8 MB of shard worker heap growth', async () => {
  const before = (await s.service.router.stats(true))[0];
  const usersPerBatch = 10;
  const channelsPerUser = 1000;
  for (let b = 0; b < 100; b++) {
    const ops = [];
    for (let u = 0; u < usersPerBatch; u++) {
      const user = String(1_000_000 + b * usersPerBatch + u);
      for (let c = 1; c <= channelsPerUser; c++) ops.push({ op: 'mention', user_id: user, channel_id: String(c * 7919) });
    }
    const r = await call(s.url, 'POST', '/v1/batch', { ops });
    expect(r.status).toBe(200);
  }
  const after = (await s.service.router.stats(true))[0];
  expect(after.readStates - before.readStates).toBe(1_000_000);
  expect(after.evictions).toBe(0);
  const growth = after.heapUsed - before.heapUsed;
  console.log(`shard heapUsed growth for 1M read states: ${(growth / 1048576).toFixed(2)} MB`);
  expect(growth).toBeLessThan(8 * 1024 * 1024);
});
