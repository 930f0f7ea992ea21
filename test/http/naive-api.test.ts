/**
 * The same HTTP contract (api-suite.ts) against the naive comparison service (bench/naive): one
 * process, lru-cache of JS objects, same write-behind, in-process with a MemoryStore. Then a few
 * checks of the naive service's own write-behind path (timer flush, evictions, shutdown, outage).
 */
import { describe, expect, it } from 'vitest';
import { loadConfig, type Config } from '../../src/config.js';
import { MemoryStore } from '../../workers/store/memory-store.js';
import type { ReadStateStore } from '../../workers/store/store.js';
import { RsWord } from '../../workers/protocol.js';
import { buildNaiveService, type NaiveService } from '../../bench/naive/server.js';
import { call } from '../support/http-client.js';
import { FaultyStore } from '../support/faulty-store.js';
import { defineApiSuite, type Limits, type Target } from './api-suite.js';

interface Running extends Target {
  service: NaiveService;
}

async function startNaive(limits: Limits, overrides: Partial<Config> = {}, store: ReadStateStore = new MemoryStore()): Promise<Running> {
  // shards has no meaning here (one process); capacity and maxUsers are whole-process in both.
  const config: Config = {
    ...loadConfig(['--port', '0', '--store', 'memory'], {}),
    ...(limits.capacity !== undefined ? { capacity: limits.capacity } : { capacity: 200_000, maxUsers: 50_000 }),
    ...(limits.maxUsers !== undefined ? { maxUsers: limits.maxUsers } : {}),
    ...(limits.maxQueue !== undefined ? { maxQueue: limits.maxQueue } : {}),
    ...overrides,
  };
  const service = await buildNaiveService(config, { store });
  await service.app.listen({ host: '127.0.0.1', port: 0 });
  const address = service.app.server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return {
    url: `http://127.0.0.1:${address.port}`,
    service,
    close: async () => {
      await service.close();
    },
  };
}

defineApiSuite('naive service', (limits) => startNaive(limits));

/** The stored mention counts of a user, by channel id (user and channel ids below 2^32). */
async function stored(store: ReadStateStore, user: number): Promise<Record<number, number>> {
  const words = await store.load(user, 0);
  const out: Record<number, number> = {};
  for (let at = 0; at < words.length; at += RsWord.Size) out[words[at + RsWord.ChanLo]] = words[at + RsWord.Mention];
  return out;
}

async function until(check: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('naive service: write-behind', () => {
  it('the timer writes changes once the flush delay has passed, not before', async () => {
    const store = new MemoryStore();
    const t = await startNaive({}, { flushDelayMs: 400 }, store);
    try {
      await call(t.url, 'POST', '/v1/users/1/read-states/2/mentions', { count: 3 });
      expect(await stored(store, 1)).toEqual({});
      await until(async () => (await stored(store, 1))[2] === 3);
      expect(t.service.unflushed()).toBe(0);
    } finally {
      await t.close();
    }
  });

  it('evicted users with unflushed changes go to the store at eviction and come back intact', async () => {
    const store = new MemoryStore();
    const t = await startNaive({ capacity: 4, maxUsers: 2 }, { flushDelayMs: 3_600_000 }, store);
    try {
      const v1 = ((await call(t.url, 'POST', '/v1/users/1/read-states/1/mentions', { count: 5 })).body as { version: number }).version;
      const v2 = ((await call(t.url, 'POST', '/v1/users/1/read-states/2/mentions', { count: 6 })).body as { version: number }).version;
      await call(t.url, 'POST', '/v1/users/2/read-states/1/mentions', {});
      await call(t.url, 'POST', '/v1/users/3/read-states/1/mentions', {}); // max 2 users: evicts user 1
      await until(async () => (await stored(store, 1))[2] === 6);
      expect(await stored(store, 1)).toEqual({ 1: 5, 2: 6 });
      expect(await stored(store, 2)).toEqual({}); // still cached, not due yet
      const back = await call(t.url, 'GET', '/v1/users/1/read-states');
      expect((back.body as { read_states: { mention_count: number; version: number }[] }).read_states).toMatchObject([
        { mention_count: 5, version: v1 },
        { mention_count: 6, version: v2 },
      ]);
    } finally {
      await t.close();
    }
  });

  it('a clean stop writes every change (deletes included) and a restart on the store sees them', async () => {
    const store = new MemoryStore();
    const first = await startNaive({}, { flushDelayMs: 3_600_000 }, store);
    const versions = new Map<string, number>();
    for (let u = 1; u <= 50; u++) {
      const a = await call(first.url, 'POST', `/v1/users/${u}/read-states/7/mentions`, { count: u });
      const b = await call(first.url, 'PATCH', `/v1/users/${u}/read-states/8`, { flags: u });
      versions.set(`${u}/7`, (a.body as { version: number }).version);
      versions.set(`${u}/8`, (b.body as { version: number }).version);
    }
    await call(first.url, 'DELETE', '/v1/users/3/read-states/8');
    expect(store.size).toBe(0);
    expect(await first.service.close()).toBe(0);
    expect(store.size).toBe(99);
    const second = await startNaive({}, {}, store);
    try {
      expect((await call(second.url, 'GET', '/v1/users/40/read-states/7')).body).toMatchObject({ mention_count: 40, version: versions.get('40/7') });
      expect((await call(second.url, 'GET', '/v1/users/40/read-states/8')).body).toMatchObject({ flags: 40, version: versions.get('40/8') });
      expect((await call(second.url, 'GET', '/v1/users/3/read-states/8')).status).toBe(404);
    } finally {
      await second.close();
    }
  });

  it('a store outage: misses get 503 SHARD_UNAVAILABLE, /ready says STORE_UNAVAILABLE, nothing is lost', async () => {
    const store = new FaultyStore(new MemoryStore());
    const t = await startNaive({}, { flushDelayMs: 0 }, store);
    try {
      await call(t.url, 'POST', '/v1/users/1/read-states/1/mentions', {});
      store.failing = true;
      const miss = await call(t.url, 'POST', '/v1/users/2/read-states/1/mentions', {});
      expect(miss.status).toBe(503);
      expect(miss.body).toMatchObject({ error: 'SHARD_UNAVAILABLE' });
      expect(Number(miss.headers.get('retry-after'))).toBeGreaterThan(0);
      await call(t.url, 'POST', '/v1/users/1/read-states/1/mentions', {}); // cached: still served
      await until(async () => (await call(t.url, 'GET', '/ready')).status === 503);
      expect((await call(t.url, 'GET', '/ready')).body).toMatchObject({ error: 'STORE_UNAVAILABLE' });
      store.failing = false;
      await until(async () => (await call(t.url, 'GET', '/ready')).status === 200, 15_000);
      await until(async () => (await stored(store.inner, 1))[1] === 2);
      expect((await call(t.url, 'POST', '/v1/users/2/read-states/1/mentions', {})).status).toBe(200);
    } finally {
      await t.close();
    }
  });
});
