/**
 * The /ready probe sends each shard an empty batch. With no flush delay the worker flushes on
 * every batch, so that empty batch must carry the store's state (a failing store means: hold
 * changes) and whatever it does flush must reach the write-behind, or probes drop changes.
 */
import { afterEach, expect, it } from 'vitest';
import { MemoryStore } from '../../workers/store/memory-store.js';
import { RsWord, TOMB_PIN_HI } from '../../workers/protocol.js';
import { FaultyStore } from '../support/faulty-store.js';
import { call } from '../support/http-client.js';
import { startService, type RunningService } from '../support/service.js';

let s: RunningService | undefined;
afterEach(async () => {
  await s?.close();
  s = undefined;
});

it('probing /ready while the store is down drops no acknowledged change', async () => {
  const inner = new MemoryStore();
  const store = new FaultyStore(inner);
  s = await startService({ shards: 1, capacity: 100, maxUsers: 10, flushDelayMs: 0 }, store);
  expect((await call(s.url, 'POST', '/v1/users/1/read-states/1/mentions', {})).status).toBe(200);
  expect(await s.service.writeBehind.drain(10_000)).toBe(true);
  store.failing = true;
  expect((await call(s.url, 'POST', '/v1/users/1/read-states/1/mentions', {})).status).toBe(200);
  while (!s.service.writeBehind.storeFailing) await new Promise((r) => setTimeout(r, 5));
  // Acknowledged while the store is known to be failing: held in the shard, dirty.
  for (let c = 2; c <= 4; c++) expect((await call(s.url, 'POST', `/v1/users/1/read-states/${c}/mentions`, {})).status).toBe(200);
  expect((await call(s.url, 'GET', '/ready')).status).toBe(503);
  expect((await call(s.url, 'GET', '/ready')).status).toBe(503);
  store.failing = false;
  await s.service.router.flushAll();
  expect(await s.service.writeBehind.drain(10_000)).toBe(true);
  const loaded = await inner.load(1, 0);
  const mentions = new Map<number, number>();
  for (let at = 0; at < loaded.length; at += RsWord.Size) if (loaded[at + RsWord.PinHi] !== TOMB_PIN_HI) mentions.set(loaded[at + RsWord.ChanLo], loaded[at + RsWord.Mention]);
  expect(Object.fromEntries(mentions)).toEqual({ 1: 2, 2: 1, 3: 1, 4: 1 });
});
